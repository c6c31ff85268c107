from django.conf import settings
from django.core.cache import cache

from routing.tasks import relay_outbox

RELAY_KICK_KEY = "routing:outbox-relay-kick"


def outbox_relay_kick() -> None:
    """Ask a worker to run the outbox relay soon.

    Kicks coalesce: while one is waiting for its relay run, no other is published, since that
    run will see every event committed before it starts (the relay clears the key before it
    scans). A lost kick costs at most ``OUTBOX_KICK_TTL_SECONDS`` before kicks resume, and the
    relay's beat entry finds the events in the meantime.
    """
    if cache.add(RELAY_KICK_KEY, 1, timeout=settings.OUTBOX_KICK_TTL_SECONDS):
        relay_outbox.delay()
