"""vega.core.tlog: the original's STH message and check (§2.7, §5.1) and leaf events (§5.2, §7.1)."""

# JSON bodies full of braces read better with %-formatting than with str.format.
# ruff: noqa: UP031

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import signing, tlog
from vega.core.tlog import (
    AttestationLeaf,
    BuildProvenance,
    KeyAddedLeaf,
    KeyRetiredLeaf,
    PromotionLeaf,
    RevocationLeaf,
    SignedTreeHead,
)
from vega.errors import FormatError, VerificationError

# protocol.md §2.1: the throwaway known-answer key pinned by the original implementation.
KAT_SECRET = (
    "vega-kat-1:CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYYkw6SU+iKZYmZEuWWpEy2nnP5nFR/cQt5gDPCQl9uCRw=="
)
KAT_PUBLIC = "vega-kat-1:JMOklPoimWJmRLllqRMtp5z+ZxUf3ELeYAzwkJfbgkc="
ROOT_HEX = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_sth_message_renders_numbers_like_javascript() -> None:
    """protocol.md §2.7: 1234.0 is rendered 1234; rootHash is used exactly as sent."""
    assert tlog.sth_message(1234, ROOT_HEX, 1767225600000) == (
        f"vega-sth:v1:1234:{ROOT_HEX}:1767225600000".encode()
    )
    assert tlog.sth_message(1234.0, ROOT_HEX.upper(), 1767225600000.0) == (
        f"vega-sth:v1:1234:{ROOT_HEX.upper()}:1767225600000".encode()
    )
    sth = tlog.parse_sth(b'{"size": 1234.0, "rootHash": "%s", "timestamp": 1.7672256e12}' % ROOT_HEX.encode())
    assert sth.message == f"vega-sth:v1:1234:{ROOT_HEX}:1767225600000".encode()


