"""Rate limits (README "Rate limits"; seed 000 and seed 003 "Rate Limiting").

A request with a usable API key counts against its key: requests a minute by the plan of the
key's company (operations: ``RATE_LIMIT_OPS_PLAN``), a job creation also against the plan's
job creations a minute and an hour, and a batch of jobs to ingest, once validated, each of its
jobs against the plan's jobs ingested an hour. A request without one (no key, or one that is
unknown, revoked or expired) counts against its client address, so that guessing keys is
throttled; an address over that limit is refused whatever key it sends until its window ends, so
a guess then tells nothing. The health probes, the API docs and the signed webhooks authenticate
no key and are not limited.

Counting is django-ratelimit's: fixed windows on the clock (each partition's shifted by a hash of
it, so they do not all end at once), one counter per window in Django's cache under its key. On
Redis one script checks and counts all of a request's windows in one round trip; on any other
cache (the embedded default's file cache, the tests' local memory) ``django_ratelimit.core
.get_usage`` reads and counts them. A refused request uses up none of its limits, so a burst
refused by the minute's ceiling does not spend the hour's.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django_ratelimit import ALL
from django_ratelimit import core as ratelimit_core
from redis import RedisError
from redis.commands.core import Script
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from access.callers import Caller
from tradeengage import metrics
from tradeengage.logging import Throttled

logger = logging.getLogger("tradeengage.ratelimit")
# One line a minute while Redis is away, not one per request.
_redis_failed_log = Throttled(logger, seconds=60)

MINUTE, HOUR = 60, 3600
# The request that creates a job (seed 000: job creation has its own ceiling).
JOB_CREATION = ("POST", "/api/v1/jobs/")

# Checks every counter of a request and, when all have room, counts it against those it uses
# up; and notes when an API key was last used. KEYS: the counters (django-ratelimit's cache keys),
# then, for a request with a key, the hash of keys' last uses. ARGV: the number of counters; four
# per counter: its quota, its lifetime in seconds, what the request costs it (0: it only has to
# be below its quota; a request costs 1, a batch of jobs one per job) and nothing; then, for a
# request with a key, the key's id and the time. Returns each counter's count, then 1 when the
# request is allowed, else 0.
COUNT_SCRIPT = """
local n = tonumber(ARGV[1])
local counts = {}
local allowed = 1
for i = 1, n do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  local cost = tonumber(ARGV[4 * i])
  if counts[i] + math.max(cost, 1) > tonumber(ARGV[4 * i - 2]) then allowed = 0 end
end
if allowed == 1 then
  for i = 1, n do
    local cost = tonumber(ARGV[4 * i])
    if cost > 0 then
      counts[i] = redis.call('INCRBY', KEYS[i], cost)
      if counts[i] == cost then redis.call('EXPIRE', KEYS[i], ARGV[4 * i - 1]) end
    end
  end
end
if #KEYS > n then
  redis.call('HSET', KEYS[n + 1], ARGV[4 * n + 2], ARGV[4 * n + 3])
