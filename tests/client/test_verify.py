"""The verify flow against the real log in process (cli.md §10; issues 3 and 5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.client.conftest import BASE, SHARED, TENANT, UPSTREAM, Build, CacheServer
from vega.client.logstate import LogState
from vega.client.verify import (
    Transparency,
    VerifyOptions,
    VerifyReport,
    parse_target,
    verify_many,
    verify_target,
)
from vega.core.compression import Compression
from vega.core.narinfo import format_narinfo
from vega.core.note import VerifierKey
from vega.core.signing import generate_secret_key
from vega.errors import ConfigError


def checks(report: VerifyReport) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in report.checks}


def tr(report: VerifyReport) -> Transparency:
    assert report.transparency is not None
    return report.transparency


def remembered_size(state: LogState, report: VerifyReport) -> int:
    got = state.load(tr(report).log_id)
    assert got is not None
    return got.size


def promoted(server: CacheServer, name: str = "hello", filler: int = 20, **kw: Any) -> Build:
    build = server.add(name, **kw)
    server.filler(filler)
    server.promote(build)
    server.filler(3, start=filler)
    return build


# -- the happy path ---------------------------------------------------------------------------------


def test_full_verify_passes_every_check_in_three_requests(server: CacheServer) -> None:
    build = promoted(server)
    report = verify_target(server.context(), build.path.absolute)
    assert report.exit_ok
    assert report.verified
    assert [c.name for c in report.checks] == [
        "store-path",
        "signature",
        "checkpoint",
        "promotion",
        "revocation",
        "nar",
    ]
    assert all(c.ok for c in report.checks)
    assert server.recorder.paths == [
        f"/{build.hash}.narinfo",
        f"/log/lookup/{build.hash}",
        f"/{build.info.url}",
    ]
    assert report.requests == 3
    t = report.transparency
    assert t is not None
    assert (t.found, t.index, t.sth_verified, t.leaf_hash_ok, t.inclusion_ok, t.binding_ok) == (
        True,
        20,
        True,
        True,
        True,
        True,
    )
    assert not t.legacy
    assert t.size == 24


def test_json_has_the_spec_fields(server: CacheServer) -> None:
    """cli.md §10.5: the JSON result's fields and nesting."""
    build = promoted(server)
    obj: dict[str, Any] = json.loads(json.dumps(verify_target(server.context(), build.hash).to_json()))
    for key in ("hash", "storePath", "narHash", "signature", "transparency", "nar", "verified", "exitOk"):
        assert key in obj
    assert set(obj["signature"]) == {"ok", "keyName", "scope", "keySource"}
    assert obj["signature"]["keySource"] == "nix.conf"
    for key in ("found", "index", "sthVerified", "leafHashOk", "inclusionOk", "bindingOk", "scanned"):
        assert key in obj["transparency"]
    assert set(obj["nar"]) == {"ok", "checked", "detail"}
    no_nar = verify_target(server.context(), build.hash, VerifyOptions(check_nar=False)).to_json()
    assert "nar" not in no_nar
    assert no_nar["verified"] is True


def test_growth_costs_one_consistency_request_and_is_remembered(server: CacheServer) -> None:
    build = promoted(server)
    ctx = server.context()
    verify_target(ctx, build.hash)
    server.filler(50, start=1000)
    server.recorder.reset()
    report = verify_target(ctx, build.hash)
    assert report.exit_ok
    assert report.requests == 4
    assert server.recorder.paths[2] == "/log/proof/consistency"
    assert checks(report)["checkpoint"] == (
        True,
        tr(report).log_id + " size 74, consistent with remembered size 24",
    )
    assert remembered_size(ctx.state, report) == 74
    server.recorder.reset()
    assert verify_target(ctx, build.hash).requests == 3


@pytest.mark.parametrize("compression", list(Compression)[:4])
def test_every_compression_rehashes(server: CacheServer, compression: Compression) -> None:
    build = promoted(server, compression=compression, content=b"x" * 5000)
    report = verify_target(server.context(), build.hash)
    assert report.nar is not None
    assert report.nar.ok
    assert report.nar.checked
    assert report.exit_ok


