"""derivation: the ATerm .drv format, .drv paths and output paths, against files Nix 2.8 wrote.

The DRVS below are the closure of tests/with_nix/flakes/simple#top plus #fodTree, built by Nix 2.8 on
x86_64-linux (`nix build path:...#top --json`); tests/with_nix/test_derivation_vs_nix.py re-checks
the same properties on whatever the real nix builds here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core.derivation import (
    Derivation,
    DerivationOutput,
    derivation_bytes,
    derivation_path,
    format_derivation,
    hash_derivation_modulo,
    output_paths,
    parse_derivation,
)
from vega.core.hashes import HashAlgorithm
from vega.core.storepath import StorePath, make_text_path, parse_store_path
from vega.errors import FormatError

DRVS = {
    "/nix/store/195q35p8p4lddv4wzciimy4glqhimdx2-vega-fod-tree.drv": (
        'Derive([("out","/nix/store/nkjw1kzrb95g6713sjdwsaaayyidlbba-vega-fod-tree","r:sh'
        'a256","f552cc769d74068615af88d3c26a1e03fa72332783e45baab7602174fa53d995")],[],[]'
        ',"x86_64-linux","/bin/sh",["-c","mkdir $out && echo -n hello > $out/greeting"],['
        '("builder","/bin/sh"),("name","vega-fod-tree"),("out","/nix/store/nkjw1kzrb95g67'
        '13sjdwsaaayyidlbba-vega-fod-tree"),("outputHash","sha256-9VLMdp10BoYVr4jTwmoeA/p'
        'yMyeD5Fuqt2AhdPpT2ZU="),("outputHashAlgo","sha256"),("outputHashMode","recursive'
        '"),("system","x86_64-linux")])'
    ),
    "/nix/store/ba8cc4lm51kpwaa4sv241c806ji0hd1n-vega-fod-sha1.drv": (
        'Derive([("out","/nix/store/nablavhg0xzqrs3ga44kzcx9rds5ixq7-vega-fod-sha1","sha1'
        '","aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")],[],[],"x86_64-linux","/bin/sh",["'
        '-c","echo -n hello > $out"],[("builder","/bin/sh"),("name","vega-fod-sha1"),("ou'
        't","/nix/store/nablavhg0xzqrs3ga44kzcx9rds5ixq7-vega-fod-sha1"),("outputHash","s'
        'ha1-qvTGHdzF6KLavt4PO0gs2a6pQ00="),("system","x86_64-linux")])'
    ),
    "/nix/store/i8w2frkhmv1z1qdjgn1pzvjbgd6nqcwy-vega-fod-hello.drv": (
        'Derive([("out","/nix/store/v54vglapf03chw0pd4niqk8b5ba5lg8a-vega-fod-hello","sha'
        '256","2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")],[],[],'
        '"x86_64-linux","/bin/sh",["-c","echo -n hello > $out"],[("builder","/bin/sh"),("'
        'name","vega-fod-hello"),("out","/nix/store/v54vglapf03chw0pd4niqk8b5ba5lg8a-vega'
        '-fod-hello"),("outputHash","2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e7304'
        '3362938b9824"),("outputHashAlgo","sha256"),("outputHashMode","flat"),("system","'
        'x86_64-linux")])'
    ),
    "/nix/store/j6p8kpmzay68qvrargmx8x6cpgp8m83y-vega-base.drv": (
        'Derive([("dev","/nix/store/xvbdvz3pp7sbxvhhvbd7hnmpqs9mjrff-vega-base-dev","",""'
        '),("out","/nix/store/b4znr22paxj8na2qa15i66nx0c71qimq-vega-base","","")],[("/nix'
        '/store/195q35p8p4lddv4wzciimy4glqhimdx2-vega-fod-tree.drv",["out"]),("/nix/store'
        '/ba8cc4lm51kpwaa4sv241c806ji0hd1n-vega-fod-sha1.drv",["out"]),("/nix/store/i8w2f'
        'rkhmv1z1qdjgn1pzvjbgd6nqcwy-vega-fod-hello.drv",["out"])],[],"x86_64-linux","/bi'
        'n/sh",["-c","mkdir $out $dev\\ncat /nix/store/v54vglapf03chw0pd4niqk8b5ba5lg8a-ve'
        "ga-fod-hello > $out/hello\\ncat /nix/store/nablavhg0xzqrs3ga44kzcx9rds5ixq7-vega-"
        'fod-sha1 > $out/hello-sha1\\necho \\"$weird\\" > $out/weird\\necho /nix/store/nkjw1k'
        'zrb95g6713sjdwsaaayyidlbba-vega-fod-tree > $dev/tree\\n"],[("builder","/bin/sh"),'
        '("dev","/nix/store/xvbdvz3pp7sbxvhhvbd7hnmpqs9mjrff-vega-base-dev"),("name","veg'
        'a-base"),("out","/nix/store/b4znr22paxj8na2qa15i66nx0c71qimq-vega-base"),("outpu'
        'ts","out dev"),("system","x86_64-linux"),("weird","quote \\" backslash \\\\ newline'
        ' \\n tab \\t cr \\r end")])'
    ),
    "/nix/store/ji9jl9ydli489mz1b5ziahc35vmrgq20-vega-top.drv": (
        'Derive([("out","/nix/store/wk7sajy6p8k8v5d0l85hs4bp5cc5k8xc-vega-top","","")],[('
        '"/nix/store/j6p8kpmzay68qvrargmx8x6cpgp8m83y-vega-base.drv",["dev","out"])],["/n'
        'ix/store/mrrcbdv50wa84i0l69cv19177prjnm8g-vega-note.txt","/nix/store/w0jpmpqz4gd'
        'hnzar4i46hxqs7cz4f20g-data.txt"],"x86_64-linux","/bin/sh",["-c","mkdir $out && c'
        "at /nix/store/b4znr22paxj8na2qa15i66nx0c71qimq-vega-base/hello /nix/store/xvbdvz"
        "3pp7sbxvhhvbd7hnmpqs9mjrff-vega-base-dev/tree /nix/store/w0jpmpqz4gdhnzar4i46hxq"
        's7cz4f20g-data.txt $note > $out/all"],[("builder","/bin/sh"),("name","vega-top")'
        ',("note","/nix/store/mrrcbdv50wa84i0l69cv19177prjnm8g-vega-note.txt"),("out","/n'
        'ix/store/wk7sajy6p8k8v5d0l85hs4bp5cc5k8xc-vega-top"),("system","x86_64-linux")])'
    ),
}

TOP = "/nix/store/ji9jl9ydli489mz1b5ziahc35vmrgq20-vega-top.drv"
BASE = "/nix/store/j6p8kpmzay68qvrargmx8x6cpgp8m83y-vega-base.drv"
FOD = "/nix/store/i8w2frkhmv1z1qdjgn1pzvjbgd6nqcwy-vega-fod-hello.drv"
FOD_TREE = "/nix/store/195q35p8p4lddv4wzciimy4glqhimdx2-vega-fod-tree.drv"


def resolver(calls: list[str] | None = None) -> Callable[[str], Derivation]:
    def resolve(path: str) -> Derivation:
        if calls is not None:
            calls.append(path)
        return parse_derivation(DRVS[path].encode())

    return resolve


@pytest.mark.parametrize("path", sorted(DRVS))
def test_nix_written_drv(path: str) -> None:
    text = DRVS[path]
    drv = parse_derivation(text.encode())
    assert parse_derivation(text) == drv
    assert format_derivation(drv) == text
    sp = parse_store_path(path)
    assert derivation_path(drv, sp.name.removesuffix(".drv")) == sp
    want = {name: out.path for name, out in drv.outputs}
    assert output_paths(drv, resolver()) == want
    assert output_paths(drv, resolver(), name=sp.name.removesuffix(".drv")) == want


def test_fields_of_a_parsed_drv() -> None:
    drv = parse_derivation(DRVS[BASE])
    assert [name for name, _ in drv.outputs] == ["dev", "out"]
    assert drv.output("dev").path == parse_store_path(
        "/nix/store/xvbdvz3pp7sbxvhhvbd7hnmpqs9mjrff-vega-base-dev"
    )
    with pytest.raises(KeyError):
        drv.output("lib")
    assert drv.platform == "x86_64-linux"
    assert drv.builder == "/bin/sh"
    assert drv.args[0] == "-c"
    assert "\ncat " in drv.args[1]
    assert drv.env_value("weird") == 'quote " backslash \\ newline \n tab \t cr \r end'
    assert drv.env_value("nope") is None
    assert not drv.is_fixed_output
    assert str(drv.input_drvs[0][0]).endswith("-vega-fod-tree.drv")
    top = parse_derivation(DRVS[TOP])
    assert top.input_drvs == ((parse_store_path(BASE), ("dev", "out")),)
    assert [p.name for p in top.input_srcs] == ["vega-note.txt", "data.txt"]


def test_fixed_outputs() -> None:
    flat = parse_derivation(DRVS[FOD])
    assert flat.is_fixed_output
    out = flat.output("out")
    assert not out.recursive
    assert out.fixed_hash is not None
    assert out.fixed_hash.algorithm is HashAlgorithm.SHA256
    assert out.fixed_hash.digest == hashlib.sha256(b"hello").digest()
    tree = parse_derivation(DRVS[FOD_TREE]).output("out")
    assert tree.recursive
    assert tree.hash_algo == "r:sha256"
    assert DerivationOutput(None).fixed_hash is None


def test_fixed_output_modulo_hash() -> None:
    """hashDerivationModulo of a fixed-output derivation ignores how it is built."""
    drv = parse_derivation(DRVS[FOD])
    path = "/nix/store/v54vglapf03chw0pd4niqk8b5ba5lg8a-vega-fod-hello"
    want = hashlib.sha256(f"fixed:out:sha256:{hashlib.sha256(b'hello').hexdigest()}:{path}".encode()).digest()
    assert hash_derivation_modulo(drv, resolver()) == want
    rebuilt = Derivation(drv.outputs, drv.input_drvs, drv.input_srcs, drv.platform, "/other", ("x",), drv.env)
    assert hash_derivation_modulo(rebuilt, resolver()) == want
    tree = parse_derivation(DRVS[FOD_TREE])
    assert (
        hash_derivation_modulo(tree, resolver())
        == hashlib.sha256(
            b"fixed:out:r:sha256:f552cc769d74068615af88d3c26a1e03fa72332783e45baab7602174fa53d995:"
            b"/nix/store/nkjw1kzrb95g6713sjdwsaaayyidlbba-vega-fod-tree"
        ).digest()
    )


def test_input_addressed_modulo_replaces_inputs_by_their_hashes() -> None:
    top = parse_derivation(DRVS[TOP])
    base_hash = hash_derivation_modulo(parse_derivation(DRVS[BASE]), resolver())
    text = format_derivation(top).replace(BASE, base_hash.hex())
    assert hash_derivation_modulo(top, resolver()) == hashlib.sha256(text.encode()).digest()
    masked = text.replace("/nix/store/wk7sajy6p8k8v5d0l85hs4bp5cc5k8xc-vega-top", "")
    assert (
        hash_derivation_modulo(top, resolver(), mask_outputs=True) == hashlib.sha256(masked.encode()).digest()
    )


def test_resolver_called_once_per_input_and_cache_shared() -> None:
    calls: list[str] = []
    cache: dict[str, bytes] = {}
    top = parse_derivation(DRVS[TOP])
    first = output_paths(top, resolver(calls), cache=cache)
    assert sorted(calls) == sorted(p for p in DRVS if p != TOP)
    calls.clear()
    assert output_paths(top, resolver(calls), cache=cache) == first
    assert calls == []


def test_diamond_and_deep_chain() -> None:
    """A 3000-long chain (no recursion limit) whose links all use one shared fixed-output input."""
    fod = parse_derivation(DRVS[FOD])
    store: dict[str, Derivation] = {FOD: fod}
    prev = FOD
    for i in range(3000):
        inputs = [(parse_store_path(prev), ("out",))]
        if prev != FOD:
            inputs.append((parse_store_path(FOD), ("out",)))
        drv = Derivation(
            outputs=(("out", DerivationOutput(None)),),
            input_drvs=tuple(inputs),
            input_srcs=(),
            platform="x86_64-linux",
            builder="/bin/sh",
            args=(str(i),),
            env=(("name", f"link{i}"),),
        )
        path = derivation_path(drv, f"link{i}").absolute
        store[path] = drv
        prev = path
    calls: list[str] = []

    def resolve(path: str) -> Derivation:
        calls.append(path)
        return store[path]

    digest = hash_derivation_modulo(store[prev], resolve)
    assert len(digest) == 32
    assert len(calls) == len(set(calls)) == 3000


def test_cycle_is_refused() -> None:
    a = parse_store_path("/nix/store/" + "a" * 32 + "-a.drv")
    b = parse_store_path("/nix/store/" + "b" * 32 + "-b.drv")

    def drv(dep: StorePath) -> Derivation:
        return Derivation((("out", DerivationOutput(None)),), ((dep, ("out",)),), (), "x", "/bin/sh", (), ())

    graph = {a.absolute: drv(b), b.absolute: drv(a)}
    with pytest.raises(FormatError, match="cycle"):
        hash_derivation_modulo(graph[a.absolute], graph.__getitem__)


def test_escapes_and_unknown_escape() -> None:
    text = DRVS[FOD].replace('"echo -n hello > $out"', r'"a\"b\\c\nd\re\tf\qg"')
    drv = parse_derivation(text)
    assert drv.args[1] == 'a"b\\c\nd\re\tfqg'
    assert format_derivation(drv) == text.replace(r"\q", "q")


DRV_FOD = DRVS[FOD]
MALFORMED = [
    ("", "'Derive\\('"),
    ('DrvWithVersion("xp-dyn-drv",[])', "'Derive\\('"),
    (DRV_FOD + "\n", "the end"),
    (DRV_FOD[:-1], "'\\)'"),
    (DRV_FOD[:-2], "',' or ']'"),
    (DRV_FOD.replace('"x86_64-linux"', "x86_64-linux"), "a string"),
    (DRV_FOD.replace('"-c"', '"-c'), "expected"),
    (DRV_FOD.replace('("out","/nix', '("out",/nix'), "a string"),
    (DRV_FOD.replace('("out","/nix/store/v54v', '("out","/tmp/v54v'), "absolute store path"),
    (
        DRV_FOD.replace('v54vglapf03chw0pd4niqk8b5ba5lg8a-vega-fod-hello","sha256', 'v54v-x","sha256'),
        "not a store path",
    ),
    (DRV_FOD.replace('"sha256","2cf2', '"sha257","2cf2'), "unknown hash algorithm"),
    (DRV_FOD.replace('"sha256","2cf2', '"","2cf2'), "without an algorithm"),
    (
        DRV_FOD.replace('"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")', '"2cf2")'),
        "wrong length",
    ),
    (
        DRV_FOD.replace(
            '"/nix/store/v54vglapf03chw0pd4niqk8b5ba5lg8a-vega-fod-hello","sha256"', '"","sha256"'
        ),
        "no path",
    ),
    (
        DRV_FOD.replace(
            '"sha256","2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")', '"sha256","")'
        ),
        "floating",
    ),
    (DRV_FOD.replace('"x86_64-linux"', r'"x86\"64"'), "platform"),
    (DRV_FOD.replace('[("out",', '[("o\\\\ut",'), "output name"),
    (
        DRV_FOD.replace('("builder","/bin/sh"),', '("builder","/bin/sh"),("builder","x"),'),
        "duplicate environment",
    ),
    (
        DRV_FOD.replace(
            "[],[],",
            '[],["/nix/store/w0jpmpqz4gdhnzar4i46hxqs7cz4f20g-data.txt","/nix/store/w0jpmpqz4gdhnzar4i46hxqs7cz4f20g-data.txt"],',
        ),
        "duplicate input source",
    ),
    (DRVS[TOP].replace('["dev","out"]', '["dev","dev"]'), "duplicate output of input"),
    (DRVS[TOP].replace('["dev","out"]', '["de\\"v"]'), "input derivation output name"),
    (DRVS[TOP].replace('"","")]', '"",""),("out","","","")]'), "duplicate output"),
    (
        'Derive([],[("/nix/store/'
        + "a" * 32
        + '-a.drv",[]),("/nix/store/'
        + "a" * 32
        + '-a.drv",[])],[],"","",[],[])',
        "duplicate input derivation",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_derivation(text)


def test_limits_and_encoding() -> None:
    with pytest.raises(FormatError, match="larger than 100 bytes"):
        parse_derivation(DRV_FOD, max_bytes=100)
    with pytest.raises(FormatError, match=r"expected 'Derive\(' at offset 0"):
        parse_derivation(b"Der\xffive(")
    utf8 = DRV_FOD.replace("hello >", "h\u00e9llo \u2603 >")
    assert format_derivation(parse_derivation(utf8.encode())) == utf8
    assert derivation_bytes(parse_derivation(utf8.encode())) == utf8.encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"\xe4\xf6\xfc",  # Latin-1 "äöü", not UTF-8
        b"\x80\x8a\x9f",  # CP1252 "€Šź" bytes, not UTF-8
        b"\xc3\xa4 \xe4",  # UTF-8 and a stray Latin-1 byte together
        b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8 either
    ],
)
def test_non_utf8_strings_read_and_write_byte_for_byte(raw: bytes) -> None:
    """Nix strings are bytes: a .drv with Latin-1/CP1252 bytes parses and hashes those bytes."""
    data = DRV_FOD.encode().replace(b"hello >", b"h" + raw + b" >")
    drv = parse_derivation(data)
    assert derivation_bytes(drv) == data
    assert format_derivation(drv).encode("utf-8", "surrogateescape") == data
    want = make_text_path("x.drv", data, drv.input_srcs)
    assert derivation_path(drv, "x") == want
    # Input-addressed: the modulo hash covers the same bytes (BASE's builder script holds them).
    base = DRVS[BASE].encode().replace(b"newline", raw)
    other = DRVS[BASE].encode().replace(b"newline", raw[::-1])
    assert derivation_bytes(parse_derivation(base)) == base
    assert hash_derivation_modulo(parse_derivation(base), resolver()) != hash_derivation_modulo(
        parse_derivation(other), resolver()
    )


def test_environment_sorts_by_bytes_as_nix_does() -> None:
    """Nix's std::map orders by bytes: 0x80 (a CP1252 byte) sorts before "é" (0xC3 0xA9)."""
    data = DRV_FOD.encode().replace(b'("builder",', b'("a\xc3\xa9","1"),("a\x80","2"),("builder",')
    assert derivation_bytes(parse_derivation(data)) != data  # not in Nix's order
    fixed = data.replace(b'("a\xc3\xa9","1"),("a\x80","2")', b'("a\x80","2"),("a\xc3\xa9","1")')
    assert derivation_bytes(parse_derivation(data)) == fixed
    assert derivation_bytes(parse_derivation(fixed)) == fixed


