"""``python -m vega`` runs the ``vega`` command line."""

from vega.cli.main import entry

entry()
