"""protocol.md §5 and docs/log-api.md: the log's messages round-trip and refuse malformed JSON."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core.logapi import (
    MAX_PROOF_HASHES,
    ConsistencyAnswer,
    EntryAnswer,
    EventStatement,
    InclusionAnswer,
    LookupAnswer,
    LookupEntry,
)
from vega.errors import FormatError

H = "ab" * 32
_proofs = st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_HASHES).map(tuple)
_data = st.text(alphabet=st.characters(blacklist_categories=["Cs"])).map(str.encode)
_sizes = st.integers(0, 2**63 - 1)


def wire(obj: dict[str, object]) -> object:
    """What a client parses: the server's JSON after a trip through the text form."""
    return json.loads(json.dumps(obj))


@given(index=_sizes, data=_data)
def test_entry_round_trip(index: int, data: bytes) -> None:
    answer = EntryAnswer(index=index, data=data)
    assert EntryAnswer.from_json(wire(answer.to_json())) == answer


@given(index=_sizes, size=_sizes, proof=_proofs, leaf=st.binary(min_size=32, max_size=32))
def test_inclusion_round_trip(index: int, size: int, proof: tuple[bytes, ...], leaf: bytes) -> None:
    answer = InclusionAnswer(index=index, size=size, leaf_hash_hex=leaf.hex(), proof=proof, root_hex=H)
    assert InclusionAnswer.from_json(wire(answer.to_json())) == answer


@given(first=_sizes, second=_sizes, proof=_proofs)
def test_consistency_round_trip(first: int, second: int, proof: tuple[bytes, ...]) -> None:
    answer = ConsistencyAnswer(first=first, second=second, proof=proof)
    assert ConsistencyAnswer.from_json(wire(answer.to_json())) == answer


@given(
    note=st.text(),
    entries=st.lists(st.builds(LookupEntry, index=_sizes, data=_data, proof=_proofs), max_size=4),
    truncated=st.booleans(),
)
def test_lookup_round_trip(note: str, entries: list[LookupEntry], truncated: bool) -> None:
    answer = LookupAnswer(checkpoint_note=note, sth={"size": 1}, entries=tuple(entries), truncated=truncated)
    assert LookupAnswer.from_json(wire(answer.to_json())) == answer


@given(indexes=st.lists(_sizes, max_size=5).map(tuple), signature=st.text())
def test_lookup_event_statement_round_trip(indexes: tuple[int, ...], signature: str) -> None:
    events = EventStatement(indexes=indexes, signature=signature)
    answer = LookupAnswer(checkpoint_note="c", sth=None, entries=(), events=events)
    assert LookupAnswer.from_json(wire(answer.to_json())) == answer


def test_inclusion_root_is_informative_only() -> None:
    body = {"index": 1, "size": 2, "leafHashHex": H, "proofHex": [H], "rootHex": 7}
    assert InclusionAnswer.from_json(body).root_hex == ""


def test_lookup_without_truncated_is_complete() -> None:
    """Servers from before the byte limit send no ``truncated``."""
    assert LookupAnswer.from_json({"checkpoint": "c", "entries": []}).truncated is False


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (EntryAnswer.from_json, [], "body: expected a JSON object"),
        (EntryAnswer.from_json, {"index": -1, "data": "x"}, "index: expected a non-negative integer"),
        (EntryAnswer.from_json, {"index": 1, "data": 2}, "data: expected a string"),
        (EntryAnswer.from_json, {"index": 1, "data": "\ud800"}, "data: not encodable as UTF-8"),
        (
            InclusionAnswer.from_json,
            {"index": 1, "size": 2, "proofHex": []},
            "leafHashHex: expected a string",
        ),
        (
            InclusionAnswer.from_json,
            {"index": 1, "size": 2, "leafHashHex": H, "proofHex": H},
            "proofHex: expected an array",
        ),
        (
            ConsistencyAnswer.from_json,
            {"first": 1, "second": 2, "proofHex": [H.upper()]},
            r"proofHex\[0\]: expected 64 lowercase hex characters",
        ),
        (
            ConsistencyAnswer.from_json,
            {"first": 1, "second": 2, "proofHex": [1]},
            r"proofHex\[0\]: expected 64 lowercase hex characters",
        ),
        (
            ConsistencyAnswer.from_json,
            {"first": 1, "second": 2, "proofHex": [H] * (MAX_PROOF_HASHES + 1)},
            "65 hashes is more than any tree needs",
        ),
        (LookupAnswer.from_json, {"entries": []}, "checkpoint: expected a string"),
        (
            LookupAnswer.from_json,
            {"checkpoint": "c", "entries": [1]},
            r"entries\[0\]: expected a JSON object",
        ),
        (
            LookupAnswer.from_json,
            {"checkpoint": "c", "entries": [], "truncated": "no"},
            "truncated: expected true or false",
        ),
        (
            LookupAnswer.from_json,
            {"checkpoint": "c", "entries": [], "events": {"indexes": [1, -2], "signature": "s"}},
            r"events\.indexes\[1\]: expected a non-negative integer",
        ),
        (
            LookupAnswer.from_json,
            {"checkpoint": "c", "entries": [], "events": {"indexes": [True], "signature": "s"}},
            r"events\.indexes\[0\]: expected a non-negative integer",
        ),
        (
            LookupAnswer.from_json,
            {"checkpoint": "c", "entries": [], "events": {"indexes": []}},
            r"events\.signature: expected a string",
        ),
        (EventStatement.from_json, [], "body: expected a JSON object"),
    ],
)
def test_malformed_answers_are_refused(parse: object, body: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse(body)  # type: ignore[operator]


def test_path_prefixes_name_the_field() -> None:
    with pytest.raises(FormatError, match=r"^log entry 4: index: expected"):
        EntryAnswer.from_json({"data": "x"}, "log entry 4: ")
    with pytest.raises(FormatError, match=r"^log lookup: entries\[1\]\.proofHex: expected an array"):
        LookupAnswer.from_json(
            {
                "checkpoint": "c",
                "entries": [{"index": 0, "data": "", "proofHex": []}, {"index": 1, "data": ""}],
            },
            "log lookup: ",
        )


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_arbitrary_json_raises_only_format_error(obj: object) -> None:
    for parse in (
        EntryAnswer.from_json,
        InclusionAnswer.from_json,
        ConsistencyAnswer.from_json,
        LookupAnswer.from_json,
        EventStatement.from_json,
    ):
        with contextlib.suppress(FormatError):
            parse(obj)
