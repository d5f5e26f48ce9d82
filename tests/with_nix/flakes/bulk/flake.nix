# A flake without nixpkgs for the `vega push` interrupt, stdin and failure tests
# (tests/e2e/test_push_ux.py). Builders are busybox's /bin/sh (scripts/nix-env).
# `seed` (seed.txt) makes fresh outputs; `blobs` holds six independent paths of 24 MiB of
# random bytes each (incompressible, so each spills to a spool file); `broken` fails.
{
  description = "vega push test flake: six 24 MiB paths, and a failing build";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      seed = builtins.readFile ./seed.txt;
      blob = system: k: derivation {
        name = "vega-bulk-${toString k}";
        inherit system seed;
        builder = "/bin/sh";
        args = [ "-c" ''
          mkdir -p $out
          echo "$seed" > $out/seed
          head -c 25165824 /dev/urandom > $out/blob
        '' ];
      };
      mk = system: rec {
        blobs = derivation {
          name = "vega-bulk-all";
          inherit system seed;
          parts = map (blob system) [ 1 2 3 4 5 6 ];
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out
            echo "$parts" > $out/parts
          '' ];
        };
        broken = derivation {
          name = "vega-bulk-broken";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            echo "compiling the thing"
            echo "fatal: the widget is missing (seed $seed)" >&2
            exit 3
          '' ];
        };
        default = blobs;
      };
    in
    {
      packages = forAll mk;
    };
}
