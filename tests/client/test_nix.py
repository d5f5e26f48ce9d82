"""vega.client.nix: argv built right, real nix output parsed (agent.md §6.1, cli.md §9).

The fake runner replays stdout and stderr captured from the real Nix 2.8 on this machine
(``nix build --json --no-link -L`` and ``nix path-info --json -r`` of
tests/with_nix/flakes/push); a ``nix``-marked test checks the same calls against the real nix.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import NixRunner
from vega.client.nix import (
    Nix,
    PathInfo,
    ProcessResult,
    SubprocessRunner,
    build_timeout_s,
    check_installable,
    parse_build_outputs,
    parse_path_info,
)
from vega.core.hashes import parse_nix_hash
from vega.core.storepath import parse_store_path
from vega.errors import ConfigError, FormatError, NixError

# Captured from the real nix (Nix 2.8.0) on the push flake.
BUILD_JSON = (
    b'[{"drvPath":"/nix/store/vkvd1nz35wfkjywa6li20a9bxf7mnqab-vega-push-app.drv",'
    b'"outputs":{"out":"/nix/store/l915bvq3wig4nxwlvga4lw06aigam617-vega-push-app"}}]\n'
)
PATH_INFO_JSON = (
    b'[{"path":"/nix/store/invfnlz3ykci2qhj50acn1ldc6mb6pmy-vega-push-lib",'
    b'"narHash":"sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=","narSize":1072,"references":[],'
    b'"deriver":"/nix/store/5y02fvyhvgykz6ls5iv1c52351cgjfiq-vega-push-lib.drv",'
    b'"registrationTime":1795636375,"ultimate":true},'
    b'{"path":"/nix/store/l915bvq3wig4nxwlvga4lw06aigam617-vega-push-app",'
    b'"narHash":"sha256-XSJdz7X1/oYgDS6lU4HHFfa/s5tdENzxxN2wR9DtQLM=","narSize":568,'
    b'"references":["/nix/store/invfnlz3ykci2qhj50acn1ldc6mb6pmy-vega-push-lib"],'
    b'"deriver":"/nix/store/vkvd1nz35wfkjywa6li20a9bxf7mnqab-vega-push-app.drv",'
    b'"registrationTime":1795636375,"ultimate":true}]'
)
BUILD_STDERR_MISSING_ATTR = (
    "error: flake 'path:tests/with_nix/flakes/push' does not provide attribute "
    "'packages.x86_64-linux.nope', 'legacyPackages.x86_64-linux.nope' or 'nope'"
)
APP = "/nix/store/l915bvq3wig4nxwlvga4lw06aigam617-vega-push-app"
LIB = "/nix/store/invfnlz3ykci2qhj50acn1ldc6mb6pmy-vega-push-lib"
FLAKE = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"


class FakeRunner:
    """Replays recorded results in order and records every argv."""

    def __init__(self, *results: ProcessResult) -> None:
        self.results = list(results)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> ProcessResult:
        self.calls.append(list(argv))
        return self.results.pop(0)


def test_build_runs_one_evaluation_with_the_terminator() -> None:
    run = FakeRunner(ProcessResult(0, BUILD_JSON))
    outputs = Nix(run).build("path:./flake#default")
    assert run.calls == [["nix", "build", "--json", "--no-link", "-L", "--", "path:./flake#default"]]
    assert [p.absolute for p in outputs] == [APP]


def test_closure_reads_path_info_of_the_outputs() -> None:
    run = FakeRunner(ProcessResult(0, PATH_INFO_JSON))
    infos = Nix(run, options=["--store", "/tmp/s"]).closure([parse_store_path(APP)])
    assert run.calls == [["nix", "path-info", "--json", "--recursive", "--store", "/tmp/s", "--", APP]]
    lib, app = infos
    assert lib == PathInfo(
        path=parse_store_path(LIB),
        nar_hash=parse_nix_hash("sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8="),
        nar_size=1072,
        references=(),
        deriver=parse_store_path("/nix/store/5y02fvyhvgykz6ls5iv1c52351cgjfiq-vega-push-lib.drv"),
        ultimate=True,
    )
    assert app.references == (parse_store_path(LIB),)
    assert str(app.nar_hash) == str(parse_nix_hash("sha256-XSJdz7X1/oYgDS6lU4HHFfa/s5tdENzxxN2wR9DtQLM="))


def test_closure_of_nothing_runs_nothing() -> None:
    run = FakeRunner()
    assert Nix(run).closure([]) == ()
    assert run.calls == []


def test_failed_build_raises_nix_error_with_the_stderr_tail() -> None:
    run = FakeRunner(ProcessResult(1, b"", BUILD_STDERR_MISSING_ATTR))
    with pytest.raises(NixError) as e:
        Nix(run).build("path:./flake#nope")
    assert e.value.returncode == 1
    assert "does not provide attribute" in e.value.message
    assert e.value.argv[:3] == ("nix", "build", "--json")


def test_flag_like_installable_is_refused_before_any_call() -> None:
    """cli.md §9: an installable starting with '-' is refused."""
    run = FakeRunner()
    with pytest.raises(ConfigError, match=r"^refusing an installable that looks like a flag: --impure$"):
        Nix(run).build("--impure")
    assert run.calls == []
    assert check_installable(".#x") == ".#x"


def test_path_info_object_form_and_other_hash_encodings() -> None:
    """agent.md §6.1: the object form keyed by path; narHash in nix32 or base-16 is converted."""
    h = parse_nix_hash("sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=")
    doc = {
        LIB: {"narHash": str(h), "narSize": 1072},
        APP: {"narHash": "sha256:" + h.base16, "narSize": 5, "references": [LIB], "deriver": None},
    }
    lib, app = parse_path_info(json.dumps(doc).encode())
    assert lib.nar_hash == h == app.nar_hash
    assert lib.references == ()
    assert lib.deriver is None
    assert app.references == (parse_store_path(LIB),)


def test_build_outputs_of_an_opaque_store_path_and_duplicates() -> None:
    doc = [{"path": LIB}, {"drvPath": "x", "outputs": {"out": LIB, "dev": APP}}]
    assert [p.absolute for p in parse_build_outputs(json.dumps(doc).encode())] == [LIB, APP]


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b'{"a": 1}',
        b"[1]",
        b'[{"drvPath": "x"}]',
        b'[{"outputs": {"out": "relative-path"}}]',
        b'[{"outputs": {"out": "/nix/store/short"}}]',
    ],
)
def test_build_outputs_reject_malformed_output(doc: bytes) -> None:
    with pytest.raises(FormatError):
        parse_build_outputs(doc)


@pytest.mark.parametrize(
    "entry",
    [
        {"path": LIB, "narHash": "md5:00", "narSize": 1},
        {"path": LIB, "narHash": 7, "narSize": 1},
        {"path": LIB, "narHash": "sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=", "narSize": -1},
        {"path": LIB, "narHash": "sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=", "narSize": True},
        {
            "path": LIB,
            "narHash": "sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=",
            "narSize": 1,
            "references": "x",
        },
        {
            "path": LIB,
            "narHash": "sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=",
            "narSize": 1,
            "deriver": "nope",
        },
        {"narHash": "sha256-ib2FV7vTdWiX7fcWPKDz44+ciffs6RNGGWsF096XEo8=", "narSize": 1},
    ],
)
def test_path_info_rejects_malformed_entries(entry: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        parse_path_info(json.dumps([entry]).encode())


def test_path_info_rejects_invalid_path_and_other_shapes() -> None:
    with pytest.raises(FormatError, match="not a valid path"):
        parse_path_info(json.dumps({LIB: None}).encode())
    with pytest.raises(FormatError, match="expected an object"):
        parse_path_info(b"[1]")
    with pytest.raises(FormatError, match="array or an object"):
        parse_path_info(b'"x"')


@given(st.binary(max_size=200))
def test_parsers_given_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    for parse in (parse_build_outputs, parse_path_info):
        with contextlib.suppress(FormatError):
            parse(data)


def test_subprocess_runner_captures_stdout_and_forwards_stderr() -> None:
    lines: list[str] = []
    run = SubprocessRunner(lines.append)
    code = (
        "import sys; print('out'); print('log 1', file=sys.stderr);"
        " print('log 2', file=sys.stderr); sys.exit(3)"
    )
    result = run([sys.executable, "-c", code])
    assert result == ProcessResult(3, b"out\n", "log 1\nlog 2")
    assert lines == ["log 1", "log 2"]


def test_subprocess_runner_bounds_stdout_and_reports_a_missing_program() -> None:
    big = SubprocessRunner(max_stdout=10)([sys.executable, "-c", "print('x' * 100000)"])
    assert big.returncode == 1
    assert "larger than 10 bytes" in big.stderr_tail
    missing = SubprocessRunner()(["/nonexistent/nix", "build"])
    assert missing.returncode == 127
    assert missing.stdout == b""


@pytest.mark.nix
def test_against_the_real_nix(nix: NixRunner, tmp_path: Path) -> None:
    """The same two calls, against the real nix: outputs and closure agree with nix itself."""
    env = nix.env
    flake = tmp_path / "flake"
    flake.mkdir()
    (flake / "flake.nix").write_bytes((FLAKE / "flake.nix").read_bytes())
    (flake / "seed.txt").write_text("test_nix\n")
    real = Nix(SubprocessRunner(env=env))
    outputs = real.build(f"path:{flake}#default")
    assert len(outputs) == 1
    assert outputs[0].name == "vega-push-app"
    closure = real.closure(outputs)
    assert {p.path.name for p in closure} == {"vega-push-app", "vega-push-lib"}
    app = next(p for p in closure if p.path == outputs[0])
    assert [r.name for r in app.references] == ["vega-push-lib"]
    assert app.deriver is not None
    assert app.deriver.name == "vega-push-app.drv"
    with pytest.raises(NixError, match="does not provide attribute"):
        real.build(f"path:{flake}#nope")


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({}, None),
        ({"VEGA_BUILD_TIMEOUT_MINUTES": "2"}, 120.0),
        ({"VEGA_BUILD_TIMEOUT_MINUTES": " 0.5 ", "VEGA_BUILD_TIMEOUT_MS": "9"}, 30.0),
        ({"VEGA_BUILD_TIMEOUT_MINUTES": "0", "VEGA_BUILD_TIMEOUT_MS": "1500"}, 1.5),
        ({"VEGA_BUILD_TIMEOUT_MINUTES": "x", "VEGA_BUILD_TIMEOUT_MS": "1e3"}, 1.0),
        ({"VEGA_BUILD_TIMEOUT_MS": "-1"}, None),
    ],
)
def test_build_timeout_from_the_environment(environ: dict[str, str], seconds: float | None) -> None:
    """agent.md §3: minutes first, a falsy value falls back to milliseconds; neither = no timer."""
    assert build_timeout_s(environ) == seconds


def test_subprocess_runner_terminates_a_build_past_its_timer() -> None:
    done = SubprocessRunner(timeout_s=0.2)([sys.executable, "-c", "import time; time.sleep(60)"])
    assert done.returncode == -15


def test_nix_error_keeps_nix_s_whole_error_block_not_a_cut_off_line() -> None:
    """Issue 12: a failed nix command is shown whole (its error block), never cut mid-line."""
    logs = "\n".join(f"app> building step {k} " + "x" * 60 for k in range(200))
    error = (
        "error: builder for '/nix/store/aaaa-app.drv' failed with exit code 1;\n"
        "       last 2 log lines:\n"
        "       > step 199\n"
        "       > boom: " + "y" * 500 + "\n"
        "       For full logs, run 'nix log /nix/store/aaaa-app.drv'."
    )
    e = NixError(["nix", "build", "--json", "--", ".#app"], 1, logs + "\n" + error)
    assert e.message.startswith(
        "nix build exited with status 1: builder for '/nix/store/aaaa-app.drv' failed"
    )
    assert e.message.endswith("For full logs, run 'nix log /nix/store/aaaa-app.drv'.")
    assert "> boom: " + "y" * 500 + "\n" in e.message  # the long line is whole
    assert "building step" not in e.message  # the build log before the error is not repeated
    plain = NixError(["nix", "path-info"], 1, "line one\nline two")
    assert plain.message == "nix path-info exited with status 1: line one\nline two"
    assert NixError([], 2, "").message == "nix exited with status 2"
    assert not any(line.startswith(("x", "y")) for line in e.stderr_tail.splitlines())  # whole lines
