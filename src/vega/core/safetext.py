"""Text from a server, made safe to show on a terminal: the one sanitiser every front end uses.

A server (or anyone who can put bytes in a narinfo, a key name, a login or an error message) must
not be able to drive the user's terminal: no escape sequences (C0, including ESC), no C1 controls
(U+0080-U+009F, which some terminals treat as CSI/OSC), no bidirectional overrides or isolates
(which reorder what is shown, "Trojan Source"), no invisible format characters (Unicode category
Cf: zero-width spaces and joiners, tag characters, soft hyphen...), no line or paragraph
separators, and no unbounded floods. :func:`safe_text` removes all of these (a control that
stands for white space becomes one space, so words stay apart) and caps the length;
:func:`safe_json` applies it to every string, key included, of a JSON value.

Both are pure functions, so the CLI and the MCP server render server data through the same
code. The rule is deliberately a deny list of Unicode categories (Cc, Cf, Cs, Zl, Zp, and
unassigned code points, which a later Unicode version may make format characters) plus the few
invisible characters Unicode files elsewhere (Hangul fillers, variation selectors, the combining
grapheme joiner); every visible character of every script passes unchanged.

Spec: issue 14 ("The client never trusts the terminal to a server"); cli.md §1.4 (safe errors).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["DEFAULT_LIMIT", "ELLIPSIS", "GITHUB_LOGIN", "is_safe_text", "safe_json", "safe_text"]

DEFAULT_LIMIT = 1000
"""Characters kept of one server string unless the caller asks for another cap."""

ELLIPSIS = "\u2026"
"""Appended when a string was cut at its cap."""

GITHUB_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
"""GitHub login syntax: 1-39 ASCII letters, digits and single inner hyphens."""

_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})
_SPACE_LIKE = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")
# Invisible characters outside the removed categories (Lo or Mn, so they look like nothing).
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)


def _removed(ch: str) -> bool:
    return ch in _INVISIBLE or unicodedata.category(ch) in _REMOVED_CATEGORIES


def safe_text(value: str, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` with every control, format and invisible character removed, at most ``limit`` long.

    A control that stands for white space (tab, line feed, NEL, the line and paragraph
    separators...) becomes one space; the others are dropped. When the result is longer than
    ``limit`` characters it is cut to ``limit - 1`` and :data:`ELLIPSIS` is appended.

    Args:
        value: text from an untrusted source.
        limit: the largest length of the result (at least 1).
    """
    limit = max(1, limit)
    out: list[str] = []
    kept = 0
    for ch in value:
        if ch in _SPACE_LIKE:
            ch = " "
        elif _removed(ch):
            continue
        out.append(ch)
        kept += 1
        if kept > limit:
            break
    if kept > limit:
        return "".join(out[: limit - 1]) + ELLIPSIS
    return "".join(out)


def is_safe_text(value: str) -> bool:
    """Whether ``value`` has no character :func:`safe_text` would remove or replace."""
    return not any(ch in _SPACE_LIKE or _removed(ch) for ch in value)


def safe_json(value: object, limit: int = DEFAULT_LIMIT) -> object:
    """A copy of the JSON value ``value`` with :func:`safe_text` applied to every string and key.

    Numbers, booleans and null pass unchanged; lists and tuples become lists, mappings dicts.
    """
    if isinstance(value, str):
        return safe_text(value, limit)
    if isinstance(value, dict):
        return {safe_text(str(k), limit): safe_json(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v, limit) for v in value]
    return value
