import subprocess
import sys

from django.conf import settings


def test_the_integrations_tasks_are_registered_in_a_process_that_imported_nothing_else():
    """A web process queues the CRM simulator's webhook deliveries by name: the task must be
    known there although no view imports ``integrations.tasks`` (it failed under make run)."""
    check = (
        "import django; django.setup(); from celery import current_app; "
        "assert 'integrations.tasks.crm_simulator_deliver_webhook' in current_app.tasks"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=settings.BASE_DIR,
        env={"DJANGO_SETTINGS_MODULE": "tradeengage.settings", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
