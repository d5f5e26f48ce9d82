"""hashes (protocol.md §2.2): every text form Nix prints or accepts, known answers from Nix 2.8."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import hashes
from vega.core.hashes import HashAlgorithm, HashEncoding, NixHash, format_nix_hash, parse_nix_hash
from vega.errors import FormatError

# `nix hash file --type T --base16/--base32/--base64/--sri` of the two bytes "hi" (Nix 2.8).
HI = {
    HashAlgorithm.MD5: (
        "49f68a5c8493ec2c0bf489821c21fc3b",
        "1vzhhir0l9yh5jrv4khif8mxj9",
        "SfaKXIST7CwL9ImCHCH8Ow==",
    ),
    HashAlgorithm.SHA1: (
        "c22b5f9178342609428d6f51b2c5af4c0bde6a42",
        "89mdw2scmz2v4lbgim10j9ilg28myay2",
        "witfkXg0JglCjW9RssWvTAveakI=",
    ),
    HashAlgorithm.SHA256: (
        "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
        "193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg",
        "j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ=",
    ),
    HashAlgorithm.SHA512: (
        "150a14ed5bea6cc731cf86c41566ac427a8db48ef1b9fd626664b3bfbb99071f"
        "a4c922f33dde38719b8c8354e2b7ab9d77e0e67fc12843920a712e73d558e197",
        "2by2n6mfcp722lj8clc2zz6w1vrvaxpw9a8734vf4wdwggk4b4s87q7k6xvzcv4crigvfgiiss8syj2mik1bi46rwqwfv7abgni82hm",
        "FQoU7VvqbMcxz4bEFWasQnqNtI7xuf1iZmSzv7uZBx+kySLzPd44cZuMg1Tit6udd+Dmf8EoQ5IKcS5z1Vjhlw==",
    ),
}
SIZES = {HashAlgorithm.MD5: 16, HashAlgorithm.SHA1: 20, HashAlgorithm.SHA256: 32, HashAlgorithm.SHA512: 64}


@pytest.mark.parametrize("algo", list(HashAlgorithm))
def test_known_answers_every_form(algo: HashAlgorithm) -> None:
    b16, b32, b64 = HI[algo]
    h = hashes.hash_bytes(algo, b"hi")
    assert algo.digest_size == SIZES[algo]
    assert (h.base16, h.nix32, h.base64) == (b16, b32, b64)
    assert h.sri == f"{algo.value}-{b64}"
    assert format_nix_hash(h) == str(h) == h.prefixed() == f"{algo.value}:{b32}"
    assert h.prefixed(HashEncoding.BASE16) == f"{algo.value}:{b16}"
    assert h.prefixed(HashEncoding.BASE64) == f"{algo.value}:{b64}"
    assert h.prefixed(HashEncoding.SRI) == h.sri
    assert [h.encoded(e) for e in HashEncoding] == [b16, b32, b64, h.sri]
    forms = [
        f"{algo.value}:{b16}",
        f"{algo.value}:{b16.upper()}",
        f"{algo.value}:{b32}",
        f"{algo.value}:{b64}",
        f"{algo.value}-{b64}",
        f"{algo.value}-{b64.rstrip('=')}",
    ]
    for text in forms:
        assert parse_nix_hash(text) == h, text
        assert parse_nix_hash(text, algo) == h, text
    for bare in (b16, b32, b64):
        assert parse_nix_hash(bare, algo) == h, bare
    streamed = algo.new()
    streamed.update(b"h")
    streamed.update(b"i")
    assert streamed.digest() == h.digest


@pytest.mark.parametrize(
    ("text", "algo", "message"),
    [
        ("8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4", None, "does not name"),
        ("sha1:c22b5f9178342609428d6f51b2c5af4c0bde6a42", HashAlgorithm.SHA256, "should have type"),
        ("SHA256:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg", None, "does not name"),
        ("sha384:abc", None, "does not name"),
        ("sha256:j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ", None, "wrong length"),
        ("sha256:", None, "wrong length"),
        ("sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aag", None, "base-16"),
        ("sha256:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwe", None, "base-32"),
        ("sha256:z93s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg", None, "base-32"),
        ("sha256:j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeq!=", None, "base-64"),
        ("sha256:j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwy====", None, "base-64"),
        ("sha256-8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4", None, "SRI"),
        ("sha256-j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeq", None, "SRI"),
        ("sha256-j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ==", None, "SRI"),
        ("sha256-j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ=a", None, "SRI"),
        ("sha256-j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQAA", None, "SRI"),
        ("sha256-j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQA=", None, "SRI"),
        ("sha256-j", None, "SRI"),
        ("sha1:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg", None, "wrong length"),
        ("193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg", HashAlgorithm.SHA1, "wrong length"),
    ],
)
def test_rejects(text: str, algo: HashAlgorithm | None, message: str) -> None:
    with pytest.raises(FormatError, match=message) as err:
        parse_nix_hash(text, algo)
    assert text[:40] in err.value.message


def test_parse_hash_algorithm() -> None:
    sha256 = hashes.parse_hash_algorithm("sha256")
    assert sha256 == "sha256"
    assert f"{HashAlgorithm.SHA1}" == "sha1"
    assert hashes.parse_hash_algorithm("sha512") is HashAlgorithm.SHA512
    with pytest.raises(FormatError, match="unknown hash algorithm 'blake3'"):
        hashes.parse_hash_algorithm("blake3")


def test_digest_length_checked() -> None:
    with pytest.raises(FormatError, match="expected 32 bytes, got 20"):
        NixHash(HashAlgorithm.SHA256, bytes(20))


def test_spec_sri_conversion() -> None:
    """protocol.md §2.2: an SRI narHash becomes sha256:<nix32>; sha256:... passes unchanged."""
    sri = "sha256-j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ="
    want = "sha256:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg"
    assert format_nix_hash(parse_nix_hash(sri)) == want
    assert format_nix_hash(parse_nix_hash(want)) == want


@given(algo=st.sampled_from(list(HashAlgorithm)), data=st.data())
def test_every_form_round_trips(algo: HashAlgorithm, data: st.DataObject) -> None:
    digest = data.draw(st.binary(min_size=algo.digest_size, max_size=algo.digest_size))
    h = NixHash(algo, digest)
    for enc in HashEncoding:
        assert parse_nix_hash(h.prefixed(enc)) == h
        assert parse_nix_hash(h.encoded(enc), algo) == h


@given(st.text(max_size=140), st.sampled_from([None, *HashAlgorithm]))
def test_arbitrary_text_raises_only_format_error(text: str, algo: HashAlgorithm | None) -> None:
    try:
        h = parse_nix_hash(text, algo)
    except FormatError:
        return
    assert algo is None or h.algorithm is algo


B64ISH = "0123456789abcdfghijklmnpqrsvwxyzABCDEFeotu+/=!-:"


@given(
    st.sampled_from(["sha256:", "sha256-", "md5:", "sha1-", "sha512:"]),
    st.one_of(st.text(max_size=110), st.text(alphabet=B64ISH, min_size=20, max_size=110)),
)
def test_prefixed_arbitrary_raises_only_format_error(prefix: str, rest: str) -> None:
    try:
        h = parse_nix_hash(prefix + rest)
    except FormatError:
        return
    assert h.algorithm.value == prefix[:-1]
    assert parse_nix_hash(h.prefixed(HashEncoding.SRI)) == h
