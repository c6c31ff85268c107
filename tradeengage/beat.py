"""celery-beat's scheduler: django-celery-beat's, surviving a database outage."""

import logging
import time

from django.db import DatabaseError, InterfaceError
from django_celery_beat.schedulers import DatabaseScheduler

from tradeengage import heartbeats
from tradeengage.db import is_database_unavailable
from tradeengage.logging import Throttled

logger = logging.getLogger("tradeengage.beat")
_outage_log = Throttled(logger, seconds=60)
_heartbeat_log = Throttled(logger, seconds=60)


class DatabaseOutageLogged(logging.Filter):
    """django-celery-beat logs a database error of its change check or of its saves with a
    traceback at ERROR, at every tick (every few seconds) while the database is away: 438 of
    them in a 6-minute outage. A record whose error is the database's outage is dropped here and
    counted in the scheduler's one warning a minute instead; any other error is logged as it
    was."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not is_database_unavailable(error):
            return True
        _outage_log.warning(
            "Beat could not reach the database (%s: %s); it keeps its schedule and tries again",
            type(error).__name__,
            str(error).strip(),
        )
        return False


logging.getLogger("django_celery_beat.schedulers").addFilter(DatabaseOutageLogged())


class OutageTolerantScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler re-reads the schedule from the database at least
    every 5 minutes and lets a database error out of that read, which ends beat: a PostgreSQL
    restart at the wrong moment, or any outage of 5 minutes or more, stopped every periodic
    task. This one keeps the schedule it has until a read succeeds (before the first one, it
    tries again at the next tick) and logs one warning a minute while the database is away; the
    next tick's change check closes the broken connection, as django-celery-beat's does."""

    def all_as_schedule(self):
        try:
            return super().all_as_schedule()
        except (DatabaseError, InterfaceError) as exc:
            _outage_log.warning(
                "Beat could not read its schedule (%s: %s); keeping the one it has",
                type(exc).__name__,
                str(exc).strip(),
            )
            if not self._schedule:
                self._initial_read = True  # nothing read yet: try again at the next tick
            return self._schedule or {}

    _next_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        """A tick, and every few seconds a heartbeat (``/api/v1/health/detailed`` reads it)."""
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + heartbeats.BEAT_INTERVAL_SECONDS
            try:
                heartbeats.beat_tick()
            except Exception as exc:
                _heartbeat_log.warning("Beat's heartbeat failed: %s", exc)
        return interval