def test_a_surrogate_that_is_not_a_byte_is_refused_when_written() -> None:
    drv = parse_derivation(DRV_FOD.replace("hello >", "h\ud800 >"))
    with pytest.raises(FormatError, match=r"character '\\ud800' at offset \d+ is not text or a byte"):
        derivation_bytes(drv)


def test_output_kinds_refused_for_paths() -> None:
    fod = parse_derivation(DRV_FOD)
    out = fod.output("out")
    two = Derivation((("dev", DerivationOutput(None)), ("out", out)), (), (), "x", "b", (), ())
    with pytest.raises(FormatError, match="single fixed output"):
        _ = two.is_fixed_output
    renamed = Derivation((("bin", out),), (), (), "x", "b", (), ())
    with pytest.raises(FormatError, match="single fixed output"):
        hash_derivation_modulo(renamed, resolver())
    floating = Derivation(
        (("out", DerivationOutput(None, "r:sha256")),), (), (), "x", "b", (), (("name", "f"),)
    )
    assert not floating.is_fixed_output
    assert len(hash_derivation_modulo(floating, resolver())) == 32
    with pytest.raises(FormatError, match="floating or deferred"):
        output_paths(floating, resolver())
    deferred = Derivation((("out", DerivationOutput(None)),), (), (), "x", "b", (), (("name", "d"),))
    with pytest.raises(FormatError, match="floating or deferred"):
        output_paths(deferred, resolver())
    nameless = Derivation(fod.outputs, (), (), "x", "b", (), ())
    with pytest.raises(FormatError, match="no 'name'"):
        output_paths(nameless, resolver())
    assert output_paths(nameless, resolver(), name="vega-fod-hello") == {"out": out.path}


