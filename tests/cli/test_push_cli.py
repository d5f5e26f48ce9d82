"""``vega push`` rendering: sizes, NDJSON events, plain lines, the rich display, the epilogue (cli.md §9)."""

from __future__ import annotations

import io
import json

import pytest

from vega.cli.commands.push import _Display, _epilogue, format_rate, format_size
from vega.cli.main import main
from vega.client.nix import PathInfo
from vega.client.push import (
    BuildStarted,
    PackProgress,
    PathPushed,
    Planned,
    PushedPath,
    PushReport,
    SubstituteCheck,
    UploadProgress,
)
from vega.core.hashes import HashAlgorithm, hash_bytes
from vega.core.storepath import parse_store_path

APP = parse_store_path("/nix/store/l915bvq3wig4nxwlvga4lw06aigam617-vega-push-app")
LIB = parse_store_path("/nix/store/invfnlz3ykci2qhj50acn1ldc6mb6pmy-vega-push-lib")
H = hash_bytes(HashAlgorithm.SHA256, b"x")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (10 * 1024, "10 KiB"),
        (5 << 20, "5.0 MiB"),
        (3 << 40, "3072 GiB"),
    ],
)
def test_format_size(n: int, text: str) -> None:
    """cli.md §9: B KiB MiB GiB, one decimal below 10 (not for B)."""
    assert format_size(n) == text


def events(total: int) -> list[object]:
    infos = tuple(PathInfo(path=APP, nar_hash=H, nar_size=100) for _ in range(total))
    out: list[object] = [
        BuildStarted(".#app"),
        Planned(installable=".#app", closure=total + 3, novel=infos, cached=2, upstream=1),
    ]
    for k in range(1, total + 1):
        out += [
            PackProgress(APP, 100, 100),
            UploadProgress(APP, 10, 20),
            PathPushed(path=APP, size=20, nar_size=100, done=k, total=total),
        ]
    return out


def test_json_mode_prints_plan_and_pushed_events_only() -> None:
    out, err = io.StringIO(), io.StringIO()
    display = _Display(out, err, {}, json_mode=True)
    for e in events(2):
        display.event(e)  # type: ignore[arg-type]
    display.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {
            "event": "plan",
            "installable": ".#app",
            "closure": 5,
            "skipped": 3,
            "novel": 2,
            "cached": 2,
            "upstream": 1,
            "earlier": 0,
            "narBytes": 200,
        },
        {"event": "pushed", "path": APP.absolute, "size": 20, "done": 1, "total": 2},
        {"event": "pushed", "path": APP.absolute, "size": 20, "done": 2, "total": 2},
    ]
    assert err.getvalue() == ""


def test_plain_lines_one_per_interval_and_the_last_not_one_per_change() -> None:
    """Issue 12: non-TTY progress prints one line per interval, not one per total change."""
    now = [0.0]
    out, err = io.StringIO(), io.StringIO()
    display = _Display(out, err, {}, json_mode=False, clock=lambda: now[0])
    for e in events(12):
        display.event(e)  # type: ignore[arg-type]
    text = out.getvalue().splitlines()
    assert text == [
        "\u2726 Building .#app",
        "  Closure 15 paths: 12 novel, 1 already upstream, 2 already in the namespace",
        "  uploaded 12/12 (240 B)",
    ]
    assert err.getvalue() == ""
    out = io.StringIO()
    display = _Display(out, err, {}, json_mode=False, clock=lambda: now[0])
    for k, e in enumerate(events(30)):
        now[0] = k * 1.0  # three events a path, one second apart: a line every ten seconds at most
        display.event(e)  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()[2:]
    assert len(lines) == 10  # 92 s of events: one line per 10 s interval (9), then the final one
    assert lines[-1] == "  uploaded 30/30 (600 B)"


def test_a_terminal_gets_the_rich_display_on_stderr_and_ci_turns_it_off() -> None:
    out, err = Tty(), io.StringIO()
    display = _Display(out, err, {"NO_COLOR": "1"}, json_mode=False)
    for e in events(2):
        display.event(e)  # type: ignore[arg-type]
    display.close()
    assert "uploaded" not in out.getvalue()
    assert f"pushed {APP.name} (20 B)" in err.getvalue()
    out, err = Tty(), io.StringIO()
    display = _Display(out, err, {"CI": "true"}, json_mode=False)
    for e in events(1):
        display.event(e)  # type: ignore[arg-type]
    assert "  uploaded 1/1" in out.getvalue()


def report(ok: bool, key: str | None = "vega-owner-7-1:" + "A" * 43 + "=") -> PushReport:
    return PushReport(
        namespace="owner:7",
        pushed=(PushedPath(path=APP, file_hash=H, file_size=2048, nar_size=4096),),
        closure=2,
        cached=1,
        upstream=0,
        substituter="http://127.0.0.1:8080/tenant/owner:7",
        public_key=key,
        check=SubstituteCheck(ok, "substitutable" if ok else f"{LIB}: narinfo answered 404", 2),
    )


def test_epilogue_prints_the_nix_conf_lines_and_the_check() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert _epilogue(report(True), {}, out, err) == 0
    text = out.getvalue()
    assert text.startswith("\u2726 Pushed 1 path(s) to owner:7.\n")
    assert "  extra-substituters = http://127.0.0.1:8080/tenant/owner:7\n" in text
    assert "  extra-trusted-public-keys = vega-owner-7-1:" in text
    assert (
        "\u2726 Checked as a fresh client: 2 path(s) substitutable from http://127.0.0.1:8080/tenant/owner:7"
        in text
    )
    assert err.getvalue() == ""


