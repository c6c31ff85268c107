"""End to end: jobs for a ServiceTitan company, real Celery workers, and the real ServiceTitan
client talking HTTP to the simulator's slice of the real API (served by the live test server):
a routing is a booking, followed to its job once the office converts it, to the job's
completion and invoice, and to our job's revenue; a dismissed booking declines the routing; a
burst over ServiceTitan's request limit still syncs every routing exactly once."""

from datetime import timedelta

import pytest

from integrations.models import SimulatedBooking, SimulatedJob
from integrations.servicetitan.simulator import office
from jobs.models import JobStatus, SkillLevel
from jobs.tests.factories import CompanyFactory, TechnicianFactory
from routing.models import JobRouting, SyncAttempt, SyncStatus
from routing.tasks import poll_provider_statuses, servicetitan_cancel_job
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]

TENANT = "1001"
BOOKING_PROVIDER = "7"


def servicetitan_options(live_server) -> dict:
    simulator = f"{live_server.url}/servicetitan-sim"
    return {
        "api_url": simulator,
        "auth_url": simulator,
        "client_id": "e2e-client",
        "client_secret": "e2e-secret",
        "app_key": "e2e-app-key",
        "tenant_id": TENANT,
        "booking_provider_id": BOOKING_PROVIDER,
    }


@pytest.fixture
def servicetitan_company(live_server, settings):
    # The live server runs in this process: the simulator accepts the company's credentials.
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"e2e-client": "e2e-secret"}
    options = servicetitan_options(live_server)
    credentials = {
        key: options.pop(key)
        for key in ("client_id", "client_secret", "app_key", "tenant_id", "booking_provider_id")
    }
    return CompanyFactory(
        provider_type="servicetitan",
        provider_settings={
            **options,
            "campaign_id": 41,
            "business_unit_id": 50,
            "business_units_by_trade": {"garage_doors": 51},
            "job_type_id": 66,
            "job_types_by_category": {"garage_doors": 60},
        },
        provider_credentials=credentials,
        service_areas=["IL"],
        skills={"garage_doors": SkillLevel.EXPERT},
    )