@pytest.mark.parametrize(
    ("x", "want"),
    [
        (0, "0"),
        (-0.0, "0"),
        (1234.0, "1234"),
        (1.5, "1.5"),
        (-1.5, "-1.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.2345678901234568e20, "123456789012345680000"),
        (0.000001, "0.000001"),
        (1.5e-6, "0.0000015"),
        (1e-7, "1e-7"),
        (1.23e-18, "1.23e-18"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**53 + 1, "9007199254740992"),
    ],
)
def test_js_number(x: float, want: str) -> None:
    """ECMA-262 Number::toString, the values checked against a JavaScript engine's String()."""
    assert tlog.js_number(x) == want


def test_js_number_rejects_non_finite() -> None:
    with pytest.raises(FormatError, match="not finite"):
        tlog.js_number(float("inf"))


def test_sign_and_verify_with_the_known_answer_key() -> None:
    secret = signing.parse_secret_key(KAT_SECRET)
    public = signing.parse_public_key(KAT_PUBLIC)
    sth = tlog.sign_sth(8, bytes.fromhex(ROOT_HEX), 1767225600000, secret)
    assert sth.root_hash == bytes.fromhex(ROOT_HEX)
    assert sth.tree_size == 8
    tlog.verify_sth(sth, public)
    body = json.dumps(sth.to_json())
    again = tlog.parse_sth(body)
    assert again == sth
    tlog.verify_sth(again, public)
    # The same head written with floats still verifies (§2.7).
    tlog.verify_sth(tlog.parse_sth(body.replace('"size": 8', '"size": 8.0')), public)
    for bad in (
        SignedTreeHead(9, ROOT_HEX, 1767225600000, sth.signature),
        SignedTreeHead(8, ROOT_HEX.replace("5d", "5e", 1), 1767225600000, sth.signature),
        SignedTreeHead(8, ROOT_HEX.upper(), 1767225600000, sth.signature),
        SignedTreeHead(8, ROOT_HEX, 1767225600001, sth.signature),
    ):
        with pytest.raises(
            VerificationError, match="tree head signature does not verify with key 'vega-kat-1'"
        ):
            tlog.verify_sth(bad, public)
    with pytest.raises(VerificationError, match=r"^tree head is not signed$"):
        tlog.verify_sth(SignedTreeHead(8, ROOT_HEX, 1), public)
    assert "signature" not in SignedTreeHead(8, ROOT_HEX, 1).to_json()


def test_tree_size_rule() -> None:
    """protocol.md §5.1: floor(size) when positive, else 0."""
    assert SignedTreeHead(12.9, ROOT_HEX, 0).tree_size == 12
    assert SignedTreeHead(-3, ROOT_HEX, 0).tree_size == 0
    assert SignedTreeHead(0, ROOT_HEX, 0).tree_size == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", "expected a JSON object"),
        ('{"rootHash": "%s", "timestamp": 1}' % ROOT_HEX, "size must be a number"),
        ('{"size": true, "rootHash": "%s", "timestamp": 1}' % ROOT_HEX, "size must be a number"),
        ('{"size": "1", "rootHash": "%s", "timestamp": 1}' % ROOT_HEX, "size must be a number"),
        ('{"size": 1e999, "rootHash": "%s", "timestamp": 1}' % ROOT_HEX, "size must be finite"),
        ('{"size": NaN, "rootHash": "%s", "timestamp": 1}' % ROOT_HEX, "not valid JSON"),
        ('{"size": 1, "rootHash": "%s"}' % ROOT_HEX, "timestamp must be a number"),
        ('{"size": 1, "rootHash": "%s", "timestamp": 1}' % ROOT_HEX[:-1], "64 hex digits"),
        ('{"size": 1, "rootHash": "%sg", "timestamp": 1}' % ROOT_HEX[:-1], "64 hex digits"),
        ('{"size": 1, "rootHash": 5, "timestamp": 1}', "64 hex digits"),
        ('{"size": 1, "rootHash": "%s", "timestamp": 1, "signature": 5}' % ROOT_HEX, "signature must be"),
        ("{", "not valid JSON"),
        ("[" * 100000, "not valid JSON"),
        (" " * (1 << 20) + "{}", "exceeds the limit"),
    ],
)
def test_parse_sth_rejects(body: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        tlog.parse_sth(body)


@given(st.binary(max_size=200))
def test_parse_sth_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        tlog.parse_sth(data)


# --- leaves -----------------------------------------------------------------------------------


def test_spec_leaf_shapes_byte_for_byte() -> None:
    """protocol.md §5.2: the two leaf examples, with their placeholder strings, key order and spacing."""
    promotion = PromotionLeaf(
        store_path="/nix/store/<hash>-<name>",
        fingerprint="1;...;...;...;...",
        nar_hash="sha256:<52>",
        agreed_since=1000,
        at=2000,
    )
    assert tlog.encode_leaf(promotion) == (
        b'{"v":1,"event":"promotion","storePath":"/nix/store/<hash>-<name>","fingerprint":"1;...;...;...;...",'
        b'"narHash":"sha256:<52>","agreedSince":1000,"at":2000}'
    )
    revocation = RevocationLeaf(store_path="/nix/store/<hash>-<name>", reason="<text>", at=2)
    assert tlog.encode_leaf(revocation) == (
        b'{"v":1,"event":"revocation","storePath":"/nix/store/<hash>-<name>","reason":"<text>","at":2}'
    )
    for leaf in (promotion, revocation):
        assert tlog.parse_leaf(tlog.encode_leaf(leaf)) == leaf


def test_other_leaf_shapes_byte_for_byte() -> None:
    attestation = AttestationLeaf(
        store_path="/nix/store/p",
        fingerprint="1;p;sha256:x;1;",
        nar_hash="sha256:x",
        tenant=None,
        lane="pool",
        attester_id="agent:ab",
        provenance=BuildProvenance(flake_ref="github:o/r", attr="packages.x.hello", rev="abc", dir="sub"),
        at=5,
    )
    assert tlog.encode_leaf(attestation) == (
        b'{"v":1,"event":"attestation","storePath":"/nix/store/p","fingerprint":"1;p;sha256:x;1;",'
        b'"narHash":"sha256:x","tenant":null,"lane":"pool","attesterId":"agent:ab",'
        b'"provenance":{"flakeRef":"github:o/r","attr":"packages.x.hello","rev":"abc","dir":"sub"},"at":5}'
    )
    added = KeyAddedLeaf(key_name="vega-cache-2", public_key="vega-cache-2:AAAA", at=7)
    assert tlog.encode_leaf(added) == (
        b'{"v":1,"event":"key-added","keyName":"vega-cache-2","publicKey":"vega-cache-2:AAAA","at":7}'
    )
    retired = KeyRetiredLeaf(key_name="k", public_key="k:AAAA", at=8)
    assert (
        tlog.encode_leaf(retired)
        == b'{"v":1,"event":"key-retired","keyName":"k","publicKey":"k:AAAA","at":8}'
    )
    unicode = RevocationLeaf(store_path="/nix/store/p", reason='café\u2028\x01"\\/', at=1)
    assert (
        tlog.encode_leaf(unicode)
        == (
            '{"v":1,"event":"revocation","storePath":"/nix/store/p","reason":"café\u2028\\u0001\\"\\\\/","at":1}'
        ).encode()
    )
    for leaf in (attestation, added, retired, unicode):
        assert tlog.parse_leaf(tlog.encode_leaf(leaf)) == leaf


def test_encode_rejects_lone_surrogates() -> None:
    with pytest.raises(FormatError, match="lone surrogate"):
        tlog.encode_leaf(RevocationLeaf(store_path="/nix/store/p", reason="\ud800", at=1))


def test_attestation_lane_is_checked() -> None:
    with pytest.raises(FormatError, match="unknown lane 'ci'"):
        AttestationLeaf(
            store_path="p",
            fingerprint="f",
            nar_hash="h",
            tenant="o/r",
            lane="ci",  # type: ignore[arg-type]
            attester_id="a",
            at=1,
        )


_P = '"storePath":"/nix/store/p","fingerprint":"f","narHash":"h"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("1", "expected a JSON object"),
        ('{"event":"promotion"}', "unsupported version None"),
        ('{"v":true,"event":"promotion"}', "unsupported version True"),
        ('{"v":1.0,"event":"promotion"}', "unsupported version 1.0"),
        ('{"v":2,"event":"promotion"}', "unsupported version 2"),
        ('{"v":1,"event":"audit"}', "unknown event 'audit'"),
        ('{"v":1,"event":7}', "unknown event '7'"),
        ('{"v":1,"event":"promotion",%s}' % _P, "promotion leaf: at must be an integer"),
        ('{"v":1,"event":"promotion",%s,"at":-1}' % _P, "at must be an integer from 0"),
        ('{"v":1,"event":"promotion",%s,"at":1.5}' % _P, "at must be an integer"),
        ('{"v":1,"event":"promotion",%s,"at":false}' % _P, "at must be an integer"),
        ('{"v":1,"event":"promotion",%s,"at":9007199254740992}' % _P, "at must be an integer"),
        ('{"v":1,"event":"promotion",%s,"agreedSince":"1","at":1}' % _P, "agreedSince must be"),
        ('{"v":1,"event":"promotion",%s,"at":1,"x":1}' % _P, "unexpected field 'x'"),
        ('{"v":1,"event":"promotion","storePath":1,"at":1}', "storePath must be a string"),
        ('{"v":1,"event":"revocation","storePath":"p","at":1}', "reason must be a string"),
        ('{"v":1,"event":"attestation",%s,"lane":"pool","attesterId":"a","at":1}' % _P, "tenant must be"),
        (
            '{"v":1,"event":"attestation",%s,"tenant":1,"lane":"pool","attesterId":"a","at":1}' % _P,
            "tenant must",
        ),
        (
            '{"v":1,"event":"attestation",%s,"tenant":null,"lane":"ci","attesterId":"a","at":1}' % _P,
            "lane 'ci'",
        ),
        (
            '{"v":1,"event":"attestation",%s,"tenant":null,"lane":"pool","attesterId":"a","provenance":[],"at":1}'
            % _P,
            "provenance must be an object",
        ),
        (
            '{"v":1,"event":"attestation",%s,"tenant":null,"lane":"pool","attesterId":"a",'
            '"provenance":{"flakeRef":"f","attr":"a","rev":"r","x":1},"at":1}' % _P,
            "provenance: unexpected field 'x'",
        ),
        (
            '{"v":1,"event":"attestation",%s,"tenant":null,"lane":"pool","attesterId":"a",'
            '"provenance":{"flakeRef":"f","attr":"a"},"at":1}' % _P,
            "rev must be a string",
        ),
        ('{"v":1,"event":"key-added","keyName":"k","at":1}', "publicKey must be a string"),
        (b"\xff", "not valid JSON"),
    ],
)
def test_parse_leaf_rejects(data: str | bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        tlog.parse_leaf(data)


def test_parse_leaf_is_lenient_about_layout() -> None:
    data = '{ "at": 2, "reason": "r", "storePath": "/nix/store/p", "event": "revocation", "v": 1 }'
    assert tlog.parse_leaf(data) == RevocationLeaf(store_path="/nix/store/p", reason="r", at=2)


_text = st.text(max_size=20).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
_ms = st.integers(0, 2**53 - 1)
_events = st.one_of(
    st.builds(
        PromotionLeaf,
        store_path=_text,
        fingerprint=_text,
        nar_hash=_text,
        at=_ms,
        agreed_since=st.none() | _ms,
    ),
    st.builds(RevocationLeaf, store_path=_text, reason=_text, at=_ms),
    st.builds(
        AttestationLeaf,
        store_path=_text,
        fingerprint=_text,
        nar_hash=_text,
        tenant=st.none() | _text,
        lane=st.sampled_from(["gh-actions", "owner", "pool", "vega-repro"]),
        attester_id=_text,
        at=_ms,
        provenance=st.none()
        | st.builds(BuildProvenance, flake_ref=_text, attr=_text, rev=_text, dir=st.none() | _text),
    ),
    st.builds(KeyAddedLeaf, key_name=_text, public_key=_text, at=_ms),
    st.builds(KeyRetiredLeaf, key_name=_text, public_key=_text, at=_ms),
)


@given(_events)
def test_leaf_roundtrip_and_canonical(event: tlog.LeafEvent) -> None:
    data = tlog.encode_leaf(event)
    assert tlog.parse_leaf(data) == event
    assert tlog.encode_leaf(tlog.parse_leaf(data)) == data
    # Canonical: what JavaScript's JSON.stringify would give for the same object.
    assert data == json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False).encode()


