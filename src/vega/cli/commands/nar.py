"""``vega nar``: NAR plumbing (dump, hash, restore, ls), as Nix's own commands do it.

Spec: protocol.md §2.4 (NarHash, NarSize, Compression). Upstream: ``nix-store
--dump``, ``nix hash path``, ``nix-store --restore``, ``nix nar ls -R``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from vega.cli import style

if TYPE_CHECKING:
    from vega.core.nar import NarListing

__all__ = ["register", "run_dump", "run_hash", "run_ls", "run_restore"]

_EXAMPLES = """\
examples:
  vega nar dump /nix/store/...-hello > hello.nar     the NAR of a path, as `nix-store --dump`
  vega nar hash /nix/store/...-hello                 sha256-..., as `nix hash path`
  vega nar restore ./hello < hello.nar               restore safely; ./hello must not exist
  vega nar ls hello.nar.zst                          entries, as `nix nar ls -R` (zstd/xz/bzip2 too)
"""

_MAX_OUTPUT = 1 << 40
"""Decompressed bytes allowed through `ls` and `restore` (1 TiB); the output streams, so this only
stops runaways."""


def register(sub: Any) -> None:
    """Add ``vega nar`` and its subcommands to ``sub``."""
    p = sub.add_parser(
        "nar",
        help="NAR plumbing: dump, hash, restore, ls",
        description="Serialise, hash, restore and list Nix archives (NARs).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nar_sub = p.add_subparsers(dest="nar_command", metavar="<subcommand>", parser_class=type(p))

    d = nar_sub.add_parser(
        "dump",
        help="write the NAR of PATH to stdout",
        epilog="example:\n  vega nar dump /nix/store/...-hello > hello.nar",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("path", metavar="PATH", help="a file, symlink or directory")
    d.set_defaults(run=run_dump)

    h = nar_sub.add_parser(
        "hash",
        help="print the NAR hash of PATH as `nix hash path` does",
        epilog="example:\n  vega nar hash /nix/store/...-hello\n  sha256-...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    h.add_argument("path", metavar="PATH", help="a file, symlink or directory")
    h.add_argument(
        "--json", action="store_true", help="print {narHash, narSize, ca} (narHash as sha256:<nix32>)"
    )
    h.set_defaults(run=run_hash)

    r = nar_sub.add_parser(
        "restore",
        help="restore a NAR read from stdin as DIR",
        description="Restore a NAR (or one compressed with zstd, xz or bzip2) from stdin as DIR, all or "
        "nothing: DIR must not exist; nothing is written through symlinks or outside DIR; on any error "
        "nothing is left behind. Symlink targets are restored verbatim, as nix-store --restore does, "
        "unless --confine-symlinks is given.",
        epilog="example:\n  vega nar restore ./hello < hello.nar",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("dir", metavar="DIR", help="where to restore (must not exist)")
    r.add_argument(
        "--confine-symlinks",
        action="store_true",
        help="also refuse symlinks that would point outside DIR (absolute targets, or `..` climbing out)",
    )
    r.add_argument(
        "--max-size",
        type=int,
        default=_MAX_OUTPUT,
        metavar="BYTES",
        help="refuse a compressed NAR that decompresses to more than BYTES (default: 1 TiB)",
    )
    r.set_defaults(run=run_restore)

    ls = nar_sub.add_parser(
        "ls",
        help="list the entries of a NAR file (compressed or not), as `nix nar ls -R`",
        epilog="examples:\n  vega nar ls hello.nar\n  vega nar ls -l hello.nar.zst\n  "
        "vega nar dump ./dir | vega nar ls -",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument(
        "file", metavar="FILE", help="a NAR, or one compressed with zstd, xz or bzip2; - for stdin"
    )
    ls.add_argument("-l", "--long", action="store_true", help="show type, permissions and size")
    ls.add_argument(
        "--max-size",
        type=int,
        default=_MAX_OUTPUT,
        metavar="BYTES",
        help="refuse a compressed NAR that decompresses to more than BYTES (default: 1 TiB)",
    )
    ls.set_defaults(run=run_ls)


def run_dump(args: argparse.Namespace) -> int:
    """``vega nar dump PATH``."""
    from vega.client import narfs

    sys.stdout.flush()
    narfs.dump_to_fd(args.path, sys.stdout.fileno())
    return 0


def run_hash(args: argparse.Namespace) -> int:
    """``vega nar hash PATH``."""
    from vega.client import narfs
    from vega.core import nar

    nar_hash, nar_size = narfs.hash_path(args.path)
    if args.json:
        style.emit_json({"narHash": str(nar_hash), "narSize": nar_size, "ca": nar.content_address(nar_hash)})
    else:
        print(nar_hash.sri)
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """``vega nar restore DIR``."""
    from vega.client import narfs
    from vega.core import compression

    read = compression.sniffing_reader(lambda n: sys.stdin.buffer.read(n), max_output=args.max_size)
    narfs.restore(read, args.dir, confine_symlinks=args.confine_symlinks)
    return 0


def run_ls(args: argparse.Namespace) -> int:
    """``vega nar ls FILE``."""
    from vega.core import compression, nar

    out = sys.stdout.buffer
    # NOTE: names come from the NAR (often a cache's): on a terminal they are made safe (issue 14);
    # piped, the bytes are exact, as Nix prints them.
    terminal = sys.stdout.isatty()
    with open(sys.stdin.fileno() if args.file == "-" else args.file, "rb", closefd=args.file != "-") as f:
        read = compression.sniffing_reader(f.read, max_output=args.max_size)
        for entry in nar.list_nar(nar.read_nar(read)):
            if not entry.path and entry.kind == "directory":
                continue  # like Nix: a directory root is shown by its entries
            out.write(_ls_line(entry, long=args.long, terminal=terminal) + b"\n")
    out.flush()
    return 0


def _ls_line(entry: NarListing, *, long: bool, terminal: bool = False) -> bytes:
    """One line as ``nix nar ls -R [-l] FILE /`` prints it (the root directory itself is not listed).

    With ``terminal``, the line is rendered through :func:`vega.cli.style.safe` (UTF-8, invalid
    bytes replaced), so a hostile name cannot drive the terminal.
    """
    rel = b"./" + entry.path if entry.path else b""
    if not long:
        line = rel
    else:
        mode = {"directory": "dr-xr-xr-x", "symlink": "lrwxrwxrwx"}.get(
            entry.kind, "-r-xr-xr-x" if entry.executable else "-r--r--r--"
        )
        line = f"{mode} {entry.size:20d} ".encode() + rel
        line += b" -> " + entry.target if entry.kind == "symlink" else b""
    return style.safe(line.decode("utf-8", "replace")).encode() if terminal else line
