"""Idempotent requests: the ``Idempotency-Key`` header of the IETF draft "The Idempotency-Key
HTTP Header Field" (https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/),
as Stripe practises it (https://docs.stripe.com/api/idempotent_requests).

A key belongs to the API key that sent it and is remembered for a day. Its first request claims
it (a row, unfinished, committed at once); the request's writes and the response they produced
are then committed together, so a job is never stored without its key's response, nor a
response without its job. A retry of the same request gets that response again; a request
still running answers 409; a key sent with another request answers 422. A request that fails
keeps nothing, so the client may send it again with the same key. On PostgreSQL the unique
index decides between two requests claiming one key at once.
"""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from access.models import IdempotencyKey
from tradeengage.exceptions import ConflictError

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")
# A claim can be lost between reading a row and taking it (its holder failed and let it go, or
# another request took over an expired row); after this many tries the request is told to retry.
CLAIM_ATTEMPTS = 3

MALFORMED_KEY = "Must be 1 to 255 printable ASCII characters."
KEY_REUSED = "This key was already used with another request; a new request needs a new key."
IN_PROGRESS = (
    "A request with this Idempotency-Key is still in progress; send it again once it has finished."
)


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


def idempotent_response(*, request, key: str, respond: Callable[[], Response]) -> Response:
    """``respond()``'s response, produced at most once for the caller's API key and ``key``.

    A successful (2xx) response is stored in the transaction that runs ``respond()``, so what
    ``respond()`` writes and the stored response commit together, and later requests with the
    same key and body get it again with ``Idempotent-Replayed: true``. Anything else, raised or
    returned, releases the key and is stored nowhere.
    """
    record = idempotency_key_claim(
        key_id=request.user.key_id, key=key, fingerprint=request_fingerprint(request)
    )
    if record.is_complete:
        return Response(
            json.loads(record.response_body),
            status=record.response_status,
            headers={REPLAYED_HEADER: "true"},
        )
    try:
        with transaction.atomic():
            response = respond()
            if status.is_success(response.status_code):
                body = json.dumps(response.data, cls=JSONEncoder)
                if not record.complete(status=response.status_code, body=body):
                    # The lease passed and a retry took the key over: this request must leave
                    # nothing behind, or the retry could store the same job a second time.
                    raise ConflictError(IN_PROGRESS)
    except Exception:
        record.release()
        raise
    if not record.is_complete:
        record.release()
    return response


def idempotency_key_claim(
    *, key_id: str, key: str, fingerprint: str, now: datetime | None = None
) -> IdempotencyKey:
    """The row of ``key`` for this request: either newly claimed by it (unfinished) or complete
    with the response to replay. Raises 422 when the key was used with another request (another
    fingerprint), 409 while the request holding it is still running.

    Expired rows (older than ``IdempotencyKey.KEPT_FOR``) and abandoned claims (unfinished
    past ``IdempotencyKey.LEASE``) are taken over as if the key were new.
    """
    now = now or timezone.now()
    for _ in range(CLAIM_ATTEMPTS):
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    api_key_id=key_id, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:
            pass
        record = IdempotencyKey.objects.filter(api_key_id=key_id, key=key).first()
        if record is None:
            continue  # its request failed and released it since our insert
        if record.is_expired(now) or record.is_abandoned(now):
            if record.claim_again(fingerprint=fingerprint, now=now):
                return record
            continue
        if record.fingerprint != fingerprint:
            raise exceptions.ValidationError({IDEMPOTENCY_KEY_HEADER: KEY_REUSED})
        if not record.is_complete:
            raise ConflictError(IN_PROGRESS)
        return record
    raise ConflictError(IN_PROGRESS)


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete the keys older than ``IdempotencyKey.KEPT_FOR``; returns how many. Claims ignore
    expired rows anyway, so this only keeps the table small."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(
        created_at__lte=now - IdempotencyKey.KEPT_FOR
    ).delete()
    return deleted