end
counts[n + 1] = allowed
return counts
"""
# Takes the keys' last uses noted since the last take: every field of the hash, which is gone.
TAKE_USES_SCRIPT = """
local uses = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return uses
"""
KEY_USES = "access:api-key-last-uses"


@dataclass(frozen=True)
class Policy:
    """A quota of requests per window, named as in the ``RateLimit-Policy`` header."""

    name: str
    quota: int
    window: int
    description: str


@dataclass(frozen=True)
class Counter:
    """A policy applied to one partition (``key:<id>`` or ``ip:<address>``). A counter that a
    request does not use up only has to be below its quota for the request to pass; one it uses
    up must have room for its ``cost`` (a request is 1, a batch of jobs one per job)."""

    policy: Policy
    partition: str
    uses_up: bool = True
    cost: int = 1

    @property
    def charge(self) -> int:
        """What the request adds to the counter: its cost, or nothing."""
        return self.cost if self.uses_up else 0


@dataclass(frozen=True)
class Usage:
    policy: Policy
    used: int
    reset_at: int
    seconds_left: int

    @property
    def remaining(self) -> int:
        return max(0, self.policy.quota - self.used)


@dataclass(frozen=True)
class RateLimitState:
    """What a request's response says about its limits: those it counted against and, when it
    was refused, the one that refused it."""

    usages: list[Usage]
    refused_by: Usage | None = None

    def headers(self) -> dict[str, str]:
        """Seed 000's ``X-RateLimit-*`` for the refusing limit or the one closest to running
        out, and the IETF draft's ``RateLimit-Policy`` and ``RateLimit`` for all of them
        (draft-ietf-httpapi-ratelimit-headers-11)."""
        shown = self.refused_by or min(
            self.usages, key=lambda usage: (usage.remaining, -usage.seconds_left)
        )
        return {
            "X-RateLimit-Limit": str(shown.policy.quota),
            "X-RateLimit-Remaining": str(shown.remaining),
            "X-RateLimit-Reset": str(shown.reset_at),
            "RateLimit-Policy": ", ".join(
                f'"{usage.policy.name}";q={usage.policy.quota};w={usage.policy.window}'
                for usage in self.usages
            ),
            "RateLimit": ", ".join(
                f'"{usage.policy.name}";r={usage.remaining};t={usage.seconds_left}'
                for usage in self.usages
            ),
        }


class RateLimitExceeded(exceptions.Throttled):
    """429 ``RATE_LIMIT_EXCEEDED`` in the endpoint's contract, with ``Retry-After``."""

    extra_detail_singular = "Please retry after {wait} second."
    extra_detail_plural = "Please retry after {wait} seconds."

    def __init__(self, usage: Usage):
        super().__init__(
            wait=usage.seconds_left, detail=f"Too many requests: {usage.policy.description}."
        )


def plan_of(caller: Caller) -> str:
    if settings.RATE_LIMIT_PLAN_OVERRIDE:
        return settings.RATE_LIMIT_PLAN_OVERRIDE
    if caller.company_id is None:
        return settings.RATE_LIMIT_OPS_PLAN
    return caller.plan


def caller_counters(request, caller: Caller, *, refused: bool = False) -> list[Counter]:
    """The key's limits for this request, and its address's, which it only has to be within.
    A request ``refused`` before its work (a scope the key lacks) is only a request: it creates
    no job, so it counts against the requests a minute alone."""
    limits = settings.RATE_LIMIT_PLANS[plan_of(caller)]
    policies = [("requests", limits["requests_per_minute"], MINUTE, "requests a minute")]
    if (request.method, request.path_info) == JOB_CREATION and not refused:
        policies += [
            ("job-creation", limits["job_creations_per_minute"], MINUTE, "job creations a minute"),
            (
                "job-creation-hourly",
                limits["job_creations_per_hour"],
                HOUR,
                "job creations an hour",
            ),
        ]
    partition = f"key:{caller.key_id}"
    counters = [
        Counter(
            Policy(name, quota, window, f"the limit is {quota} {what} for this API key"), partition
        )
        for name, quota, window, what in policies
    ]
    return [*counters, address_counter(request, uses_up=False)]


def ingested_jobs_limit(request, caller: Caller, *, jobs: int) -> None:
    """Count a batch's jobs against the key's jobs ingested an hour, each job one: the batch
    passes whole or is refused whole (``RateLimitExceeded``), so a batch larger than what is
    left waits for the window to end (or is split). Batch ingestion's counterpart of the job
    creations a request to ``POST /api/v1/jobs/`` counts against."""
    quota = settings.RATE_LIMIT_PLANS[plan_of(caller)]["ingested_jobs_per_hour"]
    policy = Policy(
        "ingested-jobs-hourly",
        quota,
        HOUR,
        f"the limit is {quota} jobs ingested an hour for this API key; this batch holds {jobs}",
    )
    rate_limit(request, [Counter(policy, f"key:{caller.key_id}", cost=jobs)])


