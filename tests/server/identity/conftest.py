"""Identity fixtures: RSA keys made in the test session, a fake clock, an issuer on MockTransport."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "https://vega.test"
NOW = 1_800_000_000.0
SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeClock:
    t: float = NOW

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    n = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
        "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
        "e": b64url(n.e.to_bytes(3, "big")),
    }


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "repo:Alice/Hello:ref:refs/heads/main",
        "iat": int(NOW) - 10,
        "nbf": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "repository": "Alice/Hello",
        "repository_id": "123456",
        "repository_owner_id": "7890",
        "sha": SHA,
        "run_id": "555001",
        "run_attempt": "2",
        "job_workflow_ref": "Alice/Hello/.github/workflows/vega.yml@refs/heads/main",
        "job_workflow_sha": SHA,
        "runner_environment": "github-hosted",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: rsa.RSAPrivateKey, kid: str | None = "k1", **over: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**over), key, algorithm="RS256", headers=headers)


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> tuple[str, bytes]:
    """A hand-made JWT (for algorithms PyJWT refuses to produce); returns it and its signing input."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    signing_input = f"{head}.{body}".encode()
    return f"{head}.{body}.{b64url(signature)}", signing_input


@dataclass
class Issuer:
    """An OIDC issuer on a MockTransport with a mutable key set; counts JWKS fetches."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    jwks_fetches: int = 0
    status: int = 200

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return httpx2.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/.well-known/jwks"})
        if url == f"{ISSUER}/.well-known/jwks":
            self.jwks_fetches += 1
            if self.status != 200:
                return httpx2.Response(self.status)
            return httpx2.Response(200, json={"keys": [jwk(k, kid) for kid, k in self.keys.items()]})
        return httpx2.Response(404)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))


@pytest.fixture
def issuer(rsa_keys: list[rsa.RSAPrivateKey]) -> Issuer:
    return Issuer(keys={"k1": rsa_keys[0]})


Signer = Callable[..., str]
