# A flake without nixpkgs for the `vega push` end-to-end test (tests/e2e/test_push.py).
# Builders are busybox's /bin/sh (sandbox-paths = /bin/sh=/bin/busybox, see scripts/nix-env).
# `seed` is read from seed.txt so a test can make fresh, never-built outputs by writing it.
{
  description = "vega push test flake: a two-path closure, no nixpkgs";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      seed = builtins.readFile ./seed.txt;
      mk = system: rec {
        lib = derivation {
          name = "vega-push-lib";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/share/doc
            echo "$seed" > $out/share/doc/seed
            echo 'echo hello from vega push' > $out/share/hello.sh
            chmod +x $out/share/hello.sh
            ln -s hello.sh $out/share/link
          '' ];
        };
        app = derivation {
          name = "vega-push-app";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/bin
            echo "#!/bin/sh" > $out/bin/app
            echo "exec ${lib}/share/hello.sh" >> $out/bin/app
            chmod +x $out/bin/app
          '' ];
        };
        default = app;
      };
    in
    {
      packages = forAll mk;
    };
}
