"""ServiceTitan's request budget (60 requests/s per app per tenant) as a token bucket, shared by
every worker process through Redis when ``REDIS_URL`` is set, else kept in this process."""

import functools
import threading
import time

import redis

from integrations import http
from integrations.providers import RetryableProviderError

TOKEN_EPSILON = 1e-9

# The process-local request budget: key -> (tokens left, when they were counted).
_local_buckets: dict[str, tuple[float, float]] = {}
_local_lock = threading.Lock()

# The same arithmetic as _bucket_take, atomically in Redis. KEYS[1]: the bucket; ARGV: the rate
# (= capacity) and the caller's clock. The stamp never moves back (see RateLimiter._take).
TOKEN_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamped')
local tokens = tonumber(state[1]) or rate
local stamped = tonumber(state[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - stamped) * rate)
local wait = 0
if tokens >= 1 - 1e-9 then tokens = math.max(tokens - 1, 0) else wait = (1 - tokens) / rate end
stamped = math.max(now, stamped)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamped', tostring(stamped))
redis.call('EXPIRE', KEYS[1], 10)
return tostring(wait)
"""


class RateLimiter:
    """A token bucket of ``limit`` requests per second under ``key``: up to ``limit`` at once,
    refilled at ``limit`` per second. Kept in Redis when a client is given (one atomic script,
    so every worker process draws on the same bucket), else in this process. The callers'
    clocks stamp the bucket, so worker hosts should keep their clocks in sync (NTP)."""

    def __init__(
        self,
        key: str,
        limit: int,
        *,
        redis_client: redis.Redis | None = None,
        clock=time.time,
        sleep=time.sleep,
    ):
        self.key = key
        self.limit = limit
        self.redis = redis_client
        self.clock = clock
        self.sleep = sleep

    def acquire(self, timeout: float) -> None:
        """Take one token, sleeping until one is there; ``RetryableProviderError`` ("Rate
        Limited") when that would take longer than ``timeout`` seconds."""
        deadline = self.clock() + timeout
        while True:
            now = self.clock()
            wait = self._take(now)
            if wait <= 0:
                return
            if now + wait > deadline:
                raise RetryableProviderError(
                    f"ServiceTitan request budget of {self.limit}/s for {self.key} is spent; "
                    f"the next request is allowed in {wait:.3f} s, after the call's {timeout:g} s "
                    "timeout",
                    retry_after=wait,
                    code="Rate Limited",
                )
            self.sleep(wait)

    def _take(self, now: float) -> float:
        """Take a token if there is one: 0. Else the seconds until there is one."""
        if self.redis is None:
            with _local_lock:
                tokens, stamped = _local_buckets.get(self.key, (float(self.limit), now))
                tokens, wait = _bucket_take(tokens, stamped, now, self.limit)
                # A caller whose clock reading is older must not move the stamp back, or the
                # next caller would be refilled for the same time twice.
                _local_buckets[self.key] = (tokens, max(now, stamped))
            return wait
        with shared_state():
            return float(self.redis.eval(TOKEN_BUCKET_SCRIPT, 1, self.key, self.limit, repr(now)))


def _bucket_take(tokens: float, stamped: float, now: float, rate: int) -> tuple[float, float]:
    """The bucket refilled from ``stamped`` to ``now`` and one token taken: the tokens left and
    0, or, when there is no whole token, the tokens and the seconds until there is one."""
    tokens = min(float(rate), tokens + max(0.0, now - stamped) * rate)
    if tokens >= 1 - TOKEN_EPSILON:  # a refill computed from a float clock may fall just short
        return max(tokens - 1, 0.0), 0.0
    return tokens, (1 - tokens) / rate


@functools.cache
def redis_for(url: str) -> redis.Redis:
    """One Redis client (and connection pool) per URL for the process."""
    return redis.Redis.from_url(url)


def shared_state():
    """Redis holds the token and the request budget; without it no call can be made safely."""
    return http.shared_state("the ServiceTitan token and request budget")
