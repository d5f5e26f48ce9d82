"""The terminal sanitiser: every hostile character kind is removed, visible text of any script kept."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core.safetext import (
    DEFAULT_LIMIT,
    ELLIPSIS,
    GITHUB_LOGIN,
    is_safe_text,
    safe_json,
    safe_text,
)

# One of each kind a hostile server would send (the list, and what terminals act on).
HOSTILE = {
    "ESC (C0), a CSI colour": "\x1b[31m",
    "OSC title + BEL": "\x1b]0;owned\x07",
    "NUL": "\x00",
    "backspace": "\x08",
    "carriage return": "\r",
    "DEL": "\x7f",
    "C1 CSI": "\x9b",
    "C1 OSC": "\x9d",
    "C1 NEL": "\x85",
    "bidi RLO": "\u202e",
    "bidi LRI": "\u2066",
    "bidi PDI": "\u2069",
    "arabic letter mark": "\u061c",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "BOM": "\ufeff",
    "soft hyphen": "\u00ad",
    "tag character": "\U000e0041",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "hangul filler": "\u3164",
    "variation selector": "\ufe0f",
    "lone surrogate": "\ud800",
    "unassigned": "\U000e0fff",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_kind_is_removed(kind: str) -> None:
    text = f"ok{HOSTILE[kind]}done"
    got = safe_text(text)
    assert got.replace(" ", "").replace("[31m", "").replace("]0;owned", "") == "okdone"
    assert is_safe_text(got)
    assert not is_safe_text(text)
    assert all(unicodedata.category(c)[0] != "C" for c in got)


def test_whitespace_controls_become_one_space_each() -> None:
    assert safe_text("a\tb\nc\r\nd\u2028e") == "a b c  d e"


def test_visible_text_of_every_script_is_kept() -> None:
    text = "vega-cache-1 ✦ Привет 你好 مرحبا שלום 🙂 ñ e\u0301"
    assert safe_text(text) == text
    assert is_safe_text(text)


def test_length_cap() -> None:
    assert safe_text("x" * DEFAULT_LIMIT) == "x" * DEFAULT_LIMIT
    assert safe_text("x" * (DEFAULT_LIMIT + 1)) == "x" * (DEFAULT_LIMIT - 1) + ELLIPSIS
    assert safe_text("abcdef", 3) == "ab" + ELLIPSIS
    assert safe_text("abc", 3) == "abc"
    assert safe_text("abc", 0) == ELLIPSIS  # the cap is at least one character
    # removed characters do not count against the cap
    assert safe_text("\u200b" * 10 + "abc", 3) == "abc"


def test_safe_json_cleans_every_string_and_key() -> None:
    value = {
        "login\u202e": "ali\x1b[2Jce",
        "n": 1,
        "ok": True,
        "none": None,
        "list": ["\x9bx", ("\u200by",), 2.5],
    }
    assert safe_json(value) == {
        "login": "ali[2Jce",
        "n": 1,
        "ok": True,
        "none": None,
        "list": ["x", ["y"], 2.5],
    }
    assert safe_json("z" * 5, 2) == "z" + ELLIPSIS


@pytest.mark.parametrize("login", ["a", "alice", "Alice-Bob", "a1-b2-c3", "x" * 39, "0"])
def test_github_login_syntax_accepts(login: str) -> None:
    assert GITHUB_LOGIN.fullmatch(login)


@pytest.mark.parametrize(
    "login", ["", "-a", "a-", "a--b", "x" * 40, "al ice", "al_ice", "ali\u200bce", "álice", "a.b"]
)
def test_github_login_syntax_refuses(login: str) -> None:
    assert not GITHUB_LOGIN.fullmatch(login)


@given(st.text())
def test_output_is_always_safe_and_idempotent(text: str) -> None:
    once = safe_text(text, 50)
    assert len(once) <= 50
    assert is_safe_text(once)
    assert safe_text(once, 50) == once
