"""vega.client.push: the one-pass packer, the substitutability check, and the flow's failure paths.

The packer is checked against the NAR edge (``narfs``) and, with the marker ``nix``, against the
real ``nix-store --dump``; the check runs against a MockTransport binary cache serving narinfo
signed with a real key; the flow runs with recorded nix output and the MockTransport control
plane of test_upload.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
import zstandard

from tests.client.test_nix import FakeRunner
from tests.client.test_upload import Clock, Store
from tests.conftest import NixRunner
from vega.client import narfs
from vega.client.http import Http, HttpLimits
from vega.client.nix import Nix, PathInfo, ProcessResult
from vega.client.push import (
    PushDeps,
    PushEvent,
    PushOptions,
    SubstituteCheck,
    check_substitutable,
    fetch_key,
    pack_nar,
    push,
)
from vega.client.upload import BytesBody, FileBody, UploadClient, static_bearer
from vega.core.hashes import HashAlgorithm, hash_bytes
from vega.core.narinfo import NarInfo, SignedFields, format_narinfo, sign_narinfo
from vega.core.signing import format_public_key, generate_secret_key
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import FormatError, VerificationError


def make_tree(root: Path, payload: bytes = b"hello\n") -> Path:
    root.mkdir()
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "tool", 0o755)  # noqa: S103 - an executable in the tree
    (root / "data").write_bytes(payload)
    os.symlink("bin/tool", root / "link")
    return root


def nar_of(path: Path) -> bytes:
    parts: list[bytes] = []
    narfs.dump(path, lambda v: parts.append(bytes(v)))
    return b"".join(parts)


def body_bytes(body: BytesBody | FileBody) -> bytes:
    return b"".join(bytes(c) for c in body.chunks())


def test_pack_nar_hashes_compresses_and_hashes_again_in_memory(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    spool = tmp_path / "spool"
    spool.mkdir()
    seen: list[int] = []
    packed = pack_nar(str(tree), spool, progress=seen.append)
    nar = nar_of(tree)
    assert (packed.nar_hash, packed.nar_size) == narfs.hash_path(tree)
    assert isinstance(packed.body, BytesBody)
    data = body_bytes(packed.body)
    assert packed.file_size == len(data)
    assert packed.file_hash == hash_bytes(HashAlgorithm.SHA256, data)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == nar
    assert seen == [len(nar)]
    assert list(spool.iterdir()) == []


def test_pack_nar_spills_to_a_temp_file_past_the_memory_bound(tmp_path: Path) -> None:
    """docs/adr/0008: compressed bytes stay in memory up to the bound, then go to a spool file."""
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(400_000))  # 12.8 MB
    tree = make_tree(tmp_path / "tree", noise)
    spool = tmp_path / "spool"
    spool.mkdir()
    seen: list[int] = []
    packed = pack_nar(str(tree), spool, spool_memory_bytes=64 * 1024, progress=seen.append)
    assert isinstance(packed.body, FileBody)
    (spilled,) = spool.iterdir()
    data = spilled.read_bytes()
    assert len(data) == packed.file_size == packed.body.size
    assert packed.file_hash == hash_bytes(HashAlgorithm.SHA256, data)
    assert body_bytes(packed.body) == data
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == nar_of(tree)
    assert seen[-1] == packed.nar_size
    assert seen == sorted(seen)
    assert len(seen) >= 2
    packed.discard()
    assert list(spool.iterdir()) == []


def test_pack_nar_failure_leaves_no_spool_file(tmp_path: Path) -> None:
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(40_000))
    tree = make_tree(tmp_path / "tree", noise)
    os.mkfifo(tree / "zz-fifo")  # sorted last: the spool file exists when the walk fails
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(FormatError):
        pack_nar(str(tree), spool, spool_memory_bytes=1024)
    assert list(spool.iterdir()) == []


# -- the substitutability check -------------------------------------------------------------------

SECRET = generate_secret_key("vega-owner-7-1", b"\x07" * 32)
KEY = format_public_key(SECRET.public)
APP = parse_store_path("/nix/store/l915bvq3wig4nxwlvga4lw06aigam617-vega-push-app")
LIB = parse_store_path("/nix/store/invfnlz3ykci2qhj50acn1ldc6mb6pmy-vega-push-lib")
BASE = "http://cp.test/tenant/owner:7"


def info_for(path: StorePath, nar: bytes = b"nar") -> PathInfo:
    return PathInfo(
        path=path,
        nar_hash=hash_bytes(HashAlgorithm.SHA256, nar + str(path).encode()),
        nar_size=3,
        references=(LIB,) if path == APP else (),
    )


def nar_url(path: object) -> str:
    return f"nar/{hash_bytes(HashAlgorithm.SHA256, str(path).encode()).nix32}.nar.zst"


def narinfo_route(path: object) -> str:
    return f"GET /tenant/owner:7/{getattr(path, 'hash_part', '')}.narinfo"


def narinfo_for(info: PathInfo, secret: object = SECRET) -> bytes:
    file_hash = hash_bytes(HashAlgorithm.SHA256, str(info.path).encode())
    text = NarInfo(
        signed=SignedFields(
            store_path=info.path, nar_hash=info.nar_hash, nar_size=info.nar_size, references=info.references
        ),
        url=f"nar/{file_hash.nix32}.nar.zst",
        compression="zstd",
        file_hash=file_hash,
        file_size=10,
    )
    return format_narinfo(sign_narinfo(text, secret)).encode()  # type: ignore[arg-type]


def cache(routes: dict[str, httpx2.Response]) -> Http:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return routes.get(f"{request.method} {request.url.path}", httpx2.Response(404))

    return Http(httpx2.Client(transport=httpx2.MockTransport(handler)), HttpLimits(tries=1))


def serving(*infos: PathInfo, secret: object = SECRET) -> dict[str, httpx2.Response]:
    routes = {"GET /tenant/owner:7/key": httpx2.Response(200, json={"publicKey": KEY})}
    for info in infos:
        file_hash = hash_bytes(HashAlgorithm.SHA256, str(info.path).encode())
        routes[f"GET /tenant/owner:7/{info.path.hash_part}.narinfo"] = httpx2.Response(
            200, content=narinfo_for(info, secret)
        )
        routes[f"HEAD /tenant/owner:7/nar/{file_hash.nix32}.nar.zst"] = httpx2.Response(
            200, headers={"content-length": str(5 << 30)}
        )
    return routes


def test_check_passes_when_every_path_is_served_signed_and_present() -> None:
    infos = [info_for(APP), info_for(LIB)]
    http = cache(serving(*infos))
    assert fetch_key(http, BASE) == KEY
    assert check_substitutable(http, BASE, KEY, infos) == SubstituteCheck(True, "substitutable", 2)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop(narinfo_route(LIB)), f"{LIB}: narinfo answered 404"),
        (
            lambda r: r.update({narinfo_route(LIB): r[narinfo_route(APP)]}),
            f"{LIB}: narinfo describes {APP}",
        ),
        (lambda r: r.pop(f"HEAD /tenant/owner:7/{nar_url(LIB)}"), f"{LIB}: {nar_url(LIB)} answered 404"),
    ],
)
def test_check_names_the_first_problem(
    mutate: Callable[[dict[str, httpx2.Response]], object], reason: str
) -> None:
    infos = [info_for(APP), info_for(LIB)]
    routes = serving(*infos)
    mutate(routes)
    check = check_substitutable(cache(routes), BASE, KEY, infos)
    assert not check.ok
    assert reason in check.reason


def test_check_rejects_a_foreign_signature_a_changed_hash_and_a_missing_key() -> None:
    infos = [info_for(APP)]
    other = generate_secret_key("vega-owner-7-1", b"\x08" * 32)
    check = check_substitutable(cache(serving(*infos, secret=other)), BASE, KEY, infos)
    assert not check.ok
    assert "does not verify" in check.reason
    check = check_substitutable(cache(serving(*infos)), BASE, KEY, [info_for(APP, b"rebuilt")])
    assert check.reason == f"{APP}: narinfo NAR hash differs from the local store's"
    assert check_substitutable(cache({}), BASE, None, infos).reason == "the namespace key is not available"
    assert "malformed" in check_substitutable(cache({}), BASE, "nope", infos).reason
    routes = serving(*infos, info_for(LIB))
    routes[f"GET /tenant/owner:7/{APP.hash_part}.narinfo"] = httpx2.Response(200, content=b"garbage")
    routes[f"GET /tenant/owner:7/{LIB.hash_part}.narinfo"] = httpx2.Response(500)
    check = check_substitutable(cache(routes), BASE, KEY, [*infos, info_for(LIB)])
    assert check.reason.endswith("(and 1 more)")


def test_fetch_key_refuses_what_is_not_a_key() -> None:
    assert fetch_key(cache({}), BASE) is None
    bad = {"GET /tenant/owner:7/key": httpx2.Response(200, json={"publicKey": "x\x1b[31m:abc"})}
    assert fetch_key(cache(bad), BASE) is None
    broken = {"GET /tenant/owner:7/key": httpx2.Response(200, text="{")}
    assert fetch_key(cache(broken), BASE) is None


# -- the flow ---------------------------------------------------------------------------------------


def flow_deps(tmp_path: Path, store: Store, run: FakeRunner) -> PushDeps:
    client = httpx2.Client(transport=httpx2.MockTransport(store.handler))
    return PushDeps(
        nix=Nix(run),
        uploader=UploadClient(
            client,
            "http://cp.test",
            static_bearer("t1"),
            now_ms=lambda: store.now_ms,
            sleep=lambda s: None,
            monotonic=Clock(),
        ),
        probe=Http(client, HttpLimits(tries=1)),
        checker=Http(client, HttpLimits(tries=1)),
        namespace="owner:7",
        work_dir=tmp_path,
    )


@pytest.mark.nix
def test_push_refuses_a_nar_that_does_not_match_the_store_record(nix: NixRunner, tmp_path: Path) -> None:
    """A corrupted store path (NAR hash differs from nix's record) is never uploaded."""
    tree = make_tree(tmp_path / "tree", f"push {os.getpid()} {tmp_path}".encode())
    path = parse_store_path(nix.add(tree))
    record = (
        b'[{"path":"' + path.absolute.encode() + b'","narHash":"sha256:' + b"0" * 52 + b'","narSize":1,'
        b'"references":[]}]'
    )
    run = FakeRunner(ProcessResult(0, record))  # a store path is pushed as it is: no build
    store = Store()
    events: list[PushEvent] = []
    with pytest.raises(VerificationError, match="does not match the store's record"):
        push(
            flow_deps(tmp_path, store, run),
            PushOptions(installables=(path.absolute,), skip_upstream=False),
            events.append,
        )
    assert not any(r.method == "PUT" for r in store.seen)
    assert store.pushed == []


@pytest.mark.nix
def test_push_uploads_largest_first_and_reports(nix: NixRunner, tmp_path: Path) -> None:
    small = parse_store_path(nix.add(make_tree(tmp_path / "small", f"s {tmp_path}".encode())))
    big = parse_store_path(nix.add(make_tree(tmp_path / "big", f"b {tmp_path}".encode() * 5000)))
    record = nix.run("nix", "path-info", "--json", "--", big.absolute, small.absolute)
    run = FakeRunner(
        ProcessResult(0, f'[{{"path":"{small.absolute}"}},{{"path":"{big.absolute}"}}]'.encode()),
        ProcessResult(0, record),
    )
    store = Store()
    events: list[PushEvent] = []
    report = push(
        flow_deps(tmp_path, store, run),
        PushOptions(installables=("x",), skip_upstream=False, jobs=1),
        events.append,
    )
    assert [p.path for p in report.pushed] == [big, small]
    assert report.uploaded_bytes == sum(len(v) for v in store.objects.values())
    assert report.closure == 2
    assert report.substituter == "http://cp.test/tenant/owner:7"
    assert report.public_key is None  # the MockTransport store serves no key
    assert not report.check.ok
    assert [type(e).__name__ for e in events][:2] == ["BuildStarted", "Planned"]
    assert [getattr(e, "done", None) for e in events if type(e).__name__ == "PathPushed"] == [1, 2]
    assert [b["storePath"] for b in store.pushed] == [big.absolute, small.absolute]  # type: ignore[index]
