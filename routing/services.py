import time
import uuid

from django.conf import settings
from django.core.cache import cache

from routing.tasks import relay_outbox

RELAY_KICK_KEY = "routing:outbox-relay-kick"
# Another process's window may end a little earlier by our clock; stop trusting it this early.
CLOCK_SKEW_SECONDS = 0.05

_kick_window_end = 0.0


def outbox_relay_kick() -> None:
    """Make sure a relay run starts after this moment, so events just committed are relayed
    within ``OUTBOX_KICK_WINDOW_SECONDS``.

    Kicks are batched in windows shared by all processes through the cache: the first kick of a
    window schedules one relay run at the window's end, and every later kick in that window is
    covered by that run. A process remembers the current window's end and skips even the cache
    until then, so a burst of jobs costs one message and about one cache call per process per
    window. A lost kick is caught by the relay's beat entry.
    """
    global _kick_window_end
    now = time.time()
    if now < _kick_window_end - CLOCK_SKEW_SECONDS:
        return
    window = settings.OUTBOX_KICK_WINDOW_SECONDS
    proposal = f"{now + window:.6f}:{uuid.uuid4().hex}"
    current = cache.get_or_set(RELAY_KICK_KEY, proposal, timeout=window)
    _kick_window_end = float(str(current).split(":", 1)[0])
    if current == proposal:
        try:
            relay_outbox.apply_async(countdown=window)
        except Exception:
            # Nothing was scheduled: let the next kick try again instead of trusting this window.
            cache.delete(RELAY_KICK_KEY)
            _kick_window_end = 0.0
            raise


def outbox_relay_kick_forget() -> None:
    """Forget this process's window (tests, or after the cache was flushed)."""
    global _kick_window_end
    _kick_window_end = 0.0
