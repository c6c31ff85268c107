"""seed 001 "Queue Processing": the ServiceTitan module's job types as Celery tasks (run eagerly
here), their retries and their dead letters in the outbox."""

import pytest

from integrations.models import SimulatedJob
from integrations.servicetitan.simulator.simulation import SimulatedServiceTitan
from integrations.servicetitan.types import Booking, booking_as_json
from integrations.tasks import servicetitan_health_check
from routing.models import OutboxEvent, OutboxStatus
from routing.tasks import (
    servicetitan_cancel_job,
    servicetitan_create_job,
    servicetitan_update_status,
)

pytestmark = pytest.mark.django_db

BOOKING = Booking(
    booking_id="booking_123",
    first_name="John",
    last_name="Doe",
    phone="4805551234",
    email="john.doe@email.com",
    address="123 Main St",
    city="Phoenix",
    state="AZ",
    zip="85001",
    problem_type="broken_spring",
)


def test_job_creation_creates_the_job_and_logs_it(caplog):
    servicetitan_create_job.delay(booking_as_json(BOOKING))

    assert SimulatedJob.objects.get().booking_id == "booking_123"
    assert "ServiceTitan job created successfully" in caplog.text


def test_a_permanent_error_fails_at_once_logged_and_dead_lettered(caplog):
    booking = booking_as_json(Booking(**{**BOOKING.__dict__, "email": "error@test.com"}))

    servicetitan_create_job.delay(booking)

    [line] = [r for r in caplog.records if r.getMessage().endswith("failed permanently")]
    assert line.getMessage() == "ServiceTitan job creation failed permanently"
    assert (line.booking_id, line.attempts) == ("booking_123", 1)
    assert line.error == "Customer already exists: error@test.com"
    dead = OutboxEvent.objects.get()
    assert (dead.event_type, dead.status) == ("servicetitan_job_creation", OutboxStatus.DEAD)
    assert dead.event_data["booking"]["email"] == "error@test.com"
    assert dead.last_error == line.error


def test_a_retryable_error_is_retried_three_times_then_dead_lettered(settings, caplog):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "simulation_failure_rate": 1.0}

    servicetitan_create_job.delay(booking_as_json(BOOKING))

    [line] = [r for r in caplog.records if r.getMessage().endswith("failed permanently")]
    assert line.attempts == 4  # the first try and three retries
    assert OutboxEvent.objects.get().attempts == 4
    assert not SimulatedJob.objects.exists()


def test_status_update_and_an_invalid_transition(caplog):
    job = SimulatedServiceTitan({}).create_job(BOOKING)

    servicetitan_update_status.delay(job.id, "dispatched")
    servicetitan_update_status.delay(job.id, "scheduled")
    servicetitan_update_status.delay(job.id, "completed")

    assert SimulatedJob.objects.get().status == "scheduled"
    dead = OutboxEvent.objects.get()
    assert dead.event_type == "servicetitan_status_update"
    assert "Invalid status transition: scheduled -> completed" in dead.last_error


def test_cancellation():
    job = SimulatedServiceTitan({}).create_job(BOOKING)

    servicetitan_cancel_job.delay(job.id, "Customer cancelled appointment")

    cancelled = SimulatedJob.objects.get()
    assert (cancelled.status, cancelled.cancel_reason) == (
        "cancelled",
        "Customer cancelled appointment",
    )


def providers_of(api_client) -> dict:
    detailed = api_client.get("/api/v1/health/detailed").json()
    return detailed["components"]["external_apis"]["providers"]


def test_the_health_check_feeds_the_detailed_health(api_client):
    assert providers_of(api_client)["servicetitan"] == ("not_checked")

    result = servicetitan_health_check.delay().get()

    assert (result["status"], result["version"]) == ("healthy", "simulation-v1.0.0")

    assert providers_of(api_client)["servicetitan"] == "healthy"


def test_the_tasks_go_to_the_seed_priorities(settings):
    routes = settings.CELERY_TASK_ROUTES
    assert routes["routing.tasks.servicetitan_create_job"]["queue"] == "critical"
    assert routes["routing.tasks.servicetitan_cancel_job"]["queue"] == "high"
    assert routes["routing.tasks.servicetitan_update_status"]["queue"] == "default"
    assert routes["integrations.tasks.servicetitan_health_check"]["queue"] == "low"
    assert "servicetitan-health-check" in settings.CELERY_BEAT_SCHEDULE