@given(st.binary(max_size=200))
def test_parse_leaf_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        tlog.parse_leaf(data)


# --- binding (§5.2) ---------------------------------------------------------------------------

SP = "/nix/store/0f1zsalcm5lfgnkqvfmcdphsfr8y1c2j-hello-2.12.1"
NH = "sha256:1l5dl3ja2cpzaywyfwhkm3fyn1wxmlbx5h0x0glsywyd4m2x28ih"
FP = f"1;{SP};{NH};226560;"


def test_leaf_binds_narinfo() -> None:
    leaf = tlog.encode_leaf(PromotionLeaf(store_path=SP, fingerprint=FP, nar_hash=NH, at=1))
    assert tlog.leaf_binds_narinfo(leaf, SP, NH, FP)
    assert tlog.leaf_binds_narinfo(leaf.decode(), SP, NH, FP)
    assert tlog.leaf_binds_narinfo(tlog.parse_leaf(leaf), SP, NH, FP)
    assert not tlog.leaf_binds_narinfo(leaf, SP + "x", NH, FP)
    assert not tlog.leaf_binds_narinfo(leaf, SP, NH.replace("1l5", "2l5"), FP)
    assert not tlog.leaf_binds_narinfo(leaf, SP, NH, FP + "x")
    revocation = RevocationLeaf(store_path=SP, reason="bad", at=1)
    assert not tlog.leaf_binds_narinfo(revocation, SP, NH, FP)
    assert not tlog.leaf_binds_narinfo(tlog.encode_leaf(revocation), SP, NH, FP)
    # Only event and the three strings matter, as in the original client.
    loose = json.dumps({"event": "promotion", "storePath": SP, "narHash": NH, "fingerprint": FP})
    assert tlog.leaf_binds_narinfo(loose, SP, NH, FP)
    for junk in ("", "[]", "null", '{"event":"promotion"}', "\xff", "[" * 100000):
        assert not tlog.leaf_binds_narinfo(junk, SP, NH, FP)
    assert not tlog.leaf_binds_narinfo(b"\xff", SP, NH, FP)
    assert not tlog.leaf_binds_narinfo(42, SP, NH, FP)  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_leaf_binds_never_raises(data: bytes) -> None:
    assert not tlog.leaf_binds_narinfo(data, SP, NH, FP)