def client_address(request) -> str:
    """The connection's address (django-ratelimit's ``RATELIMIT_IP_META_KEY``). A request
    without one (an app server behind a proxy on a Unix socket) counts as 0.0.0.0: one budget
    shared by every such request, rather than a 500. Pass the client's address through."""
    return request.META.get("REMOTE_ADDR") or "0.0.0.0"


def address_counter(request, *, uses_up: bool = True) -> Counter:
    quota = settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE
    policy = Policy(
        "ip",
        quota,
        MINUTE,
        f"the limit is {quota} requests a minute without a valid API key from this address",
    )
    return Counter(policy, f"ip:{ratelimit_core._get_ip(request)}", uses_up=uses_up)


def rate_limit(request, counters: list[Counter], *, key_id: str | None = None) -> None:
    """Count the request against ``counters`` and remember the outcome for its response's
    headers; ``RateLimitExceeded`` when it is over any of them. When the cache fails the request
    passes, unlimited and without the headers, and a warning is logged (one a minute).

    On Redis, the same round trip notes that the API key ``key_id`` was used now (see
    ``notes_key_uses``)."""
    if not settings.RATELIMIT_ENABLE:
        return
    cache = caches[settings.RATELIMIT_USE_CACHE]
    try:
        if isinstance(cache, RedisCache):
            counted = _count_in_redis(cache, counters, key_id=key_id)
        else:
            counted = _count_in_cache(request, counters)
    except RedisError as exc:
        counted = None
        _redis_failed_log.warning("Rate limits not checked, Redis failed: %s", exc)
    if counted is None:
        return
    usages, allowed = counted
    refused_by = None
    if not allowed:
        refused_by = next(
            usage
            for counter, usage in zip(counters, usages, strict=True)
            if usage.used + max(counter.charge, 1) > usage.policy.quota
        )
    shown = [
        usage
        for counter, usage in zip(counters, usages, strict=True)
        if counter.uses_up or usage is refused_by
    ]
    # DRF's request wraps Django's, which the headers middleware sees. A request counted twice
    # (a batch's jobs after the request itself) shows every limit it counted against.
    django_request = getattr(request, "_request", request)
    earlier = getattr(django_request, "rate_limit", None)
    state = RateLimitState([*(earlier.usages if earlier else []), *shown], refused_by)
    django_request.rate_limit = state
    if refused_by is not None:
        metrics.rate_limit_rejections.labels(refused_by.policy.name).inc()
        raise RateLimitExceeded(refused_by)


def notes_key_uses() -> bool:
    """Whether counting a key's requests also notes its last use (on Redis), for
    ``key_uses_take`` to hand to the database in bulk, instead of each request writing it."""
    return settings.RATELIMIT_ENABLE and isinstance(
        caches[settings.RATELIMIT_USE_CACHE], RedisCache
    )


def key_uses_take() -> dict[str, datetime]:
    """The API keys' last uses noted since the last take, ``{key id: when}``; they are gone
    from Redis."""
    if not notes_key_uses():
        return {}
    cache = caches[settings.RATELIMIT_USE_CACHE]
    client = cache._cache.get_client(write=True)
    fields = client.register_script(TAKE_USES_SCRIPT)(keys=[cache.make_and_validate_key(KEY_USES)])
    return {
        key_id.decode(): datetime.fromtimestamp(float(when), tz=UTC)
        for key_id, when in zip(fields[::2], fields[1::2], strict=True)
    }