def test_parse_target_forms() -> None:
    h = "0" * 32
    for text in (f"/nix/store/{h}-x", f"{h}-x", h, f"{h}.narinfo", f"https://c/{h}.narinfo"):
        assert parse_target(text) == h
    with pytest.raises(ConfigError) as info:
        parse_target("/nix/store/short-x")
    assert info.value.message == "'/nix/store/short-x' is not a store path or hash"
    assert info.value.next_steps == ("vega verify /nix/store/<hash>-name", "vega verify <hash>")


# -- scopes -----------------------------------------------------------------------------------------


def test_tenant_build_found_by_discovery_is_signature_only_and_said_plainly(server: CacheServer) -> None:
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    report = verify_target(server.context(trusted=(SHARED.public, TENANT.public)), build.hash)
    assert report.base_url == "https://cache.test/tenant/alice/hello"
    assert report.scope == "scoped"
    assert report.tenant_ok
    assert report.exit_ok
    assert not report.verified
    assert "not in the shared cache" in report.notices[0]
    assert report.transparency is None
    assert checks(report)["promotion"] == (
        False,
        "signature-only: scoped builds are not in the global transparency log",
    )
    assert report.to_json()["transparency"]["note"].startswith("signature-only")  # type: ignore[index]
    no_nar = verify_target(
        server.context(trusted=(TENANT.public,)), build.hash, VerifyOptions(check_nar=False)
    )
    assert not no_nar.tenant_ok
    assert no_nar.signature_only_ok
    assert not no_nar.exit_ok


def test_tenant_key_published_by_the_cache_is_used_only_when_asked(server: CacheServer) -> None:
    """Issue 12: never unasked (cli.md §10.3 used it unasked); asked, it is "fetched, not pinned"."""
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    unasked = verify_target(server.context(trusted=()), build.hash)
    assert unasked.error_code == "NO_TRUSTED_KEY"
    assert not unasked.exit_ok
    assert not any(p.endswith("/key") for p in server.recorder.paths)
    report = verify_target(server.context(trusted=()), build.hash, VerifyOptions(trust_fetched_key=True))
    assert report.key_name == TENANT.name
    assert report.key_source == "fetched, not pinned"
    assert any("fetched, not pinned" in n for n in report.warnings)
    assert report.exit_ok


def test_shared_key_on_a_tenant_only_build_says_it_is_not_promoted(server: CacheServer) -> None:
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    report = verify_target(server.context(trusted=()), build.hash, VerifyOptions(public_key=SHARED.public))
    assert report.error is None
    assert report.base_url == "https://cache.test/tenant/alice/hello"
    assert (report.signature_ok, report.scope) == (False, "shared")
    assert not report.exit_ok
    note = "not promoted to the shared tier: only a tenant signature exists"
    assert report.to_json()["transparency"]["note"] == note  # type: ignore[index]
    assert checks(report)["promotion"] == (False, note)
    assert report.nar is not None
    assert report.nar.ok
    assert not any("/log/" in p for p in server.recorder.paths)


def test_shared_key_at_a_named_tenant_base_points_at_the_shared_tier(server: CacheServer) -> None:
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    ctx = server.context(trusted=(), base=f"{BASE}/tenant/alice/hello")
    report = verify_target(ctx, build.hash, VerifyOptions(public_key=SHARED.public))
    assert report.error is None
    assert not report.exit_ok
    assert checks(report)["promotion"][1] == (
        "only a tenant signature exists at this tenant base; the shared tier is at https://cache.test "
        f"(vega verify {build.hash} --url https://cache.test)"
    )


def test_shared_key_on_an_unsigned_build_names_what_signed_it(server: CacheServer) -> None:
    build = server.add("unsigned", key=None)
    report = verify_target(server.context(), build.hash, VerifyOptions(public_key=SHARED.public))
    assert report.error is None
    assert not report.exit_ok
    assert checks(report)["promotion"][1] == (
        "not promoted to the shared tier: no vega-cache-1 signature (signed by: nothing)"
    )


