"""``python -m vega`` runs the ``vega`` command line.

Spec: cli.md §1 (global behaviour).
"""

from vega.cli.main import entry

__all__: list[str] = []

entry()