# --- properties ---------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
TEXT = st.text(max_size=30)
PATHS = st.builds(
    StorePath,
    st.binary(min_size=20, max_size=20),
    st.from_regex(r"[a-z][a-z0-9.\-]{0,15}", fullmatch=True),
)


@st.composite
def derivations(draw: st.DrawFn) -> Derivation:
    out_names = sorted(draw(st.sets(NAMES, min_size=1, max_size=3)))
    outputs = tuple((n, DerivationOutput(draw(st.one_of(st.none(), PATHS)))) for n in out_names)
    input_paths = sorted(draw(st.sets(PATHS, max_size=3)), key=str)
    input_drvs = tuple((p, tuple(sorted(draw(st.sets(NAMES, min_size=1, max_size=2))))) for p in input_paths)
    input_srcs = tuple(sorted(draw(st.sets(PATHS, max_size=3)), key=str))
    env = tuple(sorted(draw(st.dictionaries(TEXT, TEXT, max_size=4)).items()))
    platform = draw(st.text(max_size=12).filter(lambda s: '"' not in s and "\\" not in s))
    return Derivation(
        outputs, input_drvs, input_srcs, platform, draw(TEXT), tuple(draw(st.lists(TEXT, max_size=3))), env
    )


@given(derivations())
def test_format_parse_round_trip(drv: Derivation) -> None:
    text = format_derivation(drv)
    assert parse_derivation(text) == drv
    assert parse_derivation(text.encode()) == drv


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    try:
        drv = parse_derivation(data)
    except FormatError:
        return
    text = format_derivation(drv)
    assert format_derivation(parse_derivation(text)) == text


