"""Command-line targets that name store paths: a local ``./result`` symlink stands for its path.

Spec: cli.md §10.1 (targets of ``vega verify``); issue 12 (``vega cache delete ./result``).
"""

from __future__ import annotations

import os

__all__ = ["resolve_local"]


def resolve_local(target: str) -> str:
    """A local symlink into the store (``./result``) stands for the store path it points to."""
    if "/" in target and not target.startswith("/nix/store/") and os.path.lexists(target):
        real = os.path.realpath(target)
        if real.startswith("/nix/store/"):
            return "/".join(real.split("/")[:4])
    return target
