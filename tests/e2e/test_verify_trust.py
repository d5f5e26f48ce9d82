"""Issue 12, "verify says exactly what it trusted", against a real development server on loopback.

* without ``--public-key`` verify trusts only the user's Nix keys; a key the cache serves (a
  tenant's ``/key``, the control plane's ``/api/info``) is used only with ``--trust-fetched-key``
  and reported as "fetched, not pinned" once, single and ``--recursive``, text and ``--json``;
* a path revoked with ``vega-server revoke`` fails in every scope, tenant included, with the
  revocation shown, and the exit code agrees with ``verified``/``exitOk``;
* the missing-key hint names the control plane in use and where it publishes its shared key;
* non-TTY progress prints one line per interval.

Spec: issue 12; cli.md §1.6, §10.3-§10.5; changes-0.19.md (revocation list).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import Server, dev_server_at
from tests.server.cachekit import Output
from vega.cli.commands.verify import execute
from vega.cli.main import build_parser
from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext
from vega.core.signing import PublicKey, parse_public_key
from vega.server.__main__ import main as server_main

ENV: dict[str, str] = {"NO_COLOR": "1"}
TENANT = "alice/hello"


@dataclass
class Result:
    code: int
    out: str
    err: str


class Site:
    """A development control plane with its keys in its data directory, and a verifying user."""

    def __init__(self, server: Server, data_dir: Path, state: Path) -> None:
        self.server = server
        self.url = server.url
        self.data_dir = data_dir
        self.state = LogState(state)
        self.http = httpx2.Client(base_url=server.url)
        info = self.http.get("/api/info").json()
        self.shared: PublicKey = parse_public_key(info["sharedKey"])
        self.tenant_key: PublicKey = parse_public_key(
            self.http.get(f"/tenant/{TENANT}/key").json()["publicKey"]
        )

    def token(self, repository: str, run_id: str, *, workflow: str = ".github/workflows/vega.yml") -> str:
        dev = self.server.auth.dev
        assert dev is not None
        request = dev.mint_request_token(
            repository=repository, sha="a" * 40, run_id=run_id, workflow=workflow
        )
        return dev.mint_id_token(request, self.url)

    def attest(self, out: Output, repository: str = TENANT, run_id: str = "1") -> None:
        """One CI job's upload and attestation: the build lands in that repository's tenant tier."""
        auth = {"authorization": f"Bearer {self.token(repository, run_id)}"}
        got = self.http.post(
            "/api/cache/upload-url", headers=auth, json={"narUrl": out.nar_url, "fileHash": out.file_hash}
        )
        assert got.status_code == 200, got.text
        import base64
        import hashlib
        from urllib.parse import urlsplit

        parts = urlsplit(got.json()["url"])
        digest = base64.b64encode(hashlib.sha256(out.compressed).digest()).decode()
        put = self.http.put(
            f"{parts.path}?{parts.query}", content=out.compressed, headers={"x-amz-checksum-sha256": digest}
        )
        assert put.status_code == 200, put.text
        r = self.http.post("/api/cache/attest", headers=auth, json=out.body())
        assert r.status_code == 200, r.text

    def revoke(self, out: Output) -> None:
        """``vega-server revoke`` on the server's data directory, as an operator runs it."""
        text = io.StringIO()
        assert (
            server_main(
                [
                    "revoke",
                    out.hash_part,
                    "--reason",
                    "compromised builder",
                    "--data-dir",
                    str(self.data_dir),
                ],
                out=text,
            )
            == 0
        )
        assert f"revoked {out.hash_part}" in text.getvalue()

    def verify(
        self,
        *argv: str,
        trusted: tuple[PublicKey, ...] = (),
        url: str | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> Result:
        args = build_parser().parse_args(["verify", *argv, "--url", url or self.url])
        with httpx2.Client() as client:
            ctx = VerifyContext(
                client=client,
                base_url=url or self.url,
                trusted_keys={k.name: k for k in trusted},
                state=self.state,
                limits=HttpLimits(),
                sleep=lambda s: None,
            )
            out, err = io.StringIO(), io.StringIO()
            code = execute(args, ctx, ENV, out, err, clock=clock)
        return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with dev_server_at(tmp_path / "data", keys_on_disk=True) as server:
        monkeypatch.setenv("VEGA_SERVER_PUBLIC_URL", server.url)  # `vega-server revoke` as configured
        s = Site(server, tmp_path / "data", tmp_path / "state")
        try:
            yield s
        finally:
            s.http.close()


DEP = Output("trust-dep", b"dep bytes " * 64)
TOP = Output("trust-top", b"top bytes " * 64, references=[DEP.base])


# -- item 1: only keys the user trusts, unless asked ---------------------------------------------


def test_a_key_the_cache_serves_is_not_trusted_unasked(site: Site) -> None:
    site.attest(TOP)
    res = site.verify(TOP.hash_part)
    assert res.code == 1, res.out + res.err
    assert (
        "error: no trusted public key found for this build (it is signed by: vega-alice-hello-1)." in res.err
    )
    assert "--trust-fetched-key" in res.err
    assert "Verified" not in res.out
    assert f"GET /tenant/{TENANT}/key" not in site.server.requests[-6:]


def test_a_fetched_tenant_key_is_used_with_the_flag_and_said_once(site: Site) -> None:
    site.attest(TOP)
    res = site.verify(TOP.hash_part, "--trust-fetched-key")
    assert res.code == 0, res.out + res.err
    assert "Verified in your tenant tier" in res.out
    assert res.err.count("fetched, not pinned") == 1
    assert f"{site.url}/tenant/{TENANT}/key" in res.err
    as_json = site.verify(TOP.hash_part, "--trust-fetched-key", "--json")
    obj = json.loads(as_json.out)
    assert obj["signature"]["keySource"] == "fetched, not pinned"
    assert obj["exitOk"] is True
    assert as_json.err.count("fetched, not pinned") == 1
    pinned = site.verify(TOP.hash_part, "--json", trusted=(site.tenant_key,))
    assert json.loads(pinned.out)["signature"]["keySource"] == "nix.conf"
    assert "fetched" not in pinned.err


def test_a_fetched_key_is_reported_once_for_a_whole_closure(site: Site) -> None:
    site.attest(DEP)
    site.attest(TOP)
    tenant = f"{site.url}/tenant/{TENANT}"
    before = len(site.server.requests)
    res = site.verify(TOP.hash_part, "--recursive", "--trust-fetched-key", url=tenant)
    assert res.code == 0, res.out + res.err
    assert "Verified 2 of 2 paths" in res.out
    assert res.err.count("fetched, not pinned") == 1
    assert site.server.requests[before:].count(f"GET /tenant/{TENANT}/key") == 1
    as_json = site.verify(TOP.hash_part, "--recursive", "--trust-fetched-key", "--json", url=tenant)
    lines = [json.loads(line) for line in as_json.out.splitlines()]
    assert [o["signature"]["keySource"] for o in lines] == ["fetched, not pinned"] * 2
    assert as_json.err.count("fetched, not pinned") == 1


# -- item 4: the hint names the control plane in use ---------------------------------------------


def test_the_missing_key_hint_names_this_control_plane(site: Site) -> None:
    site.attest(TOP)
    res = site.verify(TOP.hash_part)
    assert res.code == 1
    text = " ".join(res.err.split())
    assert f"{site.url} publishes its shared key at {site.url}/api/info" in text
    assert f"this tenant's key at {site.url}/tenant/{TENANT}/key" in text
    assert "out of band" in text
    assert "a self check only" in text  # the fetched-key route is never offered as plain trust
    assert "vega-cache.dev" not in res.out + res.err


# -- item 2: a revoked path fails in every scope ---------------------------------------------------


def test_a_revoked_tenant_path_fails_with_the_revocation_shown(site: Site) -> None:
    site.attest(TOP)
    assert site.verify(TOP.hash_part, trusted=(site.tenant_key, site.shared)).code == 0
    site.revoke(TOP)
    for trusted in ((site.tenant_key, site.shared), (site.tenant_key,)):
        res = site.verify(TOP.hash_part, trusted=trusted)
        assert res.code == 1, res.out + res.err
        assert "revoked" in res.out + res.err
        assert "compromised builder" in res.out + res.err
        assert "Verified" not in res.out
        allowed = site.verify(TOP.hash_part, "--allow-signature-only", trusted=trusted)
        assert allowed.code == 1, allowed.out + allowed.err
        obj = json.loads(site.verify(TOP.hash_part, "--json", trusted=trusted).out)
        assert (obj["verified"], obj["exitOk"]) == (False, False)
        assert obj["revocation"]["status"] == "revoked"
    fetched = site.verify(TOP.hash_part, "--trust-fetched-key")
    assert fetched.code == 1, fetched.out + fetched.err
    assert "compromised builder" in fetched.out + fetched.err


# -- item 3: non-TTY progress is paced by time ------------------------------------------------------


def chain(site: Site, n: int) -> Output:
    """``n`` tenant builds, each referring to the one before; the last."""
    prev: Output | None = None
    for i in range(n):
        out = Output(f"chain-{i}", f"link {i} ".encode() * 64, references=[prev.base] if prev else [])
        site.attest(out)
        prev = out
    assert prev is not None
    return prev


def test_plain_progress_prints_one_line_per_interval_not_per_total_change(site: Site) -> None:
    top = chain(site, 4)
    tenant = f"{site.url}/tenant/{TENANT}"
    res = site.verify(top.hash_part, "--recursive", url=tenant, trusted=(site.tenant_key,), clock=lambda: 0.0)
    assert res.code == 0, res.out + res.err
    assert "Verified 4 of 4 paths" in res.out
    lines = [line for line in res.err.splitlines() if line.startswith("verified ")]
    assert lines == ["verified 4/4 paths (0 failed)"]  # the total grew 4 times; one line at the end
    ticks = iter(float(i) * 10 for i in range(100))
    paced = site.verify(
        top.hash_part, "--recursive", url=tenant, trusted=(site.tenant_key,), clock=lambda: next(ticks)
    )
    lines = [line for line in paced.err.splitlines() if line.startswith("verified ")]
    assert len(lines) == 4  # every interval elapsed between two paths: one line each, none repeated
    assert lines[-1] == "verified 4/4 paths (0 failed)"


FLAGS: list[tuple[str, ...]] = [
    (),
    ("--no-nar",),
    ("--allow-signature-only",),
    ("--no-nar", "--allow-signature-only"),
]


def test_tenant_exit_codes_agree_with_the_json_and_the_help(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 2: text exit code == JSON exitOk for every flag, before and after revocation; help says so."""
    from vega.cli.main import main

    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert 'exit status (the same as "exitOk" of --json)' in help_text
    assert "at a tenant base, the tenant signature and the NAR bytes check" in help_text
    assert "always for a revoked path (in every scope)" in help_text
    site.attest(TOP)
    trusted = (site.tenant_key,)
    want_before = {
        (): 0,
        ("--no-nar",): 1,
        ("--allow-signature-only",): 0,
        ("--no-nar", "--allow-signature-only"): 0,
    }
    for flags in FLAGS:
        text = site.verify(TOP.hash_part, *flags, trusted=trusted)
        obj = json.loads(site.verify(TOP.hash_part, *flags, "--json", trusted=trusted).out)
        assert text.code == (0 if obj["exitOk"] else 1) == want_before[flags], (flags, text.out, text.err)
        assert obj["verified"] is False  # a tenant build is never "verified" (shared tier only)
    site.revoke(TOP)
    for flags in FLAGS:
        text = site.verify(TOP.hash_part, *flags, trusted=trusted)
        obj = json.loads(site.verify(TOP.hash_part, *flags, "--json", trusted=trusted).out)
        assert (text.code, obj["exitOk"], obj["verified"]) == (1, False, False), (flags, text.out, text.err)
        assert "Not revoked: FAIL revoked: compromised builder" in " ".join(text.out.split())


def test_a_revoked_path_in_a_closure_fails_with_the_revocation_shown(site: Site) -> None:
    site.attest(DEP)
    site.attest(TOP)
    site.revoke(DEP)
    tenant = f"{site.url}/tenant/{TENANT}"
    res = site.verify(TOP.hash_part, "--recursive", url=tenant, trusted=(site.tenant_key,))
    assert res.code == 1, res.out + res.err
    assert f"FAIL  {DEP.store_path}  revoked: compromised builder" in res.out
    assert f"ok    {TOP.store_path}" in res.out
    lines = [
        json.loads(x)
        for x in site.verify(
            TOP.hash_part, "--recursive", "--json", url=tenant, trusted=(site.tenant_key,)
        ).out.splitlines()
    ]
    assert {o["storePath"]: o["exitOk"] for o in lines} == {TOP.store_path: True, DEP.store_path: False}
