import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeengage.settings")

app = Celery("tradeengage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("critical", "high", "default", "low")]
app.autodiscover_tasks()


@before_task_publish.connect
def attach_correlation_id(headers=None, **kwargs):
    """Carry the request's correlation id into the task so its log lines can be joined."""
    from tradeengage.logging import get_correlation_id

    correlation_id = get_correlation_id()
    if headers is not None and correlation_id and "correlation_id" not in headers:
        headers["correlation_id"] = correlation_id


@task_prerun.connect
def restore_correlation_id(task=None, **kwargs):
    from tradeengage.logging import set_correlation_id

    set_correlation_id(getattr(task.request, "correlation_id", None) or task.request.id)


@task_postrun.connect
def clear_correlation_id(**kwargs):
    from tradeengage.logging import set_correlation_id

    set_correlation_id(None)
