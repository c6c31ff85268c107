"""Idempotent requests: the ``Idempotency-Key`` header of the IETF draft "The Idempotency-Key
HTTP Header Field" (https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/),
as Stripe practises it (https://docs.stripe.com/api/idempotent_requests).

A key belongs to the API key that sent it and is remembered for a day. The response to its
first successful request is stored in the transaction that stores the request's effects, so a
job is never stored without its key's response, nor a response without its job, and a request
that fails leaves nothing behind: the client may send it again with the same key. A retry of
the same request gets the stored response again; a key sent with another request answers 422.

While a request holds its key, another with the same key answers 409. On PostgreSQL the key is
held with a session advisory lock, which costs no write and is let go when the request ends or
its connection dies; the unique index on the stored keys is what guarantees a single job even
so. The embedded SQLite default takes no such lock: two requests with one key at once both do
their work, and the unique index rolls back the second, which then answers with the first's
response.
"""

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import DatabaseError, IntegrityError, connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from access.models import IdempotencyKey
from tradeengage.exceptions import ConflictError

logger = logging.getLogger("tradeengage.idempotency")

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")

MALFORMED_KEY = "Must be 1 to 255 printable ASCII characters."
KEY_REUSED = "This key was already used with another request; a new request needs a new key."
IN_PROGRESS = (
    "A request with this Idempotency-Key is still in progress; send it again once it has finished."
)


class KeyUsedMeanwhile(Exception):
    """Another request stored a response for the key after this one found it free: this
    request's transaction must be undone, and the other's response is the answer."""


def idempotency_key_read(request) -> str | None:
    """The request's ``Idempotency-Key``, or None without one; a malformed one is 422."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is not None and not KEY_PATTERN.fullmatch(key):
        raise exceptions.ValidationError({IDEMPOTENCY_KEY_HEADER: MALFORMED_KEY})
    return key


def request_fingerprint(request) -> str:
    """SHA-256 of the method, the path and the canonical JSON of the parsed body: the same
    request however its JSON was spaced or its keys ordered."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=JSONEncoder)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


Remember = Callable[[Response], None]


def idempotent_response(*, request, key: str, respond: Callable[[Remember], Response]) -> Response:
    """``respond(remember)``'s response, produced at most once for the caller's API key and
    ``key``; a retry gets it again with ``Idempotent-Replayed: true``.

    ``respond`` must call ``remember(response)`` with its successful response inside the
    transaction that stores its effects, as that transaction's last write (``remember`` raises
    ``KeyUsedMeanwhile`` when the key was taken meanwhile, and the transaction must be undone
    by letting it propagate). A response never remembered is stored nowhere.
    """
    idempotent = IdempotentRequest(
        key_id=request.user.key_id, key=key, fingerprint=request_fingerprint(request)
    )
    with idempotent.held():
        stored = idempotent.stored_response()
        if stored is not None:
            return stored
        try:
            return respond(idempotent.remember)
        except KeyUsedMeanwhile:
            stored = idempotent.stored_response()
            if stored is None:  # and gone again: it expired or was purged just now
                raise ConflictError(IN_PROGRESS) from None
            return stored


class IdempotentRequest:
    """A request sent with an ``Idempotency-Key`` by the API key ``key_id``."""

    def __init__(self, *, key_id: str, key: str, fingerprint: str):
        self.key_id, self.key, self.fingerprint = key_id, key, fingerprint

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the key for the block: 409 when another request holds it (PostgreSQL)."""
        if connection.vendor != "postgresql":
            yield
            return
        lock = self._lock_id()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock])
            if not cursor.fetchone()[0]:
                raise ConflictError(IN_PROGRESS)
        try:
            yield
        finally:
            self._let_go(lock)

    def _lock_id(self) -> int:
        """The advisory lock's 64-bit id: the first bytes of a hash of the API key and key."""
        digest = hashlib.sha256(f"idempotency\n{self.key_id}\n{self.key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    @staticmethod
    def _let_go(lock: int) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock])
        except DatabaseError:
            # A connection that cannot say it let go may still hold the lock, and would refuse
            # the key for as long as it lives: drop it, and the lock with it.
            logger.warning("Could not release an Idempotency-Key lock; closing the connection")
            connection.close()

    def stored_response(self, now: datetime | None = None) -> Response | None:
        """The response stored for the key, to replay; None when the key is free (never used,
        or used over a day ago: that use is forgotten). 422 when it came with another
        request."""
        expired_before = IdempotencyKey.expired_before(now or timezone.now())
        stored = IdempotencyKey.objects.stored(
            api_key_id=self.key_id, key=self.key, expired_before=expired_before
        )
        if stored is None:
            return None
        if stored.expired:
            IdempotencyKey.objects.filter(
                api_key_id=self.key_id, key=self.key, created_at__lte=expired_before
            ).delete()
            return None
        if stored.fingerprint != self.fingerprint:
            raise exceptions.ValidationError({IDEMPOTENCY_KEY_HEADER: KEY_REUSED})
        return Response(
            json.loads(stored.body), status=stored.status, headers={REPLAYED_HEADER: "true"}
        )

    def remember(self, response: Response) -> None:
        """Store ``response`` for the key, in the caller's transaction."""
        if not 200 <= response.status_code < 300:
            raise ValueError(f"only a success is remembered, not a {response.status_code}")
        try:
            IdempotencyKey.objects.store(
                api_key_id=self.key_id,
                key=self.key,
                fingerprint=self.fingerprint,
                created_at=timezone.now(),
                response_status=response.status_code,
                response_body=json.dumps(response.data, cls=JSONEncoder),
            )
        except IntegrityError as exc:
            raise KeyUsedMeanwhile from exc


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete the keys older than ``IdempotencyKey.KEPT_FOR``; returns how many. Requests
    ignore expired keys anyway, so this only keeps the table small."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(
        created_at__lte=IdempotencyKey.expired_before(now)
    ).delete()
    return deleted
