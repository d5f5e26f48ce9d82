"""Vega: a reproducible-build Nix binary cache with a transparency log."""

__version__ = "0.18.0"
