"""The attestation rate limiter's buckets (issue 14; ADR 0012), on a fake clock."""

from __future__ import annotations

import pytest

from vega.server.ratelimit import AttestLimits, AttestRateLimiter, RateLimitedError

H1, H2 = "1" * 32, "2" * 32


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def test_per_path_bucket_refills_and_refusals_charge_nothing() -> None:
    clock = Clock()
    limiter = AttestRateLimiter(AttestLimits(path_burst=2, path_per_hour=4), clock)
    limiter.charge("gh:1", H1)
    limiter.charge("gh:1", H1)
    with pytest.raises(RateLimitedError) as e:
        limiter.charge("gh:1", H1)
    assert (e.value.status, e.value.retry_after_s) == (429, 900)
    clock.ms += 899_000
    with pytest.raises(RateLimitedError) as e:
        limiter.charge("gh:1", H1)
    assert e.value.retry_after_s == 1
    clock.ms += 1_000
    limiter.charge("gh:1", H1)
    limiter.charge("gh:2", H1)  # another owner
    limiter.charge("gh:1", H2)  # another path


def test_per_owner_bucket_spans_paths() -> None:
    clock = Clock()
    limiter = AttestRateLimiter(AttestLimits(owner_burst=3, owner_per_hour=3600), clock)
    for n in range(3):
        limiter.charge("owner:7", str(n) * 32)
    with pytest.raises(RateLimitedError, match="of any path") as e:
        limiter.charge("owner:7", "9" * 32)
    assert e.value.retry_after_s == 1


def test_a_rate_of_zero_switches_a_bucket_off() -> None:
    limiter = AttestRateLimiter(AttestLimits(path_per_hour=0, owner_per_hour=0), Clock())
    for _ in range(100):
        limiter.charge("gh:1", H1)


def test_buckets_are_bounded_in_number() -> None:
    clock = Clock()
    limiter = AttestRateLimiter(AttestLimits(path_burst=1, path_per_hour=1, max_keys=2), clock)
    limiter.charge("a", H1)
    limiter.charge("b", H1)
    limiter.charge("c", H1)  # drops a's bucket, the least recently used
    with pytest.raises(RateLimitedError):
        limiter.charge("c", H1)
    limiter.charge("a", H1)  # a starts again with a full bucket (ADR 0012: per-process, bounded memory)
