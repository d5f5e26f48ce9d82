"""The durable transparency log: storage, appends, proofs, tiles and its HTTP routes.

Spec: protocol.md §2.7, §5; C2SP tlog-checkpoint and tlog-tiles.
"""

__all__: list[str] = []
