# Vega as a Nix flake: the `vega` CLI, the CI agent (`vega-attest`) and the reproducer
# (`vega-reproduce`), built with nixpkgs' Python tooling from this repository's sources.
#
#   nix run github:<owner>/vega#vega -- login          # the CLI (also the default app)
#   nix run github:<owner>/vega#attest -- .#           # the CI agent (agent.md §1)
#   nix run github:<owner>/vega#reproduce              # the reproducer (agent.md §10)
#   nix develop                                        # a shell with Python, zstd and the linters
#
# Every program has zstd on PATH and uses the runner's own `nix` (agent.md §1). The structure of
# this file is checked offline against a stand-in for the nixpkgs attributes it uses
# (tests/flake-stub, tests/github/test_flake.py): nixpkgs itself cannot be fetched there.
{
  description = "Vega: a reproducible-build Nix binary cache with a transparency log";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      project = (builtins.fromTOML (builtins.readFile ./pyproject.toml)).project;

      vegaFor = pkgs:
        let
          py = pkgs.python3Packages;
          # Not in nixpkgs: the wheels PyPI serves, pinned by hash (the versions of agent/requirements.txt).
          httpcore2 = py.buildPythonPackage rec {
            pname = "httpcore2";
            version = "2.16.2";
            format = "wheel";
            src = py.fetchPypi {
              inherit pname version format;
              dist = "py3";
              python = "py3";
              hash = "sha256-FgUa4qQvd2AHVD8y3pNJoxeyPSy7ThRWtLrA6IuHQZo=";
            };
            dependencies = [ py.h11 py.truststore ];
          };
          httpx2 = py.buildPythonPackage rec {
            pname = "httpx2";
            version = "2.16.2";
            format = "wheel";
            src = py.fetchPypi {
              inherit pname version format;
              dist = "py3";
              python = "py3";
              hash = "sha256-8FwTqt5MRdvxyQYGR6EFjwrK1iOY+tludBJp7bM9RvU=";
            };
            dependencies = [ py.anyio httpcore2 py.idna py.truststore py.typing-extensions ];
          };
        in
        py.buildPythonApplication {
          pname = project.name;
          version = project.version;
          pyproject = true;
          src = lib.cleanSource ./.;
          build-system = [ py.hatchling ];
          dependencies = [ py.cryptography py.zstandard httpx2 py.rich py."ruamel-yaml" ];
          # agent.md §1: zstd on PATH; nix is the runner's own.
          makeWrapperArgs = [ "--prefix" "PATH" ":" (lib.makeBinPath [ pkgs.zstd ]) ];
          doCheck = false; # the suite needs a Nix store and PostgreSQL: it runs in .ci/run
          pythonImportsCheck = [ "vega" ];
          meta = {
            description = project.description;
            mainProgram = "vega";
          };
        };

      app = drv: program: {
        type = "app";
        program = "${drv}/bin/${program}";
      };
    in
    {
      packages = forAllSystems (pkgs: rec {
        vega = vegaFor pkgs;
        default = vega;
      });

      apps = forAllSystems (pkgs:
        let vega = self.packages.${pkgs.stdenv.hostPlatform.system}.vega; in {
          default = app vega "vega";
          vega = app vega "vega";
          attest = app vega "vega-attest";
          reproduce = app vega "vega-reproduce";
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.vega ];
          packages = [ pkgs.zstd pkgs.shellcheck pkgs.ruff pkgs.mypy ];
        };
      });
    };
}
