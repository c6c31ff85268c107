from celery import shared_task

from access.idempotency import idempotency_keys_purge


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> int:
    """Beat every hour: delete the Idempotency-Key records older than a day."""
    return idempotency_keys_purge()