def test_the_log_is_read_at_the_root_for_a_tenant_base(server: CacheServer) -> None:
    build = server.add("shared-signed-tenant", tenant=True)
    server.filler(3)
    server.promote(build)
    report = verify_target(server.context(base=f"{BASE}/tenant/alice/hello"), build.hash)
    assert report.error is None, report.error
    assert report.verified
    assert report.exit_ok
    log_paths = [p for p in server.recorder.paths if "/log/" in p]
    assert log_paths
    assert all(p.startswith("/log/") for p in log_paths)


def test_upstream_signature_only_needs_the_flag(server: CacheServer) -> None:
    build = server.add("mirrored", key=UPSTREAM)
    ctx = server.context(trusted=(UPSTREAM.public, SHARED.public))
    report = verify_target(ctx, build.hash)
    assert report.scope == "upstream"
    assert report.signature_only_ok
    assert not report.exit_ok
    assert "not a Vega trust statement" in report.to_json()["transparency"]["note"]  # type: ignore[index]
    allowed = verify_target(ctx, build.hash, VerifyOptions(allow_signature_only=True))
    assert allowed.exit_ok
    assert not any(p.startswith("/log/") for p in server.recorder.paths)


def test_no_trusted_key_is_an_error_with_hints(server: CacheServer) -> None:
    build = promoted(server)
    report = verify_target(server.context(trusted=(UPSTREAM.public,)), build.hash)
    assert report.error == "no trusted public key found for this build (it is signed by: vega-cache-1)."
    assert len(report.next_steps) == 3
    assert (
        "https://cache.test publishes its shared key at https://cache.test/api/info" in report.next_steps[1]
    )
    assert "--trust-fetched-key" in report.next_steps[2]
    assert not report.exit_ok


def test_public_key_flag_overrides(server: CacheServer) -> None:
    build = promoted(server)
    other = generate_secret_key("vega-cache-1", b"\x09" * 32)
    report = verify_target(server.context(), build.hash, VerifyOptions(public_key=other.public))
    assert not report.signature_ok
    assert not report.exit_ok
    assert "does not verify" in checks(report)["signature"][1]


def test_missing_build(server: CacheServer) -> None:
    report = verify_target(server.context(), "1" * 32)
    assert report.error == f"no build found for {'1' * 32} (HTTP 404)"
    assert not report.exit_ok


def test_not_promoted_fails_with_a_note(server: CacheServer) -> None:
    build = server.add("lonely")
    server.filler(5)
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["promotion"] == (False, "no promotion leaf for this build in the log (5 entries)")
    assert report.signature_ok
    assert report.nar is not None
    assert report.nar.ok


def test_another_builds_signed_narinfo_is_refused(server: CacheServer) -> None:
    """issue 14 (mutation audit): asked for A, served B's correctly signed and promoted narinfo."""
    a = promoted(server, "wanted")
    b = promoted(server, "other", filler=2)
    assert verify_target(server.context(), b.hash).exit_ok  # B itself verifies completely
    server.recorder.serve[f"/{a.hash}.narinfo"] = (200, format_narinfo(b.info).encode())
    report = verify_target(server.context(), a.hash)
    assert not report.exit_ok
    assert not report.verified
    assert checks(report)["store-path"] == (
        False,
        f"asked for {a.hash}, the narinfo is for {b.path.absolute}",
    )
    # Everything else about B's narinfo is genuine: only the path comparison catches the swap.
    assert all(ok for name, (ok, _) in checks(report).items() if name != "store-path")
    allowed = verify_target(server.context(), a.hash, VerifyOptions(allow_signature_only=True))
    assert not allowed.exit_ok


# -- tampering: each piece fails with its own message -----------------------------------------------


