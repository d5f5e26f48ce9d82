# The flake `scripts/demo` and tests/e2e/test_story.py build, push, attest and verify.
# No nixpkgs: builders are busybox's /bin/sh (sandbox-paths = /bin/sh=/bin/busybox, see
# scripts/nix-env). `seed` comes from seed.txt, so a run can make fresh, never-built outputs
# by writing it; the build itself is deterministic (a rebuild gives the same bytes).
{
  description = "vega demo flake: a two-path closure, no nixpkgs";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      seed = builtins.readFile ./seed.txt;
      mk = system: rec {
        greeting = derivation {
          name = "vega-demo-greeting";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/share
            echo "$seed" > $out/share/seed
            echo 'hello from a reproducible build' > $out/share/greeting
          '' ];
        };
        hello = derivation {
          name = "vega-demo-hello";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/bin
            echo "#!/bin/sh" > $out/bin/hello
            echo "cat ${greeting}/share/greeting" >> $out/bin/hello
            chmod +x $out/bin/hello
          '' ];
        };
        default = hello;
      };
    in
    {
      packages = forAll mk;
    };
}
