import logging

from celery import shared_task
from django.utils import timezone

from routing.models import OutboxEvent, OutboxStatus

logger = logging.getLogger("routing")


@shared_task(ignore_result=True)
def relay_outbox() -> int:
    """Report how many outbox events are due. Job creation kicks this after commit.

    Claiming and dispatching the events to sync tasks is the sync engine's work (issue 4); until
    then the events stay pending, visible in the admin, and nothing is lost.
    """
    due = OutboxEvent.objects.filter(
        status=OutboxStatus.PENDING, available_at__lte=timezone.now()
    ).count()
    logger.log(
        logging.INFO if due else logging.DEBUG, "Outbox relay ran", extra={"due_events": due}
    )
    return due
