"""Structured logging: a correlation id per request or task, and a JSON line formatter."""

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator

import pythonjsonlogger.json

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is emitted.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "correlation_id",
}


# What the current request's one log line says about its outcome, beyond method, path and status.
_request_outcome: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "request_outcome", default=None
)


def get_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)


@contextlib.contextmanager
def correlation_id_as(value: str | None) -> Iterator[None]:
    """The correlation id for the block (a job's, while its sync calls the provider)."""
    token = _correlation_id.set(value)
    try:
        yield
    finally:
        _correlation_id.reset(token)


@contextlib.contextmanager
def request_outcome_collected() -> Iterator[dict]:
    """The fields the request's handling notes with ``request_outcome_note``, for its log line."""
    outcome: dict = {}
    token = _request_outcome.set(outcome)
    try:
        yield outcome
    finally:
        _request_outcome.reset(token)


def request_outcome_note(message: str, **fields) -> bool:
    """Say what the current request did, in its log line (seed 000: "Job created successfully"
    with job_id and matching_score). False outside a request (a worker, a command), where the
    caller logs a line of its own."""
    outcome = _request_outcome.get()
    if outcome is None:
        return False
    outcome.update(fields, message=message)
    return True


class CorrelationIdFilter(logging.Filter):
    """The current correlation id on every record, unless the line names its own
    (``extra={"correlation_id": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = _correlation_id.get() or "-"
        return True


class TaskArgumentsFilter(logging.Filter):
    """Celery's own task lines ("received", "succeeded") carry the task's arguments in their
    ``data``: ids by the batch, which made most of a worker's log. Keep the task's name, id,
    runtime and result; drop its arguments."""

    HIDDEN = ("args", "kwargs")

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if record.name.startswith("celery.") and isinstance(data, dict):
            record.data = {key: value for key, value in data.items() if key not in self.HIDDEN}
        return True


def _extras(record: logging.LogRecord) -> dict:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class ConsoleFormatter(logging.Formatter):
    """Readable lines for development: the message, then the structured fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        return f"{line} {fields}" if fields else line


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object per line (python-json-logger): timestamp, level, logger, message,
    correlation id, then every field the line passed in ``extra=``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", ["levelname", "name", "message", "correlation_id"])
        kwargs.setdefault(
            "rename_fields", {"levelname": "level", "name": "logger", "exc_info": "exception"}
        )
        kwargs.setdefault("timestamp", True)
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        if not log_data.get("correlation_id"):
            log_data["correlation_id"] = _correlation_id.get()


class Throttled:
    """One log line per ``seconds`` for a condition that repeats while it lasts (an outage): the
    first occurrence is logged, the next ones are counted, and the first after the interval
    says how many were not logged."""

    def __init__(self, logger: logging.Logger, seconds: float):
        self.logger = logger
        self.seconds = seconds
        self._lock = threading.Lock()
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args, **kwargs) -> bool:
        """Log ``message`` at WARNING unless one was logged within the interval. Returns
        whether it was logged."""
        with self._lock:
            now = time.monotonic()
            if now < self._next_at:
                self._suppressed += 1
                return False
            suppressed, self._suppressed = self._suppressed, 0
            self._next_at = now + self.seconds
        if suppressed:
            message += f" ({suppressed} more since the last such line)"
        self.logger.warning(message, *args, **kwargs)
        return True

    def reset(self) -> None:
        with self._lock:
            self._next_at, self._suppressed = 0.0, 0
