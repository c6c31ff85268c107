from celery import shared_task

from access.idempotency import idempotency_keys_purge
from access.services import api_key_uses_record


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> int:
    """Beat every hour: delete the Idempotency-Key records older than a day."""
    return idempotency_keys_purge()


@shared_task(ignore_result=True)
def record_api_key_uses() -> int:
    """Beat every minute: the keys' last uses noted in Redis, written to the database."""
    return api_key_uses_record()
