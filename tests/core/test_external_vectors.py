"""The core against the public fixtures of other implementations (issue 14).

NixOS/nix, tvix (nix-compat), go-nix, transparency-dev/merkle and C2SP / golang.org/x/mod:
their NARs, derivations, narinfos (978 real cache.nixos.org ones), store paths, keys and
signatures, RFC 9162 proof probes, signed notes, checkpoints and tiles. What each fixture
expects comes from the repository it was taken from (see the folder's SOURCES.json); where our
behaviour differs on purpose, the check says so.

The fixtures are read at run time from ``../shared/vectors/external`` beside the checkout (or
``$VEGA_EXTERNAL_VECTORS``), never copied into this repository. Every file there must be claimed
by :data:`CLAIMS` (a check below reads it) or :data:`NOT_APPLICABLE` (with the reason), and
every top-level key of a JSON fixture must be read, so a new fixture cannot be ignored silently.
Without the folder the tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import lzma
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vega.core import merkle, nixbase32, note, tiles
from vega.core.checkpoint import cosignature_timestamp, parse_checkpoint, verify_witness_policy
from vega.core.derivation import (
    Derivation,
    derivation_bytes,
    derivation_path,
    hash_derivation_modulo,
    output_paths,
    parse_derivation,
)
from vega.core.hashes import HashAlgorithm, HashEncoding, hash_bytes, parse_nix_hash
from vega.core.nar import NarWriter, read_nar
from vega.core.narinfo import (
    fingerprint,
    format_narinfo,
    parse_narinfo,
    sign_narinfo,
    verify_narinfo_signature,
)
from vega.core.narlisting import list_nar
from vega.core.signing import (
    generate_secret_key,
    is_valid_signature,
    parse_public_key,
    parse_secret_key,
    sign,
)
from vega.core.storepath import (
    StorePath,
    is_store_path,
    make_fixed_output_path,
    make_text_path,
    parse_store_path,
)
from vega.errors import FormatError, VerificationError

ENV = "VEGA_EXTERNAL_VECTORS"
_REPO = Path(__file__).resolve().parents[2]


def _locate() -> Path | None:
    for candidate in (os.environ.get(ENV), _REPO.parent / "shared" / "vectors" / "external"):
        if candidate and (Path(candidate) / "SOURCES.json").is_file():
            return Path(candidate)
    return None


ROOT = _locate()


def _files() -> list[str]:
    if ROOT is None:
        return []
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file())


# Which check reads which files (glob patterns relative to the folder).
CLAIMS: dict[str, str] = {
    "README.md": "test_fixture_folder_is_complete (documents the folder)",
    "SOURCES.json": "test_fixture_folder_is_complete (names every source repository)",
    "nixos-nix/cases.json": "test_nix_*",
    "nixos-nix/nars/*/*.nar": "test_nix_nars",
    "nixos-nix/drv/*.drv": "test_derivation_files",
    "nixos-nix/drv/*/*.drv": "test_derivation_files",
    "tvix/derivation-cases.json": "test_tvix_derivation_cases",
    "tvix/drv/*.drv": "test_derivation_files, test_tvix_derivation_cases",
    "tvix/drv/*.drv.json": "test_tvix_derivation_json",
    "tvix/nar/*.nar": "test_tvix_nars",
    "tvix/narinfo-cases.json": "test_tvix_narinfo_cases",
    "tvix/narinfo-corpus.txt.xz": "test_tvix_narinfo_corpus",
    "tvix/nixbase32.json": "test_tvix_nixbase32",
    "tvix/signatures.json": "test_tvix_signatures",
    "tvix/storepath.json": "test_tvix_storepaths",
    "go-nix/drv/*.drv": "test_derivation_files",
    "go-nix/narinfo-samples.json": "test_go_nix_narinfo_samples",
    "go-nix/net-tools.nar": "test_go_nix_nar_listing",
    "go-nix/net-tools.listing.json": "test_go_nix_nar_listing",
    "go-nix/signatures.json": "test_go_nix_signatures",
    "transparency-dev-merkle/inclusion.json": "test_merkle_inclusion_probes",
    "transparency-dev-merkle/consistency.json": "test_merkle_consistency_probes",
    "transparency-dev-merkle/reference-tree.json": "test_merkle_reference_tree",
    "c2sp-sumdb/notes.json": "test_c2sp_*, test_sumdb_*",
}

# Files no check reads, and why. (Parts of files that do not apply are named in the checks.)
NOT_APPLICABLE: dict[str, str] = {}


@pytest.fixture(scope="session")
def root() -> Path:
    if ROOT is None:
        where = f"${ENV} or {_REPO.parent / 'shared' / 'vectors' / 'external'}"
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"the external fixtures are missing ({where}); CI must have shared/ beside the checkout"
            )
        pytest.skip(f"the external fixtures are not here ({where})")
    return ROOT


def load(root: Path, name: str, *, keys: set[str] | None = None) -> Any:
    """Read a JSON fixture; with ``keys``, require that those are exactly its top-level keys."""
    data = json.loads((root / name).read_text(encoding="utf-8"))
    if keys is not None:
        assert set(data) == keys, f"{name}: keys changed; unread: {set(data) - keys}"
    return data


# -- the folder itself ------------------------------------------------------------------------------


def test_fixture_folder_is_complete(root: Path) -> None:
    """Every file is claimed by a check or listed as not applicable; no claim is stale."""
    files = _files()
    assert files
    patterns = {**CLAIMS, **NOT_APPLICABLE}
    unclaimed = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert not unclaimed, f"fixture files no check reads: {unclaimed}"
    stale = [p for p in patterns if not any(fnmatch.fnmatch(f, p) for f in files)]
    assert not stale, f"claims matching no fixture file: {stale}"
    sources = load(root, "SOURCES.json")
    assert set(sources) == {d for d in os.listdir(root) if (root / d).is_dir()}
    assert "Do not copy them" in (root / "README.md").read_text()


def test_fixtures_are_read_from_outside_the_repository(root: Path) -> None:
    assert not root.resolve().is_relative_to(_REPO)


# -- NixOS/nix --------------------------------------------------------------------------------------

NIX_CASE_KEYS = {
    "source", "nar_invalid", "nar_valid", "nar_truncated", "nar_nonzero_padding", "name_hash_part",
    "bad_names", "good_names", "non_canonical_paths", "neither_paths", "neither_paths_note", "rfc8032",
    "hash_known_answers", "sri_of_sha256_asdf", "hash_modulo",
}  # fmt: skip


def nar_events(data: bytes) -> list[Any]:
    return list(read_nar(io.BytesIO(data).read))


def rewrite(events: list[Any]) -> bytes:
    out = bytearray()
    writer = NarWriter(out.extend)
    for event in events:
        writer.write(event)
    return bytes(out)


def test_nix_nars(root: Path) -> None:
    """src/libutil-tests/archive.cc: valid NARs read (and write back byte for byte); invalid ones fail."""
    cases = load(root, "nixos-nix/cases.json", keys=NIX_CASE_KEYS)
    nars = root / "nixos-nix" / "nars"
    seen = set()
    for rel in cases["nar_valid"]:
        data = (nars / rel).read_bytes()
        assert rewrite(nar_events(data)) == data, rel
        seen.add(rel)
    # Nix's message for each invalid NAR, and ours: both name what is wrong.
    ours = {
        "invalid-tag-instead-of-contents": "expected 'contents', got b'AAAAAAAA'",
        "nul-character": "NAR entry name not allowed: b'f\\x00o'",
        "dot": "NAR entry name not allowed: b'.'",
        "dotdot": "NAR entry name not allowed: b'..'",
        "slash": "NAR entry name not allowed: b'x/y'",
        "empty": "NAR entry name not allowed: b''",
        "executable-after-contents": "expected ')', got b'executable'",
        "name-after-node": "expected 'name', got b'node'",
    }
    assert set(ours) == set(cases["nar_invalid"])
    for name, nix_message in cases["nar_invalid"].items():
        assert nix_message.startswith("bad archive: ")
        with pytest.raises(FormatError) as e:
            nar_events((nars / "unit" / f"{name}.nar").read_bytes())
        assert ours[name] in e.value.message, (name, e.value.message)
        seen.add(f"unit/{name}.nar")
    for name in cases["nar_truncated"]:
        with pytest.raises(FormatError, match=r"truncated|exceeds the limit"):
            nar_events((nars / "unit" / f"{name}.nar").read_bytes())
        seen.add(f"unit/{name}.nar")
    for name in cases["nar_nonzero_padding"]:
        with pytest.raises(FormatError, match="non-zero padding"):
            nar_events((nars / "unit" / f"{name}.nar").read_bytes())
        seen.add(f"unit/{name}.nar")
    assert seen == {str(p.relative_to(nars)) for p in nars.rglob("*.nar")}


def test_nix_store_path_names(root: Path) -> None:
    """src/libstore-tests/path.cc: the name rule, canonical paths, and what is no store path at all."""
    cases = load(root, "nixos-nix/cases.json", keys=NIX_CASE_KEYS)
    h = cases["name_hash_part"]
    for name in cases["good_names"]:
        assert parse_store_path(f"/nix/store/{h}-{name}").name == name
    for name in cases["bad_names"]:
        with pytest.raises(FormatError):
            parse_store_path(f"/nix/store/{h}-{name}")
    for text in cases["non_canonical_paths"]:
        with pytest.raises(FormatError):
            parse_store_path(text)
    for what, text in cases["neither_paths"].items():
        assert not is_store_path(text), what
        with pytest.raises(FormatError):
            parse_store_path(text)
    # A deliberate difference: a bare base name parses (narinfo References are base names).
    assert "base names" in cases["neither_paths_note"]
    assert parse_store_path(f"{h}-foo") == parse_store_path(f"/nix/store/{h}-foo")


def test_nix_keys_and_hashes(root: Path) -> None:
    """local-keys.cc (RFC 8032 test 3) and hash.cc known answers, with the SRI form."""
    cases = load(root, "nixos-nix/cases.json", keys=NIX_CASE_KEYS)
    assert "local-keys.cc" in cases["source"]
    v = cases["rfc8032"]
    secret = generate_secret_key("rfc8032", bytes.fromhex(v["seed"]))
    assert secret.public.key == bytes.fromhex(v["public"])
    sig = sign(secret, bytes.fromhex(v["message"]))
    assert base64.b64decode(sig.partition(":")[2]) == bytes.fromhex(v["signature"])
    assert is_valid_signature(secret.public, bytes.fromhex(v["message"]), sig)
    for kat in cases["hash_known_answers"]:
        h = hash_bytes(HashAlgorithm(kat["algorithm"]), kat["input"].encode())
        assert h.prefixed(HashEncoding.BASE16) == kat["base16"]
        assert parse_nix_hash(kat["base16"]) == h
        assert parse_nix_hash(h.sri) == h
    asdf = hash_bytes(HashAlgorithm.SHA256, b"asdf")
    assert asdf.sri == cases["sri_of_sha256_asdf"]


# -- derivations: NixOS/nix, tvix, go-nix .drv files -------------------------------------------------

# What each .drv file is expected to do, by the repository's own tests:
#   "canonical"  parses, writes back byte for byte, and (named <hash>-<name>.drv) has that path;
#   "outputs"    also: every output path computed from it is the one it states;
#   "fail:<re>"  is refused (the repository's test expects a parse error);
#   other words explain a narrower check, spelled out in test_derivation_files.
DRV_EXPECT: dict[str, str] = {
    "go-nix/drv/0zhkga32apid60mm7nh92z2970im5837-bootstrap-tools.drv": "canonical",  # inputs not shipped
    "go-nix/drv/385bniikgs469345jfsbw24kjfhxrsi0-foo-file.drv": "outputs",
    "go-nix/drv/cl5fr6hlr6hdqza2vgb9qqy5s26wls8i-jq-1.6.drv": "canonical",  # inputs not shipped
    "go-nix/drv/m5j1yp47lw1psd9n6bzina1167abbprr-bash44-023.drv": "outputs",
    "go-nix/drv/z8dajq053b2bxc3ncqp8p8y3nfwafh3p-foo-file.drv": "canonical",  # bar.drv not shipped
    "nixos-nix/drv/bad-ca-fixed-path.drv": "wrong-fixed-path",
    "nixos-nix/drv/bad-old-version-dyn-deps.drv": "fail:expected '\\['",
    "nixos-nix/drv/bad-version.drv": "fail:expected 'Derive\\('",
    "nixos-nix/drv/ca/advanced-attributes-defaults.drv": "floating",
    "nixos-nix/drv/ca/advanced-attributes-structured-attrs-defaults.drv": "floating",
    "nixos-nix/drv/ca/advanced-attributes-structured-attrs.drv": "floating",
    "nixos-nix/drv/ca/advanced-attributes.drv": "floating",
    "nixos-nix/drv/dyn-dep-derivation.drv": "dynamic",
    "nixos-nix/drv/firefox.drv": "not-sorted",
    "nixos-nix/drv/fuzz/hello-not-structured.drv": "canonical",  # fuzz seed; inputs not shipped
    "nixos-nix/drv/fuzz/hello.drv": "canonical",
    "nixos-nix/drv/fuzz/unterminated-string.drv": "fail:expected a string",
    "nixos-nix/drv/hash-modulo/intermediate-first-modulo.drv": "modulo-text",
    "nixos-nix/drv/hash-modulo/intermediate-first.drv": "modulo",
    "nixos-nix/drv/hash-modulo/intermediate-second-modulo.drv": "modulo-text",
    "nixos-nix/drv/hash-modulo/intermediate-second.drv": "modulo",
    "nixos-nix/drv/hash-modulo/parent-joined-modulo.drv": "modulo-text",
    "nixos-nix/drv/hash-modulo/parent-joined.drv": "modulo",
    "nixos-nix/drv/hash-modulo/parent-split-modulo.drv": "modulo-text",
    "nixos-nix/drv/hash-modulo/parent-split.drv": "modulo",
    "nixos-nix/drv/hash-modulo/source-first.drv": "canonical",
    "nixos-nix/drv/hash-modulo/source-second.drv": "canonical",
    "nixos-nix/drv/hello.drv": "not-sorted",
    "nixos-nix/drv/ia/advanced-attributes-defaults.drv": "outputs",
    "nixos-nix/drv/ia/advanced-attributes-structured-attrs-defaults.drv": "outputs",
    "nixos-nix/drv/ia/advanced-attributes-structured-attrs.drv": "canonical",  # inputs not shipped
    "nixos-nix/drv/ia/advanced-attributes.drv": "canonical",  # inputs not shipped
    "nixos-nix/drv/simple-derivation.drv": "canonical",
    "tvix/drv/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv": "outputs",
    "tvix/drv/292w8yzv5nn7nhdpxcs8b7vby2p27s09-nested-json.drv": "outputs",
    "tvix/drv/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-foo.drv": "outputs",
    "tvix/drv/52a9id8hx688hvlnz4d1n25ml1jdykz0-unicode.drv": "outputs",
    "tvix/drv/9lj1lkjm2ag622mh4h9rpy6j607an8g2-structured-attrs.drv": "outputs",
    "tvix/drv/ch49594n9avinrf8ip0aslidkc4lxkqv-foo.drv": "outputs",
    "tvix/drv/duplicate.drv": "fail:duplicate environment variable 'name'",
    "tvix/drv/h32dahq0bx5rp1krcdx3a53asj21jvhk-has-multi-out.drv": "outputs",
    "tvix/drv/m1vfixn8iprlf0v9abmlrz7mjw1xj8kp-cp1252.drv": "outputs",
    "tvix/drv/ss2p4wmxijn652haqyd7dckxwl4c7hxx-bar.drv": "outputs",
    "tvix/drv/x6p0hg79i3wg0kkv7699935f7rrj9jf3-latin1.drv": "outputs",
}


def drv_files() -> list[str]:
    return [f for f in _files() if f.endswith(".drv")]


def resolver(root: Path) -> Callable[[str], Derivation]:
    """Input derivations by store path: the fixture files named like them, and the modulo.cc names."""
    cases = load(root, "nixos-nix/cases.json")["hash_modulo"]
    by_path = {
        f"/nix/store/{p}": f"nixos-nix/drv/hash-modulo/{name}.drv"
        for group in ("source_drv_paths", "intermediate_drv_paths")
        for name, p in cases[group].items()
    }
    for f in drv_files():
        base = f.rsplit("/", 1)[-1]
        if is_store_path(f"/nix/store/{base}"):
            by_path.setdefault(f"/nix/store/{base}", f)

    def resolve(path: str) -> Derivation:
        if path not in by_path:
            raise FormatError(f"input {path} is not among the fixtures")
        return parse_derivation((root / by_path[path]).read_bytes())

    return resolve


def drv_name(drv: Derivation, file: str) -> str:
    """The name Nix used: ``name`` in the environment or ``__json``, the stated ``out`` path's
    name, or the file name."""
    name = drv.env_value("name")
    if name is None and drv.env_value("__json") is not None:
        name = json.loads(drv.env_value("__json") or "{}").get("name")
    out = dict(drv.outputs).get("out")
    if name is None and out is not None and out.path is not None:
        name = out.path.name
    if name is None:
        base = file.rsplit("/", 1)[-1].removesuffix(".drv")
        name = base[33:] if is_store_path(f"/nix/store/{base}") else base
    return str(name)


@pytest.mark.parametrize("file", drv_files())
def test_derivation_files(root: Path, file: str) -> None:
    expect = DRV_EXPECT.get(file)
    assert expect is not None, f"{file}: new fixture, say what it should do in DRV_EXPECT"
    data = (root / file).read_bytes()
    if expect.startswith("fail:"):
        with pytest.raises(FormatError, match=expect.removeprefix("fail:")):
            parse_derivation(data)
        return
    if expect == "dynamic":
        # NOTE: DrvWithVersion("xp-dyn-drv", ...) is Nix's experimental dynamic-derivations
        # format; Vega reads only Derive(...), so it is refused rather than misread.
        assert data.startswith(b'DrvWithVersion("xp-dyn-drv",')
        with pytest.raises(FormatError, match="expected 'Derive\\('"):
            parse_derivation(data)
        return
    if expect == "modulo-text":
        # Not a derivation: the text hashDerivationModulo hashes (inputs replaced by their
        # modulo hashes, outputs blanked). Checked from the derivation's side below.
        assert data.startswith(b'Derive([("')
        assert b'"/nix/store/' not in data.split(b"],[", 1)[1][:5]
        original = file.replace("-modulo.drv", ".drv")
        drv = parse_derivation((root / original).read_bytes())
        digest = hash_derivation_modulo(drv, resolver(root), mask_outputs=True)
        assert digest == hashlib.sha256(data).digest(), file
        return
    drv = parse_derivation(data)
    resolve = resolver(root)
    name = drv_name(drv, file)
    if expect == "not-sorted":
        # Test data whose hashes upstream replaced by "aaa…": the lists are no longer in Nix's
        # order, so Nix (and we) would write them sorted. Same content, written canonically once.
        again = derivation_bytes(drv)
        assert again != data
        assert sorted(again) == sorted(data)
        assert derivation_bytes(parse_derivation(again)) == again
        return
    assert derivation_bytes(drv) == data, file
    base = file.rsplit("/", 1)[-1].removesuffix(".drv")
    if is_store_path(f"/nix/store/{base}.drv"):
        assert derivation_path(drv, base[33:]) == parse_store_path(f"/nix/store/{base}.drv")
    stated = {k: v.path for k, v in drv.outputs}
    if expect == "outputs":
        assert output_paths(drv, resolve, name=name) == stated, file
    elif expect == "modulo":
        # modulo.cc checks only the modulo hash (see "modulo-text"): the intermediates' stated
        # output paths are placeholders (both state the same ones), the parents' are deferred.
        if all(p is None for p in stated.values()):
            with pytest.raises(FormatError, match="floating or deferred"):
                output_paths(drv, resolve, name=name)
        else:
            assert set(output_paths(drv, resolve, name=name)) == set(stated)
    elif expect == "floating":
        # ca-derivations (experimental): the outputs have no path until built.
        assert all(p is None for p in stated.values())
        with pytest.raises(FormatError, match="floating or deferred"):
            output_paths(drv, resolve, name=name)
    elif expect == "wrong-fixed-path":
        # derivations.cc (CAFixedPathMismatch, newer Nix): the stated path of a fixed output must
        # be the one its hash gives. Nix 2.8 reads it; the computed path shows the mismatch.
        computed = output_paths(drv, resolve, name="fixed")
        assert computed["out"] != stated["out"]
    else:
        assert expect == "canonical", expect


def test_tvix_derivation_cases(root: Path) -> None:
    """nix-compat derivation tests: .drv paths, output paths, fixed modulo hashes, a must-fail."""
    cases = load(
        root,
        "tvix/derivation-cases.json",
        keys={"source", "derivation_path", "output_paths", "hash_modulo_fixed", "must_fail"},
    )
    drvs = root / "tvix" / "drv"
    resolve = resolver(root)
    for case in cases["derivation_path"]:
        drv = parse_derivation((drvs / case["file"]).read_bytes())
        assert str(derivation_path(drv, case["name"])) == case["file"]
    for case in cases["output_paths"]:
        drv = parse_derivation((drvs / case["file"]).read_bytes())
        assert output_paths(drv, resolve, name=case["name"]) == {k: v.path for k, v in drv.outputs}
    for case in cases["hash_modulo_fixed"]:
        drv = parse_derivation((drvs / case["file"]).read_bytes())
        assert hash_derivation_modulo(drv, resolve).hex() == case["hex"]
    for file in cases["must_fail"]:
        with pytest.raises(FormatError):
            parse_derivation((drvs / file).read_bytes())


@pytest.mark.parametrize("file", [f for f in _files() if f.endswith(".drv.json")])
def test_tvix_derivation_json(root: Path, file: str) -> None:
    """`nix show-derivation` JSON of each tvix .drv agrees with what we parsed, byte for byte
    (the Latin-1 and CP1252 ones hold those bytes raw in the JSON text as well)."""
    shown = json.loads((root / file).read_bytes().decode("utf-8", "surrogateescape"))
    drv_file = file.removesuffix(".json")
    if set(shown) == {f"/nix/store/{drv_file.rsplit('/', 1)[-1]}"}:
        (shown,) = shown.values()
    drv = parse_derivation((root / drv_file).read_bytes())

    assert {k: v.path.absolute for k, v in drv.outputs if v.path} == {
        k: v["path"] for k, v in shown["outputs"].items() if "path" in v
    }
    assert [p.absolute for p in drv.input_srcs] == shown["inputSrcs"]
    assert {p.absolute: list(o) for p, o in drv.input_drvs} == shown["inputDrvs"]
    assert (drv.platform, drv.builder, list(drv.args)) == (
        shown["system"],
        shown["builder"],
        shown["args"],
    )
    assert dict(drv.env) == shown["env"]


# -- NARs: tvix and go-nix ---------------------------------------------------------------------------


@pytest.mark.parametrize("file", [f for f in _files() if f.startswith("tvix/nar/")])
def test_tvix_nars(root: Path, file: str) -> None:
    data = (root / file).read_bytes()
    events = nar_events(data)
    assert rewrite(events) == data
    assert list(list_nar(iter(events)))


def test_go_nix_nar_listing(root: Path) -> None:
    """go-nix reader_test.go: the net-tools NAR's every node, and its narinfo's NarHash and NarSize."""
    data = (root / "go-nix" / "net-tools.nar").read_bytes()
    want = load(root, "go-nix/net-tools.listing.json")
    got = []
    for node in list_nar(iter(nar_events(data))):
        row: dict[str, Any] = {"type": node.kind, "path": "/" + node.path.decode()}
        if node.kind == "regular":
            row.update(executable=node.executable, size=node.size)
        if node.kind == "symlink":
            row["target"] = node.target.decode()
        got.append(row)
    normalised = [{k: v for k, v in row.items() if not (k == "executable" and v is False)} for row in want]
    assert [{k: v for k, v in r.items() if not (k == "executable" and v is False)} for r in got] == normalised
    assert rewrite(nar_events(data)) == data
    samples = load(root, "go-nix/narinfo-samples.json")
    info = parse_narinfo(samples["strNarinfoSample"])  # the cache.nixos.org narinfo of this NAR
    assert info.nar_hash == hash_bytes(HashAlgorithm.SHA256, data)
    assert info.nar_size == len(data)


# -- narinfos: tvix, go-nix -----------------------------------------------------------------------


def test_tvix_narinfo_corpus(root: Path) -> None:
    """978 real cache.nixos.org narinfos: each parses, its signature verifies, it writes back."""
    cases = load(root, "tvix/narinfo-cases.json")
    key = parse_public_key(cases["cache_nixos_org_1"])
    text = lzma.decompress((root / "tvix" / "narinfo-corpus.txt.xz").read_bytes()).decode()
    chunks = [c.strip("\n") + "\n" for c in text.split("\n\n") if c.strip()]
    assert len(chunks) == 978
    compressions = set()
    for chunk in chunks:
        info = parse_narinfo(chunk)
        assert verify_narinfo_signature(info, {key.name: key}) == key.name
        compressions.add(info.compression)
        if info.extra_lines:  # old ones carry "System:" before the signatures; we write it last
            assert all(line.startswith("System: ") for line in info.extra_lines)
            assert parse_narinfo(format_narinfo(info)) == info
        else:
            assert format_narinfo(info) == chunk
    assert compressions == {"xz", "bzip2"}


def test_tvix_narinfo_cases(root: Path) -> None:
    """nix-compat narinfo tests: reference order, sha1 CA, default compression, base-16 NarHash,
    signing, and the fingerprint of the curl narinfo."""
    cases = load(
        root,
        "tvix/narinfo-cases.json",
        keys={"source", "cache_nixos_org_1", "dummy_keypair", "dummy_verifying_key", "narinfos", "expect"},
    )
    nixos = parse_public_key(cases["cache_nixos_org_1"])
    trusted = {nixos.name: nixos}
    texts, expect = cases["narinfos"], cases["expect"]
    assert set(texts) == {*expect, "sign"}

    # A real (2008-era) cache.nixos.org narinfo whose signature covers the references in the
    # order listed. nix-compat keeps that order in its fingerprint; Nix sorts (path-info.cc,
    # a StorePathSet), and so does Vega (protocol.md §2.5): like Nix, it refuses the signature.
    info = parse_narinfo(texts["references_out_of_order"])
    assert [str(r) for r in info.references] == expect["references_out_of_order"]["references"]
    with pytest.raises(VerificationError, match="does not verify"):
        verify_narinfo_signature(info, trusted)
    listed = fingerprint(info).rsplit(";", 1)[0] + ";" + ",".join(r.absolute for r in info.references)
    assert listed != fingerprint(info)
    assert is_valid_signature(nixos, listed.encode(), info.sigs[0])

    info = parse_narinfo(texts["ca_nar_hash_sha1"])
    assert info.ca == expect["ca_nar_hash_sha1"]["ca"]
    assert verify_narinfo_signature(info, trusted)

    assert expect["compression_default"]["nix_accepts"]
    info = parse_narinfo(texts["compression_default"])
    assert info.compression == expect["compression_default"]["nix_compression"]
    assert info.extra_lines == ("System: i686-linux",)
    assert verify_narinfo_signature(info, trusted)

    assert expect["nar_hash_hex"]["nix_accepts"]
    info = parse_narinfo(texts["nar_hash_hex"])
    assert info.nar_hash.base16 == expect["nar_hash_hex"]["nar_hash_hex"]
    assert verify_narinfo_signature(info, trusted)  # signed over the Nix base-32 form
    assert "NarHash: sha256:" + info.nar_hash.nix32 in format_narinfo(info)

    info = parse_narinfo(texts["fingerprint_curl"])
    assert fingerprint(info) == expect["fingerprint_curl"]["fingerprint"]
    assert verify_narinfo_signature(info, trusted)

    secret = parse_secret_key(cases["dummy_keypair"])
    public = parse_public_key(cases["dummy_verifying_key"])
    assert secret.public == public
    unsigned = parse_narinfo(texts["sign"])
    assert unsigned.sigs == ()
    signed = sign_narinfo(unsigned, secret)
    assert verify_narinfo_signature(signed, {public.name: public}) == public.name
    with pytest.raises(VerificationError):
        verify_narinfo_signature(signed, trusted)


def test_go_nix_narinfo_samples(root: Path) -> None:
    """go-nix narinfo_test.go samples: base-16 FileHash, unknown-deriver, no file fields, several refs."""
    s = load(
        root,
        "go-nix/narinfo-samples.json",
        keys={
            "strNarinfoSample", "strNarinfoSampleWithBase16Hash", "strNarinfoSampleWithUnknownDeriver",
            "strNarinfoSampleWithoutFileFields", "strNarinfoSample2Multirefs", "strNarinfoSampleUncompressed",
            "strNarinfoSampleUncompressedNoFileHashOrSize", "strNarinfoSampleWithoutDeriverFields",
        },
    )  # fmt: skip
    key = parse_public_key(load(root, "go-nix/signatures.json")["nixos_public"])
    trusted = {key.name: key}
    base = parse_narinfo(s["strNarinfoSample"])
    assert base.sigs[1].startswith("hydra.other.net-1:")
    assert verify_narinfo_signature(base, trusted) == key.name
    assert format_narinfo(base) == s["strNarinfoSample"]

    hex_hash = parse_narinfo(s["strNarinfoSampleWithBase16Hash"])
    assert hex_hash == base  # the same FileHash, written in base-16
    assert format_narinfo(hex_hash) == s["strNarinfoSample"]

    unknown = parse_narinfo(s["strNarinfoSampleWithUnknownDeriver"])
    assert unknown.deriver is None
    no_deriver = parse_narinfo(s["strNarinfoSampleWithoutDeriverFields"])
    assert no_deriver == unknown
    assert format_narinfo(no_deriver) == s["strNarinfoSampleWithoutDeriverFields"]

    no_file = parse_narinfo(s["strNarinfoSampleWithoutFileFields"])
    assert (no_file.file_hash, no_file.file_size) == (None, None)
    assert no_file.signed == base.signed
    assert verify_narinfo_signature(no_file, trusted) == key.name

    multi = parse_narinfo(s["strNarinfoSample2Multirefs"])
    assert len(multi.references) == 4
    assert verify_narinfo_signature(multi, trusted) == key.name

    # The uncompressed samples are go-nix's own edits (NarHash of the NAR file itself): the
    # cache.nixos.org signature no longer covers them, and verification says so.
    plain = parse_narinfo(s["strNarinfoSampleUncompressed"])
    bare = parse_narinfo(s["strNarinfoSampleUncompressedNoFileHashOrSize"])
    assert plain.signed == bare.signed
    assert plain.compression == "none"
    assert plain.file_hash == plain.nar_hash
    assert plain.file_size == plain.nar_size
    assert (bare.file_hash, bare.file_size) == (None, None)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_narinfo_signature(plain, trusted)


# -- keys and signatures: tvix, go-nix ---------------------------------------------------------------


def test_tvix_signatures(root: Path) -> None:
    cases = load(
        root,
        "tvix/signatures.json",
        keys={
            "source", "fingerprint", "public_key", "verify", "signature_parse_fail", "public_parse_ok",
            "public_parse_fail", "verify_with_name", "secret_parse_fail",
        },
    )  # fmt: skip
    key = parse_public_key(cases["public_key"])
    for case in cases["verify"]:
        message = (cases["fingerprint"] if case["fp"] == "FINGERPRINT" else case["fp"]).encode()
        sig = case["sig"]
        if case["case"] == "valid_cache_nixos_org_different_name":
            # nix-compat checks the bytes only. Vega, like Nix's verifyDetached, also requires the
            # signature's key name to be the key's (protocol.md §2.1): refused under its own name,
            # valid once the name matches.
            assert not is_valid_signature(key, message, sig)
            sig = key.name + ":" + sig.partition(":")[2]
        assert is_valid_signature(key, message, sig) == case["valid"], case["case"]
    for case in cases["signature_parse_fail"]:
        assert not is_valid_signature(key, cases["fingerprint"].encode(), case["sig"]), case["case"]
    for case in cases["public_parse_ok"]:
        assert parse_public_key(case["text"]).name == case["name"]
    for case in cases["public_parse_fail"]:
        with pytest.raises(FormatError):
            parse_public_key(case["text"])
    for case in cases["verify_with_name"]:
        named = parse_public_key(case["key"])
        assert is_valid_signature(named, cases["fingerprint"].encode(), case["sig"]) == case["valid"]
    for text in cases["secret_parse_fail"]:
        with pytest.raises(FormatError):
            parse_secret_key(text)


def test_go_nix_signatures(root: Path) -> None:
    cases = load(
        root,
        "go-nix/signatures.json",
        keys={
            "source", "nixos_public", "test1_public", "test1_secret", "test1_sig_of_curl_fingerprint",
            "curl_narinfo",
        },
    )  # fmt: skip
    secret = parse_secret_key(cases["test1_secret"])
    public = parse_public_key(cases["test1_public"])
    assert secret.public == public
    info = parse_narinfo(cases["curl_narinfo"])
    message = fingerprint(info).encode()
    assert sign(secret, message) == cases["test1_sig_of_curl_fingerprint"]  # Ed25519 is deterministic
    assert cases["test1_sig_of_curl_fingerprint"] in info.sigs
    nixos = parse_public_key(cases["nixos_public"])
    assert verify_narinfo_signature(info, {public.name: public}) == "test1"
    assert verify_narinfo_signature(info, {nixos.name: nixos}) == nixos.name


# -- store paths and Nix base-32: tvix -----------------------------------------------------------------


def test_tvix_nixbase32(root: Path) -> None:
    cases = load(root, "tvix/nixbase32.json", keys={"source", "encode", "decode_fail"})
    for case in cases["encode"]:
        assert nixbase32.encode(bytes.fromhex(case["hex"])) == case["text"], case["case"]
        assert nixbase32.decode(case["text"]) == bytes.fromhex(case["hex"]), case["case"]
    for case in cases["decode_fail"]:
        with pytest.raises(FormatError):
            nixbase32.decode(case["text"])


def test_tvix_storepaths(root: Path) -> None:
    cases = load(root, "tvix/storepath.json", keys={"source", "ok", "bad", "text_paths", "ca_paths"})
    for case in cases["ok"]:
        path = parse_store_path(case["text"])
        assert path.name == case["name"]
        if "digest_hex" in case:
            assert path.digest.hex() == case["digest_hex"]
    for case in cases["bad"]:
        with pytest.raises(FormatError):
            parse_store_path(case["text"])
    for case in cases["text_paths"]:
        refs = [parse_store_path(r) for r in case["refs"]]
        got = make_text_path(case["name"], case["content"].encode(), refs)
        assert got.absolute == case["expect"], case["case"]
    for case in cases["ca_paths"]:
        ca_refs = tuple(parse_store_path(r) for r in case["refs"])
        got = make_fixed_output_path(case["name"], parse_nix_hash(case["hash"]), case["recursive"], ca_refs)
        assert got.absolute == case["expect"], case["case"]
        assert isinstance(got, StorePath)


# -- RFC 9162 Merkle trees: transparency-dev/merkle ---------------------------------------------------


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _probes(root: Path, name: str) -> Iterator[dict[str, Any]]:
    probes = load(root, name)
    kind = name.rsplit("/", 1)[-1].removesuffix(".json")
    assert probes
    assert {p["file"].split("/")[1] for p in probes} == {kind}
    yield from probes


def test_merkle_inclusion_probes(root: Path) -> None:
    """testdata/inclusion: happy paths verify; each of the 93 mutated probes is refused."""
    results = []
    for p in _probes(root, "transparency-dev-merkle/inclusion.json"):
        proof = [_b64(h) for h in p["proof"] or []]
        try:
            merkle.verify_inclusion(_b64(p["leafHash"]), p["leafIdx"], p["treeSize"], proof, _b64(p["root"]))
            ok = True
        except VerificationError:
            ok = False
        results.append(ok)
        assert ok is not p["wantErr"], (p["file"], p["desc"])
    assert results.count(True) == 6


def test_merkle_consistency_probes(root: Path) -> None:
    """testdata/consistency: happy paths verify; every mutated probe is refused."""
    short = 0
    for p in _probes(root, "transparency-dev-merkle/consistency.json"):
        proof = [_b64(h) for h in p["proof"] or []]
        root1, root2 = _b64(p["root1"]), _b64(p["root2"])
        try:
            merkle.verify_consistency(p["size1"], p["size2"], proof, root1, root2)
            ok = True
        except VerificationError:
            ok = False
        if not p["wantErr"] and {len(root1), len(root2)} != {32}:
            # NOTE: a deliberate difference: upstream does not look at the roots of equal sizes
            # ("don't care"); Vega refuses any hash that is not 32 bytes. With real roots it agrees.
            short += 1
            assert not ok
            same = hashlib.sha256(root1).digest()
            merkle.verify_consistency(p["size1"], p["size2"], proof, same, same)
            continue
        assert ok is not p["wantErr"], (p["file"], p["desc"])
    assert short == 1


def test_merkle_reference_tree(root: Path) -> None:
    """testonly/constants.go (the RFC 6962 reference tree) and TestSubtreeHashVectors."""
    ref = load(
        root,
        "transparency-dev-merkle/reference-tree.json",
        keys={"leaf_inputs_hex", "node_hashes_hex", "root_hashes_hex_by_size", "subtree_hash_vector"},
    )
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in ref["leaf_inputs_hex"]]
    for size, want in enumerate(ref["root_hashes_hex_by_size"]):
        assert merkle.root_from_leaf_hashes(leaves[:size]).hex() == want
    for level, row in enumerate(ref["node_hashes_hex"]):
        width = 1 << level
        for index, want in enumerate(row):
            assert merkle.root_from_leaf_hashes(leaves[index * width : (index + 1) * width]).hex() == want
    # Every valid subtree [start, end) of the 130-leaf tree d[i] = i, rolled into one SHA-256.
    vec = ref["subtree_hash_vector"]
    assert (vec["leaf_i"], vec["line"]) == ("bytes([i])", "[%d, %d) %x\\n")
    hashes = [merkle.leaf_hash(bytes([i])) for i in range(vec["max"])]
    rolling = hashlib.sha256()
    for end in range(vec["max"] + 1):
        for start in range(end + 1):
            size = end - start
            if size and start % (1 << (size - 1).bit_length()):
                continue  # not a subtree: start must be a multiple of the size rounded up to 2^k
            sub = merkle.root_from_leaf_hashes(hashes[start:end])
            rolling.update(f"[{start}, {end}) {sub.hex()}\n".encode())
    assert rolling.hexdigest() == vec["want_sha256"]


# -- signed notes, checkpoints, cosignatures, tiles: C2SP and golang.org/x/mod sumdb ------------------

C2SP_KEYS = {
    "source", "intro_note_no_key", "example_verifier_key", "example_note", "checkpoint_example",
    "cosigned_checkpoint_example", "cosignature_time_in_spec", "tile_index_example", "tiles_70000",
    "tiles_256", "level_range", "partial_width_range",
}  # fmt: skip


def notes(root: Path) -> dict[str, Any]:
    return load(root, "c2sp-sumdb/notes.json", keys={"c2sp", "sumdb_note", "sumdb_tree"})  # type: ignore[no-any-return]


def test_c2sp_signed_notes_and_checkpoints(root: Path) -> None:
    c = notes(root)["c2sp"]
    assert set(c) == C2SP_KEYS
    # signed-note.md: the example key verifies the example note; a note by an unknown key parses
    # but does not verify.
    key = note.parse_verifier_key(c["example_verifier_key"])
    assert note.format_verifier_key(key) == c["example_verifier_key"]
    opened = note.open_note(c["example_note"], [key])
    assert opened.text == "This is an example message.\n"
    intro = note.parse_note(c["intro_note_no_key"])
    assert intro.signatures[0].name == "quasimodo.example/salvatore"
    with pytest.raises(VerificationError):
        note.verify_note(intro, [key])
    assert note.format_note(intro).decode() == c["intro_note_no_key"]
    # tlog-checkpoint.md / tlog-cosignature.md: the checkpoint and its witness cosignature.
    plain = note.parse_note(c["checkpoint_example"])
    cp = parse_checkpoint(plain.text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    cosigned = note.parse_note(c["cosigned_checkpoint_example"])
    assert cosigned.text == plain.text
    witness_sig = cosigned.signatures[1]
    assert cosignature_timestamp(witness_sig) == c["cosignature_time_in_spec"]
    # The witness key is not published: a policy naming another witness is not satisfied.
    other = note.VerifierKey("witness.example.com/w1", bytes(32), note.ALG_COSIGNATURE_V1)
    with pytest.raises(VerificationError):
        verify_witness_policy(cosigned, [other], 1)


def test_c2sp_tiles(root: Path) -> None:
    c = notes(root)["c2sp"]
    example = c["tile_index_example"]
    tile = tiles.parse_tile_path(f"tile/0/{example['encoded']}")
    assert tile.index == example["index"]
    assert tile.path == f"tile/0/{example['encoded']}"
    t70 = c["tiles_70000"]
    got = list(tiles.tiles_for_size(t70["size"]))
    by_level: dict[int, list[tiles.Tile]] = {}
    for t in got:
        by_level.setdefault(t.level, []).append(t)
    assert sum(not t.is_partial for t in by_level[0]) == t70["level0_full"]
    assert [t.width for t in by_level[0] if t.is_partial] == [t70["level0_partial_width"]]
    assert sum(not t.is_partial for t in by_level[1]) == t70["level1_full"]
    assert [t.width for t in by_level[1] if t.is_partial] == [t70["level1_partial_width"]]
    assert [t.width for t in by_level[2]] == [t70["level2_partial_width"]]
    t256 = c["tiles_256"]
    assert [[t.level, t.index, t.width] for t in tiles.tiles_for_size(t256["size"])] == t256["tiles"]
    low, high = c["level_range"]
    tiles.Tile(low, 0)
    tiles.Tile(high, 0)
    with pytest.raises(FormatError):
        tiles.Tile(high + 1, 0)
    narrow, wide = c["partial_width_range"]
    assert tiles.parse_tile_path(f"tile/0/000.p/{narrow}").width == narrow
    assert tiles.parse_tile_path(f"tile/0/000.p/{wide}").width == wide
    for bad in (narrow - 1, wide + 1):
        with pytest.raises(FormatError):
            tiles.parse_tile_path(f"tile/0/000.p/{bad}")


def test_sumdb_note_golden_values(root: Path) -> None:
    """golang.org/x/mod sumdb/note note_test.go: keys, key IDs, signing, and bad keys."""
    n = notes(root)["sumdb_note"]
    assert set(n) == {
        "source", "peter_vkey", "peter_skey", "enoch_vkey", "bad_vkeys", "text", "peter_sig_line",
        "enoch_sig_line", "signed_want", "peter_key_id", "enoch_key_id",
    }  # fmt: skip
    peter = note.parse_signer_key(n["peter_skey"])
    peter_v = note.parse_verifier_key(n["peter_vkey"])
    enoch_v = note.parse_verifier_key(n["enoch_vkey"])
    assert peter.verifier == peter_v
    assert note.format_signer_key(peter) == n["peter_skey"]
    assert f"{peter_v.key_id:08x}" == n["peter_key_id"]
    assert f"{enoch_v.key_id:08x}" == n["enoch_key_id"]
    signed = note.sign_note(n["text"], [peter])
    assert note.format_note(signed).decode() == n["signed_want"]
    assert n["signed_want"].endswith(n["peter_sig_line"])
    both = note.parse_note(n["signed_want"] + n["enoch_sig_line"])
    assert {s.name for s in note.verify_note(both, [peter_v, enoch_v])} == {"PeterNeumann", "EnochRoot"}
    for bad in n["bad_vkeys"]:
        with pytest.raises(FormatError):
            note.parse_verifier_key(bad)


def test_sumdb_tree_checkpoint(root: Path) -> None:
    """sumdb/tlog note_test.go: the tree note (a checkpoint without extensions) and bad forms.

    Not applicable: ``record`` is the go.sum record format (FormatRecord/ParseRecord), which
    Vega's log does not use; its leaves are JSON (protocol.md §5.2).
    """
    t = notes(root)["sumdb_tree"]
    assert set(t) == {"source", "golden", "size", "record", "bad"}
    cp = parse_checkpoint(t["golden"])
    assert (cp.origin, cp.size, cp.extensions) == ("go.sum database tree", t["size"], ())
    assert t["record"] == "hello world"
    for bad in t["bad"]:
        with pytest.raises(FormatError):
            parse_checkpoint(bad)
