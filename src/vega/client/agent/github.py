r"""GitHub Actions workflow commands: data escaping and warning lines.

Any attacker-influenced text placed in a workflow command is escaped as command data: ``%``
first, then CR, then LF, so a message holding ``\\n::error::x`` stays one line.

Spec: agent.md §9.
"""

from __future__ import annotations

from typing import TextIO

__all__ = ["escape_data", "warning"]


def escape_data(text: str) -> str:
    """Escape ``text`` as workflow-command data (``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def warning(message: str, err: TextIO) -> None:
    """Write one ``::warning::<escaped message>`` line to ``err``."""
    err.write(f"::warning::{escape_data(message)}\n")
    err.flush()
