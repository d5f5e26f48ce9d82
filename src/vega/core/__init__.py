"""Pure core: Nix wire formats, crypto, proofs and rules; no I/O (house-style.md §4.1).

Spec: protocol.md §2 (encodings and cryptographic formats), §7 (promotion model).
"""

__all__: list[str] = []
