# A stand-in for the few nixpkgs attributes ../../flake.nix uses, so that its structure can be
# checked offline (`nix flake show` / `nix flake check --no-build` with
# `--override-input nixpkgs path:tests/flake-stub`; tests/github/test_flake.py). nixpkgs itself
# cannot be fetched where the suite runs. Each builder checks the arguments it is given the way
# the real one needs them and returns a plain derivation that records them (never built).
{
  description = "stand-in for the nixpkgs attributes Vega's flake uses (tests only)";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
      isDrv = x: builtins.isAttrs x && (x.type or null) == "derivation";
      need = cond: msg: if cond then true else throw "flake-stub: ${msg}";
      drvs = what: xs:
        need (builtins.isList xs) "${what} must be a list"
        && builtins.all (x: need (isDrv x) "${what} must be a list of derivations") xs;

      lib = {
        inherit genAttrs;
        makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/bin") ps);
        cleanSource = src: builtins.path {
          path = src;
          name = "source";
          filter = path: type: !(builtins.elem (baseNameOf path) [ ".git" ".venv" "result" ]);
        };
      };

      pkgsFor = system:
        let
          mk = name: extra: derivation {
            inherit name system;
            builder = "/bin/sh";
            args = [ "-c" "echo stand-in > $out" ];
          } // extra;
          leaf = name: mk name { pname = name; };
          python = {
            fetchPypi = a:
              assert need (a ? pname && a ? version) "fetchPypi needs pname and version";
              assert need (builtins.substring 0 7 (a.hash or "") == "sha256-") "fetchPypi needs an SRI sha256 hash";
              assert need ((a.format or "setuptools") != "wheel" || (a ? dist && a ? python)) "a wheel needs dist and python";
              mk "${a.pname}-${a.version}-src" { inherit (a) hash; };
            buildPythonPackage = a:
              assert need (isDrv a.src) "buildPythonPackage needs a fetched src";
              assert need (a ? format || a ? pyproject) "buildPythonPackage needs format or pyproject";
              assert drvs "dependencies" (a.dependencies or [ ]);
              mk "python-${a.pname}-${a.version}" { inherit (a) pname version; dependencies = a.dependencies or [ ]; };
            buildPythonApplication = a:
              assert need (a.pyproject or false) "the application is built from pyproject.toml";
              assert need (builtins.isPath a.src || builtins.isString a.src) "src must be a path";
              assert need (builtins.pathExists "${a.src}/pyproject.toml") "src has no pyproject.toml";
              assert drvs "build-system" a.build-system;
              assert drvs "dependencies" a.dependencies;
              assert need (builtins.isList (a.makeWrapperArgs or [ ])) "makeWrapperArgs must be a list";
              mk "${a.pname}-${a.version}" {
                inherit (a) pname version dependencies makeWrapperArgs meta;
                srcHasPackage = builtins.pathExists "${a.src}/src/vega/__init__.py";
              };
          } // genAttrs [ "hatchling" "cryptography" "zstandard" "rich" "anyio" "idna" "h11" "truststore" "typing-extensions" "ruamel-yaml" ] leaf;
        in
        {
          stdenv.hostPlatform.system = system;
          python3Packages = python;
          mkShell = a:
            assert drvs "packages" (a.packages or [ ]);
            assert drvs "inputsFrom" (a.inputsFrom or [ ]);
            mk "nix-shell" { packages = a.packages or [ ]; };
        } // genAttrs [ "zstd" "shellcheck" "ruff" "mypy" ] leaf;
    in
    {
      inherit lib;
      legacyPackages = genAttrs systems pkgsFor;
    };
}
