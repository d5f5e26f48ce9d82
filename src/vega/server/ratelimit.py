"""Attestation rate limits: how much one identity may write into the log, per store path and overall.

Every attestation or push is logged, and the log is public and append-only, so its volume per
identity must be bounded (issue 14): one CI token attesting one store path with thousands of
distinct fingerprints must get 429, not thousands of leaves. Two token buckets are charged per
request, both keyed by the *owner* (the immutable ``repository_owner_id`` of a CI job, or the
user id of an owner push), because runs and repositories cost an owner nothing:

``per path``   ``(owner, store-path hash)``: a burst of ``path_burst``, refilled at
               ``path_per_hour`` (a real build attests a path a few times: the builder, retries);
``per owner``  ``owner``: a burst of ``owner_burst``, refilled at ``owner_per_hour`` (a CI job
               attests a whole closure, so this one is generous).

A refused request is :class:`RateLimitedError`: 429 with ``Retry-After`` in whole seconds
(protocol.md §4.0: the only form clients honour), and it charges nothing. A rate of 0 switches
that bucket off. The buckets live in memory, per server process, at most ``max_keys`` of each
(least recently used dropped first); ADR 0012 says what that does and does not bound.

Spec: protocol.md §4.0 (429, Retry-After), §4.3, §4.4; issue 14; ADR 0012.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from vega.server.errors import ServiceError

__all__ = ["AttestLimits", "AttestRateLimiter", "RateLimitedError"]

_HOUR_MS = 3_600_000


class RateLimitedError(ServiceError):
    """Too many attestations: 429, retry after :attr:`retry_after_s` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, status=429)
        self.retry_after_s = retry_after_s
        """Whole seconds until the request would be accepted (at least 1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestLimits:
    """The limits (server settings ``attest_*``); a rate of 0 switches a bucket off."""

    path_burst: int = 16
    """Attestations one owner may make of one store path at once."""
    path_per_hour: int = 16
    """Their refill rate."""
    owner_burst: int = 20_000
    """Attestations one owner may make at once, over all paths."""
    owner_per_hour: int = 200_000
    """Their refill rate."""
    max_keys: int = 100_000
    """Buckets kept per kind (least recently used dropped first)."""


class _Buckets:
    """Token buckets of one kind: ``burst`` tokens, refilled at ``per_hour``."""

    def __init__(self, burst: int, per_hour: int, max_keys: int) -> None:
        self.burst = burst
        self.per_hour = per_hour
        self.max_keys = max_keys
        self._state: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (tokens, at ms)

    @property
    def off(self) -> bool:
        return self.per_hour <= 0 or self.burst <= 0

    def wait_ms(self, key: str, now: int) -> tuple[float, int]:
        """The tokens ``key`` has now, and how long until it has one (0: it has one)."""
        tokens, at = self._state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0, now - at) * self.per_hour / _HOUR_MS)
        if tokens >= 1:
            return tokens, 0
        return tokens, math.ceil((1 - tokens) * _HOUR_MS / self.per_hour)

    def take(self, key: str, tokens: float, now: int) -> None:
        self._state[key] = (tokens - 1, now)
        self._state.move_to_end(key)
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)


class AttestRateLimiter:
    """Charges attestations to their owner (thread-safe)."""

    def __init__(self, limits: AttestLimits, now: Callable[[], int]) -> None:
        """Limit by ``limits`` on the clock ``now`` (epoch milliseconds)."""
        self._path = _Buckets(limits.path_burst, limits.path_per_hour, limits.max_keys)
        self._owner = _Buckets(limits.owner_burst, limits.owner_per_hour, limits.max_keys)
        self._now = now
        self._lock = threading.Lock()

    def charge(self, owner: str, hash_part: str) -> None:
        """Charge one attestation of ``hash_part`` by ``owner``, or refuse it charging nothing.

        Raises:
            RateLimitedError: a bucket is empty (429, with the seconds to wait).
        """
        path_key = f"{owner}\0{hash_part}"
        with self._lock:
            now = self._now()
            checks = [(b, k) for b, k in ((self._path, path_key), (self._owner, owner)) if not b.off]
            states = [(b, k, *b.wait_ms(k, now)) for b, k in checks]
            wait = max((w for *_, w in states), default=0)
            if wait > 0:
                which = (
                    "this store path" if any(b is self._path and w for b, _, _, w in states) else "any path"
                )
                raise RateLimitedError(
                    f"too many attestations of {which} by this owner; retry later",
                    retry_after_s=max(1, math.ceil(wait / 1000)),
                )
            for b, k, tokens, _ in states:
                b.take(k, tokens, now)
