"""The README's shell blocks, read as the README's "How this README is tested" section describes.

A block is a fenced code block whose language is a shell one (``console``, ``sh``, ``bash``,
``shell``). The HTML comment on the line just before its fence says what the test does with it:

- none, on a ``console`` block: its ``$ command`` lines are run in order, each followed by the
  output it must print;
- ``<!-- run: in the background ... -->``: the single command starts the server;
- ``<!-- not run: <reason> -->``: not run, with the reason said.

In expected output ``…`` stands for any text within a line, and a line of just ``…`` for any
number of lines.

Spec: issue 12 ("The README speaks to users first").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Block", "Step", "output_pattern", "parse_blocks"]

SHELL_LANGUAGES = frozenset({"console", "sh", "bash", "shell"})
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*(run|not run):\s*(.*?)\s*-->\s*$")


@dataclass
class Step:
    """One ``$ command`` and the output lines shown under it."""

    command: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    """One shell block: where it starts (1-based line of its fence), its marker and its steps."""

    line: int
    language: str
    marker: str | None
    reason: str
    steps: list[Step]
    text: str


def parse_blocks(markdown: str) -> list[Block]:
    """Every shell block of ``markdown``, in order, with its marker and ``$`` steps."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        language = fence.group(1)
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if language not in SHELL_LANGUAGES:
            continue
        marker = _MARKER.match(lines[start - 1]) if start > 0 else None
        steps: list[Step] = []
        for line in body:
            if line.startswith("$ "):
                steps.append(Step(line[2:].strip()))
            elif steps:
                steps[-1].expected.append(line)
        blocks.append(
            Block(
                line=start + 1,
                language=language,
                marker=marker.group(1) if marker else None,
                reason=marker.group(2) if marker else "",
                steps=steps,
                text="\n".join(body),
            )
        )
    return blocks


def output_pattern(expected: list[str]) -> re.Pattern[str]:
    """A regex that matches the whole output (lines, trailing spaces ignored) the README shows."""
    parts: list[str] = []
    for line in expected:
        line = line.rstrip()
        if line == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(
                "".join(".*?" if piece == "…" else re.escape(piece) for piece in re.split("(…)", line))
            )
            parts.append(r"\n")
    return re.compile("".join(parts))
