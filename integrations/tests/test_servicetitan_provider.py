"""Routings of ServiceTitan companies synced through the ServiceTitan service (the simulation
here): the booking mapped from the job, the seed's errors in the dead-letter queue, and
completions brought back by the back-sync."""

from decimal import Decimal

import pytest

from integrations.models import SimulatedJob
from integrations.providers import ProviderJobStatus
from integrations.servicetitan.mapping import job_from_booking, job_from_job
from integrations.servicetitan.provider import booking_for, job_status, problem_type_for
from integrations.servicetitan.simulator.simulation import SimulatedServiceTitan
from jobs.models import JobStatus, SkillLevel
from jobs.tests.factories import JobFactory, JobSkillFactory, category, skill
from routing.models import OutboxStatus, SyncStatus
from routing.outbox import outbox_relay
from routing.services.backsync import routings_backsync
from routing.services.calls import work_for
from routing.services.sync import outbox_events_sync
from routing.tests.factories import routing_with_event

pytestmark = pytest.mark.django_db


def trades_of(routing) -> tuple[str, ...]:
    slugs = routing.job.required_skills.values_list("skill__category__slug", flat=True)
    return tuple(slug for slug in slugs if slug)


def relay():
    outbox_relay(dispatch=lambda ids, at: outbox_events_sync(event_ids=ids, claimed_at=at))


def servicetitan_routing(**job):
    return routing_with_event(
        company__provider_type="servicetitan",
        job=JobFactory(**job),
    )


@pytest.mark.parametrize(
    ("summary", "category_slug", "skills", "expected"),
    [
        ("Garage door spring snapped", "garage_doors", [], "broken_spring"),
        ("Door came off track", "garage_doors", [], "door_off_track"),
        ("Opener beeps, door stays shut", "garage_doors", [], "opener_repair"),
        ("Door needs looking at", "garage_doors", [], "maintenance"),
        ("Leaky faucet", "plumbing", [], "plumbing"),
        ("Panel upgrade", None, ["electrical"], "electrical"),
        ("Something odd", None, [], "other"),
    ],
)
def test_the_problem_type_comes_from_the_summary_and_the_trade(
    summary, category_slug, skills, expected
):
    assert (
        problem_type_for(summary=summary, category=category_slug, skill_categories=skills)
        == expected
    )


def test_the_booking_is_mapped_from_the_job():
    routing, _ = servicetitan_routing(
        summary="Garage door spring snapped",
        homeowner_name="Jane Q Smith",
        homeowner_phone="(555) 987-6543",
        homeowner_email="jane@example.com",
        street="456 Oak Avenue",
        city="Springfield",
        state="IL",
        zip_code="62701-1234",
        category=category("garage_doors"),
    )

    booking = booking_for(work_for(routing, trades=trades_of(routing)))

    assert (booking.first_name, booking.last_name) == ("Jane", "Q Smith")
    assert (booking.phone, booking.email) == ("5559876543", "jane@example.com")
    assert (booking.address, booking.city, booking.state, booking.zip) == (
        "456 Oak Avenue",
        "Springfield",
        "IL",
        "62701",
    )
    assert booking.problem_type == "broken_spring"
    assert booking.booking_id == str(routing.id)
    assert booking.summary == "Garage door spring snapped"
    assert (booking.category, booking.trades) == ("garage_doors", ())


def test_the_booking_carries_the_jobs_trades_for_the_companys_mapping():
    routing, _ = servicetitan_routing(summary="Water heater pops", category=None)
    JobSkillFactory(job=routing.job, skill=skill("water_heater"), level=SkillLevel.BASIC)

    booking = booking_for(work_for(routing, trades=trades_of(routing)))

    assert (booking.category, booking.trades) == ("", (skill("water_heater").category.slug,))


def test_the_problem_type_falls_back_to_the_skills_trade():
    routing, _ = servicetitan_routing(summary="Water heater pops")
    JobSkillFactory(job=routing.job, skill=skill("water_heater"), level=SkillLevel.BASIC)

    assert (
        booking_for(work_for(routing, trades=trades_of(routing))).problem_type
        == skill("water_heater").category.slug
    )


