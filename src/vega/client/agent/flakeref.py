"""Flake references: own-repository classification, locked installables, local source mirrors.

* :func:`own_repo_subflake_dir` (agent.md §5.4): ``""`` for the repository's own root flake,
  ``"<sub>"`` for one of its sub-flakes, ``None`` for anything foreign.
* :func:`locked_installable` (agent.md §10.3): what the reproducer builds, pinned to the rev.
* :class:`Mirrors`: a test and self-hosting mechanism (docs/agents.md) that makes the reproducer
  fetch ``github:<owner>/<repo>`` from another git URL (e.g. ``git+file:///srv/app``) at the
  same rev. It is never active by default: only ``VEGA_GITHUB_MIRRORS`` turns it on.
* :func:`check_contained` (agent.md §10.4): the sub-flake directory is a real directory inside
  the fetched source tree (no symlink component, no escape).

Spec: agent.md §5.4, §10.3, §10.4.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote

from vega.errors import ConfigError

__all__ = [
    "Mirrors",
    "check_contained",
    "github_owner_repo",
    "locked_installable",
    "own_repo_subflake_dir",
]

_GITHUB_BARE: Final = re.compile(r"^github:([^/?#]+)/([^/?#]+)$")
_GITHUB: Final = re.compile(r"^github:([^/?#]+)/([^/?#]+)")
_DIR_PARAM: Final = re.compile(r"[?&]dir=([^&#]*)")
_REV40: Final = re.compile(r"^[0-9a-fA-F]{40}$")
_REPO: Final = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def own_repo_subflake_dir(installable: str, flake_dir: str, repository: str | None) -> str | None:
    """Classify ``installable`` against the repository's own flake (agent.md §5.4)."""
    ref = installable.split("#", 1)[0].rstrip("/")
    m = _GITHUB.match(ref)
    if ref.startswith("github:"):
        if m is None or not repository or f"{m.group(1)}/{m.group(2)}".lower() != repository.lower():
            return None
        d = _DIR_PARAM.search(ref)
        if d is None:
            return ""
        raw = d.group(1)
        if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
            return None  # a malformed escape
        return unquote(raw, errors="strict") if _decodes(raw) else None
    if ref in ("", ".") or ref.startswith(("/", "./", "../", "path:")):
        local = ref.removeprefix("path:")
        if local in ("", "."):
            return ""
        base = posixpath.normpath(flake_dir)
        target = posixpath.normpath(posixpath.join(base, local))
        rel = posixpath.relpath(target, base)
        if rel == ".":
            return ""
        if rel == ".." or rel.startswith("../") or rel.startswith("/"):
            return None
        return rel
    return None


def _decodes(raw: str) -> bool:
    try:
        unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def github_owner_repo(flake_ref: str) -> tuple[str, str] | None:
    """``(owner, repo)`` of a bare ``github:<owner>/<repo>`` ref, else ``None``."""
    m = _GITHUB_BARE.match(flake_ref)
    return None if m is None else (m.group(1), m.group(2))


def locked_installable(flake_ref: str, attr: str, rev: str, dir_: str | None = None) -> str:
    """The installable pinned to ``rev`` (agent.md §10.3).

    Raises:
        ConfigError: a ref with a fragment, ``dir`` on a non-GitHub ref or a non-commit rev, or a
            result that would look like a flag.
    """
    if "#" in flake_ref:
        raise ConfigError("refusing flake ref with a fragment")
    enc = quote(rev, safe="-_.!~*'()")
    bare = github_owner_repo(flake_ref) is not None
    if dir_:
        if not bare:
            raise ConfigError(f"subflake dir is only supported on a canonical github ref: {flake_ref}")
        if not _REV40.fullmatch(rev):
            raise ConfigError(f"subflake dir requires an immutable commit SHA rev: {rev}")
    if bare:
        out = f"{flake_ref}/{enc}" + (f"?dir={dir_}" if dir_ else "") + f"#{attr}"
    else:
        out = f"{flake_ref}{'&' if '?' in flake_ref else '?'}rev={enc}#{attr}"
    if out.startswith("-"):
        raise ConfigError(f"refusing installable that looks like a flag: {out}")
    return out


