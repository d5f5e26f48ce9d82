"""The README's first command, ``scripts/demo``, run exactly as the README says, and its key outputs.

The demo is the main job end to end with the real agents (issue 13): ``vega-server serve --dev``
on the embedded default; an owner's login, push and scoped verify; the example application in a
local git repository; ``vega-attest`` as CI builder A (example-org/app); ``vega-reproduce`` as
builder B (vega-org/repro's reproducer workflow at a pinned ref, its own chroot store); the
promotion decisions (``agreement`` for the reproducible outputs, ``diverged`` and never promoted
for the unreproducible one, both fingerprints in the log); ``vega verify`` on a promoted path;
the real ``nix copy --from`` the shared root with only the shared key. It must clean up after
itself: its temporary directory is gone and its server no longer answers.

Spec: issue 13 (the main job, end to end); README.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx2
import pytest

pytestmark = [pytest.mark.nix, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent.parent


def test_scripts_demo_runs_the_main_job_end_to_end() -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIX_", "VEGA_", "ACTIONS_", "GITHUB_"))}
    done = subprocess.run(["scripts/demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]

    # 1-6: the NAR check, the server, the owner's path.
    assert "vega nar dump is byte-identical to nix-store --dump" in out
    assert "✦ Enrolled as vega-dev" in out
    assert "signature-only: scoped builds are not in the global transparency log" in out
    assert "hello from a reproducible build" in out

    # 8: builder A attested every declared output.
    assert "vega.yaml: building 4 declared output(s)." in out
    assert len(re.findall(r"^  \[tenant\] +/nix/store/\S+-example-app-(lib|docs|stamp) ", out, re.M)) >= 3

    # 9: builder B reproduced three outputs, and the fourth diverged (exit 2).
    reproduced = re.findall(r"^  \[reproduced\] /nix/store/\S+-(example-app(?:-lib|-docs)?)$", out, re.M)
    assert sorted(reproduced) == ["example-app", "example-app-docs", "example-app-lib"]
    assert len(re.findall(r"^  \[shared\] /nix/store/\S+ \(agreement\)$", out, re.M)) == 3
    assert re.search(r"^  \[DIVERGED\] /nix/store/\S+-example-app-stamp$", out, re.M)
    assert re.search(r"^  \[pending\] /nix/store/\S+-example-app-stamp \(shared tier: diverged\)$", out, re.M)
    assert out.count("  (exit 0)") == 3
    assert out.count("  (exit 2)") == 1

    # 10: the decisions, the refused narinfo, both fingerprints in the log.
    for name in ("lib", "app", "docs"):
        assert re.search(rf"^  {name} +verdict=reproducible +inSharedCache=true ", out, re.M), name
    assert re.search(r"^  stamp +verdict=diverged +inSharedCache=false ", out, re.M)
    assert re.search(r"never signed into the shared tier\n  404\n", out)
    logged = re.findall(r"^  #\d+ attestation by (\S+) +narHash (sha256:\S+)$", out, re.M)
    assert [t for t, _ in logged] == ["example-org/app", "vega-org/repro"]
    assert logged[0][1] != logged[1][1]

    # 11-12: verify passes every check; the real nix substitutes from the shared root.
    assert "✦ Verified: signed, in the public log, and the bytes match." in out
    assert "✦ Verified 2 of 2 paths" in out
    assert "hello from the example app" in out
    assert "✦ End to end on one machine" in out

    # It cleaned up after itself.
    work = re.search(r"\(SQLite \+ local dir in (/tmp/vega-demo\.\w+)/server\)", out)
    assert work is not None
    assert not Path(work.group(1)).exists()
    url = re.search(r"serving (http://127\.0\.0\.1:\d+) from", out)
    assert url is not None
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{url.group(1)}/healthz", timeout=5)