def test_a_servicetitan_routing_syncs_to_a_simulated_job_and_its_completion_comes_back():
    routing, event = servicetitan_routing(summary="Garage door spring snapped", category=None)

    relay()

    routing.refresh_from_db()
    assert routing.sync_status == SyncStatus.SYNCED
    job = SimulatedJob.objects.get()
    assert routing.external_id == job.job_number
    assert job.booking_id == str(routing.id)
    event.refresh_from_db()
    assert event.status == OutboxStatus.DONE

    simulation = SimulatedServiceTitan({})
    for status in ["dispatched", "in_progress", "completed"]:
        simulation.update_job_status(job.job_id, status)
    assert routings_backsync()["completed"] == 1

    routing.refresh_from_db()
    job.refresh_from_db()
    assert routing.sync_status == SyncStatus.COMPLETED
    assert routing.revenue == job.invoice_total > Decimal(0)
    routing.job.refresh_from_db()
    assert routing.job.status == JobStatus.COMPLETED


def test_a_retried_sync_finds_the_job_it_already_made():
    routing, _ = servicetitan_routing()
    SimulatedServiceTitan({}).create_job(booking_for(work_for(routing, trades=trades_of(routing))))

    relay()

    routing.refresh_from_db()
    assert routing.external_id == SimulatedJob.objects.get().job_number


@pytest.mark.parametrize(
    ("job", "error"),
    [
        ({"homeowner_email": "error@test.com"}, "Customer already exists: error@test.com"),
        ({"zip_code": "00000"}, "Service area not supported for ZIP 00000"),
        ({"homeowner_phone": "0000000000"}, "Invalid phone number"),
    ],
)
def test_the_seed_error_triggers_go_to_the_dead_letter_queue(job, error):
    routing, event = servicetitan_routing(**job)

    relay()

    routing.refresh_from_db()
    event.refresh_from_db()
    assert routing.sync_status == SyncStatus.FAILED
    assert routing.error_message == error
    assert event.status == OutboxStatus.DEAD


def test_a_simulated_outage_is_retried(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "simulation_failure_rate": 1.0}
    routing, _ = servicetitan_routing()

    relay()

    routing.refresh_from_db()
    assert (routing.sync_status, routing.retry_count) == (SyncStatus.PENDING, 1)
    assert routing.error_message == "ServiceTitan API temporarily unavailable (simulated 503)"


@pytest.mark.parametrize(
    ("servicetitan_status", "status"),
    [
        ("Scheduled", ProviderJobStatus.OPEN),
        ("InProgress", ProviderJobStatus.OPEN),
        ("Hold", ProviderJobStatus.OPEN),
        ("Completed", ProviderJobStatus.COMPLETED),
        ("Canceled", ProviderJobStatus.CANCELLED),
    ],
)
def test_servicetitan_job_statuses_come_back_as_provider_statuses(servicetitan_status, status):
    job = job_from_job({"id": 7001, "jobStatus": servicetitan_status})

    assert job_status("5001", job).status == status


def test_a_booking_names_no_provider_job_and_a_job_names_its_id_and_number():
    booking = job_from_booking({"id": 5001, "status": "New"})
    job = job_from_job({"id": 7001, "jobNumber": "70012", "jobStatus": "Scheduled"})

    assert (
        job_status("5001", booking).provider_job_id,
        job_status("5001", booking).provider_job_number,
    ) == ("", "")
    assert (
        job_status("5001", job).provider_job_id,
        job_status("5001", job).provider_job_number,
    ) == ("7001", "70012")


def test_a_reason_is_only_reported_for_a_cancelled_job():
    dismissed = job_from_booking({"id": 5001, "status": "Dismissed", "dismissingReasonId": 3})
    cancelled = job_from_job({"id": 7001, "jobStatus": "Canceled"})
    cancelled.cancel_reason = "Duplicate: booked twice"
    open_job = job_from_job({"id": 7002, "jobStatus": "Scheduled"})
    open_job.cancel_reason = "left over"

    assert (
        job_status("5001", dismissed).reason
        == "Booking dismissed in ServiceTitan (dismissing reason 3)"
    )
    assert job_status("5001", cancelled).reason == "Duplicate: booked twice"
    assert job_status("5002", open_job).reason == ""


def test_a_simulated_job_reports_its_id_and_number():
    routing, _ = servicetitan_routing()
    simulation = SimulatedServiceTitan({})
    job = simulation.create_job(booking_for(work_for(routing, trades=trades_of(routing))))

    status = job_status(job.reference, job)

    assert (status.provider_job_id, status.provider_job_number) == (str(job.id), job.job_number)
