"""vega.core.checkpoint against the C2SP tlog-checkpoint / tlog-cosignature examples, and policy."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import checkpoint, note
from vega.core.checkpoint import Checkpoint
from vega.core.note import ALG_COSIGNATURE_V1, Note, NoteSignature, SignerKey
from vega.errors import ConfigError, FormatError, VerificationError

# c2sp.org/tlog-cosignature, the example at the top: a checkpoint (as in c2sp.org/tlog-checkpoint)
# signed by its log and cosigned by a witness. The keys are not published.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LOG_LINE = (
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
SPEC_WITNESS_LINE = (
    "— witness.example.com/w1 "
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
# c2sp.org/tlog-cosignature, "Ed25519 signed message": the example message for that checkpoint.
SPEC_COSIGNED_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
# transparency-dev/formats note/note_cosigv1_test.go (TestCoSigV1Timestamp): a cosignature and its time.
FORMATS_COSIG = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
)

ORIGIN = "vega.example/log"
LOG = SignerKey(ORIGIN, hashlib.sha256(b"log").digest())
WITNESSES = [
    SignerKey(f"witness.example/w{i}", hashlib.sha256(b"w%d" % i).digest(), ALG_COSIGNATURE_V1)
    for i in range(4)
]
ROOT = hashlib.sha256(b"root").digest()


def test_spec_checkpoint_and_cosignature_example() -> None:
    n = note.parse_note(SPEC_BODY + "\n" + SPEC_LOG_LINE + SPEC_WITNESS_LINE)
    cp = checkpoint.parse_checkpoint(n.text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert checkpoint.format_checkpoint(cp) == SPEC_BODY
    log_sig, witness_sig = n.signatures
    assert len(log_sig.signature) == 64
    assert checkpoint.cosignature_timestamp(witness_sig) == 1679315147
    assert note.cosignature_message(1679315147, n.text) == SPEC_COSIGNED_MESSAGE.encode()
    assert note.format_note(n).decode() == SPEC_BODY + "\n" + SPEC_LOG_LINE + SPEC_WITNESS_LINE
    with pytest.raises(FormatError, match="expected 72 bytes, got 64"):
        checkpoint.cosignature_timestamp(log_sig)


def test_formats_cosignature_timestamp() -> None:
    raw = base64.b64decode(FORMATS_COSIG)
    sig = NoteSignature("w", int.from_bytes(raw[:4], "big"), raw[4:])
    assert checkpoint.cosignature_timestamp(sig) == 1727964367


def test_sign_open_roundtrip() -> None:
    cp = Checkpoint(ORIGIN, 1234, ROOT, ("ext one",))
    data = note.format_note(checkpoint.sign_checkpoint(cp, LOG))
    assert data.startswith(b"vega.example/log\n1234\n")
    got, n = checkpoint.open_checkpoint(data, LOG.verifier)
    assert got == cp
    assert n.text == checkpoint.format_checkpoint(cp)
    with pytest.raises(VerificationError, match=r"origin 'vega\.example/log' is not the expected 'other'"):
        checkpoint.open_checkpoint(data, LOG.verifier, origin="other")
    with pytest.raises(VerificationError, match="not signed by any known key"):
        checkpoint.open_checkpoint(data, SignerKey(ORIGIN, bytes(32)).verifier)
    with pytest.raises(VerificationError, match="does not verify"):
        checkpoint.open_checkpoint(data.replace(b"1234", b"1235"), LOG.verifier)
    not_a_checkpoint = note.format_note(note.sign_note("vega.example/log\n12\n", [LOG]))
    with pytest.raises(FormatError, match="at least 3 lines"):
        checkpoint.open_checkpoint(not_a_checkpoint, LOG.verifier)
    with pytest.raises(FormatError, match="must be an Ed25519"):
        checkpoint.sign_checkpoint(cp, WITNESSES[0])


def _cosigned(k: int) -> Note:
    n = checkpoint.sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), LOG)
    for i, w in enumerate(WITNESSES[:k]):
        n = checkpoint.cosign_checkpoint(n, w, 1_700_000_000 + i)
    return n


def test_witness_policy_k_of_n() -> None:
    verifiers = [w.verifier for w in WITNESSES]
    n = _cosigned(2)
    reparsed = note.parse_note(note.format_note(n))
    got = checkpoint.verify_witness_policy(reparsed, verifiers, 2)
    assert [s.name for s in got] == ["witness.example/w0", "witness.example/w1"]
    assert [checkpoint.cosignature_timestamp(s) for s in got] == [1_700_000_000, 1_700_000_001]
    with pytest.raises(VerificationError, match="cosigned by 2 of 4 witnesses, the policy requires 3"):
        checkpoint.verify_witness_policy(reparsed, verifiers, 3)
    # Duplicate witness entries count once; signatures by unconfigured keys (the log's) are ignored.
    with pytest.raises(VerificationError, match="cosigned by 1 of 2 witnesses, the policy requires 2"):
        checkpoint.verify_witness_policy(reparsed, [verifiers[0], verifiers[0], verifiers[3]], 2)
    # A configured witness's bad cosignature rejects the checkpoint.
    w1 = reparsed.signatures[2]
    bad = Note(
        reparsed.text,
        (*reparsed.signatures[:2], NoteSignature(w1.name, w1.key_id, w1.signature[:8] + bytes(64))),
    )
    with pytest.raises(
        VerificationError, match=r"cosignature by witness 'witness.example/w1' \(.*\) does not verify"
    ):
        checkpoint.verify_witness_policy(bad, verifiers, 1)
    # A cosignature covers the timestamp: changing it breaks the signature.
    moved = NoteSignature(w1.name, w1.key_id, (1).to_bytes(8, "big") + w1.signature[8:])
    with pytest.raises(VerificationError):
        checkpoint.verify_witness_policy(Note(reparsed.text, (moved,)), verifiers, 1)


def test_witness_policy_configuration() -> None:
    n = _cosigned(1)
    verifiers = [w.verifier for w in WITNESSES]
    for k in (0, 5):
        with pytest.raises(ConfigError, match=f"k must be between 1 and 4 witnesses, got {k}"):
            checkpoint.verify_witness_policy(n, verifiers, k)


def test_cosign_requires_checkpoint_and_cosigner() -> None:
    n = _cosigned(0)
    with pytest.raises(FormatError, match="not a cosignature"):
        checkpoint.cosign_checkpoint(n, LOG, 1)
    with pytest.raises(FormatError, match="at least 3 lines"):
        checkpoint.cosign_checkpoint(note.sign_note("x\n", [LOG]), WITNESSES[0], 1)
    again = checkpoint.cosign_checkpoint(checkpoint.cosign_checkpoint(n, WITNESSES[0], 5), WITNESSES[0], 6)
    assert len(again.signatures) == 2
    assert checkpoint.cosignature_timestamp(again.signatures[1]) == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "must end with a newline"),
        ("a\n1\n", "at least 3 lines"),
        ("a\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "no leading zeroes"),
        ("a\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "no leading zeroes"),
        ("a\n" + "9" * 21 + "\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "no leading zeroes"),
        ("a\n\u0661\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "no leading zeroes"),
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n", "not base64"),
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2é\n", "not base64"),
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n", "base64 of 32 bytes"),
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=AA==\n", "not base64"),
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n", "base64 of 32 bytes"),
        ("\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "origin must be one non-empty line"),
        ("a\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n", "extension line 1 must be"),
        ("a\x01\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "origin must be"),
    ],
)
def test_parse_checkpoint_rejects(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        checkpoint.parse_checkpoint(text)


def test_checkpoint_value_checks() -> None:
    with pytest.raises(FormatError, match="size must be a non-negative integer"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(FormatError, match="size must be a non-negative integer"):
        Checkpoint(ORIGIN, True, ROOT)
    with pytest.raises(FormatError, match="root hash must be 32 bytes"):
        Checkpoint(ORIGIN, 1, ROOT[:31])
    with pytest.raises(FormatError, match="origin must be one non-empty line"):
        Checkpoint("a\nb", 1, ROOT)
    assert checkpoint.parse_checkpoint("o\n0\n" + base64.b64encode(ROOT).decode() + "\n").size == 0


@given(
    origin=st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), min_size=1, max_size=30),
    size=st.integers(0, 2**64),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), min_size=1, max_size=10), max_size=3
    ),
)
def test_format_parse_roundtrip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert checkpoint.parse_checkpoint(checkpoint.format_checkpoint(cp)) == cp


@given(st.text(max_size=200))
def test_parse_checkpoint_arbitrary_text_raises_only_format_error(text: str) -> None:
    for candidate in (text, text + "\n", "o\n1\n" + text + "\n"):
        with contextlib.suppress(FormatError):
            checkpoint.parse_checkpoint(candidate)


@given(st.binary(max_size=300))
def test_open_checkpoint_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(FormatError, VerificationError):
        checkpoint.open_checkpoint(data, LOG.verifier)


def test_lone_surrogates_are_format_errors() -> None:
    with pytest.raises(FormatError, match="lone surrogates"):
        checkpoint.parse_checkpoint("a\ud800\n1\n" + base64.b64encode(ROOT).decode() + "\n")


def test_one_witness_cosigning_twice_counts_once() -> None:
    """issue 14 (mutation audit): two valid cosignatures by one witness are not two witnesses."""
    verifiers = [w.verifier for w in WITNESSES]
    once = _cosigned(1)
    again = checkpoint.cosign_checkpoint(once, WITNESSES[0], 1_700_000_100)
    twice = Note(once.text, (*once.signatures, again.signatures[-1]))
    reparsed = note.parse_note(note.format_note(twice))
    mine = [s for s in reparsed.signatures if s.name == WITNESSES[0].name]
    assert len(mine) == 2
    assert mine[0] != mine[1]
    for sig in mine:  # both are genuine cosignatures of the checkpoint
        assert WITNESSES[0].verifier.is_valid(reparsed.text, sig.signature)
    with pytest.raises(VerificationError, match="cosigned by 1 of 4 witnesses, the policy requires 2"):
        checkpoint.verify_witness_policy(reparsed, verifiers, 2)
    assert len(checkpoint.verify_witness_policy(reparsed, verifiers, 1)) == 1
