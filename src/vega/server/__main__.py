"""``vega-server``: the reference control plane's entry point (not yet available)."""

from __future__ import annotations

import sys

__all__ = ["entry"]


def entry() -> None:
    """Console-script entry point for ``vega-server``."""
    sys.stderr.write("error: vega-server is not yet available in this version of Vega\n")
    raise SystemExit(1)


if __name__ == "__main__":
    entry()
