"""The reference control plane (``vega-server``); stands on ``vega.core`` alone.

Spec: protocol.md §3-§6 (read paths, write API, log, status), §8; docs/server-api.md.
"""

__all__: list[str] = []
