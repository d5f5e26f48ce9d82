"""agent/requirements.txt pins every dependency of the package by version and by hash.

The action and the reproduce workflow install from it with ``pip --require-hashes``; this checks
that the file covers the package's runtime dependencies (read from pyproject.toml, so a new
dependency without a regenerated lock fails here) and the build backend, each ``==``-pinned with
at least one sha256. That the hashes are PyPI's own was checked when the file was generated
(``pip download --require-hashes`` for CPython 3.12 on Linux x86_64 and aarch64, macOS arm64
and Intel; docs/github.md), which needs the network and so is not part of the suite.

Spec: issue 13 (dependencies pinned by hash); agent.md §2.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LOCK = ROOT / "agent" / "requirements.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the pip-compile/uv requirements format."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        first = block.split("\n", 1)[0]
        found = re.match(r"([A-Za-z0-9_.-]+)==([^ ;\\]+)", first)
        if found is None:
            continue
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", block)
        entries[canonical(found.group(1))] = (found.group(2), hashes)
    return entries


def test_every_locked_requirement_is_pinned_by_version_and_sha256() -> None:
    entries = locked()
    assert len(entries) >= 10
    for name, (version, hashes) in entries.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), (name, version)
        assert hashes, f"{name} has no --hash"
        assert all(len(h) == 64 for h in hashes), name
    # Nothing unpinned slipped in (an editable, a URL, a bare name).
    for line in LOCK.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "--hash")):
            assert "==" in stripped, line


def test_the_lock_covers_the_runtime_dependencies_and_the_build_backend() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [re.match(r"[A-Za-z0-9_.-]+", d).group(0) for d in project["project"]["dependencies"]]  # type: ignore[union-attr]
    wanted += project["build-system"]["requires"]
    entries = locked()
    missing = [w for w in wanted if canonical(w) not in entries]
    assert not missing, f"agent/requirements.txt lacks {missing}: regenerate it (docs/github.md)"