def test_events_message_names_build_tree_and_indexes() -> None:
    """ADR 0012: the lookup's signed list of promotions and revocations."""
    h = "0" * 32
    assert tlog.events_message(h, 10, b"\xab" * 32, [3, 7]) == (
        f"vega-events:v1:{h}:10:{'ab' * 32}:3,7".encode()
    )
    assert tlog.events_message(h, 0, b"\x00" * 32, []).endswith(b":")


def _big_fingerprint(refs: int) -> str:
    listed = ",".join(f"/nix/store/{'a' * 32}-ref-{k}" for k in range(refs))
    return f"1;{SP};{NH};226560;{listed}"


def test_a_leaf_too_large_for_one_entry_is_compact_and_still_binds() -> None:
    """Issue 14/11: about 1,300 references made "102391 bytes exceeds 65535"; ADR 0012."""
    fp = _big_fingerprint(2000)
    promotion = PromotionLeaf(store_path=SP, fingerprint=fp, nar_hash=NH, agreed_since=1, at=2)
    data = tlog.encode_leaf(promotion)
    assert len(data) <= tlog.MAX_LEAF_BYTES
    digest = tlog.fingerprint_sha256(fp)
    assert (
        data
        == (
            f'{{"v":1,"event":"promotion","storePath":"{SP}","fingerprintSha256":"{digest}",'
            f'"narHash":"{NH}","agreedSince":1,"at":2}}'
        ).encode()
    )
    parsed = tlog.parse_leaf(data)
    assert parsed == PromotionLeaf(
        store_path=SP, fingerprint="", nar_hash=NH, agreed_since=1, at=2, fingerprint_sha256=digest
    )
    assert tlog.leaf_binds_narinfo(data, SP, NH, fp)
    assert tlog.leaf_binds_narinfo(parsed, SP, NH, fp)
    assert not tlog.leaf_binds_narinfo(data, SP, NH, fp + "x")
    assert not tlog.leaf_binds_narinfo(parsed, SP, NH, _big_fingerprint(1999))
    assert not tlog.leaf_binds_narinfo(data, SP, NH.replace("1", "2"), fp)
    attestation = AttestationLeaf(
        store_path=SP, fingerprint=fp, nar_hash=NH, tenant="o/r", lane="gh-actions", attester_id="a", at=3
    )
    compact = tlog.encode_leaf(attestation)
    assert len(compact) <= tlog.MAX_LEAF_BYTES
    assert tlog.parse_leaf(compact) == AttestationLeaf(
        store_path=SP,
        fingerprint="",
        nar_hash=NH,
        tenant="o/r",
        lane="gh-actions",
        attester_id="a",
        at=3,
        fingerprint_sha256=digest,
    )


def test_leaves_that_fit_keep_the_original_shape() -> None:
    fp = _big_fingerprint(100)
    data = tlog.encode_leaf(PromotionLeaf(store_path=SP, fingerprint=fp, nar_hash=NH, at=2))
    assert json.loads(data)["fingerprint"] == fp
    assert "fingerprintSha256" not in json.loads(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            f'{{"v":1,"event":"promotion","storePath":"{SP}","fingerprintSha256":"AB","narHash":"{NH}","at":1}}',
            "fingerprintSha256 must be 64 lowercase hex digits",
        ),
        (
            f'{{"v":1,"event":"promotion","storePath":"{SP}","fingerprint":"1;",'
            f'"fingerprintSha256":"{"a" * 64}","narHash":"{NH}","at":1}}',
            "unexpected field 'fingerprintSha256'",
        ),
        (
            f'{{"v":1,"event":"promotion","storePath":"{SP}","narHash":"{NH}","at":1}}',
            "fingerprint must be a string",
        ),
    ],
)
def test_compact_leaves_are_parsed_strictly(data: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        tlog.parse_leaf(data)
