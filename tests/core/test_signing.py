"""protocol.md §2.1 (Nix ed25519 keys and signatures) and §2.6 (key derivation, scopes)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from vega.core import narinfo, signing
from vega.core.hashes import HashAlgorithm, parse_nix_hash
from vega.core.narinfo import SignedFields
from vega.core.signing import PublicKey, SecretKey
from vega.core.storepath import parse_store_path
from vega.errors import FormatError

# protocol.md §2.1, copied verbatim.
KAT_SECRET = (
    "vega-kat-1:CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYYkw6SU+iKZYmZEuWWpEy2nnP5nFR/cQt5gDPCQl9uCRw=="
)
KAT_PUBLIC = "vega-kat-1:JMOklPoimWJmRLllqRMtp5z+ZxUf3ELeYAzwkJfbgkc="
KAT_MESSAGE = b"vega known-answer vector: do not change"
KAT_SIGNATURE = (
    "vega-kat-1:M8eDAtZQkUDp5JOcBOW1eJ50YeOYvocwQvbbCd2Cj5Rknk0PoCk42v07b5O2nyALI/nyxE7cz4V2q8jc3D0ZCg=="
)
# protocol.md §1: the production shared key.
SHARED_PUBLIC = "vega-cache-1:cPagS1g69NQGwlBCyTTeKav/NhlN8a7ixuj2uLOkHrQ="

seeds = st.binary(min_size=32, max_size=32)
names = st.text(min_size=1, max_size=20).filter(lambda n: ":" not in n)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --- known answers -------------------------------------------------------------------------------


def test_known_answer_secret_gives_public() -> None:
    """§2.1: the pinned secret key derives the pinned public key."""
    secret = signing.parse_secret_key(KAT_SECRET)
    assert signing.format_public_key(secret.public) == KAT_PUBLIC
    assert signing.parse_public_key(KAT_PUBLIC) == secret.public


def test_known_answer_signature_is_reproduced_and_verifies() -> None:
    """§2.1: ed25519 is deterministic, so our signature equals the pinned one."""
    secret = signing.parse_secret_key(KAT_SECRET)
    assert signing.sign(secret, KAT_MESSAGE) == KAT_SIGNATURE
    assert signing.is_valid_signature(signing.parse_public_key(KAT_PUBLIC), KAT_MESSAGE, KAT_SIGNATURE)


def test_known_answer_secret_renders_identically() -> None:
    assert signing.format_secret_key(signing.parse_secret_key(KAT_SECRET)) == KAT_SECRET


def test_shared_public_key_parses() -> None:
    key = signing.parse_public_key(SHARED_PUBLIC)
    assert key.name == signing.SHARED_KEY_NAME
    assert signing.format_public_key(key) == SHARED_PUBLIC


def test_secret_key_repr_does_not_show_the_seed() -> None:
    secret = signing.parse_secret_key(KAT_SECRET)
    assert secret.seed.hex() not in repr(secret)
    assert repr(secret.seed) not in repr(secret)


# --- parse rules ---------------------------------------------------------------------------------

PUBLIC_B64 = KAT_PUBLIC.partition(":")[2]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected <name>:<base64>"),
        ("no-colon", "expected <name>:<base64>"),
        (":" + PUBLIC_B64, "expected <name>:<base64>"),
        ("name:", "expected <name>:<base64>"),
        ("n:" + PUBLIC_B64.rstrip("="), "not strict base64"),  # padding dropped
        ("n:" + PUBLIC_B64 + "=", "not strict base64"),  # extra padding
        ("n:" + PUBLIC_B64 + "\n", "not strict base64"),  # trailing newline
        ("n: " + PUBLIC_B64, "not strict base64"),
        ("n:" + PUBLIC_B64.replace("+", "-"), "not strict base64"),  # url-safe alphabet
        ("n:" + PUBLIC_B64[:-2] + "d=", "not strict base64"),  # non-canonical trailing bits
        ("n:" + PUBLIC_B64[:20] + "=" + PUBLIC_B64[21:], "not strict base64"),
        ("n:" + _b64(bytes(31)), "expected 32 bytes, got 31"),
        ("n:" + _b64(bytes(33)), "expected 32 bytes, got 33"),
        ("n:" + _b64(bytes(64)), "expected 32 bytes, got 64"),
    ],
)
def test_parse_public_key_rejects(text: str, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        signing.parse_public_key(text)


def test_parse_splits_at_the_first_colon() -> None:
    """§2.1: the name ends at the first ':', so a ':' later is part of the base64 (and invalid)."""
    with pytest.raises(FormatError, match="not strict base64"):
        signing.parse_public_key("a:b:" + PUBLIC_B64)


def test_trailing_bits_of_canonical_text_are_zero() -> None:
    """The non-canonical case above really decodes (leniently) to the same bytes."""
    canonical = PUBLIC_B64
    lenient = PUBLIC_B64[:-2] + "d="
    assert base64.b64decode(lenient) == base64.b64decode(canonical)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x", "expected <name>:<base64>"),
        ("n:" + PUBLIC_B64, "expected 64 bytes, got 32"),
        ("n:" + KAT_SECRET.partition(":")[2] + "\n", "not strict base64"),
    ],
)
def test_parse_secret_key_rejects(text: str, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        signing.parse_secret_key(text)


def test_parse_secret_key_rejects_a_public_half_of_another_seed() -> None:
    raw = base64.b64decode(KAT_SECRET.partition(":")[2])
    other = raw[:32] + bytes(32)
    with pytest.raises(FormatError, match="public half does not match its seed"):
        signing.parse_secret_key("vega-kat-1:" + _b64(other))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: PublicKey("", bytes(32)), "key name must not be empty"),
        (lambda: PublicKey("a:b", bytes(32)), "must not contain ':'"),
        (lambda: PublicKey("a", bytes(31)), "expected 32 bytes, got 31"),
        (lambda: SecretKey("a", bytes(33)), "expected a 32-byte seed, got 33"),
        (lambda: SecretKey("", bytes(32)), "key name must not be empty"),
        (lambda: signing.generate_secret_key("k:1", bytes(32)), "must not contain ':'"),
    ],
)
def test_constructors_refuse_invalid_values(make: object, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        make()  # type: ignore[operator]


@given(text=st.text(max_size=120))
def test_parsers_given_arbitrary_text_raise_only_format_error(text: str) -> None:
    for parse in (signing.parse_public_key, signing.parse_secret_key):
        with contextlib.suppress(FormatError):
            parse(text)


@given(name=names, raw=st.binary(min_size=0, max_size=70))
def test_parsers_given_arbitrary_base64_raise_only_format_error(name: str, raw: bytes) -> None:
    for parse in (signing.parse_public_key, signing.parse_secret_key):
        with contextlib.suppress(FormatError):
            parse(f"{name}:{_b64(raw)}")


# --- round trips ---------------------------------------------------------------------------------


@given(name=names, seed=seeds)
def test_secret_key_round_trips(name: str, seed: bytes) -> None:
    secret = signing.generate_secret_key(name, seed)
    text = signing.format_secret_key(secret)
    assert signing.parse_secret_key(text) == secret
    assert signing.format_secret_key(signing.parse_secret_key(text)) == text
    public_text = signing.format_public_key(secret.public)
    assert signing.parse_public_key(public_text) == secret.public


@given(name=names, seed=seeds, message=st.binary(max_size=200))
def test_signatures_round_trip(name: str, seed: bytes, message: bytes) -> None:
    secret = signing.generate_secret_key(name, seed)
    sig = signing.sign(secret, message)
    assert sig.startswith(name + ":")
    assert signing.is_valid_signature(secret.public, message, sig)
    assert not signing.is_valid_signature(secret.public, message + b"x", sig)


# --- verification mutation table -----------------------------------------------------------------


def _kat() -> tuple[PublicKey, bytes]:
    return signing.parse_public_key(KAT_PUBLIC), base64.b64decode(KAT_SIGNATURE.partition(":")[2])


def test_every_flipped_bit_of_the_signature_fails() -> None:
    public, raw = _kat()
    for bit in range(8 * len(raw)):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not signing.is_valid_signature(public, KAT_MESSAGE, "vega-kat-1:" + _b64(bytes(bad))), bit


def test_every_flipped_bit_of_the_message_fails() -> None:
    public, _ = _kat()
    for bit in range(8 * len(KAT_MESSAGE)):
        bad = bytearray(KAT_MESSAGE)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not signing.is_valid_signature(public, bytes(bad), KAT_SIGNATURE), bit


def test_every_flipped_bit_of_the_public_key_fails() -> None:
    public, _ = _kat()
    for bit in range(8 * len(public.key)):
        bad = bytearray(public.key)
        bad[bit // 8] ^= 1 << (bit % 8)
        key = PublicKey(public.name, bytes(bad))
        assert not signing.is_valid_signature(key, KAT_MESSAGE, KAT_SIGNATURE), bit


SIG_B64 = KAT_SIGNATURE.partition(":")[2]


@pytest.mark.parametrize(
    "sig_text",
    [
        "other-1:" + SIG_B64,  # wrong key name
        "vega-kat-2:" + SIG_B64,
        ":" + SIG_B64,
        SIG_B64,  # no name at all
        "vega-kat-1:",
        "vega-kat-1:" + SIG_B64.rstrip("="),  # padding dropped
        "vega-kat-1:" + SIG_B64 + "==",
        "vega-kat-1:" + SIG_B64 + "\n",
        "vega-kat-1: " + SIG_B64,
        "vega-kat-1:" + SIG_B64[:-3] + "h==",  # non-canonical: same bytes, other text
        "vega-kat-1:" + SIG_B64.replace("/", "_"),
        "vega-kat-1:" + _b64(base64.b64decode(SIG_B64)[:63]),  # 63 bytes
        "vega-kat-1:" + _b64(base64.b64decode(SIG_B64) + b"\0"),  # 65 bytes
        "vega-kat-1:" + _b64(base64.b64decode(SIG_B64)[32:] + base64.b64decode(SIG_B64)[:32]),
        "",
    ],
)
def test_is_valid_signature_rejects(sig_text: str) -> None:
    public, _ = _kat()
    assert not signing.is_valid_signature(public, KAT_MESSAGE, sig_text)


def test_non_canonical_case_above_decodes_to_the_same_signature() -> None:
    assert base64.b64decode(SIG_B64[:-3] + "h==") == base64.b64decode(SIG_B64)


def test_signature_under_another_key_of_the_same_name_fails() -> None:
    public, _ = _kat()
    other = signing.generate_secret_key("vega-kat-1", bytes(range(32)))
    assert not signing.is_valid_signature(public, KAT_MESSAGE, signing.sign(other, KAT_MESSAGE))


@given(sig_text=st.text(max_size=200), message=st.binary(max_size=40))
def test_is_valid_signature_never_raises(sig_text: str, message: bytes) -> None:
    public, _ = _kat()
    assert signing.is_valid_signature(public, message, sig_text) is False


@given(raw=st.binary(min_size=64, max_size=64), key=st.binary(min_size=32, max_size=32))
def test_is_valid_signature_never_raises_on_arbitrary_keys_and_signatures(raw: bytes, key: bytes) -> None:
    public = PublicKey("k", key)
    assert signing.is_valid_signature(public, b"m", "k:" + _b64(raw)) is False


# --- libsodium-compatible refusals ----------------------------------------------------------------

_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P


def _decode_point(enc: bytes) -> tuple[int, int]:
    """RFC 8032 §5.1.3 point decoding (y reduced mod p, as a lenient decoder does)."""
    y = (int.from_bytes(enc, "little") & ((1 << 255) - 1)) % _P
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    assert (v * x * x - u) % _P == 0, "not on the curve"
    return x, y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, _P) % _P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P,
    )


def test_small_order_table_holds_exactly_points_of_order_dividing_eight() -> None:
    """Each entry of the refusal table is a curve point P with 8P = 0 (checked independently)."""
    for enc in signing._SMALL_ORDER_Y:
        p = _decode_point(enc)
        for _ in range(3):
            p = _add(p, p)
        assert p == (0, 1), enc.hex()
    # And the order-1 point is the identity (0, 1).
    assert _decode_point((1).to_bytes(32, "little")) == (0, 1)


IDENTITY = (1).to_bytes(32, "little")


def test_identity_key_with_trivial_signature_is_refused_though_the_equation_holds() -> None:
    """With A = R = identity and S = 0, sB = R + hA holds: OpenSSL accepts; libsodium and we refuse."""
    sig = IDENTITY + bytes(32)
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(sig, b"anything")  # raises if OpenSSL refuses
    assert not signing.is_valid_signature(PublicKey("k", IDENTITY), b"anything", "k:" + _b64(sig))


def test_small_order_r_is_refused() -> None:
    public, raw = _kat()
    for r in signing._SMALL_ORDER_Y:
        for sign_bit in (0, 0x80):
            bad = r[:31] + bytes([r[31] | sign_bit]) + raw[32:]
            assert not signing.is_valid_signature(public, KAT_MESSAGE, "vega-kat-1:" + _b64(bad))


def test_non_canonical_public_key_encoding_is_refused() -> None:
    """y = p + 2 encodes the same y as 2; libsodium refuses such encodings."""
    enc = (_P + 2).to_bytes(32, "little")
    assert not signing.is_valid_signature(PublicKey("vega-kat-1", enc), KAT_MESSAGE, KAT_SIGNATURE)


# --- §2.6 derivation -----------------------------------------------------------------------------

MASTER = signing.parse_secret_key(KAT_SECRET)


@pytest.mark.parametrize(
    ("tenant", "name"),
    [
        ("jasonodoom/nixos-configs", "vega-jasonodoom-nixos-configs-1"),
        ("owner:583231", "vega-owner-583231-1"),
    ],
)
def test_tenant_key_names(tenant: str, name: str) -> None:
    """§2.6 examples, verbatim."""
    key = signing.tenant_key(MASTER, tenant)
    assert key.name == name
    expected_seed = hashlib.sha256(MASTER.seed + f"vega-tenant-key-v1:{tenant}".encode()).digest()
    assert key.seed == expected_seed


def test_enroll_key() -> None:
    key = signing.enroll_key(MASTER)
    assert key.name == "vega-enroll-1"
    assert key.seed == hashlib.sha256(MASTER.seed + b"vega-enroll-key-v1").digest()


def test_view_key() -> None:
    key = signing.view_key(MASTER, "ab12")
    assert key.name == "vega-view-ab12-1"
    assert key.seed == hashlib.sha256(MASTER.seed + b"vega-social-key-v1:ab12").digest()


def test_derivation_uses_utf8_info_without_separator() -> None:
    key = signing.derive_secret_key(MASTER, "é", "n")
    assert key.seed == hashlib.sha256(MASTER.seed + b"\xc3\xa9").digest()


def test_derived_keys_differ_by_info_and_sign_verifiably() -> None:
    a = signing.tenant_key(MASTER, "a/b")
    b = signing.tenant_key(MASTER, "a:b")
    assert a.name == b.name == "vega-a-b-1"  # same name, different keys: the info is the raw tenant
    assert a.seed != b.seed
    assert signing.is_valid_signature(a.public, b"m", signing.sign(a, b"m"))
    assert not signing.is_valid_signature(a.public, b"m", signing.sign(b, b"m"))


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("jasonodoom/nixos-configs", "jasonodoom-nixos-configs"),
        ("owner:583231", "owner-583231"),
        ("A.b_c-9", "A.b_c-9"),
        ("a b\tc", "a-b-c"),
        ("ü/€", "---"),
        ("", ""),
    ],
)
def test_safe_key_name_part(raw: str, safe: str) -> None:
    assert signing.safe_key_name_part(raw) == safe


@given(x=st.text(max_size=40))
def test_safe_key_name_part_keeps_length_and_only_safe_characters(x: str) -> None:
    safe = signing.safe_key_name_part(x)
    assert len(safe) == len(x)
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)


@pytest.mark.parametrize(
    ("name", "scope", "tenant"),
    [
        ("vega-cache-1", "shared", False),
        ("vega-jasonodoom-nixos-configs-1", "scoped", True),
        ("vega-owner-583231-1", "scoped", True),
        ("vega-view-ab12-1", "scoped", False),
        ("vega-enroll-1", "scoped", True),
        ("cache.nixos.org-1", "upstream", False),
        ("vega", "upstream", False),
        ("vega-cache-2", "scoped", True),
    ],
)
def test_key_scope(name: str, scope: str, tenant: bool) -> None:
    """§2.6 client-side classification by key name."""
    assert signing.key_scope(name) == scope
    assert signing.is_tenant_key_name(name) is tenant


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (KAT_PUBLIC, True),
        (SHARED_PUBLIC, True),
        ("cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=", True),
        ("a:b", True),
        ("a:b==", True),
        ("", False),
        ("a:", False),
        (":b", False),
        ("a b:c", False),
        ("a:b\n", False),
        ("a:b=c", False),
        ("\x1b[31mevil:b", False),
        ("a:b:c", False),
        ("ä:b", False),
    ],
)
def test_is_printable_key(text: str, ok: bool) -> None:
    """§2.1: ^[A-Za-z0-9._-]+:[A-Za-z0-9+/]+=*$ (and no trailing newline sneaks past '$')."""
    assert signing.is_printable_key(text) is ok


# --- vectors made by the real nix (tools/make_nix_vectors.py) ------------------------------------

VECTORS = Path(__file__).parent.parent / "vectors" / "nix" / "signing"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def _fingerprint_of(path_info: dict[str, Any]) -> bytes:
    fields = SignedFields(
        store_path=parse_store_path(path_info["path"]),
        nar_hash=parse_nix_hash(path_info["narHash"], HashAlgorithm.SHA256),
        nar_size=path_info["narSize"],
        references=tuple(parse_store_path(r) for r in path_info["references"]),
    )
    return narinfo.fingerprint(fields).encode()


@pytest.mark.parametrize("case", _load("keys.json"), ids=lambda c: c["public"].partition(":")[0])
def test_nix_generated_keys(case: dict[str, str]) -> None:
    """Secret keys from `nix key generate-secret` give what `nix key convert-secret-to-public` gave."""
    secret = signing.parse_secret_key(case["secret"])
    assert signing.format_secret_key(secret) == case["secret"]
    assert signing.format_public_key(secret.public) == case["public"]


@pytest.mark.parametrize("case", _load("signatures.json"), ids=lambda c: c["signature"][:16])
def test_nix_store_sign_signatures(case: dict[str, Any]) -> None:
    """`nix store sign` over Nix's fingerprint: we verify it, and reproduce it byte for byte."""
    secrets_by_name = {k["public"].partition(":")[0]: k["secret"] for k in _load("keys.json")}
    public = signing.parse_public_key(case["public"])
    message = _fingerprint_of(case["pathInfo"])
    assert signing.is_valid_signature(public, message, case["signature"])
    assert signing.sign(signing.parse_secret_key(secrets_by_name[public.name]), message) == case["signature"]


