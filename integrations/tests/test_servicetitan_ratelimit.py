"""The request budget's token bucket, on a fake clock: no real sleeping."""

import os
import uuid

import pytest
import redis

from integrations.providers import RetryableProviderError
from integrations.servicetitan import ratelimit
from integrations.servicetitan.ratelimit import RateLimiter, redis_for, shared_state
from integrations.tests.fakes import FakeClock


@pytest.fixture
def fresh_buckets():
    ratelimit._local_buckets.clear()
    yield
    ratelimit._local_buckets.clear()


def test_rate_limiter_lets_a_burst_of_the_limit_through_then_one_per_refill(fresh_buckets):
    clock = FakeClock(1_000_000.25)
    limiter = RateLimiter("servicetitan:rate:t1", 60, clock=clock, sleep=clock.sleep)

    for _ in range(60):
        limiter.acquire(timeout=10)
    assert clock.sleeps == []

    limiter.acquire(timeout=10)
    limiter.acquire(timeout=10)

    assert clock.sleeps == [pytest.approx(1 / 60), pytest.approx(1 / 60)]


def test_rate_limiter_refills_at_the_limit_per_second(fresh_buckets):
    clock = FakeClock(1_000_000.0)
    limiter = RateLimiter("servicetitan:rate:t1", 60, clock=clock, sleep=clock.sleep)
    for _ in range(60):
        limiter.acquire(timeout=10)

    clock.now += 0.5  # 30 tokens back
    for _ in range(30):
        limiter.acquire(timeout=10)

    assert clock.sleeps == []
    limiter.acquire(timeout=10)
    assert clock.sleeps == [pytest.approx(1 / 60)]


def test_a_second_never_passes_more_than_the_limit(fresh_buckets):
    clock = FakeClock(1_000_000.0)
    limiter = RateLimiter("servicetitan:rate:t1", 60, clock=clock, sleep=clock.sleep)
    started = clock.now

    for _ in range(60 + 600):
        limiter.acquire(timeout=10)

    # 60 at once, then 60 per second: 600 more take 10 seconds.
    assert clock.now - started == pytest.approx(10.0)


def test_a_caller_with_an_older_clock_reading_does_not_refill_the_bucket_twice(fresh_buckets):
    clock = FakeClock(1_000_000.0)
    late = FakeClock(1_000_000.0)
    limiter = RateLimiter("servicetitan:rate:t1", 60, clock=clock, sleep=clock.sleep)
    lagging = RateLimiter("servicetitan:rate:t1", 60, clock=late, sleep=late.sleep)
    for _ in range(60):
        limiter.acquire(timeout=10)

    clock.now += 1.0  # a second later: 60 tokens back
    for _ in range(60):
        limiter.acquire(timeout=10)
    lagging.acquire(timeout=10)  # read its clock before that second passed

    assert sum(late.sleeps) == pytest.approx(1.0 + 1 / 60)  # no token until its clock catches up


def test_rate_limiter_raises_when_the_wait_is_beyond_the_timeout(fresh_buckets):
    clock = FakeClock(1_000_000.25)
    limiter = RateLimiter("servicetitan:rate:t1", 60, clock=clock, sleep=clock.sleep)
    for _ in range(60):
        limiter.acquire(timeout=10)

    with pytest.raises(RetryableProviderError) as raised:
        limiter.acquire(timeout=0.001)

    assert raised.value.code == "Rate Limited"
    assert raised.value.retry_after == pytest.approx(1 / 60)
    assert clock.sleeps == []


def test_rate_limiter_counts_each_tenant_apart(fresh_buckets):
    clock = FakeClock(1_000_000.25)
    first = RateLimiter("servicetitan:rate:t1", 1, clock=clock, sleep=clock.sleep)
    second = RateLimiter("servicetitan:rate:t2", 1, clock=clock, sleep=clock.sleep)

    first.acquire(timeout=10)
    second.acquire(timeout=10)

    assert clock.sleeps == []


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (set REDIS_URL)")
def test_rate_limiter_in_redis_is_one_bucket_for_every_process():
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    key = f"servicetitan:rate:test-{uuid.uuid4().hex}"
    clock = FakeClock(1_000_000.0)
    worker_a = RateLimiter(key, 2, redis_client=store, clock=clock, sleep=clock.sleep)
    worker_b = RateLimiter(key, 2, redis_client=store, clock=clock, sleep=clock.sleep)

    worker_a.acquire(timeout=10)
    worker_b.acquire(timeout=10)
    worker_a.acquire(timeout=10)  # the bucket the two share is empty: wait for a refill

    assert clock.sleeps == [pytest.approx(0.5)]
    assert 0 < store.ttl(key) <= 10
    store.delete(key)


def test_rate_limiter_in_redis_is_retryable_when_redis_fails():
    class Unreachable:
        def eval(self, *args):
            raise redis.ConnectionError("Connection refused")

    limiter = RateLimiter("servicetitan:rate:t1", 60, redis_client=Unreachable())

    with pytest.raises(RetryableProviderError) as raised:
        limiter.acquire(timeout=10)

    assert raised.value.code == "Service Unavailable"


def test_a_refill_a_float_rounding_short_of_a_token_gives_the_token(fresh_buckets):
    clock = FakeClock(1_000_000.0)
    limiter = RateLimiter("servicetitan:rate:t1", 7, clock=clock, sleep=clock.sleep)
    for _ in range(7):
        limiter.acquire(timeout=10)

    clock.now += 1 / 7  # the clock moves 0.99999999988 tokens' worth
    limiter.acquire(timeout=10)

    assert clock.sleeps == []


def test_redis_clients_are_made_once_per_url():
    first = redis_for("redis://localhost:6399/0")

    assert redis_for("redis://localhost:6399/0") is first
    assert redis_for("redis://localhost:6399/1") is not first


def test_a_redis_failure_is_retryable_and_keeps_its_cause():
    failure = redis.TimeoutError("Timeout reading from socket")

    with pytest.raises(RetryableProviderError) as raised, shared_state():
        raise failure

    assert raised.value.code == "Service Unavailable"
    assert raised.value.__cause__ is failure
