"""``vega-attest`` and ``vega-reproduce``: the CI agent and the reproducer (agent.md §1).

Neither is implemented yet; each says so and exits 1 rather than pretend.

Spec: agent.md §1 (entry points).
"""

from __future__ import annotations

import sys

__all__ = ["attest_entry", "reproduce_entry"]


def _not_yet(name: str) -> None:
    sys.stderr.write(f"error: {name} is not yet available in this version of Vega\n")
    raise SystemExit(1)


def attest_entry() -> None:
    """Console-script entry point for ``vega-attest``."""
    _not_yet("vega-attest")


def reproduce_entry() -> None:
    """Console-script entry point for ``vega-reproduce``."""
    _not_yet("vega-reproduce")