@given(st.sampled_from(sorted(DRVS)), st.data())
def test_mutated_drvs_raise_only_format_error(path: str, data: st.DataObject) -> None:
    text = DRVS[path]
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 3)))
    junk = data.draw(st.text(alphabet='()[],"\\ab/-0', max_size=3))
    mutated = text[:i] + junk + text[j:]
    try:
        drv = parse_derivation(mutated)
    except FormatError:
        return
    text = format_derivation(drv)
    assert format_derivation(parse_derivation(text)) == text


EXACT_MESSAGES = [
    "derivation: expected 'Derive(' at offset 0, found ''",
    "derivation: expected 'Derive(' at offset 0, found 'DrvWithVersion(\"xp-dyn-drv\",[])'",
    "derivation: expected the end at offset 496, found '\\n'",
    "derivation: expected ')' at offset 495, found ''",
    "derivation: expected ',' or ']' at offset 494, found ''",
    'derivation: expected a string at offset 160, found \'x86_64-linux,"/bin/sh",["-c","echo -n he\'',
    "derivation: expected ',' or ']' at offset 191, found 'echo -n hello > $out\"],[(\"builder\",\"/bin'",
    "derivation: expected a string at offset 15, found '/nix/store/v54vglapf03chw0pd4niqk8b5ba5l'",
    "derivation: expected an absolute store path at offset 15, "
    "found '\"/tmp/v54vglapf03chw0pd4niqk8b5ba5lg8a-v'",
    "derivation: at offset 15: not a store path: '/nix/store/v54v-x'",
    "unknown hash algorithm 'sha257' (output 'out' at offset 15)",
    "derivation: output hash '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' "
    "without an algorithm (output 'out' at offset 15)",
    "hash '2cf2' has wrong length for hash type 'sha256' (output 'out' at offset 15)",
    "derivation: a fixed output has no path (output 'out' at offset 15)",
    "derivation: a floating content-addressed output has a path (output 'out' at offset 15)",
    "derivation: platform may not contain a quote or backslash: 'x86\"64'",
    "derivation: output name may not contain a quote or backslash: 'o\\\\ut'",
    "derivation: duplicate environment variable 'builder'",
    "derivation: duplicate input source 'w0jpmpqz4gdhnzar4i46hxqs7cz4f20g-data.txt'",
    "derivation: duplicate output of input j6p8kpmzay68qvrargmx8x6cpgp8m83y-vega-base.drv 'dev'",
    "derivation: input derivation output name may not contain a quote or backslash: 'de\"v'",
    "derivation: duplicate output 'out'",
    "derivation: duplicate input derivation 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv'",
]


