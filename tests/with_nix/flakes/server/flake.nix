# A flake without nixpkgs for the server substitution test (tests/with_nix/test_server_substitution.py).
# Builders are busybox's /bin/sh (sandbox-paths = /bin/sh=/bin/busybox). The test copies this
# directory and writes a fresh seed.txt, so every run builds never-seen paths.
{
  description = "vega-server substitution test flake: a two-path closure, no nixpkgs";

  outputs = { self }:
    let
      system = "x86_64-linux";
      seed = builtins.readFile ./seed.txt;
      dep = derivation {
        name = "vega-server-dep";
        inherit system seed;
        builder = "/bin/sh";
        args = [ "-c" ''
          mkdir -p $out/share
          echo "$seed" > $out/share/seed
          echo 'dependency payload' > $out/share/data
          ln -s data $out/share/link
        '' ];
      };
      top = derivation {
        name = "vega-server-top";
        inherit system seed;
        builder = "/bin/sh";
        args = [ "-c" ''
          mkdir -p $out/bin
          echo "#!/bin/sh" > $out/bin/top
          echo "cat ${dep}/share/data" >> $out/bin/top
          chmod +x $out/bin/top
        '' ];
      };
    in
    {
      packages.${system} = { inherit dep top; default = top; };
    };
}
