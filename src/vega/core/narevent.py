"""The events a NAR is read into and written from: one value per grammar production.

A NAR is a stream of these, in document order: ``DirectoryStart``, then for each
entry ``EntryStart(name)``, the entry's node, ``EntryEnd``, and finally
``DirectoryEnd``; a regular file is ``RegularFile(executable, size)`` followed by
``FileChunk`` events totalling exactly ``size`` bytes; a symlink is one
``Symlink(target)``. ``vega.core.nar`` reads and writes them and re-exports them.

Spec: protocol.md §2.4 (``NarHash``, ``NarSize``). Upstream: Nix src/libutil/archive.cc.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DIRECTORY_END",
    "DIRECTORY_START",
    "ENTRY_END",
    "DirectoryEnd",
    "DirectoryStart",
    "EntryEnd",
    "EntryStart",
    "FileChunk",
    "NarEvent",
    "RegularFile",
    "Symlink",
]


@dataclass(frozen=True, slots=True)
class DirectoryStart:
    """A directory node begins; its entries follow, then a DirectoryEnd."""


@dataclass(frozen=True, slots=True)
class DirectoryEnd:
    """The current directory node ends."""


@dataclass(frozen=True, slots=True)
class EntryStart:
    """An entry of the current directory; its node's events follow, then EntryEnd."""

    name: bytes
    """The entry's name (validated: see ``validate_name``)."""


@dataclass(frozen=True, slots=True)
class EntryEnd:
    """The current entry ends."""


@dataclass(frozen=True, slots=True)
class RegularFile:
    """A regular file node; exactly ``size`` bytes of FileChunk events follow."""

    executable: bool
    """Whether the file is executable."""
    size: int
    """Length of the contents in bytes."""


@dataclass(frozen=True, slots=True)
class FileChunk:
    """A piece of the current file's contents (never empty)."""

    data: bytes
    """The bytes."""


@dataclass(frozen=True, slots=True)
class Symlink:
    """A symlink node."""

    target: bytes
    """The link's target, verbatim (never empty, no NUL)."""


NarEvent = DirectoryStart | DirectoryEnd | EntryStart | EntryEnd | RegularFile | FileChunk | Symlink
"""Everything ``read_nar`` yields and ``NarWriter.write`` takes."""

DIRECTORY_START = DirectoryStart()
"""The one DirectoryStart value."""
DIRECTORY_END = DirectoryEnd()
"""The one DirectoryEnd value."""
ENTRY_END = EntryEnd()
"""The one EntryEnd value."""
