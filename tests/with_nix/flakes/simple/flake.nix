# A flake without nixpkgs for differential tests against the real nix (tests/with_nix).
# Builders are busybox's /bin/sh (sandbox-paths = /bin/sh=/bin/busybox, see scripts/nix-env).
# Owned by tests/with_nix/test_derivation_vs_nix.py; others may reuse it read-only.
{
  description = "vega test flake: fixed-output and input-addressed derivations, no nixpkgs";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      mk = system: rec {
        # Fixed output, flat sha256: the five bytes "hello".
        fod = derivation {
          name = "vega-fod-hello";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "echo -n hello > $out" ];
          outputHashMode = "flat";
          outputHashAlgo = "sha256";
          outputHash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        };
        # Fixed output, flat sha1, given in SRI form (nix writes base-16 into the .drv).
        fodSha1 = derivation {
          name = "vega-fod-sha1";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "echo -n hello > $out" ];
          outputHash = "sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00=";
        };
        # Fixed output, recursive sha256 of a directory.
        fodTree = derivation {
          name = "vega-fod-tree";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "mkdir $out && echo -n hello > $out/greeting" ];
          outputHashMode = "recursive";
          outputHashAlgo = "sha256";
          outputHash = "sha256-9VLMdp10BoYVr4jTwmoeA/pyMyeD5Fuqt2AhdPpT2ZU=";
        };
        # Input-addressed, two outputs, strings that need every escape.
        base = derivation {
          name = "vega-base";
          inherit system;
          builder = "/bin/sh";
          outputs = [ "out" "dev" ];
          args = [ "-c" ''
            mkdir $out $dev
            cat ${fod} > $out/hello
            cat ${fodSha1} > $out/hello-sha1
            echo "$weird" > $out/weird
            echo ${fodTree} > $dev/tree
          '' ];
          weird = "quote \" backslash \\ newline \n tab \t cr \r end";
        };
        # Depends on both outputs of base, a text file and a source path.
        top = derivation {
          name = "vega-top";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "mkdir $out && cat ${base}/hello ${base.dev}/tree ${./data.txt} $note > $out/all" ];
          note = builtins.toFile "vega-note.txt" "a text file with a reference to ${./data.txt}";
        };
        default = top;
      };
    in
    {
      packages = forAll mk;
    };
}