def _count_in_redis(
    cache: RedisCache, counters: list[Counter], *, key_id: str | None
) -> tuple[list[Usage], bool]:
    windows = [
        ratelimit_core._get_window(counter.partition, counter.policy.window) for counter in counters
    ]
    keys = [
        cache.make_and_validate_key(_cache_key(counter, window))
        for counter, window in zip(counters, windows, strict=True)
    ]
    arguments = [len(counters)]
    for counter in counters:
        lifetime = counter.policy.window + ratelimit_core.EXPIRATION_FUDGE
        arguments += [counter.policy.quota, lifetime, counter.charge, 0]
    if key_id is not None:
        keys.append(cache.make_and_validate_key(KEY_USES))
        arguments += [key_id, f"{time.time():.6f}"]
    *counts, allowed = _count_script(cache)(keys=keys, args=arguments)
    now = int(time.time())
    usages = [
        _usage_until(counter.policy, count, window, now)
        for counter, count, window in zip(counters, counts, windows, strict=True)
    ]
    return usages, bool(allowed)


def _count_script(cache: RedisCache) -> Script:
    """The counting script, bound to a client of the cache's connection pool once per cache
    connection: making a client and hashing the script cost more than the rest of a count."""
    connection = cache._cache
    script = _COUNT_SCRIPTS.get(connection)
    if script is None:
        script = connection.get_client(write=True).register_script(COUNT_SCRIPT)
        _COUNT_SCRIPTS[connection] = script
    return script


_COUNT_SCRIPTS: WeakKeyDictionary = WeakKeyDictionary()


def _usage_until(policy: Policy, used: int, window: int, now: int) -> Usage:
    # django-ratelimit names a window by its last second: the next one begins a second later.
    reset_at = window + 1
    return Usage(policy, used, reset_at, max(1, reset_at - now))


def _cache_key(counter: Counter, window: int) -> str:
    rate = (counter.policy.quota, counter.policy.window)
    return ratelimit_core._make_cache_key(counter.policy.name, window, rate, counter.partition, ALL)


def _count_in_cache(request, counters: list[Counter]) -> tuple[list[Usage], bool] | None:
    now = int(time.time())
    before = [_usage(request, counter, increment=False) for counter in counters]
    if None in before:
        return None
    allowed = all(
        usage["count"] + max(counter.charge, 1) <= usage["limit"]
        for counter, usage in zip(counters, before, strict=True)
    )
    after = before
    if allowed:
        after = [
            _usage_charged(request, counter) if counter.uses_up else usage
            for counter, usage in zip(counters, before, strict=True)
        ]
        if None in after:
            return None
    usages = [
        _usage_until(counter.policy, usage["count"], now + usage["time_left"], now)
        for counter, usage in zip(counters, after, strict=True)
    ]
    return usages, allowed


def _usage_charged(request, counter: Counter) -> dict | None:
    """The counter's usage once charged its cost: django-ratelimit counts one, the cache the
    rest."""
    usage = _usage(request, counter, increment=True)
    if usage is not None and counter.cost > 1:
        window = ratelimit_core._get_window(counter.partition, counter.policy.window)
        cache = caches[settings.RATELIMIT_USE_CACHE]
        usage["count"] = cache.incr(_cache_key(counter, window), counter.cost - 1)
    return usage


def _usage(request, counter: Counter, *, increment: bool) -> dict | None:
    return ratelimit_core.get_usage(
        request,
        group=counter.policy.name,
        key=lambda group, request: counter.partition,
        rate=(counter.policy.quota, counter.policy.window),
        increment=increment,
    )


class ApiKeyRateThrottle(BaseThrottle):
    """DRF's throttle step, after authentication and permissions: a request with a usable key
    counts against the key's limits. Requests without one were counted by the authentication
    (``access.authentication``); views that authenticate nobody are not limited."""

    def allow_request(self, request, view):
        if isinstance(request.user, Caller):
            caller = request.user
            rate_limit(request, caller_counters(request, caller), key_id=caller.key_id)
        return True


class RateLimitHeadersMiddleware:
    """Puts a counted request's rate-limit headers on its response, whatever its status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        state = getattr(request, "rate_limit", None)
        if state is not None:
            for name, value in state.headers().items():
                response[name] = value
        return response
