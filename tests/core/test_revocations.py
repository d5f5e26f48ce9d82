"""The signed revocation list (changes-0.19.md): a known answer built by hand from the spec text,
and every case in which a client may not call a build clean.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vega.core.revocations import (
    MAX_AGE_MS,
    Revocation,
    assess,
    canonical_array,
    claimed_revocation,
    sign_revocation_list,
    signing_message,
)
from vega.core.signing import generate_secret_key

SEED = b"\x01" * 32
SHARED = generate_secret_key("vega-cache-1", SEED)
OTHER = generate_secret_key("vega-cache-1", b"\x09" * 32)
H = "0c6kzph7l0dcbajv7lgwnf2xbrjml8ah"
G = "1b9p07z77phvv2hf6gm9f28syp39f1ag"
AT = 1_767_225_600_000
NOW = AT + 1000

ENTRY = Revocation(
    hash=H,
    store_path=f"/nix/store/{H}-evil",
    reason='compromised "builder" \\ répété ✦\n',
    at=AT - 600_000,
)


def test_signature_known_answer_from_the_spec_text() -> None:
    """The signed bytes, written out by hand from changes-0.19.md, and RFC 8032 over them."""
    body = sign_revocation_list(SHARED, [ENTRY], AT)
    by_hand = (
        "vega-revocations:v2:1767225600000:1:"
        '[{"hash":"0c6kzph7l0dcbajv7lgwnf2xbrjml8ah",'
        '"storePath":"/nix/store/0c6kzph7l0dcbajv7lgwnf2xbrjml8ah-evil",'
        '"reason":"compromised \\"builder\\" \\\\ répété ✦\\n",'
        '"at":1767225000000}]'
    ).encode()
    assert signing_message(AT, 1, canonical_array(body["revocations"])) == by_hand  # type: ignore[arg-type]
    expected = base64.b64encode(Ed25519PrivateKey.from_private_bytes(SEED).sign(by_hand)).decode()
    assert body == {
        "v": 2,
        "revocations": [
            {
                "hash": H,
                "storePath": f"/nix/store/{H}-evil",
                "reason": 'compromised "builder" \\ répété ✦\n',
                "at": AT - 600_000,
            }
        ],
        "total": 1,
        "at": AT,
        "signature": expected,
    }
    Ed25519PrivateKey.from_private_bytes(SEED).public_key().verify(base64.b64decode(expected), by_hand)


def test_re_serialisation_keeps_the_order_received() -> None:
    """The array is re-serialised exactly as received: key order kept, optional fields in place."""
    received = '[{"at":5,"reason":"r","fingerprint":"1;x","storePath":"/nix/store/a-b","hash":"a"}]'
    assert canonical_array(json.loads(received)) == received


def wire(body: dict[str, object]) -> object:
    """What a client holds after a round trip through JSON text."""
    return json.loads(json.dumps(body))


def test_revoked_clean_and_binding() -> None:
    bound = Revocation(hash=G, store_path=f"/nix/store/{G}-x", reason="", at=1, fingerprint="1;fp")
    body = wire(sign_revocation_list(SHARED, [ENTRY, bound], AT))
    revoked = assess(body, SHARED.public, NOW, H)
    assert revoked.status == "revoked"
    assert revoked.revocation is not None
    assert revoked.revocation.reason == ENTRY.reason
    assert revoked.detail == f"revoked: {ENTRY.reason}"
    assert assess(body, SHARED.public, NOW, "x" * 32).status == "clean"
    # an entry naming a fingerprint revokes that binding only
    assert assess(body, SHARED.public, NOW, G, "1;fp").status == "revoked"
    assert assess(body, SHARED.public, NOW, G, "1;other").status == "clean"
    other = assess(body, SHARED.public, NOW, G)
    assert other.revocation is not None
    assert other.revocation.reason == "no reason given"
    assert other.revocation.fingerprint == "1;fp"


def test_an_entry_naming_the_path_only_by_store_path_counts() -> None:
    body = wire(sign_revocation_list(SHARED, [ENTRY], AT))
    entry = body["revocations"][0]  # type: ignore[index]
    del entry["hash"]
    entry["at"] = "yesterday"
    array = body["revocations"]  # type: ignore[index]
    body["signature"] = _sign(array, AT, len(array))  # type: ignore[index]
    got = assess(body, SHARED.public, NOW, H)
    assert got.status == "revoked"
    assert got.revocation is not None
    assert got.revocation.at == 0
    assert got.revocation.store_path == ENTRY.store_path


def test_store_path_missing_falls_back_to_the_hash() -> None:
    body = wire(sign_revocation_list(SHARED, [ENTRY], AT))
    del body["revocations"][0]["storePath"]  # type: ignore[index]
    body["signature"] = _sign(body["revocations"], AT, 1)  # type: ignore[index]
    got = assess(body, SHARED.public, NOW, H)
    assert got.revocation is not None
    assert got.revocation.store_path == f"/nix/store/{H}"


def _sign(array: object, at: int, total: int) -> str:
    message = signing_message(at, total, canonical_array(array))  # type: ignore[arg-type]
    return base64.b64encode(Ed25519PrivateKey.from_private_bytes(SEED).sign(message)).decode()


def _tampered(kind: str) -> object:
    body = wire(sign_revocation_list(SHARED, [ENTRY], AT))
    assert isinstance(body, dict)
    match kind:
        case "not an object":
            return [body]
        case "version":
            body["v"] = 1
        case "array":
            body["revocations"] = "none"
        case "entries":
            body["revocations"] = ["x"]
        case "total type":
            body["total"] = "1"
        case "at type":
            body["at"] = True
        case "unsigned":
            del body["signature"]
        case "empty signature":
            body["signature"] = ""
        case "badly signed":
            body["signature"] = sign_revocation_list(OTHER, [ENTRY], AT)["signature"]
        case "entry dropped":
            body["revocations"] = []
        case "not base64":
            body["signature"] = "!!!"
        case "truncated":
            body["total"] = 2
            body["signature"] = _sign(body["revocations"], AT, 2)
        case "stale":
            old = AT - MAX_AGE_MS - 2000
            body["at"] = old
            body["signature"] = _sign(body["revocations"], old, 1)
        case "lone surrogate":
            body["revocations"][0]["reason"] = "\ud800"
    return body


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("not an object", "is malformed: not a JSON object"),
        ("version", "is malformed: version is not 2"),
        ("array", "is malformed: revocations is not an array of objects"),
        ("entries", "is malformed: revocations is not an array of objects"),
        ("total type", "is malformed: total and at must be integers"),
        ("at type", "is malformed: total and at must be integers"),
        ("unsigned", "is unsigned"),
        ("empty signature", "is unsigned"),
        ("badly signed", "signature does not verify under vega-cache-1"),
        ("entry dropped", "signature does not verify under vega-cache-1"),
        ("not base64", "signature does not verify under vega-cache-1"),
        ("truncated", "is truncated: total 2, 1 entries served"),
        ("stale", "is stale: signed 6.0 hours ago (more than 6)"),
        ("lone surrogate", "is malformed: not UTF-8"),
    ],
)
def test_never_clean_when(kind: str, why: str) -> None:
    got = assess(copy.deepcopy(_tampered(kind)), SHARED.public, NOW, "x" * 32)
    assert got.status == "unknown"
    assert got.detail == f"revocation list {why}"
    assert got.revocation is None


def test_fresh_up_to_six_hours() -> None:
    body = wire(sign_revocation_list(SHARED, [], AT))
    assert assess(body, SHARED.public, AT + MAX_AGE_MS, H).status == "clean"
    assert assess(body, SHARED.public, AT + MAX_AGE_MS + 1, H).status == "unknown"
    assert assess(body, OTHER.public, AT, H).status == "unknown"  # only the pinned key counts


def test_claimed_revocation_reads_the_list_without_its_signature() -> None:
    """Issue 12: with no pinned shared key, a revocation the cache claims still counts (never "clean")."""
    h = "a" * 32
    entry = {"hash": h, "storePath": f"/nix/store/{h}-x", "reason": "leaked key", "at": 5}
    body = {"v": 2, "revocations": ["junk", entry], "total": 2, "at": 9, "signature": "forged"}
    got = claimed_revocation(body, h, "fp")
    assert got is not None
    assert (got.reason, got.store_path) == ("leaked key", f"/nix/store/{h}-x")
    assert claimed_revocation(body, "b" * 32) is None
    assert claimed_revocation({**body, "revocations": [{**entry, "fingerprint": "other"}]}, h, "fp") is None
    assert claimed_revocation({"revocations": "nope"}, h) is None
    assert claimed_revocation([entry], h) is None
