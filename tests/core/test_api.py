"""protocol.md §4-§6: control-plane JSON messages."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core.api import (
    AttestBody,
    AttestResult,
    DispatchFailedBody,
    ErrorBody,
    InfoResponse,
    KeyResponse,
    PushResult,
    ReproCandidate,
    ReproQueueResponse,
    StatusResponse,
    UploadUrlRequest,
    UploadUrlResponse,
    is_safe_attr,
    is_safe_dir,
    nar_url_for,
    parse_nar_url,
    parse_sha256,
)
from vega.core.promotion import PromotionDecision, SharedDecision
from vega.errors import FormatError

H1 = "sha256:" + "1" * 52
H2 = "sha256:" + "0a" * 26
SP = "/nix/store/" + "a" * 32 + "-hello-1.0"
REF = "b" * 32 + "-glibc"
DRV = "c" * 32 + "-hello-1.0.drv"


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "storePath": SP,
        "url": f"nar/{H1[7:]}.nar.zst",
        "compression": "zstd",
        "fileHash": H1,
        "fileSize": 10,
        "narHash": H2,
        "narSize": 20,
        "references": [REF, SP[11:]],
        "deriver": DRV,
        "attr": "packages.x86_64-linux.default",
        "dir": "sub/host",
    }
    b.update(over)
    return {k: v for k, v in b.items() if v is not ...}


def test_attest_body_round_trip() -> None:
    parsed = AttestBody.from_json(body())
    assert parsed.to_json() == body()
    assert parsed.store_path.hash_part == "a" * 32
    assert parsed.url == f"nar/{H1[7:]}.nar.zst"
    minimal = body(deriver=..., attr=..., dir=..., noContinent=True)
    assert AttestBody.from_json(minimal).to_json() == minimal
    assert AttestBody.from_json(body(noContinent=False)).no_continent is False
    assert AttestBody.from_json(body(fileSize=10.0)).file_size == 10


BAD_BODIES = [
    ([], "body: expected a JSON object"),
    (body(storePath="hello"), "storePath: expected /nix/store/"),
    (body(storePath="/nix/store/short-x"), "storePath: not a store path"),
    (body(storePath=1), "storePath: expected a string"),
    (body(compression="xz"), 'compression: expected "zstd"'),
    (body(fileHash="sha256:xyz"), "fileHash: expected sha256:"),
    (body(fileHash="sha256:" + "z" * 52), "fileHash: not a valid"),
    (body(url="nar/abc.nar.xz"), "url: expected nar/"),
    (body(url=f"nar/{H2[7:]}.nar.zst"), "url: does not name fileHash"),
    (body(fileSize=-1), "fileSize: expected a non-negative integer"),
    (body(fileSize=True), "fileSize: expected a non-negative integer"),
    (body(narSize=1.5), "narSize: expected a non-negative integer"),
    (body(narSize=2**63), "narSize: expected a non-negative integer"),
    (body(narHash="md5:x"), "narHash: expected sha256:"),
    (body(references="x"), "references: expected an array"),
    (body(references=[REF, 3]), r"references\[1\]: not a store path"),
    (body(references=["/nix/store/" + REF]), r"references\[0\]: expected a store path base name"),
    (body(deriver=3), "deriver: expected a string"),
    (body(deriver=REF), "deriver: expected a .drv base name"),
    (body(attr=""), "attr: not a flake attribute"),
    (body(attr="a b"), "attr: not a flake attribute"),
    (body(attr="x" * 256), "attr: not a flake attribute"),
    (body(attr=..., dir="sub"), "dir: only allowed together with attr"),
    (body(dir="../x"), "dir: not a relative"),
    (body(dir="a/./b"), "dir: not a relative"),
    (body(dir="/abs"), "dir: not a relative"),
    (body(dir=""), "dir: not a relative"),
    (body(noContinent="yes"), "noContinent: expected true or false"),
]


@pytest.mark.parametrize(("obj", "message"), BAD_BODIES)
def test_attest_body_rejects(obj: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        AttestBody.from_json(obj)


@pytest.mark.parametrize(
    "attr", ["default", "packages.x86_64-linux.hello", "hello^*", "hello^out,dev", "a+b_c-d"]
)
def test_attr_accepts(attr: str) -> None:
    assert AttestBody.from_json(body(attr=attr)).attr == attr


def test_constructor_checks_hash_algorithm() -> None:
    from vega.core.hashes import HashAlgorithm, NixHash

    good = AttestBody.from_json(body())
    with pytest.raises(FormatError, match="must be sha256"):
        AttestBody(
            store_path=good.store_path,
            file_hash=good.file_hash,
            file_size=1,
            nar_hash=NixHash(HashAlgorithm.SHA1, b"\0" * 20),
            nar_size=1,
            references=(),
        )


def test_upload_url_request() -> None:
    ok = {"narUrl": f"nar/{H1[7:]}.nar.zst", "fileHash": H1}
    req = UploadUrlRequest.from_json(ok)
    assert req.to_json() == ok
    assert req.nar_url == nar_url_for(req.file_hash)
    with pytest.raises(FormatError, match="narUrl: does not name fileHash"):
        UploadUrlRequest.from_json({"narUrl": f"nar/{H2[7:]}.nar.zst", "fileHash": H1})
    with pytest.raises(FormatError, match="narUrl: expected"):
        UploadUrlRequest.from_json({"narUrl": "../etc/passwd", "fileHash": H1})
    assert parse_nar_url(ok["narUrl"]) == parse_sha256(H1, "x")


def test_simple_messages_round_trip() -> None:
    assert UploadUrlResponse.from_json({"url": "http://x/put"}).to_json() == {"url": "http://x/put"}
    with pytest.raises(FormatError, match="url: expected an absolute"):
        UploadUrlResponse.from_json({"url": "/relative"})
    assert ErrorBody.from_json({"error": "no"}).to_json() == {"error": "no"}
    assert KeyResponse.from_json({"publicKey": "k:x"}).to_json() == {"publicKey": "k:x"}
    push = {"published": True, "tenant": "owner:5", "substituter": "/tenant/owner:5"}
    assert PushResult.from_json(push).to_json() == push
    with pytest.raises(FormatError, match="substituter"):
        PushResult.from_json({**push, "substituter": "http://evil"})
    failed = {"hash": "a" * 32, "reason": "build-failed"}
    assert DispatchFailedBody.from_json(failed).to_json() == failed
    with pytest.raises(FormatError, match="hash: expected"):
        DispatchFailedBody.from_json({**failed, "hash": "x"})
    with pytest.raises(FormatError, match="reason: expected"):
        DispatchFailedBody.from_json({**failed, "reason": "bored"})
    diagnosed = {**failed, "diagnosis": "network", "excerpt": "error: \u00e9" + "x" * 2038}
    assert DispatchFailedBody.from_json(diagnosed).to_json() == diagnosed
    assert DispatchFailedBody.from_json(diagnosed).diagnosis == "network"
    with pytest.raises(FormatError, match="diagnosis: expected one of impure-host-path, "):
        DispatchFailedBody.from_json({**failed, "diagnosis": "diverged"})
    with pytest.raises(FormatError, match="excerpt: longer than 2048 bytes"):
        DispatchFailedBody.from_json({**failed, "excerpt": "\u00e9" * 1025})
    with pytest.raises(FormatError, match="excerpt"):
        DispatchFailedBody.from_json({**failed, "excerpt": 3})


def test_the_sanitisers() -> None:
    assert is_safe_attr("packages.x86_64-linux.hello^out,dev")
    assert not is_safe_attr("")
    assert not is_safe_attr("a" * 256)
    assert not is_safe_attr("a..b")
    assert is_safe_dir("sub/host")
    assert is_safe_dir("a.b")
    for bad in ("", "/abs", "a/../b", "./a", "a/", "a" * 256, "a b"):
        assert not is_safe_dir(bad), bad


def test_status_response() -> None:
    ok = {"verdict": "reproducible", "agree": 2, "inSharedCache": True, "tenants": ["o/r", "owner:5"]}
    assert StatusResponse.from_json(ok).to_json() == {**ok, "diverged": False}
    assert StatusResponse.from_json({**ok, "diverged": True}).diverged is True
    assert StatusResponse.from_json({**ok, "diverged": "yes"}).diverged is False
    with pytest.raises(FormatError, match="verdict"):
        StatusResponse.from_json({**ok, "verdict": "great"})
    with pytest.raises(FormatError, match=r"tenants\[0\]"):
        StatusResponse.from_json({**ok, "tenants": [5]})
    with pytest.raises(FormatError, match="verdict"):
        StatusResponse(verdict="bad", agree=0, in_shared_cache=False, tenants=())  # type: ignore[arg-type]


def test_attest_result() -> None:
    decision = PromotionDecision(
        tenant_tier=(),
        shared=SharedDecision(promoted=False, fingerprint=None, reason="insufficient"),
        diverged=False,
        continents=(),
    )
    result = AttestResult(decision=decision, published_tenant=True, published_shared=False)
    assert AttestResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    with pytest.raises(FormatError, match="publishedShared"):
        AttestResult.from_json({"decision": decision.to_json(), "publishedTenant": True})


def test_repro_queue_and_info() -> None:
    cand = {
        "hash": "a" * 32,
        "storePath": SP,
        "narHash": H2,
        "flakeRef": "github:o/r",
        "attr": "default",
        "rev": "0" * 40,
        "dir": "",
        "since": 5,
        "attempts": 0,
    }
    q = ReproQueueResponse.from_json({"candidates": [cand]})
    assert q.candidates[0].dir is None
    assert q.to_json() == {"candidates": [cand]}
    assert ReproCandidate.from_json({**cand, "dir": "sub"}).to_json()["dir"] == "sub"
    with pytest.raises(FormatError, match=r"candidates\[0\]\.attr"):
        ReproQueueResponse.from_json({"candidates": [{**cand, "attr": 1}]})
    info = {
        "version": "1",
        "sharedKey": "vega-cache-1:x",
        "log": {"origin": "o", "publicKey": "k"},
        "github": {"url": "https://github.com", "apiUrl": "https://api.github.com", "clientId": "c"},
        "capabilities": ["repro-queue"],
    }
    assert InfoResponse.from_json(info).to_json() == info
    with pytest.raises(FormatError, match=r"capabilities\[0\]"):
        InfoResponse.from_json({**info, "capabilities": [1]})
    with pytest.raises(FormatError, match=r"log\.origin"):
        InfoResponse.from_json({**info, "log": {}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=25,
)
MESSAGES = [
    AttestBody,
    AttestResult,
    DispatchFailedBody,
    ErrorBody,
    InfoResponse,
    KeyResponse,
    PushResult,
    ReproQueueResponse,
    StatusResponse,
    UploadUrlRequest,
    UploadUrlResponse,
]


@given(json_values, st.sampled_from(MESSAGES))
def test_arbitrary_json_raises_only_format_error(obj: object, message: Any) -> None:
    with contextlib.suppress(FormatError):
        message.from_json(obj)


@given(st.dictionaries(st.sampled_from(list(body())), json_values, max_size=11))
def test_mutated_attest_bodies_raise_only_format_error(mutations: dict[str, object]) -> None:
    with contextlib.suppress(FormatError):
        AttestBody.from_json(body(**mutations))