@pytest.mark.parametrize(("case", "message"), list(zip(MALFORMED, EXACT_MESSAGES, strict=True)))
def test_malformed_messages_exactly(case: tuple[str, str], message: str) -> None:
    """Each message names what was expected, where, and what was found (40 characters of it)."""
    with pytest.raises(FormatError) as e:
        parse_derivation(case[0])
    assert e.value.message == message


def test_special_characters_are_escaped_one_kind_at_a_time() -> None:
    for special, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        drv = parse_derivation(DRV_FOD.replace("echo -n hello", "echo " + escaped + " x"))
        assert drv.args[1] == "echo " + special + " x > $out"
        assert format_derivation(drv) == DRV_FOD.replace("echo -n hello", "echo " + escaped + " x")


def test_output_names_sort_by_bytes() -> None:
    data = (
        DRVS[BASE].encode().replace(b'("dev",', b'("a\xc3\xa9",').replace(b'("out","/nix', b'("a\x80","/nix')
    )
    drv = parse_derivation(data)
    names = [name for name, _ in drv.outputs]
    text = derivation_bytes(drv)
    assert text.index(b'("a\x80"') < text.index(b'("a\xc3\xa9"')
    assert len(names) == 2


def test_size_limit_is_inclusive_and_missing_outputs_are_named() -> None:
    assert parse_derivation(DRV_FOD, max_bytes=len(DRV_FOD)) == parse_derivation(DRV_FOD)
    with pytest.raises(KeyError) as e:
        parse_derivation(DRV_FOD).output("nope")
    assert e.value.args == ("nope",)
    with pytest.raises(FormatError) as f:
        output_paths(parse_derivation(DRVS[BASE].replace('("name","vega-base"),', "")), resolver())
    assert f.value.message == "derivation: no 'name' in its environment; pass the name"


