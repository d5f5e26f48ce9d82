"""Sub-flake classification (§5.4), locked installables (§10.3), mirrors, containment (§10.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega.client.agent.flakeref import (
    Mirrors,
    check_contained,
    locked_installable,
    own_repo_subflake_dir,
)
from vega.errors import ConfigError

REV = "8b2b57d0e1f2a3b4c5d6e7f8091a2b3c4d5e663f"


@pytest.mark.parametrize(
    ("installable", "repository", "expected"),
    [
        (".#app", "o/r", ""),
        ("#app", "o/r", ""),
        ("", "o/r", ""),
        ("./#app", "o/r", ""),
        ("path:.#app", "o/r", ""),
        ("./sub/host#app", "o/r", "sub/host"),
        ("path:./sub#app", None, "sub"),
        ("/ws/sub/#app", "o/r", "sub"),
        ("/ws#app", "o/r", ""),
        ("../other#app", "o/r", None),
        ("/elsewhere#app", "o/r", None),
        ("./sub/../..#app", "o/r", None),
        ("github:o/r#app", "o/r", ""),
        ("github:O/R#app", "o/r", ""),
        ("github:o/r?dir=sub%2Fhost#app", "o/r", "sub/host"),
        ("github:o/r/main?ref=x&dir=a#app", "o/r", "a"),
        ("github:o/r?dir=%zz#app", "o/r", None),
        ("github:o/r?dir=%ff#app", "o/r", None),
        ("github:o/other#app", "o/r", None),
        ("github:o/r#app", None, None),
        ("git+https://github.com/o/r#app", "o/r", None),
        ("gitlab:o/r#app", "o/r", None),
    ],
)
def test_own_repo_subflake_dir(installable: str, repository: str | None, expected: str | None) -> None:
    assert own_repo_subflake_dir(installable, "/ws", repository) == expected


def test_locked_installable_examples_of_the_spec() -> None:
    assert (
        locked_installable("github:owner/repo", "packages.x86_64-linux.hello", REV)
        == f"github:owner/repo/{REV}#packages.x86_64-linux.hello"
    )
    assert (
        locked_installable("git+https://e.com/r?ref=main", "x", "ddd")
        == "git+https://e.com/r?ref=main&rev=ddd#x"
    )
    assert locked_installable("git+https://e.com/r", "x", "a b/c") == "git+https://e.com/r?rev=a%20b%2Fc#x"
    assert locked_installable("github:o/r", "x", REV, "sub/d") == f"github:o/r/{REV}?dir=sub/d#x"


@pytest.mark.parametrize(
    ("ref", "rev", "dir_", "message"),
    [
        ("github:o/r#x", REV, None, "refusing flake ref with a fragment"),
        ("git+https://e.com/r", REV, "sub", "subflake dir is only supported on a canonical github ref"),
        ("github:o/r/branch", REV, "sub", "subflake dir is only supported on a canonical github ref"),
        ("github:o/r", "main", "sub", "subflake dir requires an immutable commit SHA rev: main"),
        ("-github:o/r", "x", None, "refusing installable that looks like a flag"),
    ],
)
def test_locked_installable_refusals(ref: str, rev: str, dir_: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        locked_installable(ref, "x", rev, dir_)


def test_mirrors_are_off_by_default_and_rewrite_only_what_they_name() -> None:
    assert Mirrors.parse(None).installable("github:o/r", "x", REV) == f"github:o/r/{REV}#x"
    m = Mirrors.parse("O/R=git+file:///srv/r  a/b=git+https://git.example/b.git")
    assert m.installable("github:o/r", "x", REV) == f"git+file:///srv/r?rev={REV}#x"
    assert m.installable("github:o/r", "x", REV, "sub") == f"git+file:///srv/r?rev={REV}&dir=sub#x"
    assert m.installable("github:c/d", "x", REV) == f"github:c/d/{REV}#x"
    with pytest.raises(ConfigError, match="subflake dir requires an immutable commit SHA"):
        m.installable("github:o/r", "x", "main", "sub")  # the GitHub checks still apply
    assert m.fetch_tree_expr("github:o/r", REV) == (
        f'(builtins.fetchTree {{ type = "git"; url = "file:///srv/r"; rev = "{REV}"; }}).outPath'
    )
    assert m.fetch_tree_expr("github:c/d", REV) == (
        f'(builtins.fetchTree {{ type = "github"; owner = "c"; repo = "d"; rev = "{REV}"; }}).outPath'
    )
    assert m.fetch_tree_expr("git+https://x", REV) is None


def test_containment(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "file").write_text("x")
    (src / "up").symlink_to(tmp_path)
    (src / "inner").symlink_to(src / "a")
    check_contained(str(src), "a/b")
    check_contained(str(src), "a")
    for dir_, message in (
        ("missing", "'missing' does not exist"),
        ("a/missing", "'missing' does not exist"),
        ("up", "'up' is a symlink"),
        ("inner/b", "'inner' is a symlink"),
        ("file", "'file' is not a directory"),
        ("a/../..", "resolves outside the source tree"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_contained(str(src), dir_)
