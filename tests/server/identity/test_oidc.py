"""Issue 4 (CI lane): every OIDC rejection, each with its own reason; JWKS caching and refresh."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from tests.server.identity.conftest import (
    AUDIENCE,
    ISSUER,
    SHA,
    FakeClock,
    Issuer,
    claims,
    jwk,
    raw_token,
    sign,
)
from vega.errors import AuthError, ConfigError, FormatError, NetworkError
from vega.server.identity.oidc import (
    JwksCache,
    OidcVerifier,
    is_reproducer_workflow,
    parse_jwks,
    parse_reproducer_workflows,
)


def verifier(issuer: Issuer, clock: FakeClock, **over: Any) -> OidcVerifier:
    args: dict[str, Any] = {
        "jwks": JwksCache(issuer.client(), clock, min_refresh_s=60.0),
        "audience": AUDIENCE,
        "issuers": frozenset({ISSUER}),
        "now": clock,
        "reproducer_workflows": ("vega-org/repro/.github/workflows/reproduce.yml@refs/heads/main",),
    }
    args.update(over)
    return OidcVerifier(**args)


def rejects(v: OidcVerifier, token: str, reason: str) -> None:
    with pytest.raises(AuthError) as e:
        v.verify(token)
    assert e.value.status == 401
    assert reason in e.value.message


def test_valid_token_gives_identity_from_claims(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]
) -> None:
    ident = verifier(issuer, clock).verify(sign(rsa_keys[0]))
    assert ident.tenant == ident.repository == "Alice/Hello"
    assert (ident.repository_id, ident.repository_owner_id) == ("123456", "7890")
    assert ident.sha == SHA
    assert ident.attester_id == f"gh-run:555001:2:123456@{ISSUER}"
    assert ident.flake_ref == "github:Alice/Hello"
    assert ident.issuer == ISSUER
    assert ident.subject == "repo:Alice/Hello:ref:refs/heads/main"
    assert not ident.is_reproducer


def test_expired_token(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    token = sign(rsa_keys[0])
    v = verifier(issuer, clock)
    clock.t += 300 + 30  # exactly at exp + leeway: still accepted
    v.verify(token)
    clock.t += 1
    rejects(v, token, "expired")


def test_not_yet_valid_and_future_iat(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    v = verifier(issuer, clock)
    rejects(v, sign(rsa_keys[0], nbf=int(clock.t) + 31), "not valid yet")
    rejects(v, sign(rsa_keys[0], iat=int(clock.t) + 31), "issued in the future")
    rejects(v, sign(rsa_keys[0], exp="soon"), "'exp' is not a number")


@pytest.mark.parametrize(
    ("configured", "aud"),
    [
        ("https://vega.test", "https://vega.test/"),
        ("https://vega.test/", "https://vega.test"),
        ("https://vega.test", "https://VEGA.test:443"),
        ("https://vega.test", "HTTPS://Vega.Test:443/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://localhost:80/", "http://LOCALHOST"),
        ("https://vega.test/cp", "https://vega.test/cp/"),
        ("http://[::1]:8080", "http://[::1]:8080/"),
    ],
)
def test_audience_is_compared_normalised(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], configured: str, aud: str
) -> None:
    assert verifier(issuer, clock, audience=configured).verify(sign(rsa_keys[0], aud=aud)).sha == SHA


@pytest.mark.parametrize(
    ("configured", "aud"),
    [
        ("https://vega.test/cp", "https://vega.test/CP"),
        ("https://vega.test/cp", "https://vega.test"),
        ("https://vega.test", "https://vega.test/cp"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("http://127.0.0.1:8080", "http://127.0.0.1"),
        ("https://vega.test", "https://vega.test:99999"),
    ],
)
def test_audience_never_matches_another_host_port_or_path(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], configured: str, aud: str
) -> None:
    rejects(verifier(issuer, clock, audience=configured), sign(rsa_keys[0], aud=aud), "audience")


@pytest.mark.parametrize(
    "aud",
    [
        "https://evil.test",
        "https://vega.test.evil.test",
        "http://vega.test",
        "https://vega.test:8443",
        "https://vega.test/tenant/a/b",
        "https://vega.test//",
        "https://user@vega.test",
        "https://vega.test/?x",
        "https://vega.test#x",
        "vega.test",
        "",
        ["https://vega.test", "x"],
        ["https://vega.test"],
    ],
)
def test_wrong_audience(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], aud: Any) -> None:
    rejects(verifier(issuer, clock), sign(rsa_keys[0], aud=aud), "audience")


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        "https://token.actions.githubusercontent.com.evil.example",
        "https://token.actions.githubusercontent.co",
    ],
)
def test_unknown_issuer(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], iss: str) -> None:
    rejects(verifier(issuer, clock), sign(rsa_keys[0], iss=iss), "issuer")
    assert issuer.jwks_fetches == 0  # nothing fetched for an untrusted issuer


def test_unknown_kid_refetches_once_then_rejects(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]
) -> None:
    v = verifier(issuer, clock)
    v.verify(sign(rsa_keys[0]))
    assert issuer.jwks_fetches == 1
    rejects(v, sign(rsa_keys[1], kid="k2"), "signing key is unknown")
    assert issuer.jwks_fetches == 1  # too soon to refetch
    clock.t += 61
    rejects(v, sign(rsa_keys[1], kid="k2"), "signing key is unknown")
    assert issuer.jwks_fetches == 2


def test_key_rotation_is_picked_up_on_unknown_kid(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]
) -> None:
    v = verifier(issuer, clock)
    v.verify(sign(rsa_keys[0]))
    issuer.keys = {"k2": rsa_keys[1]}
    clock.t += 61
    assert v.verify(sign(rsa_keys[1], kid="k2", exp=int(clock.t) + 100)).repository == "Alice/Hello"
    assert issuer.jwks_fetches == 2
    v.verify(sign(rsa_keys[1], kid="k2", exp=int(clock.t) + 100))
    assert issuer.jwks_fetches == 2  # cached


def test_stale_keys_are_kept_when_refresh_fails(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]
) -> None:
    v = verifier(issuer, clock)
    v.verify(sign(rsa_keys[0]))
    issuer.status = 500
    clock.t += 3601
    now = int(clock.t)
    v.verify(sign(rsa_keys[0], iat=now - 10, nbf=now - 10, exp=now + 100))
    assert issuer.jwks_fetches == 2


def test_unreachable_issuer_is_a_network_error(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    issuer.status = 503
    with pytest.raises(NetworkError):
        verifier(issuer, clock).verify(sign(rsa_keys[0]))


def test_alg_none(issuer: Issuer, clock: FakeClock) -> None:
    token, _ = raw_token({"alg": "none", "kid": "k1", "typ": "JWT"}, claims())
    rejects(verifier(issuer, clock), token, "algorithm 'none' is not allowed")
    assert issuer.jwks_fetches == 0


def test_hs256_with_the_public_key_as_secret(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    pem = (
        rsa_keys[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _, signing_input = raw_token({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims())
    mac = hmac.new(pem, signing_input, hashlib.sha256).digest()
    token, _ = raw_token({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims(), mac)
    rejects(verifier(issuer, clock), token, "algorithm 'HS256' is not allowed")


@pytest.mark.parametrize("alg", ["RS384", "PS256", "ES256", "EdDSA"])
def test_other_algorithms(issuer: Issuer, clock: FakeClock, alg: str) -> None:
    token, _ = raw_token({"alg": alg, "kid": "k1"}, claims(), b"x" * 64)
    rejects(verifier(issuer, clock), token, f"algorithm {alg!r} is not allowed")


def test_signature_by_another_key_with_a_known_kid(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]
) -> None:
    rejects(verifier(issuer, clock), sign(rsa_keys[2], kid="k1"), "signature is invalid")


def test_missing_kid(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    rejects(verifier(issuer, clock), sign(rsa_keys[0], kid=None), "no key id")


@pytest.mark.parametrize("name", ["exp", "iat", "nbf", "aud", "iss"])
def test_missing_registered_claims(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], name: str) -> None:
    reason = "issuer" if name == "iss" else f"missing claim {name!r}"
    rejects(verifier(issuer, clock), sign(rsa_keys[0], **{name: None}), reason)


@pytest.mark.parametrize(
    "name",
    [
        "repository",
        "repository_id",
        "repository_owner_id",
        "sha",
        "run_id",
        "run_attempt",
        "job_workflow_ref",
    ],
)
def test_missing_github_claims(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], name: str) -> None:
    rejects(verifier(issuer, clock), sign(rsa_keys[0], **{name: None}), f"missing claim {name!r}")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("repository", "no-slash"),
        ("repository", "a/b/c"),
        ("repository_id", "12a"),
        ("repository_owner_id", "0"),
        ("sha", "ABCDEF" * 7),
        ("run_id", "-1"),
        ("run_attempt", ""),
        ("job_workflow_ref", "Alice/Hello/.github/workflows/vega.yml"),
    ],
)
def test_malformed_github_claims(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], name: str, value: str
) -> None:
    rejects(verifier(issuer, clock), sign(rsa_keys[0], **{name: value}), f"claim {name!r} is malformed")


def test_non_string_github_claim(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    rejects(
        verifier(issuer, clock), sign(rsa_keys[0], repository_id=123456), "'repository_id' is not a string"
    )


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 20000, "é.é.é"])
def test_malformed_tokens(issuer: Issuer, clock: FakeClock, token: str) -> None:
    rejects(verifier(issuer, clock), token, "malformed")


@given(st.text(max_size=300))
def test_arbitrary_text_is_only_ever_an_auth_error(text: str) -> None:
    v = OidcVerifier(
        jwks=JwksCache(
            httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(404))), lambda: 0.0
        ),
        audience=AUDIENCE,
        issuers=frozenset({ISSUER}),
        now=lambda: 0.0,
    )
    with pytest.raises(AuthError):
        v.verify(text)


def test_reproducer_lane(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    ref = "vega-org/repro/.github/workflows/reproduce.yml@refs/heads/main"
    ident = verifier(issuer, clock).verify(sign(rsa_keys[0], job_workflow_ref=ref))
    assert ident.is_reproducer
    assert ident.tenant == "Alice/Hello"  # the tenant is still the token's repository


def test_reproducer_matching_rules() -> None:
    wf = "o/r/.github/workflows/x.yml"
    sha = "c" * 40

    def matches(ref: str, configured: tuple[str, ...], workflow_sha: str = sha) -> bool:
        return is_reproducer_workflow(ref, configured, job_workflow_sha=workflow_sha)

    exact = (f"{wf}@refs/tags/v1",)
    assert matches(f"{wf}@refs/tags/v1", exact)
    assert matches("O/R/.github/workflows/x.yml@refs/tags/v1", exact)  # GitHub names ignore case
    assert not matches(f"{wf}@refs/tags/v1", exact, workflow_sha="")  # a full workflow commit is required
    assert not matches(f"{wf}@refs/heads/main", exact)
    assert not matches(f"{wf}@refs/tags/V1", exact)  # refs compare exactly
    assert not matches("o/r/.github/workflows/X.yml@refs/tags/v1", exact)
    assert not matches("o/r2/.github/workflows/x.yml@refs/tags/v1", exact)
    assert not matches(wf, exact)
    branch = (f"{wf}@refs/heads/main",)
    assert matches(f"{wf}@refs/heads/main", branch)
    assert not matches(f"{wf}@{sha}", branch)  # an impostor commit through the parent's name
    assert not matches(f"{wf}@refs/heads/main2", branch)
    pattern = (f"{wf}@refs/tags/v*",)
    assert matches(f"{wf}@refs/tags/v1.2.3", pattern)
    assert not matches(f"{wf}@refs/tags/v", pattern)
    assert not matches(f"{wf}@refs/tags/v1/evil", pattern)
    assert not matches(f"{wf}@refs/heads/v1", pattern)
    pinned = (f"{wf}@{sha}",)
    assert matches(f"{wf}@{sha}", pinned)
    assert not matches(f"{wf}@{sha}", pinned, workflow_sha="d" * 40)  # job_workflow_sha must agree
    assert not matches(f"{wf}@{'d' * 40}", pinned, workflow_sha="d" * 40)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("o/r/.github/workflows/x.yml", "names no ref"),
        ("o/r/.github/workflows/x.yml@main", "the ref must be"),
        ("o/r/.github/workflows/x.yml@refs/heads/*", "the ref must be"),
        ("o/r/.github/workflows/x.yml@refs/pull/1/merge", "the ref must be"),
        ("o/r/.github/workflows/x.yml@abc123", "the ref must be"),
        ("o/r/x.yml@refs/heads/main", "is not owner/repo/.github/workflows"),
    ],
)
def test_reproducer_entries_must_name_a_ref(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_reproducer_workflows((entry,))
    with pytest.raises(ConfigError, match=message):
        OidcVerifier(
            jwks=JwksCache(httpx2.Client(), lambda: 0.0),
            audience=AUDIENCE,
            issuers=frozenset({ISSUER}),
            now=lambda: 0.0,
            reproducer_workflows=(entry,),
        )


def test_reproducer_runner_environment(issuer: Issuer, clock: FakeClock, rsa_keys: list[Any]) -> None:
    ref = "vega-org/repro/.github/workflows/reproduce.yml@refs/heads/main"
    v = verifier(issuer, clock)
    assert v.verify(sign(rsa_keys[0], job_workflow_ref=ref)).is_reproducer
    for runner in ("self-hosted", None, "GitHub-Hosted"):
        assert not v.verify(sign(rsa_keys[0], job_workflow_ref=ref, runner_environment=runner)).is_reproducer
    assert not v.verify(sign(rsa_keys[0], job_workflow_ref=ref, job_workflow_sha=None)).is_reproducer
    rejects(v, sign(rsa_keys[0], runner_environment=5), "'runner_environment' is not a string")
    named = verifier(issuer, clock, reproducer_self_hosted=("alice/hello",))
    ident = named.verify(sign(rsa_keys[0], job_workflow_ref=ref, runner_environment="self-hosted"))
    assert ident.is_reproducer
    assert ident.runner_environment == "self-hosted"
    assert "workflow_sha=" + SHA in ident.audit_reference
    assert ident.workflow_repository == "vega-org/repro"
    plain = v.verify(sign(rsa_keys[0]))
    assert plain.audit_reference == plain.subject


def test_parse_jwks_skips_unusable_keys(rsa_keys: list[Any]) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
    doc = {
        "keys": [
            jwk(rsa_keys[0], "good"),
            {**jwk(rsa_keys[1], "enc"), "use": "enc"},
            {**jwk(rsa_keys[1], "ps"), "alg": "PS256"},
            {**jwk(rsa_keys[1], ""), "kid": ""},
            {"kty": "EC", "kid": "ec"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            jwk(small, "small"),
            "junk",
        ]
    }
    assert list(parse_jwks(doc)) == ["good"]
    with pytest.raises(FormatError):
        parse_jwks({"keys": "x"})
    with pytest.raises(FormatError):
        parse_jwks([])


@pytest.mark.parametrize(
    "conf",
    [
        {"issuer": "https://other", "jwks_uri": f"{ISSUER}/.well-known/jwks"},
        {"issuer": ISSUER, "jwks_uri": "https://evil.example/jwks"},
        {"issuer": ISSUER},
    ],
)
def test_discovery_must_match_the_issuer(clock: FakeClock, rsa_keys: list[Any], conf: dict[str, str]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx2.Response(200, json=conf)
        return httpx2.Response(200, json={"keys": [jwk(rsa_keys[0], "k1")]})

    cache = JwksCache(httpx2.Client(transport=httpx2.MockTransport(handler)), clock)
    with pytest.raises(NetworkError):
        cache.key(ISSUER, "k1")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_parse_jwks_arbitrary_json_raises_only_format_error(doc: object) -> None:
    try:
        keys = parse_jwks(doc)
    except FormatError:
        return
    assert keys == {}