def post_jobs(api_client, company, count: int) -> list[JobRouting]:
    requester = CompanyFactory(service_areas=["IL"])
    technician = TechnicianFactory(company=requester)
    routings = []
    for number in range(count):
        response = api_client.post(
            "/api/v1/jobs/",
            {
                "summary": f"Garage door spring snapped ({number})",
                "address": {
                    "street": f"{456 + number} Oak Avenue",
                    "city": "Springfield",
                    "state": "IL",
                    "zip_code": "62701",
                },
                "homeowner": {"name": "Jane Smith", "phone": f"(555) 987-{6543 + number:04d}"},
                "created_by_company_id": str(requester.id),
                "created_by_technician_id": str(technician.id),
                "required_skills": ["garage_doors"],
                "category": "garage_doors",
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        routings.append(JobRouting.objects.get(job_id=response.json()["id"], company=company))
    return routings


def wait_for(routing: JobRouting, condition, workers, *, poll: bool = False):
    def holds():
        routing.refresh_from_db()
        return condition(routing)

    kick = poll_provider_statuses.delay if poll else None
    wait_until(holds, timeout=30, workers=workers, interval=0.5, kick=kick)


def test_a_booking_is_followed_to_its_job_its_invoice_and_our_jobs_revenue(
    workers, api_client, servicetitan_company
):
    workers.start(BACKSYNC_RECHECK_MIN_SECONDS=0)
    [routing] = post_jobs(api_client, servicetitan_company, 1)

    wait_for(routing, lambda r: r.sync_status == SyncStatus.SYNCED, workers)
    booking = SimulatedBooking.objects.get(tenant=TENANT)
    assert booking.external_id == str(routing.id)
    assert routing.external_id == str(booking.booking_id)
    assert (booking.status, booking.job) == (SimulatedBooking.Status.NEW, None)
    # Filed as the company's mapping says: the referral campaign, the Garage Doors business
    # unit and the garage-door repair job type.
    assert (booking.campaign_id, booking.business_unit_id, booking.job_type_id) == (41, 51, 60)
    assert booking.contacts == [{"type": "Phone", "value": "5559876543"}]

    # Until the office converts it, the back-sync finds a booking and nothing changes.
    poll_provider_statuses.delay()
    job = office.booking_convert(booking)
    assert job.job_id != booking.booking_id
    wait_for(routing, lambda r: r.provider_job_number == job.job_number, workers, poll=True)
    assert routing.provider_job_id == str(job.job_id)
    assert routing.sync_status == SyncStatus.SYNCED

    office.job_complete(job)
    job.refresh_from_db()
    wait_for(routing, lambda r: r.sync_status == SyncStatus.COMPLETED, workers, poll=True)
    assert routing.revenue == job.invoice_total
    # ServiceTitan's timestamps travel in JSON to the millisecond.
    assert abs(routing.completed_at - job.completed_at) < timedelta(milliseconds=1)
    our_job = routing.job
    our_job.refresh_from_db()
    assert (our_job.status, our_job.revenue) == (JobStatus.COMPLETED, job.invoice_total)


def test_a_dismissed_booking_comes_back_as_the_company_declining_the_work(
    workers, api_client, servicetitan_company
):
    workers.start(BACKSYNC_RECHECK_MIN_SECONDS=0)
    [routing] = post_jobs(api_client, servicetitan_company, 1)
    wait_for(routing, lambda r: r.sync_status == SyncStatus.SYNCED, workers)

    office.booking_dismiss(SimulatedBooking.objects.get(tenant=TENANT), reason_id=71)

    wait_for(routing, lambda r: r.declined_at is not None, workers, poll=True)
    assert "dismissed" in routing.decline_reason.lower()
    assert routing.sync_status == SyncStatus.SYNCED
    assert not SimulatedJob.objects.exists()
    servicetitan_company.refresh_from_db()
    assert servicetitan_company.open_routing_count == 0


def test_a_burst_over_the_request_limit_is_answered_429_and_still_syncs_each_routing_once(
    workers, api_client, servicetitan_company, settings
):
    # Five requests a second per app key and tenant instead of ServiceTitan's 60: the client,
    # allowed 60, runs into 429s, waits out Retry-After and carries on.
    settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = 5
    # Retries a second or two apart, and enough of them for the burst to drain at 5 a second.
    workers.start(SYNC_RETRY_BACKOFF_SECONDS="1,1,2,2,2,2,2,2,2,2")
    routings = post_jobs(api_client, servicetitan_company, 12)

    for routing in routings:
        wait_for(routing, lambda r: r.sync_status == SyncStatus.SYNCED, workers)

    bookings = SimulatedBooking.objects.filter(tenant=TENANT)
    assert sorted(bookings.values_list("external_id", flat=True)) == sorted(
        str(routing.id) for routing in routings
    )
    assert {routing.external_id for routing in routings} == {
        str(booking.booking_id) for booking in bookings
    }
    assert SyncAttempt.objects.filter(error__contains="HTTP 429").exists()


def test_a_servicetitan_job_is_cancelled_by_a_worker_with_a_put_through_the_real_client(
    workers, live_server, settings
):
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"e2e-client": "e2e-secret"}
    workers.start()
    booking = SimulatedBooking.objects.create(
        tenant=TENANT,
        booking_provider=int(BOOKING_PROVIDER),
        external_id="routing-1",
        source="TradeEngage",
        name="Mary Smith",
        summary="Garage door spring repair/replacement",
        is_first_time_client=True,
        contacts=[{"type": "Phone", "value": "5125550100"}],
    )
    job = office.booking_convert(booking)
    options = {**servicetitan_options(live_server), "cancel_reason_id": "32"}

    servicetitan_cancel_job.delay(job.job_id, "Homeowner called it off", options)

    def cancelled():
        job.refresh_from_db()
        return job.status == SimulatedJob.Status.CANCELLED

    wait_until(cancelled, timeout=30, workers=workers)
    assert (job.cancel_reason_id, job.cancel_reason) == (32, "Homeowner called it off")
