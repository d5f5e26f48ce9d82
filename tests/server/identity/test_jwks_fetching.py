"""OIDC key fetches cannot be used to stall the control plane (issue 14).

Two real issuers on loopback sockets: one answers, one hangs (or trickles its answer). Keys are
fetched under a lock per issuer, with a wall-clock deadline, and a failure is remembered for a
short while, so a slow issuer delays nobody else's tokens and a failing one is not hammered.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server.identity.conftest import AUDIENCE, FakeClock, jwk, sign
from vega.errors import NetworkError
from vega.server.identity.oidc import JwksCache, OidcVerifier

Route = Callable[[BaseHTTPRequestHandler], None]


class LoopbackIssuer:
    """An OIDC issuer on a real loopback socket whose answers a test controls."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = key
        self.requests = 0
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()
        self.mode = "ok"  # ok | hang | trickle | fail
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                issuer.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        self.arrived.set()
        if self.mode == "hang":
            self.release.wait()
        if self.mode == "fail":
            h.send_response(500)
            h.end_headers()
            return
        body: dict[str, object]
        if h.path.endswith("openid-configuration"):
            body = {"issuer": self.url, "jwks_uri": f"{self.url}/.well-known/jwks"}
        else:
            body = {"keys": [jwk(self.key, "k1")]}
        data = json.dumps(body).encode()
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        if self.mode == "trickle":  # one byte at a time until released (each read within the timeout)
            for i in range(len(data)):
                if self.release.wait(0.05):
                    break
                h.wfile.write(data[i : i + 1])
                h.wfile.flush()
            self.answered.set()
            return
        h.wfile.write(data)
        self.answered.set()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuers(rsa_keys: list[rsa.RSAPrivateKey]) -> Iterator[tuple[LoopbackIssuer, LoopbackIssuer]]:
    good, slow = LoopbackIssuer(rsa_keys[0]), LoopbackIssuer(rsa_keys[1])
    yield good, slow
    good.close()
    slow.close()


def make_verifier(clock: FakeClock, *issuers: LoopbackIssuer, **jwks: Any) -> OidcVerifier:
    return OidcVerifier(
        jwks=JwksCache(httpx2.Client(), clock, **jwks),
        audience=AUDIENCE,
        issuers=frozenset(i.url for i in issuers),
        now=clock,
    )


def token(issuer: LoopbackIssuer) -> str:
    return sign(issuer.key, iss=issuer.url)


def test_a_hanging_issuer_does_not_delay_another_issuers_tokens(
    issuers: tuple[LoopbackIssuer, LoopbackIssuer], clock: FakeClock
) -> None:
    good, slow = issuers
    slow.mode = "hang"
    v = make_verifier(clock, good, slow, deadline_s=60.0)
    outcome: list[object] = []
    stuck = threading.Thread(target=lambda: outcome.append(_verify(v, token(slow))), daemon=True)
    stuck.start()
    assert slow.arrived.wait(30)  # the slow issuer's fetch is in flight, and stays so
    identity = v.verify(token(good))
    assert identity.repository == "Alice/Hello"
    assert stuck.is_alive(), "the good token waited for the slow issuer"
    assert not slow.answered.is_set()
    slow.release.set()
    stuck.join(30)
    assert outcome
    assert not isinstance(outcome[0], BaseException)


def _verify(v: OidcVerifier, t: str) -> object:
    try:
        return v.verify(t)
    except Exception as e:
        return e


def test_a_trickling_issuer_is_cut_off_at_the_deadline(
    issuers: tuple[LoopbackIssuer, LoopbackIssuer], clock: FakeClock
) -> None:
    _, slow = issuers
    slow.mode = "trickle"
    v = make_verifier(clock, slow, deadline_s=0.5)
    with pytest.raises(NetworkError, match="deadline"):
        v.verify(token(slow))
    assert not slow.answered.is_set(), "the fetch waited for the whole trickled answer"


def test_a_failed_fetch_is_not_retried_for_a_while(
    issuers: tuple[LoopbackIssuer, LoopbackIssuer], clock: FakeClock
) -> None:
    good, _ = issuers
    good.mode = "fail"
    v = make_verifier(clock, good, negative_ttl_s=30.0)
    for _ in range(5):
        with pytest.raises(NetworkError):
            v.verify(token(good))
    assert good.requests == 1  # one fetch; the failure is remembered
    good.mode = "ok"
    clock.t += 31
    assert v.verify(sign(good.key, iss=good.url, exp=int(clock.t) + 100)).repository == "Alice/Hello"
    assert good.requests == 3  # discovery and JWKS, once the failure had expired


def test_waiting_for_another_callers_fetch_is_bounded(
    issuers: tuple[LoopbackIssuer, LoopbackIssuer], clock: FakeClock
) -> None:
    _, slow = issuers
    slow.mode = "hang"
    v = make_verifier(clock, slow, deadline_s=0.5)
    first = threading.Thread(target=lambda: _verify(v, token(slow)), daemon=True)
    first.start()
    assert slow.arrived.wait(30)
    with pytest.raises(NetworkError):
        v.verify(token(slow))
    assert not slow.answered.is_set()
    slow.release.set()
    first.join(30)
