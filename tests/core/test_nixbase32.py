"""nixbase32 (protocol.md §2.2): known answers, the spec's algorithm written literally, properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import nixbase32
from vega.errors import FormatError

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def spec_encode(data: bytes) -> str:
    """protocol.md §2.2, transcribed bit by bit."""
    n = len(data)
    length = 0 if n == 0 else (8 * n - 1) // 5 + 1
    out = []
    for k in range(length - 1, -1, -1):
        b = 5 * k
        i, j = b >> 3, b & 7
        c = (data[i] >> j) | ((data[i + 1] << (8 - j)) if i + 1 < n else 0)
        out.append(ALPHABET[c & 31])
    return "".join(out)


def spec_decode(text: str) -> bytes:
    """protocol.md §2.2 decode, transcribed; raises ValueError where decode must fail."""
    n = len(text) * 5 // 8
    if (0 if n == 0 else (8 * n - 1) // 5 + 1) != len(text):
        raise ValueError("length")
    out = bytearray(n)
    for k, ch in enumerate(reversed(text)):
        digit = ALPHABET.index(ch)  # ValueError outside the alphabet
        b = 5 * k
        i, j = b >> 3, b & 7
        out[i] |= (digit << j) & 0xFF
        carry = digit >> (8 - j)
        if i + 1 < n:
            out[i + 1] |= carry
        elif carry:
            raise ValueError("carry")
    return bytes(out)


# sha256("hi") as printed by `nix hash file --base32` (Nix 2.8) and a store path of ours.
KNOWN = [
    (b"", ""),
    (hashlib.sha256(b"hi").digest(), "193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg"),
    (
        bytes.fromhex("8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"),
        "193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg",
    ),
    (b"\x00", "00"),
    (b"\xff", "7z"),
    (b"\x1f", "0z"),
    (b"\x00" * 20, "0" * 32),
    (b"\xff" * 20, "z" * 32),
]


@pytest.mark.parametrize(("raw", "text"), KNOWN)
def test_known_answers(raw: bytes, text: str) -> None:
    assert nixbase32.encode(raw) == text
    assert nixbase32.decode(text) == raw
    assert spec_encode(raw) == text


@pytest.mark.parametrize(
    ("n", "length"), [(0, 0), (1, 2), (2, 4), (5, 8), (16, 26), (20, 32), (32, 52), (64, 103)]
)
def test_encoded_len(n: int, length: int) -> None:
    assert nixbase32.encoded_len(n) == length
    assert len(nixbase32.encode(bytes(n))) == length


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0", "length"),
        ("000", "length"),
        ("0" * 30, "length"),
        ("e" * 32, "character"),
        ("0" * 31 + "E", "character"),
        ("0" * 31 + "\u00e9", "character"),
        ("0" * 51 + "Z", "character"),
        ("zz", "non-zero bits"),
        ("80", "non-zero bits"),
        ("2" + "0" * 51, "non-zero bits"),
        ("0" * 129, "length"),
        ("e" + "0" * 129, "character"),
        ("\u00e9" + "0" * 129, "character"),
        ("z" + "0" * 129, "non-zero bits"),
    ],
)
def test_decode_rejects(text: str, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        nixbase32.decode(text)


def test_is_nix32() -> None:
    assert nixbase32.is_nix32("z" * 32, 20)
    assert not nixbase32.is_nix32("z" * 32, 32)
    assert not nixbase32.is_nix32("e" * 32, 20)
    assert nixbase32.is_nix32("", 0)


@given(st.one_of(st.binary(max_size=90), st.binary(min_size=75, max_size=200)))
def test_matches_spec_and_round_trips(data: bytes) -> None:
    text = nixbase32.encode(data)
    assert text == spec_encode(data)
    assert nixbase32.decode(text) == data


@given(
    st.one_of(
        st.text(alphabet=ALPHABET + "eotuE!\u00e9", max_size=60),
        st.text(alphabet=ALPHABET, min_size=125, max_size=140),
        st.text(alphabet=ALPHABET + "e\u00e9", min_size=125, max_size=140),
    )
)
def test_decode_agrees_with_spec(text: str) -> None:
    try:
        want = spec_decode(text)
    except ValueError:
        with pytest.raises(FormatError):
            nixbase32.decode(text)
    else:
        assert nixbase32.decode(text) == want


@given(st.text(max_size=120))
def test_arbitrary_text_raises_only_format_error(text: str) -> None:
    try:
        raw = nixbase32.decode(text)
    except FormatError:
        return
    assert nixbase32.encode(raw) == text


def test_error_messages_name_the_character_and_quote_at_most_120_characters() -> None:
    """The messages say what is wrong and never echo more than 120 characters of the input."""
    long_bad = "e" + "0" * 159
    with pytest.raises(FormatError) as e:
        nixbase32.decode(long_bad)
    assert e.value.message == f"nix base-32: invalid character 'e' in {long_bad[:120]!r}"
    with pytest.raises(FormatError) as e:
        nixbase32.decode("000")
    assert e.value.message == "nix base-32: invalid length 3: '000'"
    long_len = "0" * 131
    with pytest.raises(FormatError) as e:
        nixbase32.decode(long_len)
    assert e.value.message == f"nix base-32: invalid length 131: {long_len[:120]!r}"
    with pytest.raises(FormatError) as e:
        nixbase32.decode("z" + "0" * 129)
    assert e.value.message == f"nix base-32: non-zero bits past the last byte in {('z' + '0' * 129)[:120]!r}"