def test_tampered_narinfo_field(server: CacheServer) -> None:
    build = promoted(server)
    server.recorder.tamper[f"/{build.hash}.narinfo"] = lambda b: b.replace(b"NarSize: ", b"NarSize: 1")
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    got = checks(report)
    assert got["signature"] == (
        False,
        f"{build.path.absolute}: signature by vega-cache-1 does not verify (shared)",
    )
    assert got["promotion"][0] is False
    assert got["nar"][0] is False


def test_tampered_nar_byte(server: CacheServer) -> None:
    build = promoted(server, compression=Compression.NONE)
    server.recorder.tamper["/nar/"] = lambda b: b[:-1] + bytes([b[-1] ^ 1])
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    ok, detail = checks(report)["nar"]
    assert not ok
    assert detail.startswith(f"signed {build.info.nar_hash}, content sha256:")
    assert all(v[0] for k, v in checks(report).items() if k != "nar")


def test_tampered_compressed_nar(server: CacheServer) -> None:
    build = promoted(server)
    server.recorder.tamper["/nar/"] = lambda b: b[:-3]
    report = verify_target(server.context(), build.hash)
    assert report.nar is not None
    assert not report.nar.ok
    assert not report.nar.checked
    assert report.nar.detail.startswith("NAR stream error:")
    assert not report.exit_ok


def test_tampered_log_entry(server: CacheServer) -> None:
    build = promoted(server)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["entries"][0]["data"] = obj["entries"][0]["data"].replace('"at":', '"at":1')
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/lookup/"] = change
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["promotion"] == (
        False,
        "entry #20 binds this narinfo but its inclusion proof does not verify",
    )


def test_tampered_checkpoint_signature(server: CacheServer) -> None:
    build = promoted(server)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        sig = obj["sth"]["signature"]
        obj["sth"]["signature"] = sig[:-6] + ("A" if sig[-6] != "A" else "B") + sig[-5:]
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/lookup/"] = change
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["checkpoint"] == (
        False,
        "checkpoint not trusted: neither the checkpoint note nor the STH is signed by vega-cache-1",
    )
    assert report.transparency is not None
    assert not report.transparency.sth_verified
    assert checks(report)["promotion"] == (False, "not checked: the checkpoint is not trusted")