@pytest.mark.parametrize("case", _load("derived.json"), ids=lambda c: f"{c['kind']}-{c['arg']}")
def test_derived_keys_against_nix(case: dict[str, Any]) -> None:
    """§2.6 keys derived from a nix-made master: nix computed the same public key and signature."""
    master = signing.parse_secret_key(case["master"])
    if case["kind"] == "tenant":
        key = signing.tenant_key(master, case["arg"])
    elif case["kind"] == "view":
        key = signing.view_key(master, case["arg"])
    else:
        key = signing.enroll_key(master)
    assert signing.format_secret_key(key) == case["secret"]
    assert signing.format_public_key(key.public) == case["public"]
    message = _fingerprint_of(case["pathInfo"])
    assert signing.sign(key, message) == case["signature"]
    assert signing.is_valid_signature(key.public, message, case["signature"])


def test_key_fingerprint_is_short_and_hashes_only_the_key_bytes() -> None:
    from vega.core.signing import generate_secret_key, key_fingerprint

    a = generate_secret_key("vega-cache-1", b"\x01" * 32).public
    renamed = generate_secret_key("other-1", b"\x01" * 32).public
    b = generate_secret_key("vega-cache-1", b"\x02" * 32).public
    digest = hashlib.sha256(a.key).digest()[:12]
    assert key_fingerprint(a) == "SHA256:" + base64.b64encode(digest).decode()
    assert len(key_fingerprint(a)) == len("SHA256:") + 16
    assert key_fingerprint(a) == key_fingerprint(renamed)
    assert key_fingerprint(a) != key_fingerprint(b)
