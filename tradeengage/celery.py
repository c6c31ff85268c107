import logging
import os

from celery import Celery, Task
from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_ready,
    worker_shutdown,
)
from django.db import close_old_connections
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tradeengage.db import is_database_unavailable
from tradeengage.heartbeats import WorkerHeartbeat
from tradeengage.logging import Throttled, get_correlation_id, set_correlation_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeengage.settings")

_outage_log = Throttled(logging.getLogger("tradeengage.celery"), seconds=60)


class OutageTolerantTask(Task):
    """A task that the database's outage stops is logged as one warning a minute, not a
    traceback per task: the work it was doing is still in the database (an outbox event, a
    claim whose lease runs out, a due run) and is picked up again once the database is back."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            _outage_log.warning(
                "Task %s stopped: the database is unavailable (%s: %s)",
                self.name,
                type(exc).__name__,
                str(exc).strip(),
            )
            return None


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        # Only a detached transport has no client: say so as the connection error it is.
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, but a worker that loses Redis while it holds unacknowledged
    messages reconnects instead of stopping (issue 16; kombu 5.7.0). After a connection error,
    Celery's consumer calls ``Connection.collect()``, which detaches the transport
    (``transport.client = None``) even when it could not close the task channel: closing it
    reads the BRPOP in flight from the dead socket and fails, and the remote-control and gossip
    channels' clean-up stops ``close_connection`` before it. ``connection.close()`` then closes
    the channel again, its QoS restores the held messages through a new connection pool, and
    building the pool reads ``transport.client.hostname``: an AttributeError, which kombu and
    Celery do not treat as a connection error, so the worker ended ("Unrecoverable error"). Our
    channel raises the connection error instead, which both catch. The held messages cannot be
    restored without Redis: they stay in its unacked set, from which a worker restores them
    after the visibility timeout, or they went with a Redis that restarted empty (the outbox's
    leases take their events again). Their acks fail the same way ("Couldn't ack", CRITICAL)."""

    Channel = RedisChannel


# kombu picks a broker URL's transport by its scheme.
TRANSPORT_ALIASES.update(redis=f"{__name__}:RedisTransport", rediss=f"{__name__}:RedisTransport")

app = Celery("tradeengage", task_cls=OutageTolerantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("critical", "high", "default", "low", "webhooks")]
app.autodiscover_tasks()


@before_task_publish.connect
def attach_correlation_id(headers=None, **kwargs):
    """Carry the request's correlation id into the task so its log lines can be joined."""
    correlation_id = get_correlation_id()
    if headers is not None and correlation_id and "correlation_id" not in headers:
        headers["correlation_id"] = correlation_id


@task_prerun.connect
def restore_correlation_id(task=None, **kwargs):
    set_correlation_id(getattr(task.request, "correlation_id", None) or task.request.id)


@task_postrun.connect
def clear_correlation_id(**kwargs):
    set_correlation_id(None)


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(task=None, **kwargs):
    """Keep a worker's database connections from task to task, as Django keeps them from request
    to request: drop only those that are broken or older than ``CONN_MAX_AGE``. Celery's own
    fixup would close every connection around every task (``CELERY_DB_REUSE_MAX`` makes it do
    so only once in that many tasks), and a new PostgreSQL connection costs the server a
    process, its catalog caches and the statements psycopg had prepared."""
    if not getattr(task.request, "is_eager", False):
        close_old_connections()


_heartbeat: WorkerHeartbeat | None = None


@worker_ready.connect
def start_heartbeat(sender=None, **kwargs):
    """Say, every few seconds, that this worker is alive and which queues it consumes
    (``/api/v1/health/detailed`` reads it)."""
    global _heartbeat
    _heartbeat = WorkerHeartbeat(sender.hostname, list(sender.app.amqp.queues.consume_from))
    _heartbeat.start()


@worker_shutdown.connect
def stop_heartbeat(**kwargs):
    if _heartbeat is not None:
        _heartbeat.stop()
