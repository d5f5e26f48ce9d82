# The example application vega-attest and vega-reproduce run on (tests/e2e/test_agents.py and
# scripts/demo): a small closure with references, no nixpkgs (builders are busybox's /bin/sh;
# see scripts/nix-env), and one deliberately unreproducible output. `seed` comes from seed.txt so
# a run can make fresh, never-built outputs by writing it.
#
#   app   -> lib        (bin/app reads lib's file: a reference)
#   docs                (no references)
#   stamp               (writes a random UUID and the build time: every build differs)
{
  description = "vega example app: reproducible outputs and one unreproducible one";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      seed = builtins.readFile ./seed.txt;
      mk = system: rec {
        lib = derivation {
          name = "example-app-lib";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/share
            echo "$seed" > $out/share/seed
            echo 'hello from the example app' > $out/share/message
          '' ];
        };
        app = derivation {
          name = "example-app";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/bin
            echo "#!/bin/sh" > $out/bin/app
            echo "cat ${lib}/share/message" >> $out/bin/app
            chmod +x $out/bin/app
          '' ];
        };
        docs = derivation {
          name = "example-app-docs";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out/share/doc
            echo "$seed" > $out/share/doc/README
          '' ];
        };
        stamp = derivation {
          name = "example-app-stamp";
          inherit system seed;
          builder = "/bin/sh";
          args = [ "-c" ''
            mkdir -p $out
            cat /proc/sys/kernel/random/uuid > $out/build-id
            date +%s > $out/built-at
          '' ];
        };
        default = app;
      };
    in
    {
      packages = forAll mk;
    };
}
