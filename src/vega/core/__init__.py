"""Pure core: Nix wire formats, crypto, proofs and rules; no I/O (house-style.md §4.1)."""
