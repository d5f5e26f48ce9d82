"""Vega: a reproducible-build Nix binary cache with a transparency log.

Spec: cli.md §1 (the version string must equal the package version).
"""

__all__ = ["__version__"]

__version__ = "0.18.0"
