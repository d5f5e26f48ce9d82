"""The client-side secret scan (agent.md §8): every detector, redaction, the walk and its caps."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

from vega.client.agent import secrets
from vega.client.agent.secrets import (
    redact,
    redact_known_secrets,
    scan_for_secrets,
    scan_store_path,
    scan_tree,
)

# Built from pieces so this file itself never holds a whole secret-shaped string.
SAMPLES = {
    "private-key": "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
    "aws-access-key": "AKIA" + "Z7QX2LMN4PRS6TUV",
    "github-token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack-token": "xoxb-" + "1234567890-abcdefghij",
    "google-api-key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "stripe-key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
}


@pytest.mark.parametrize(("kind", "secret"), sorted(SAMPLES.items()))
def test_each_detector_finds_its_kind_and_never_prints_it(kind: str, secret: str) -> None:
    found = scan_for_secrets(f"line one\nexport TOKEN={secret} # here\n")
    assert [(f.kind, f.line) for f in found] == [(kind, 2)]
    assert found[0].preview == secret[:6] + "\u2026"
    assert secret not in found[0].preview
    assert secret not in redact_known_secrets(f"x {secret} y")


def test_the_private_key_detector_takes_bare_and_typed_headers() -> None:
    for header in ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        assert [f.kind for f in scan_for_secrets("-----BEGIN " + header + "-----")] == ["private-key"]
    assert scan_for_secrets("-----BEGIN PUBLIC KEY-----") == []
    assert scan_for_secrets("-----BEGIN RSA OPENSSH PRIVATE KEY-----") == []  # one word at most


def test_word_boundaries_and_lengths_are_respected() -> None:
    aws = SAMPLES["aws-access-key"]
    assert scan_for_secrets("x" + aws) == []  # no boundary before
    assert scan_for_secrets(aws + "Q") == []  # 17 characters after the prefix
    assert scan_for_secrets("ghp_" + "a" * 35) == []  # too short
    assert scan_for_secrets("sk_test_" + "a" * 30) == []  # only live keys
    assert scan_for_secrets("xoxz-1234567890") == []


def test_one_finding_per_detector_per_line_and_table_order() -> None:
    aws, gh = SAMPLES["aws-access-key"], SAMPLES["github-token"]
    found = scan_for_secrets(f"{gh} {aws} {aws}")
    assert [f.kind for f in found] == ["aws-access-key", "github-token"]


def test_redaction_of_short_and_long_matches() -> None:
    assert redact("12345678") == "***"
    assert redact("123456789") == "123456\u2026"


def test_the_walk_skips_symlinks_binaries_empty_and_huge_files(tmp_path: Path) -> None:
    secret = SAMPLES["stripe-key"]
    root = tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "conf").write_text(f"a\nb\nkey={secret}\n")
    (root / "bin").write_bytes(b"\0" + secret.encode())
    (root / "empty").write_bytes(b"")
    (root / "huge").write_bytes(secret.encode() + b"\n" + b"x" * (2 * 1024 * 1024))
    outside = tmp_path / "outside"
    outside.write_text(secret)
    (root / "link").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)
    findings, scanned = scan_tree(str(root), "/nix/store/abc-out")
    assert [(f.file, f.finding.kind, f.finding.line) for f in findings] == [
        ("/nix/store/abc-out/sub/conf", "stripe-key", 3)
    ]
    assert scanned == 2  # conf and bin (read, then found binary)
    assert scan_store_path(str(root / "link")) == []  # a symlink root is not followed
    assert [f.finding.kind for f in scan_store_path(str(root / "sub" / "conf"))] == ["stripe-key"]
    assert scan_store_path(str(tmp_path / "missing")) == []


def test_a_file_named_after_a_token_is_shown_redacted(tmp_path: Path) -> None:
    gh = SAMPLES["github-token"]
    (tmp_path / gh).write_text(SAMPLES["aws-access-key"])
    (finding,) = scan_store_path(str(tmp_path))
    assert gh not in finding.file
    assert gh not in finding.message()
    assert finding.file.endswith("ghp_a1\u2026")
    assert finding.message().startswith(f"possible aws-access-key in {finding.file}:1 (AKIAZ7\u2026). ")
    assert "secret-scan: false" in finding.message()


def test_the_finding_and_file_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = SAMPLES["aws-access-key"]
    (tmp_path / "many").write_text(f"{aws}\n" * 20)
    monkeypatch.setattr(secrets, "MAX_FINDINGS", 5)
    assert len(scan_store_path(str(tmp_path))) == 5  # the cap applies within one file
    monkeypatch.setattr(secrets, "MAX_FINDINGS", 1000)
    for i in range(5):
        (tmp_path / f"f{i}").write_text("plain\n")
    monkeypatch.setattr(secrets, "MAX_FILES", 3)
    assert scan_tree(str(tmp_path))[1] == 3


def test_no_false_positive_on_the_python_standard_library() -> None:
    """A large tree of ordinary files: the interpreter's own stdlib, read in place.

    Left out, because the scan rightly reports them: third-party packages (site-packages; some
    ship documentation with example credentials) and CPython's own test suite (``test/``, whose
    TLS fixtures are real private keys).
    """
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    findings: list[object] = []
    scanned = 0
    for entry in sorted(os.listdir(stdlib)):
        if entry in ("site-packages", "dist-packages", "test"):
            continue
        found, n = scan_tree(os.path.join(stdlib, entry))
        findings += [f.message() for f in found]
        scanned += n
    assert scanned > 1000
    assert findings == []