@dataclass(frozen=True, slots=True)
class Mirrors:
    """``owner/repo`` -> a git URL that holds the same commits (tests, self-hosted fleets).

    Parsed from ``VEGA_GITHUB_MIRRORS``: whitespace-separated ``owner/repo=git+<url>`` entries,
    e.g. ``example-org/app=git+file:///srv/git/app``. Names compare case-insensitively, as
    GitHub's do.
    """

    entries: Mapping[str, str] = field(default_factory=dict)
    """Lower-cased ``owner/repo`` -> ``git+…`` URL (no query, no fragment)."""

    @classmethod
    def parse(cls, text: str | None) -> Mirrors:
        """Parse the variable's value.

        Raises:
            ConfigError: an entry that is not ``owner/repo=git+<scheme>://…`` without query/fragment.
        """
        out: dict[str, str] = {}
        for entry in (text or "").split():
            name, sep, url = entry.partition("=")
            if not sep or not _REPO.fullmatch(name) or not re.fullmatch(r"git\+[a-z]+://[^?#\s]+", url):
                raise ConfigError(
                    f"VEGA_GITHUB_MIRRORS: expected owner/repo=git+<scheme>://<path>, got {entry[:120]!r}"
                )
            out[name.lower()] = url
        return cls(out)

    def url_for(self, flake_ref: str) -> str | None:
        """The mirror of a bare ``github:<owner>/<repo>`` ref, if one is configured."""
        owner_repo = github_owner_repo(flake_ref)
        if owner_repo is None:
            return None
        return self.entries.get(f"{owner_repo[0]}/{owner_repo[1]}".lower())

    def installable(self, flake_ref: str, attr: str, rev: str, dir_: str | None = None) -> str:
        """:func:`locked_installable`, fetched from the mirror when ``flake_ref`` has one.

        The checks of §10.3 run on the GitHub ref first, so a mirror never relaxes them.
        """
        canonical = locked_installable(flake_ref, attr, rev, dir_)
        url = self.url_for(flake_ref)
        if url is None:
            return canonical
        query = f"rev={quote(rev, safe='')}" + (f"&dir={dir_}" if dir_ else "")
        return f"{url}?{query}#{attr}"

    def fetch_tree_expr(self, flake_ref: str, rev: str) -> str | None:
        """The ``builtins.fetchTree`` expression for the containment check (§6.4, §10.4)."""
        import json

        owner_repo = github_owner_repo(flake_ref)
        if owner_repo is None:
            return None
        url = self.url_for(flake_ref)
        if url is None:
            args = (
                f'type = "github"; owner = {json.dumps(owner_repo[0])}; repo = {json.dumps(owner_repo[1])};'
                f" rev = {json.dumps(rev)};"
            )
        else:
            args = f'type = "git"; url = {json.dumps(url.removeprefix("git+"))}; rev = {json.dumps(rev)};'
        return f"(builtins.fetchTree {{ {args} }}).outPath"


def check_contained(src: str, dir_: str) -> None:
    """Walk ``dir_`` from ``src`` with ``lstat``: real directories only, and inside ``src``.

    Raises:
        ConfigError: a component is missing, a symlink or not a directory, or the real path
            escapes the source tree.
    """
    here = src
    for segment in dir_.split("/"):
        here = os.path.join(here, segment)
        try:
            st = os.lstat(here)
        except OSError:
            raise ConfigError(f"subflake dir {dir_!r}: {segment!r} does not exist in the source") from None
        if stat.S_ISLNK(st.st_mode):
            raise ConfigError(f"subflake dir {dir_!r}: {segment!r} is a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"subflake dir {dir_!r}: {segment!r} is not a directory")
    real_src = os.path.realpath(src)
    real = os.path.realpath(os.path.join(src, dir_))
    if real != real_src and not real.startswith(real_src + "/"):
        raise ConfigError(f"subflake dir {dir_!r} resolves outside the source tree")