def test_shared_inputs_are_hashed_once_and_none_is_skipped() -> None:
    """A memoized input popped again must not end the walk: inputs below it are still pending."""
    base = parse_derivation(DRVS[BASE])
    other = "/nix/store/00000000000000000000000000000000-other.drv"  # sorts first: popped last
    top = Derivation(
        outputs=base.outputs,
        input_drvs=(
            (parse_store_path(other), ("out",)),
            *base.input_drvs,  # also inputs of BASE: memoized before popped here
            (parse_store_path(BASE), ("out",)),
        ),
        input_srcs=(),
        platform=base.platform,
        builder=base.builder,
        args=base.args,
        env=base.env,
    )
    calls: list[str] = []
    known = resolver(calls)

    def resolve(path: str) -> Derivation:
        return parse_derivation(DRV_FOD) if path == other else known(path)

    digest = hash_derivation_modulo(top, resolve)
    assert sorted(calls) == sorted(set(calls))  # each input read once
    cache = {
        p.absolute: hash_derivation_modulo(parse_derivation(DRVS[p.absolute]), known)
        for p, _ in base.input_drvs
    }
    cache[BASE] = hash_derivation_modulo(base, known)
    cache[other] = hash_derivation_modulo(parse_derivation(DRV_FOD), known)
    assert hash_derivation_modulo(top, resolve, cache=cache) == digest
