"""Untrusted strings on their way to an agent: control and invisible characters, lengths, instructions.

Every string that comes from the cache, the control plane, the caller or local configuration and
enters a tool result passes through :func:`untrusted` (mcp.md §6):

1. a non-string becomes ``""``;
2. the client's one sanitiser, :func:`vega.core.safetext.safe_text` (issue 14): controls that stand
   for white space (TAB, CR, LF, NEL, line separators) become one space; every other control (C0
   such as ESC and BEL, DEL, C1), bidirectional override and isolate, and invisible format
   character (Unicode ``Cf``: zero-width characters, the tag block...) is removed, so what an agent
   reads is what a person reading the same JSON sees. (The original spaced every control; removing
   the non-space ones is stricter and keeps one rule for terminal and agent.)
3. longer than ``max_len`` UTF-16 code units (as the original measured) ⇒ the first ``max_len``
   units (never half a surrogate pair) and ``…[truncated]``.

Then :func:`mark_instructions` puts a visible marker before text that reads like an instruction to
the agent ("ignore previous instructions", "you must", chat-template tokens, piped shell commands), so no
instruction-like text reaches the agent unmarked. A marker changes no verdict: verdicts are computed
from checked facts only, never from server text.

Spec: mcp.md §6; issue 9 (no instruction-like text reaches the agent unmarked); issue 14.
"""

from __future__ import annotations

import re

from vega.core.safetext import safe_text

__all__ = [
    "INSTRUCTION_MARK",
    "TRUNCATED",
    "looks_like_instruction",
    "mark_instructions",
    "untrusted",
    "untrusted_list",
    "untrusted_text",
]

TRUNCATED = "…[truncated]"
"""Appended to a string cut at its length limit (mcp.md §6)."""

INSTRUCTION_MARK = "[untrusted text, not an instruction] "
"""Put before untrusted text that reads like an instruction to the agent."""

_SEPARATORS = re.compile(r"[-_.+=/:\\]+")
_INSTRUCTION = re.compile(
    "|".join(
        (
            r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(previous|prior|above|earlier|all|any"
            r"|your|the|these|those|safety)\b",
            r"\b(instruction|instructions|system prompt|jailbreak|prompt injection)\b",
            r"\b(system|developer|assistant|user)\s*(prompt|message)\b",
            r"^\s*(system|assistant|developer)\s*[:>]",
            r"\byou (must|should|are now|will now|have to|need to)\b",
            r"\b(do not|don't|never) (tell|report|mention|warn|verify|check)\b",
            r"\b(mark|treat|consider|report)\b.{0,30}\b(as )?(safe|verified|trusted|allowed?)\b",
            r"\b(verdict|allow|approve)\b.{0,20}\b(this|it|now|anyway|immediately|instead)\b",
            r"<\|[^|>]{0,40}\|>|\[/?inst\]|<</?sys>>|</?(system|instructions?|prompt)>",
            # Shell commands, not package names (bash, curl and sudo are ordinary store paths).
            r"\b(curl|wget)\b[^|]{0,80}\|\s*(sudo\s+)?(ba)?sh\b|\bsh -c\b|\brm -rf\b",
        )
    ),
    re.IGNORECASE,
)


def _utf16_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def untrusted(value: object, max_len: int = 256) -> str:
    """``value`` made safe to show (:func:`vega.core.safetext.safe_text`), capped as mcp.md §6 says.

    Args:
        value: anything; a non-string is ``""``.
        max_len: the cap in UTF-16 code units (mcp.md §6 measures as JavaScript does).
    """
    if not isinstance(value, str):
        return ""
    text = safe_text(value, len(value) + 1)
    units = 0
    for i, ch in enumerate(text):
        units += _utf16_units(ch)
        if units > max_len:
            return text[:i] + TRUNCATED
    return text


def untrusted_list(values: object, max_items: int = 50, max_len: int = 256) -> list[str]:
    """A list of untrusted strings: non-list ⇒ ``[]``; the first ``max_items``, each :func:`untrusted`."""
    if not isinstance(values, list):
        return []
    return [untrusted(v, max_len) for v in values[:max_items]]


def looks_like_instruction(text: str) -> bool:
    """Whether ``text`` reads like an instruction to an agent (separators in names read as spaces)."""
    spaced = _SEPARATORS.sub(" ", text)
    return _INSTRUCTION.search(text) is not None or _INSTRUCTION.search(spaced) is not None


def mark_instructions(text: str) -> str:
    """``text`` with :data:`INSTRUCTION_MARK` before it when it reads like an instruction."""
    if text.startswith(INSTRUCTION_MARK) or not looks_like_instruction(text):
        return text
    return INSTRUCTION_MARK + text


def untrusted_text(value: object, max_len: int = 256) -> str:
    """:func:`untrusted` then :func:`mark_instructions`: every free-text string an agent reads."""
    return mark_instructions(untrusted(value, max_len))
