"""vega.core.note against the published C2SP and Go sumdb/note examples, plus mutations and fuzzing."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import note
from vega.core.note import ALG_COSIGNATURE_V1, ALG_ED25519, Note, NoteSignature, SignerKey, VerifierKey
from vega.errors import FormatError, VerificationError

# c2sp.org/signed-note, section "Verifier keys", example: the verifier key and the note it signs.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# c2sp.org/signed-note, the note at the top of the document (its key is not published).
SPEC_QUASIMODO = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
# golang.org/x/mod/sumdb/note package documentation ("Example") and note_test.go: the keys,
# the text, and the signatures by PeterNeumann and EnochRoot.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
PETER_LINE = "— PeterNeumann " + (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_LINE = "— EnochRoot " + (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# transparency-dev/formats note/note_cosigv1_test.go (TestCoSigV1NewVerifier): a type 0x01 key whose
# base64 contains "+", and a native type 0x04 cosignature verifier key.
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
COSIG_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"

SEED = bytes(range(32))


def test_spec_example_verifies() -> None:
    """c2sp.org/signed-note: the published example note opens with the published key."""
    key = note.parse_verifier_key(SPEC_VKEY)
    assert key.name == "example.com/foo"
    assert key.key_id == 0x530D903A
    assert key.public_key.hex() == "e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4"
    opened = note.open_note(SPEC_NOTE.encode(), [key])
    assert opened.text == "This is an example message.\n"
    assert note.format_note(opened) == SPEC_NOTE.encode()
    assert note.format_verifier_key(key) == SPEC_VKEY
    with pytest.raises(VerificationError, match="does not verify"):
        note.open_note(SPEC_NOTE.replace("example message", "example massage"), [key])


def test_spec_first_example_parses_and_splits_at_the_last_blank_line() -> None:
    n = note.parse_note(SPEC_QUASIMODO)
    assert (
        n.text
        == "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    )
    assert [s.name for s in n.signatures] == ["quasimodo.example/salvatore"]
    assert note.format_note(n) == SPEC_QUASIMODO.encode()
    with pytest.raises(VerificationError, match="not signed by any known key"):
        note.verify_note(n, [note.parse_verifier_key(SPEC_VKEY)])


def test_go_example_signs_byte_for_byte() -> None:
    """golang.org/x/mod/sumdb/note: Ed25519 is deterministic, so our note equals the published one."""
    signer = note.parse_signer_key(GO_SKEY)
    assert note.format_verifier_key(signer.verifier) == GO_VKEY
    assert note.format_signer_key(signer) == GO_SKEY
    signed = note.sign_note(GO_TEXT, [signer])
    assert note.format_note(signed).decode() == GO_TEXT + "\n" + PETER_LINE


def test_go_example_two_signers() -> None:
    msg = GO_TEXT + "\n" + PETER_LINE + ENOCH_LINE
    peter, enoch = note.parse_verifier_key(GO_VKEY), note.parse_verifier_key(ENOCH_VKEY)
    n = note.parse_note(msg)
    assert [s.name for s in note.verify_note(n, [enoch])] == ["EnochRoot"]
    assert [s.name for s in note.verify_note(n, [peter, enoch])] == ["PeterNeumann", "EnochRoot"]
    # A known key's bad signature rejects the note even when another verifies (signed-note §Signatures).
    bad = msg.replace(ENOCH_LINE, ENOCH_LINE.replace("RvMc+", "RvMd+"))
    with pytest.raises(VerificationError, match=r"signature by 'EnochRoot' \(af0cfe78\) does not verify"):
        note.open_note(bad, [peter, enoch])
    # Same name, other key ID: an unknown key, ignored.
    other = VerifierKey("EnochRoot", SignerKey("EnochRoot", SEED).verifier.public_key)
    assert note.verify_note(note.parse_note(bad), [peter, other])


def test_published_key_ids() -> None:
    """transparency-dev/formats: key IDs of a type 0x01 key (base64 with '+') and a type 0x04 key."""
    plus = note.parse_verifier_key(PLUS_VKEY)
    assert (plus.name, plus.key_type, plus.key_id) == ("TEST", ALG_ED25519, 0x7997405C)
    cosig = note.parse_verifier_key(COSIG_VKEY)
    assert (cosig.name, cosig.key_type, cosig.key_id) == ("remora.n621.de", ALG_COSIGNATURE_V1, 0xDA77ADE7)
    assert note.format_verifier_key(cosig) == COSIG_VKEY
    assert note.key_id("remora.n621.de", ALG_ED25519, cosig.public_key) != 0xDA77ADE7


def test_cosignature_roundtrip_and_message() -> None:
    signer = SignerKey("witness.example/w1", SEED, ALG_COSIGNATURE_V1)
    n = note.sign_note("a\nb\n", [signer], timestamp=1679315147)
    sig = n.signatures[0]
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    assert note.cosignature_message(1679315147, "a\nb\n") == b"cosignature/v1\ntime 1679315147\na\nb\n"
    assert note.verify_note(n, [signer.verifier]) == (sig,)
    plain = VerifierKey(signer.name, signer.verifier.public_key)  # same key as type 0x01: another key ID
    with pytest.raises(VerificationError):
        note.verify_note(n, [plain])
    for bad in (sig.signature[:71], b"\xff" * 8 + sig.signature[8:], sig.signature[:8] + bytes(64)):
        assert not signer.verifier.is_valid(n.text, bad)
    assert not VerifierKey("k", signer.verifier.public_key).is_valid("x\n", bytes(63))
    text = note.format_signer_key(signer)
    assert note.parse_signer_key(text) == signer


def test_signing_arguments() -> None:
    plain, cosigner = SignerKey("a", SEED), SignerKey("w", SEED, ALG_COSIGNATURE_V1)
    with pytest.raises(FormatError, match="only for cosignatures"):
        note.signature_for("x\n", plain, timestamp=1)
    with pytest.raises(FormatError, match="needs a timestamp"):
        note.signature_for("x\n", cosigner)
    with pytest.raises(FormatError, match="needs a timestamp"):
        note.signature_for("x\n", cosigner, timestamp=2**63)
    with pytest.raises(FormatError, match="needs a timestamp"):
        note.signature_for("x\n", cosigner, timestamp=-1)
    with pytest.raises(FormatError, match="must end with a newline"):
        note.sign_note("x", [plain])
    with pytest.raises(FormatError, match="control character"):
        note.sign_note("x\ty\n", [plain])
    with pytest.raises(FormatError, match="without signatures"):
        note.format_note(Note("x\n"))


def test_add_signatures_replaces_same_key() -> None:
    a, b = SignerKey("a", SEED), SignerKey("b", bytes(32))
    n = note.sign_note("t\n", [a, b])
    again = note.sign_note(n, [a])
    assert [s.name for s in again.signatures] == ["b", "a"]


def test_key_validation() -> None:
    with pytest.raises(FormatError, match="invalid key name"):
        VerifierKey("a+b", bytes(32))
    with pytest.raises(FormatError, match="invalid key name"):
        SignerKey("a b", SEED)
    with pytest.raises(FormatError, match="invalid key name"):
        VerifierKey("", bytes(32))
    with pytest.raises(FormatError, match="unsupported signature type 0x02"):
        VerifierKey("a", bytes(32), 2)
    with pytest.raises(FormatError, match="expected a 32-byte seed, got 31"):
        SignerKey("a", bytes(31))
    with pytest.raises(FormatError, match="invalid key name"):
        NoteSignature("a\u00a0b", 1, b"x")
    with pytest.raises(FormatError, match="key ID out of range"):
        NoteSignature("a", 2**32, b"x")
    with pytest.raises(FormatError, match="empty signature"):
        NoteSignature("a", 1, b"")
    assert not note.is_valid_key_name("a\x1fb")
    assert note.is_valid_key_name("oid/1.3.6.1.4.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com/foo+530d903a", "expected <name>"),
        ("exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "invalid key name"),
        ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 lowercase hex"),
        ("example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 lowercase hex"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2", "base64 of a type byte"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2l", "does not match the key"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U=", "base64 of a type byte"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2kAA==", "base64 of a type"),
        ("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match the key"),
        ("example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match the key"),
        (
            "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "unsupported signature type",
        ),
        ("é+530d903a+Aekye€", "base64 of a type byte"),
    ],
)
def test_verifier_key_rejects(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        note.parse_verifier_key(text)


def test_signer_key_rejects() -> None:
    with pytest.raises(FormatError, match="must start with PRIVATE"):
        note.parse_signer_key(GO_SKEY.removeprefix("PRIVATE+"))
    with pytest.raises(FormatError, match="does not match the key"):
        note.parse_signer_key(GO_SKEY.replace("c74f20a3", "c74f20a4"))


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (b"\xff\n\n\xe2\x80\x94 a AAAAAAA=\n", "not valid UTF-8"),
        ("a\rb\n\n— a AAAAAAA=\n", "control character"),
        ("a\n\n— a AAAAAAA=", "does not end with a newline"),
        ("a\n— a AAAAAAA=\n", "no blank line"),
        ("a\n\n", "no signature lines"),
        ("a\n\n— a AAAAAAA=\n-- b AAAAAAA=\n", "line 2: must start with an em dash"),
        ("a\n\n— a\n", "line 1: expected"),
        ("a\n\n— a+b AAAAAAA=\n", "line 1: expected"),
        ("a\n\n— a AAAAAA==\n", "more than 4 bytes"),
        ("a\n\n— a AAAAAAB=\n", "more than 4 bytes"),
        ("a\n\n— a AAAA AAA=\n", "more than 4 bytes"),
        ("a\n\n— a AAAAAAA€\n", "more than 4 bytes"),
    ],
)
def test_parse_note_rejects(msg: bytes | str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        note.parse_note(msg)


def test_parse_note_limits() -> None:
    line = "— a AAAAAAA=\n"
    assert len(note.parse_note("a\n\n" + line * note.MAX_SIGNATURES).signatures) == note.MAX_SIGNATURES
    with pytest.raises(FormatError, match="101 signatures exceeds the limit of 100"):
        note.parse_note("a\n\n" + line * (note.MAX_SIGNATURES + 1))
    with pytest.raises(FormatError, match="exceeds the limit of 1048576"):
        note.parse_note("a" * note.MAX_NOTE_BYTES + "\n\n" + line)


@given(st.binary(max_size=300))
def test_parse_note_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    try:
        n = note.parse_note(data)
    except FormatError:
        return
    assert note.format_note(n) == data


@given(st.text(max_size=200))
def test_parse_note_arbitrary_text(text: str) -> None:
    for candidate in (text, text + "\n\n— a " + base64.b64encode(b"12345").decode() + "\n"):
        with contextlib.suppress(FormatError):
            note.parse_note(candidate.encode("utf-8", "surrogatepass"))


@given(st.text(max_size=120))
def test_key_parsers_raise_only_format_error(text: str) -> None:
    for parse in (note.parse_verifier_key, note.parse_signer_key):
        for candidate in (text, "PRIVATE+KEY+" + text, "a+530d903a+" + text):
            with contextlib.suppress(FormatError):
                parse(candidate)


@given(
    text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), max_size=80).map(
        lambda s: s + "\n"
    ),
    seed=st.binary(min_size=32, max_size=32),
    bit=st.integers(0, 8 * 64 - 1),
)
def test_sign_parse_verify_roundtrip_and_flipped_bit(text: str, seed: bytes, bit: int) -> None:
    signer = SignerKey("vega.example/log", seed)
    data = note.format_note(note.sign_note(text, [signer]))
    assert note.open_note(data, [signer.verifier]).text == text
    sig = note.parse_note(data).signatures[0]
    flipped = bytearray(sig.signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    bad = Note(text, (NoteSignature(sig.name, sig.key_id, bytes(flipped)),))
    with pytest.raises(VerificationError):
        note.verify_note(bad, [signer.verifier])


@given(st.text(max_size=120))
def test_parse_note_arbitrary_str_raises_only_format_error(text: str) -> None:
    for candidate in (text, text + "\n\n— a AAAAAAA=\n", "a\n\n— " + text + " AAAAAAA=\n"):
        with contextlib.suppress(FormatError):
            note.parse_note(candidate)


def test_lone_surrogates_are_format_errors() -> None:
    with pytest.raises(FormatError, match="not valid UTF-8"):
        note.parse_note("a\ud800\n\n— a AAAAAAA=\n")
    with pytest.raises(FormatError, match="lone surrogate"):
        Note("a\udfff\n")
    assert not note.is_valid_key_name("a\ud800")
