"""``vega cache list`` and ``vega cache delete`` against a real dev server (issue 12)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import Server
from tests.server.cachekit import Output
from vega.cli.main import main


def push_over_http(server: Server, credential: str, out: Output) -> None:
    bearer = {"authorization": f"Bearer {credential}"}
    url = httpx2.post(
        f"{server.url}/api/cache/upload-url",
        headers=bearer,
        json={"narUrl": out.nar_url, "fileHash": out.file_hash},
    ).json()["url"]
    checksum = base64.b64encode(hashlib.sha256(out.compressed).digest()).decode()
    put = httpx2.put(url, content=out.compressed, headers={"x-amz-checksum-sha256": checksum})
    assert put.status_code == 200, put.text
    pushed = httpx2.post(f"{server.url}/api/cache/push", headers=bearer, json=out.body())
    assert pushed.status_code == 200, pushed.text


def test_list_and_delete(dev_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--url", dev_server.url]) == 0
    capsys.readouterr()
    from vega.client.credentials import credential_for
    from vega.client.settings import read_settings

    credential = credential_for(read_settings().config_dir, None, 0).credential
    outs = [Output(name, f"{name}\n".encode() * 100) for name in ("one", "two")]
    for out in outs:
        push_over_http(dev_server, credential, out)

    assert main(["cache", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["namespace"] == "owner:1000001"
    assert listing["count"] == 2
    assert sorted(e["storePath"] for e in listing["entries"]) == sorted(o.store_path for o in outs)
    assert listing["narBytes"] == sum(len(o.nar) for o in outs)
    assert main(["cache", "list"]) == 0
    text = capsys.readouterr().out
    assert "owner:1000001 on " in text
    assert outs[0].store_path in text

    assert main(["cache", "delete", outs[0].store_path, outs[0].hash_part, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "namespace": "owner:1000001",
        "deleted": [outs[0].hash_part],
        "missing": [],
    }
    assert httpx2.get(f"{dev_server.url}/tenant/owner:1000001/{outs[0].hash_part}.narinfo").status_code == 404
    assert main(["cache", "delete", outs[0].store_path]) == 0
    assert f"not in your namespace: {outs[0].hash_part}" in capsys.readouterr().out
    assert main(["cache", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 1

    assert main(["cache", "delete", "not-a-path"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err
    assert "vega verify" not in err  # the hint names this command
    assert "vega cache delete /nix/store/<hash>-name" in err


def test_delete_takes_a_result_symlink(
    dev_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["login", "--url", dev_server.url]) == 0
    out = Output("linked", b"linked\n" * 10)
    (tmp_path / "result").symlink_to(out.store_path)  # dangling is fine: only the name is read
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["cache", "delete", "./result", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing"] == [out.hash_part]