def test_checkpoint_note_not_matching_the_sth(server: CacheServer) -> None:
    build = promoted(server)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        lines = obj["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        obj["checkpoint"] = "\n".join(lines)
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/lookup/"] = change
    report = verify_target(server.context(), build.hash)
    assert checks(report)["checkpoint"] == (
        False,
        "checkpoint not trusted: the checkpoint (size 25) does not match the signed STH (size 24)",
    )


def test_log_key_signs_the_checkpoint_note(server: CacheServer) -> None:
    """With the log's note key known, the checkpoint is remembered under its origin."""
    from tests.client.conftest import NOTE_KEY, ORIGIN

    build = promoted(server)
    options = VerifyOptions(log_keys=(NOTE_KEY.verifier,))
    report = verify_target(server.context(), build.hash, options)
    assert report.exit_ok
    assert report.transparency is not None
    assert report.transparency.log_id == ORIGIN
    wrong = VerifierKey(ORIGIN, generate_secret_key("x", b"\x05" * 32).public.key)
    bad = verify_target(server.context(), build.hash, VerifyOptions(log_keys=(wrong,)))
    assert bad.exit_ok  # an unknown key ID is ignored; the STH binding still holds


def test_rolled_back_log(server: CacheServer) -> None:
    """issue 3: a checkpoint older than the remembered one is refused, loudly."""
    build = promoted(server)
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    server.new_log()
    server.filler(20)
    server.promote(build)
    server.recorder.reset()
    report = verify_target(ctx, build.hash)
    assert not report.exit_ok
    ok, detail = checks(report)["checkpoint"]
    assert not ok
    assert detail.startswith("log fork or rollback detected: ")
    assert "served a checkpoint of size 21, older than the remembered size 24" in detail
    assert report.transparency is not None
    assert report.transparency.fork
    assert "/log/proof/consistency" not in server.recorder.paths
    evidence = report.to_json()["transparency"]
    assert isinstance(evidence, dict)
    assert (evidence["size"], evidence["previousSize"]) == (21, 24)
    assert len(evidence["rootHash"]) == len(evidence["previousRootHash"]) == 64
    assert checks(report)["promotion"] == (
        False,
        "not checked: the log is not consistent with the remembered checkpoint",
    )


def test_a_stale_answer_racing_a_newer_remembered_checkpoint_is_asked_again(server: CacheServer) -> None:
    """A lookup answered before a concurrent verification advanced the memory is not a rollback."""
    build = server.add("hello")
    server.filler(20)
    server.promote(build)
    stale = server.test_client.get(f"/log/lookup/{build.hash}").content
    server.filler(3, start=20)
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    answers = [stale]

    def first_stale(body: bytes) -> bytes:
        return answers.pop() if answers else body

    server.recorder.tamper["/log/lookup/"] = first_stale
    server.recorder.reset()
    report = verify_target(ctx, build.hash)
    assert report.exit_ok, report.checks
    assert server.recorder.paths.count(f"/log/lookup/{build.hash}") == 2
    assert report.requests == 4


def test_a_legacy_stale_sth_is_asked_again(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    stale = server.test_client.get("/log/sth").content
    server.filler(3, start=900)
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    answers = [stale]
    server.recorder.tamper["/log/sth"] = lambda body: answers.pop() if answers else body
    server.recorder.reset()
    report = verify_target(ctx, build.hash)
    assert report.exit_ok, report.checks
    assert server.recorder.paths.count("/log/sth") == 2


def test_forked_log_same_size(server: CacheServer) -> None:
    build = promoted(server)
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    server.new_log()
    server.filler(20, start=500)
    server.promote(build)
    server.filler(3, start=20)
    report = verify_target(ctx, build.hash)
    ok, detail = checks(report)["checkpoint"]
    assert not ok
    assert detail.startswith("log fork or rollback detected: ")
    assert "at size 24 has root" in detail
    assert not report.exit_ok


def test_forked_log_inconsistent_proof_is_not_retried(server: CacheServer) -> None:
    build = promoted(server)
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    server.new_log()
    server.filler(20, start=500)
    server.promote(build)
    server.filler(10, start=20)
    server.recorder.reset()
    report = verify_target(ctx, build.hash)
    ok, detail = checks(report)["checkpoint"]
    assert not ok
    assert detail.startswith("log fork or rollback detected: ")
    assert "size 31 is not consistent with the remembered size 24" in detail
    assert server.recorder.paths.count("/log/proof/consistency") == 1
    assert remembered_size(ctx.state, report) == 24


def test_revocation_fails_verification(server: CacheServer) -> None:
    """issue 3: revocation leaves for a build make verification fail."""
    build = promoted(server)
    index = server.revoke(build)
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["revocation"] == (False, f"revoked in the log (entry #{index})")
    assert report.transparency is not None
    assert report.transparency.revoked
    assert checks(report)["promotion"][0] is True


def test_truncated_lookup_cannot_rule_out_revocation(server: CacheServer) -> None:
    build = promoted(server)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["truncated"] = True
        del obj["events"]  # no signed list of promotions and revocations
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/lookup/"] = change
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["revocation"] == (
        False,
        "the log returned only the oldest 1 entries for this build; a revocation cannot be ruled out",
    )


def test_truncated_lookup_with_a_signed_event_list_rules_out_revocation(server: CacheServer) -> None:
    build = promoted(server)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["truncated"] = True
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/lookup/"] = change
    report = verify_target(server.context(), build.hash)
    assert report.exit_ok
    assert checks(report)["revocation"][0] is True


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        (
            lambda ev, entries: ev.update(signature="vega-cache-1:" + "A" * 86 + "=="),
            "unknown: the log's list of promotions and revocations is not signed by vega-cache-1",
        ),
        (
            lambda ev, entries: ev.update(indexes=[*ev["indexes"], 99]),
            "unknown: the log's list of promotions and revocations is not signed by vega-cache-1",
        ),
        (
            lambda ev, entries: entries.clear(),
            "unknown: the log's signed list of promotions and revocations does not match the entries it sent",
        ),
        (
            lambda ev, entries: entries[0].update(proofHex=["00" * 32] * len(entries[0]["proofHex"])),
            "entries #20 have invalid inclusion proofs",
        ),
    ],
    ids=["forged-signature", "index-added", "entries-withheld", "bad-proof"],
)
def test_an_event_list_that_does_not_hold_up_is_unknown_never_clean(
    server: CacheServer, tamper: Any, detail: str
) -> None:
    build = promoted(server)
    server.revoke(server.add("other", b"other"))  # unrelated: not in this build's list

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["truncated"] = True
        tamper(obj["events"], obj["entries"])
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/lookup/"] = change
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["revocation"] == (False, detail)


