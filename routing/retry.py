"""The retry policy: how long to wait before the next attempt after a failure, for every retry
in the product. Schedules are settings, read when asked so tests and ops can change them."""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RetryPolicy:
    """Waits from the setting ``schedule_setting`` (in ``unit_seconds``): the wait before the
    2nd, 3rd, ... attempt. A failure's own Retry-After is honoured when longer, up to the
    setting ``retry_after_cap_setting``, when the policy names one."""

    schedule_setting: str
    unit_seconds: float = 1.0
    retry_after_cap_setting: str = ""

    @property
    def retries(self) -> int:
        return len(getattr(settings, self.schedule_setting))

    def delay(self, *, retries_so_far: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after ``retries_so_far`` retries have already been
        made (0 after the first attempt failed), or None when the retries are used up."""
        schedule = getattr(settings, self.schedule_setting)
        if retries_so_far >= len(schedule):
            return None
        delay = float(schedule[retries_so_far]) * self.unit_seconds
        if retry_after and self.retry_after_cap_setting:
            cap = getattr(settings, self.retry_after_cap_setting)
            delay = max(delay, min(retry_after, cap))
        return delay


# A routing's push to its provider, and the ServiceTitan queue tasks (seed 001: 5 s, 10 s,
# 20 s), honouring a provider's Retry-After.
PROVIDER_CALL_RETRY = RetryPolicy(
    schedule_setting="SYNC_RETRY_BACKOFF_SECONDS",
    retry_after_cap_setting="SYNC_MAX_RETRY_AFTER_SECONDS",
)
# A client's processing run (seed 004: 1 h, 2 h, 4 h, then an alert).
CLIENT_PROCESSING_RETRY = RetryPolicy(
    schedule_setting="PROCESSING_RETRY_BACKOFF_HOURS", unit_seconds=3600.0
)
# An outbound webhook delivery (Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
WEBHOOK_DELIVERY_RETRY = RetryPolicy(schedule_setting="WEBHOOK_RETRY_SCHEDULE_SECONDS")
