"""NAR listings: the nodes ``nix nar ls -R`` shows, and whether a symlink escapes the tree.

``list_nar`` turns ``read_nar`` events into one :class:`NarListing` per node (a
directory before its entries); ``find_escaping_symlink`` simulates the kernel's
lookup over the NAR's own tree to tell whether a symlink would resolve outside
it (for restores that confine symlinks). ``vega.core.nar`` re-exports both.

Spec: protocol.md §2.4. Upstream: Nix src/nix/ls.cc (``nix nar ls``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from vega.core.narevent import DirectoryStart, EntryEnd, EntryStart, NarEvent, RegularFile, Symlink

__all__ = ["NarListing", "find_escaping_symlink", "list_nar"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NarListing:
    """One node of a NAR, as ``nix nar ls -R`` shows it."""

    path: bytes
    """Path below the root, ``/``-separated, without a leading ``/`` (``b""`` for the root)."""
    kind: str
    """``regular``, ``symlink`` or ``directory``."""
    executable: bool = False
    """For regular files: the executable bit."""
    size: int = 0
    """For regular files: the contents' length in bytes."""
    target: bytes = b""
    """For symlinks: the target."""


def list_nar(events: Iterator[NarEvent]) -> Iterator[NarListing]:
    """Every node of a NAR in order (a directory before its entries), from ``read_nar`` events."""
    parts: list[bytes] = []
    for event in events:
        if isinstance(event, EntryStart):
            parts.append(event.name)
        elif isinstance(event, EntryEnd):
            parts.pop()
        elif isinstance(event, RegularFile):
            yield NarListing(
                path=b"/".join(parts), kind="regular", executable=event.executable, size=event.size
            )
        elif isinstance(event, Symlink):
            yield NarListing(path=b"/".join(parts), kind="symlink", target=event.target)
        elif isinstance(event, DirectoryStart):
            yield NarListing(path=b"/".join(parts), kind="directory")


_MAX_FOLLOWS = 40  # Linux's limit on symlinks followed in one lookup


def find_escaping_symlink(listing: Iterable[NarListing]) -> bytes | None:
    """The path of the first symlink that would resolve outside the NAR's root, or None.

    Resolution is simulated over the NAR's own tree as the kernel would do it,
    following symlinks inside the tree (up to 40): an absolute target escapes,
    as does any ``..`` that climbs above the root, and a root that is itself a
    symlink always points outside. A lookup that meets a missing entry or a
    regular file stops there (the link dangles inside) and is not an escape;
    more than 40 symlinks in one lookup counts as an escape.
    """
    entries = list(listing)
    nodes = {tuple(e.path.split(b"/")) if e.path else (): e for e in entries}
    for e in entries:
        if e.kind != "symlink":
            continue
        if not e.path:
            return b""
        parts = tuple(e.path.split(b"/"))
        if not _stays_inside(list(parts[:-1]), e.target, nodes):
            return e.path
    return None


def _stays_inside(cwd: list[bytes], target: bytes, nodes: dict[tuple[bytes, ...], NarListing]) -> bool:
    if target.startswith(b"/"):
        return False
    pending = target.split(b"/")[::-1]  # components still to walk, the next one last
    follows = 0
    while pending:
        part = pending.pop()
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not cwd:
                return False
            cwd.pop()
            continue
        node = nodes.get((*cwd, part))
        if node is None or node.kind == "regular":
            return True  # the lookup fails here: the link dangles inside the tree
        if node.kind == "directory":
            cwd.append(part)
            continue
        follows += 1
        if follows > _MAX_FOLLOWS or node.target.startswith(b"/"):
            return False
        pending.extend(node.target.split(b"/")[::-1])
    return True