# -- the original's endpoints -----------------------------------------------------------------------


def test_legacy_server_still_verifies_and_says_so(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    report = verify_target(server.context(), build.hash)
    assert report.exit_ok
    assert report.transparency is not None
    assert report.transparency.legacy
    assert report.transparency.scanned == 4
    assert "server lacks /log/lookup" in report.notices[0]
    assert server.recorder.paths[1:4] == [f"/log/lookup/{build.hash}", "/log/sth", "/log/entry/23"]
    assert report.requests == 3 + 4 + 3  # narinfo, lookup, sth; 4 entries; inclusion, revocations, NAR
    server.filler(2, start=99)
    again = verify_target(server.context(), build.hash)
    assert again.exit_ok
    assert "/log/proof/consistency" in server.recorder.paths


def test_legacy_probe_happens_once_per_context(server: CacheServer) -> None:
    builds = [server.add(f"p{n}", str(n).encode()) for n in range(3)]
    for b in builds:
        server.promote(b)
    server.legacy = True
    reports = verify_many(server.context(), [b.hash for b in builds], workers=1)
    assert all(r.exit_ok for r in reports)
    assert sum(p.startswith("/log/lookup/") for p in server.recorder.paths) == 1


def test_legacy_scan_limit(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    report = verify_target(server.context(), build.hash, VerifyOptions(max_scan=2))
    assert not report.exit_ok
    assert report.transparency is not None
    assert report.transparency.note is not None
    assert report.transparency.note.startswith(
        "no matching promotion leaf in the most recent 2 of 24 entries"
    )


def test_legacy_revocation_newer_than_promotion(server: CacheServer) -> None:
    build = promoted(server)
    server.revoke(build)
    server.legacy = True
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    assert checks(report)["revocation"][0] is False


def test_legacy_rollback_detected(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    server.new_log()
    server.promote(build)
    report = verify_target(ctx, build.hash)
    assert checks(report)["checkpoint"][1].startswith("log fork or rollback detected: ")
    assert not report.exit_ok
    # issue 14 (mutation audit): as on the new path, nothing after a fork is reported as checked.
    why = "not checked: the log is not consistent with the remembered checkpoint"
    assert checks(report)["promotion"] == (False, why)
    assert checks(report)["revocation"] == (False, why)


def test_legacy_rollback_without_the_build_reads_not_checked(server: CacheServer) -> None:
    """A forked legacy log that lacks the build must not report "no revocation in the log"."""
    build = promoted(server)
    server.legacy = True
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    server.new_log()
    server.filler(2)
    report = verify_target(ctx, build.hash)
    assert not report.exit_ok
    assert checks(report)["checkpoint"][1].startswith("log fork or rollback detected: ")
    why = "not checked: the log is not consistent with the remembered checkpoint"
    assert checks(report)["promotion"] == (False, why)
    assert checks(report)["revocation"] == (False, why)


def test_legacy_and_new_share_the_remembered_checkpoint(server: CacheServer) -> None:
    """The STH key names the log in both modes, so switching modes cannot escape a fork check."""
    build = promoted(server)
    ctx = server.context()
    assert verify_target(ctx, build.hash).exit_ok
    server.new_log()
    server.promote(build)
    server.legacy = True
    assert not verify_target(ctx, build.hash).exit_ok


# -- closures and concurrency -----------------------------------------------------------------------


def test_recursive_closure_verifies_every_reference(server: CacheServer) -> None:
    leaf1 = server.add("dep-a", b"a")
    leaf2 = server.add("dep-b", b"b")
    top = server.add("top", b"top", references=(leaf1, leaf2))
    for b in (leaf1, leaf2, top):
        server.promote(b)
    done: list[str] = []
    seen: list[int] = []
    reports = verify_many(
        server.context(),
        [top.path.absolute],
        recursive=True,
        on_done=lambda r: done.append(r.hash),
        on_found=seen.append,
    )
    assert [r.hash for r in reports] == [
        top.hash,
        *sorted([leaf1.hash, leaf2.hash], key=[leaf1.hash, leaf2.hash].index),
    ] or len(reports) == 3
    assert {r.hash for r in reports} == {top.hash, leaf1.hash, leaf2.hash}
    assert all(r.exit_ok for r in reports)
    assert all(r.requests <= 5 for r in reports)
    assert sorted(done) == sorted(r.hash for r in reports)
    assert seen[-1] == 3
    flat = verify_many(server.context(), [top.hash, top.path.absolute])
    assert len(flat) == 1


def test_concurrent_verifications_share_one_state(server: CacheServer) -> None:
    builds = [server.add(f"p{n}", str(n).encode()) for n in range(12)]
    for b in builds:
        server.promote(b)
    reports = verify_many(server.context(), [b.hash for b in builds], workers=6)
    assert all(r.exit_ok for r in reports), [r.checks for r in reports if not r.exit_ok]
    state = LogState(server.tmp / "state")
    t = reports[0].transparency
    assert t is not None
    assert remembered_size(state, reports[0]) == 12


def test_unreachable_log_is_an_error_not_a_pass(server: CacheServer) -> None:
    build = promoted(server)
    server.recorder.tamper["/log/lookup/"] = lambda b: b"{not json"
    report = verify_target(server.context(), build.hash)
    assert report.error is not None
    assert "not JSON" in report.error
    assert not report.exit_ok


def test_legacy_evidence_fields(server: CacheServer) -> None:
    """The original-endpoint path reports the same evidence fields as the new one (mutation run)."""
    build = promoted(server)
    server.legacy = True
    report = verify_target(server.context(), build.hash)
    assert report.exit_ok
    t = tr(report)
    assert (t.found, t.index, t.legacy, t.scanned, t.size) == (True, 20, True, 4, 24)
    assert [t.sth_verified, t.leaf_hash_ok, t.inclusion_ok, t.binding_ok, t.consistency_ok] == [True] * 5
    assert [t.fork, t.revoked] == [False, False]
    assert t.log_id.startswith("sth:vega-cache-1+")
    assert len(t.root_hex) == 64
    assert t.previous_size is None
    assert t.note == "server lacks /log/lookup: used the original /log/sth and a linear scan"
    assert checks(report)["promotion"] == (True, "entry #20 binds this narinfo and is included at size 24")
    # the legacy path also asks the signed revocation list (changes-0.19.md, ADR 0014)
    assert checks(report)["revocation"] == (
        True,
        "no revocation in the log; not in the signed revocation list (0 entries)",
    )
    evidence = report.to_json()["transparency"]
    assert isinstance(evidence, dict)
    assert (evidence["legacy"], evidence["index"], evidence["scanned"]) == (True, 20, 4)


def test_legacy_bad_inclusion_proof_and_leaf_hash(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["leafHashHex"] = "00" * 32
        obj["proofHex"] = obj["proofHex"][::-1]
        return json.dumps(obj).encode()

    server.recorder.tamper["/log/proof/inclusion/"] = change
    report = verify_target(server.context(), build.hash)
    assert not report.exit_ok
    t = tr(report)
    assert t.found
    assert not t.leaf_hash_ok
    assert not t.inclusion_ok
    assert checks(report)["promotion"] == (
        False,
        "entry #20 binds this narinfo but its inclusion proof does not verify",
    )