def test_epilogue_fails_when_not_substitutable_and_omits_a_missing_key() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert _epilogue(report(False, None), {}, out, err) == 1
    assert "extra-substituters" not in out.getvalue()
    assert err.getvalue() == (
        f"error: not substitutable from http://127.0.0.1:8080/tenant/owner:7: {LIB}: narinfo answered 404\n"
    )


def test_usage_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """cli.md §1: a usage error prints the parser's error and a hint, exit 1."""
    with pytest.raises(SystemExit) as e:
        main(["push", "--jobs", "four"])
    assert e.value.code == 1
    assert "vega push --help" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["push", "--help"])
    assert e.value.code == 0
    assert "--no-skip-upstream" in capsys.readouterr().out


def test_plain_mode_prints_a_progress_line_for_a_long_path_at_most_every_ten_seconds() -> None:
    now = [0.0]
    out = io.StringIO()
    display = _Display(out, io.StringIO(), {}, json_mode=False, clock=lambda: now[0])
    steps: list[tuple[float, PackProgress | UploadProgress]] = [
        (1.0, PackProgress(APP, 8 << 20, 800 << 20)),
        (10.5, PackProgress(APP, 400 << 20, 800 << 20)),
        (12.0, PackProgress(APP, 500 << 20, 800 << 20)),
        (21.0, UploadProgress(APP, 100 << 20, 200 << 20)),
    ]
    for t, e in steps:
        now[0] = t
        display.event(e)
    assert out.getvalue().splitlines() == [
        f"  packing {APP.name}: 400 MiB of 800 MiB",
        f"  uploading {APP.name}: 100 MiB of 200 MiB",
    ]


def test_one_unit_system_mib_and_mib_per_second() -> None:
    """Issue 12: sizes and rates in binary units alike (no MB/s next to MiB)."""
    assert format_rate(5 << 20) == "5.0 MiB/s"
    assert format_rate(300 << 20) == "300 MiB/s"
    out, err = Tty(), io.StringIO()
    display = _Display(out, err, {"NO_COLOR": "1"}, json_mode=False)
    info = PathInfo(path=APP, nar_hash=H, nar_size=300 << 20)
    display.event(Planned(installable=".#app", closure=1, novel=(info,), cached=0, upstream=0))
    display.event(UploadProgress(APP, 50 << 20, 100 << 20))
    tasks = {t.description.strip(): t for t in display._rich.tasks}
    assert tasks[f"uploading {APP.name}"].fields["sizes"] == "50 MiB of 100 MiB"
    assert tasks["Packing and uploading"].fields["sizes"] == "225 MiB of 300 MiB"
    columns = " ".join(type(c).__name__ for c in display._rich.columns)
    assert "TransferSpeedColumn" not in columns  # rich's own speed column prints decimal MB/s
    assert "DownloadColumn" not in columns
    display.close()


def test_the_overall_bar_reaches_100_percent_only_when_the_last_byte_is_acknowledged() -> None:
    out, err = Tty(), io.StringIO()
    display = _Display(out, err, {"NO_COLOR": "1"}, json_mode=False)
    a = PathInfo(path=APP, nar_hash=H, nar_size=100)
    b = PathInfo(path=LIB, nar_hash=H, nar_size=300)
    display.event(Planned(installable=".#app", closure=2, novel=(b, a), cached=0, upstream=0))
    overall = next(t for t in display._rich.tasks if "Packing and uploading" in t.description)
    display.event(PackProgress(LIB, 300, 300))
    assert display.overall == (150.0, 400)  # packed: half of the path's share
    display.event(UploadProgress(LIB, 40, 40))  # every byte moved, not yet acknowledged
    assert display.overall == (299.0, 400)
    display.event(PathPushed(path=LIB, size=40, nar_size=300, done=1, total=2))
    assert display.overall == (300.0, 400)
    display.event(PackProgress(APP, 100, 100))
    display.event(UploadProgress(APP, 10, 10))
    assert display.overall[0] < 400
    assert not overall.finished
    display.event(PathPushed(path=APP, size=10, nar_size=100, done=2, total=2))
    assert display.overall == (400.0, 400)


def test_an_interrupted_push_lists_what_was_and_was_not_pushed_and_exits_130() -> None:
    from vega.cli.commands.push import _interrupted
    from vega.client.push import PushInterrupted

    stopped = PushInterrupted(
        [PushedPath(path=APP, file_hash=H, file_size=20, nar_size=100)], [LIB], [".#later"]
    )
    out, err = io.StringIO(), io.StringIO()
    assert _interrupted(stopped, False, {}, out, err) == 130
    assert err.getvalue().splitlines() == [
        "",
        "interrupted: pushed 1 path(s), 1 not pushed",
        f"  pushed     {APP.absolute}",
        f"  not pushed {LIB.absolute}",
        "  not started .#later",
        "Run the same command again to push the rest (what was pushed is skipped).",
    ]
    assert out.getvalue() == ""


def test_a_nix_error_block_is_printed_with_its_lines_each_made_safe() -> None:
    """Issue 12: a failed nix command is printed whole, lines kept, no terminal control passes."""
    from vega.cli import style
    from vega.errors import NixError

    tail = (
        "app> noise\n"
        "error: builder for '/nix/store/aaaa-app.drv' failed with exit code 1;\n"
        "       last 1 log lines:\n"
        "       > boom \x1b[2J cleared"
    )
    err = io.StringIO()
    style.fail(NixError(["nix", "build", "--", ".#app"], 1, tail).message, {}, ("nix log x",), err)
    assert err.getvalue().splitlines() == [
        "error: nix build exited with status 1:"
        " builder for '/nix/store/aaaa-app.drv' failed with exit code 1;",
        "       last 1 log lines:",
        "       > boom [2J cleared",
        "",
        "Try:",
        "  nix log x",
    ]
