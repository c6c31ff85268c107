from celery import shared_task
from django.utils.dateparse import parse_date

from processing.services.runs import nightly_run, processing_job_run, retry_queue_process


@shared_task(ignore_result=True)
def process_client(job_id: str) -> None:
    """Run one client's processing job (see ``processing.services.runs.processing_job_run``). A
    redelivered message finds the job no longer pending and does nothing."""
    processing_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def run_nightly(day: str | None = None) -> dict:
    """Beat at midnight: one processing job per client due today, then the retry queue."""
    return nightly_run(
        day=parse_date(day) if day else None,
        enqueue=lambda job_id: process_client.delay(str(job_id)),
    )


@shared_task(ignore_result=True)
def process_retry_queue() -> dict:
    """Beat every 15 minutes: run the due retries (claimed in the database, not by countdowns)."""
    return retry_queue_process()
