"""Narrowing untrusted JSON, already parsed into Python values, field by field.

Each function takes the object and a key and returns the value with its type
checked, or raises FormatError naming the JSON path (``entries[3].index:
expected a non-negative integer``): house-style.md §4.5.

Spec: protocol.md §4-§6 (the control-plane messages), §5 (the log's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from vega.errors import FormatError

__all__ = [
    "MAX_SIZE",
    "expect_bool",
    "expect_list",
    "expect_object",
    "expect_optional_str",
    "expect_size",
    "expect_str",
]

MAX_SIZE = 2**63 - 1
"""The largest size or count a message may carry."""


def expect_object(obj: object, path: str = "body") -> Mapping[str, object]:
    """The object ``obj``, or FormatError naming ``path``."""
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a JSON object")
    return cast(Mapping[str, object], obj)  # JSON object keys are strings


def expect_str(obj: Mapping[str, object], key: str, *, path: str = "") -> str:
    """``obj[key]`` as a string."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise FormatError(f"{path}{key}: expected a string")
    return value


def expect_optional_str(obj: Mapping[str, object], key: str, *, path: str = "") -> str | None:
    """``obj[key]`` as a string, or None when absent or null."""
    return None if obj.get(key) is None else expect_str(obj, key, path=path)


def expect_size(obj: Mapping[str, object], key: str, *, path: str = "") -> int:
    """``obj[key]`` as an integer from 0 to 2**63 - 1 (an integral float is accepted)."""
    value = obj.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise FormatError(f"{path}{key}: expected a non-negative integer")
    return value


def expect_bool(obj: Mapping[str, object], key: str, *, path: str = "") -> bool:
    """``obj[key]`` as a boolean."""
    value = obj.get(key)
    if not isinstance(value, bool):
        raise FormatError(f"{path}{key}: expected true or false")
    return value


def expect_list(obj: Mapping[str, object], key: str, *, path: str = "") -> list[object]:
    """``obj[key]`` as a JSON array."""
    value = obj.get(key)
    if not isinstance(value, list):
        raise FormatError(f"{path}{key}: expected an array")
    return value
