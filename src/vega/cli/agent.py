"""``vega-attest`` and ``vega-reproduce``: the CI agent and the reproducer (agent.md §1).

Thin entry points over :mod:`vega.client.agent`. The first thing either does is take
``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN`` out of the process environment (agent.md §11): no
child process can ever see them. Exit codes: ``vega-attest`` 0 or 1; ``vega-reproduce`` 0, 1 (an
error) or 2 (an output's NAR hash differed from the expectation).

Spec: agent.md §1, §4, §10, §11.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vega.cli import style
from vega.errors import VegaError

if TYPE_CHECKING:
    import httpx2

    from vega.client.agent.session import Output, Session
    from vega.client.agent.settings import AttestSettings, OidcRequest, ReproduceSettings

__all__ = ["attest_entry", "attest_main", "reproduce_entry", "reproduce_main"]


def _fail(e: VegaError, err: TextIO) -> int:
    style.fail(e.message, {"NO_COLOR": "1"}, list(e.next_steps), err)
    return 1


def _session(
    client: httpx2.Client,
    settings: AttestSettings | ReproduceSettings,
    request: OidcRequest,
    work: Path,
    output: Output,
    env: MutableMapping[str, str],
    **extra: Any,
) -> Session:
    """The agents' session from the settings both share (agent.md §3, §10.1)."""
    from vega.client.agent.session import open_session

    return open_session(
        client,
        url=settings.url,
        audience=settings.audience,
        request=request,
        limits=settings.limits,
        build_timeout_s=settings.build_timeout_s,
        nix_store=settings.nix_store,
        work_dir=work,
        output=output,
        environ=env,
        now_s=time.time,
        **extra,
    )


def attest_main(
    argv: Sequence[str],
    environ: MutableMapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``vega-attest [installable]``; returns the exit code."""
    import httpx2

    from vega.client.agent.attest import load_config, run_attest
    from vega.client.agent.session import Output
    from vega.client.agent.settings import attest_settings, take_oidc_request

    env = os.environ if environ is None else environ
    request = take_oidc_request(env)  # before anything else, and before any child process
    out, err = out or sys.stdout, err or sys.stderr
    if len(argv) > 1:
        return _fail(VegaError("vega-attest takes one argument, the installable"), err)
    work = Path(tempfile.mkdtemp(prefix="vega-agent-"))
    try:
        settings = attest_settings(argv[0] if argv else None, env, os.getcwd())
        config = load_config(settings.workspace)
        with httpx2.Client() as client:
            session = _session(client, settings, request, work, Output(out, err), env)
            run_attest(session, settings, config)
    except VegaError as e:
        return _fail(e, err)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def reproduce_main(
    argv: Sequence[str],
    environ: MutableMapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``vega-reproduce [--from-queue [--max N]]``; returns the exit code."""
    import httpx2

    from vega.client.agent.reproduce import reproduce_one, reproduce_queue
    from vega.client.agent.session import Output
    from vega.client.agent.settings import reproduce_settings, take_oidc_request

    env = os.environ if environ is None else environ
    request = take_oidc_request(env)
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="vega-reproduce",
        description=(
            "Rebuild a locked flake output independently and attest it (inputs: VEGA_URL, VEGA_FLAKE_REF,"
            " VEGA_ATTR, VEGA_REV, VEGA_DIR, VEGA_EXPECT_*, VEGA_HASH; see docs/agents.md)."
        ),
    )
    parser.add_argument(
        "--from-queue", action="store_true", help="claim candidates from GET /api/repro/queue"
    )
    parser.add_argument("--max", type=int, default=10, metavar="N", help="at most N candidates (default 10)")
    args = parser.parse_args(list(argv))
    if args.max < 1:
        parser.error("--max must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="vega-reproduce-"))
    try:
        settings = reproduce_settings(env, from_queue=args.from_queue)
        with httpx2.Client() as client:
            session = _session(client, settings, request, work, Output(out, err), env, tail_lines=200)
            if args.from_queue:
                return reproduce_queue(session, settings.mirrors, settings.url, args.max)
            if settings.target is None:  # pragma: no cover - reproduce_settings sets it without --from-queue
                raise VegaError("no target")
            outcome = reproduce_one(session, settings.mirrors, settings.url, settings.target)
            return 2 if outcome.diverged else 0
    except VegaError as e:
        return _fail(e, err)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def attest_entry() -> None:
    """Console-script entry point for ``vega-attest``."""
    raise SystemExit(attest_main(sys.argv[1:]))


def reproduce_entry() -> None:
    """Console-script entry point for ``vega-reproduce``."""
    raise SystemExit(reproduce_main(sys.argv[1:]))
