"""End to end: a job for a ServiceTitan company, a real Celery worker, and the real ServiceTitan
client talking HTTP to the simulator's slice of the real API (served by the live test server)."""

import pytest

from integrations.models import SimulatedJob
from integrations.servicetitan.simulator.simulation import SimulatedServiceTitan
from integrations.tests.factories import BookingFactory
from jobs.models import JobStatus, SkillLevel
from jobs.tests.factories import CompanyFactory, TechnicianFactory
from routing.models import JobRouting, SyncStatus
from routing.tasks import poll_provider_statuses, servicetitan_cancel_job
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]

TENANT = "1001"


def test_a_servicetitan_routing_goes_through_the_real_client_and_comes_back_completed(
    workers, live_server, api_client, settings
):
    # The live server runs in this process: the simulator accepts the company's credentials.
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"e2e-client": "e2e-secret"}
    workers.start(BACKSYNC_RECHECK_MIN_SECONDS=0)
    simulator = f"{live_server.url}/servicetitan-sim"
    company = CompanyFactory(
        provider_type="servicetitan",
        provider_settings={"api_url": simulator, "auth_url": simulator},
        provider_credentials={
            "client_id": "e2e-client",
            "client_secret": "e2e-secret",
            "app_key": "e2e-app-key",
            "tenant_id": TENANT,
            "booking_provider_id": "7",
        },
        service_areas=["IL"],
        skills={"garage_doors": SkillLevel.EXPERT},
    )
    requester = CompanyFactory(service_areas=["IL"])
    technician = TechnicianFactory(company=requester)

    response = api_client.post(
        "/api/v1/jobs/",
        {
            "summary": "Garage door spring snapped",
            "address": {
                "street": "456 Oak Avenue",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
            "homeowner": {"name": "Jane Smith", "phone": "(555) 987-6543"},
            "created_by_company_id": str(requester.id),
            "created_by_technician_id": str(technician.id),
            "required_skills": ["garage_doors"],
            "category": "garage_doors",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    routing = JobRouting.objects.get(job_id=response.json()["id"], company=company)

    def synced():
        routing.refresh_from_db()
        return routing.sync_status == SyncStatus.SYNCED

    wait_until(synced, timeout=30, workers=workers)
    booking = SimulatedJob.objects.get(tenant=TENANT)
    assert booking.booking_id == str(routing.id)  # the booking's externalId
    assert routing.external_id == str(booking.job_id)  # the booking id it was synced as
    assert (booking.first_name, booking.last_name, booking.phone) == ("Jane", "Smith", "5559876543")
    assert booking.summary == "Garage door spring snapped"

    simulation = SimulatedServiceTitan({}, tenant=TENANT)
    for status in ["dispatched", "in_progress", "completed"]:
        simulation.update_job_status(booking.job_id, status)
    booking.refresh_from_db()

    def completed():
        routing.refresh_from_db()
        return routing.sync_status == SyncStatus.COMPLETED

    wait_until(
        completed, timeout=30, workers=workers, interval=1.0, kick=poll_provider_statuses.delay
    )
    assert routing.revenue == booking.invoice_total
    job = routing.job
    job.refresh_from_db()
    assert (job.status, job.revenue) == (JobStatus.COMPLETED, booking.invoice_total)


def test_a_servicetitan_job_is_cancelled_by_a_worker_with_a_put_through_the_real_client(
    workers, live_server, settings
):
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"e2e-client": "e2e-secret"}
    workers.start()
    simulator = f"{live_server.url}/servicetitan-sim"
    options = {
        "api_url": simulator,
        "auth_url": simulator,
        "client_id": "e2e-client",
        "client_secret": "e2e-secret",
        "app_key": "e2e-app-key",
        "tenant_id": TENANT,
        "booking_provider_id": "7",
        "cancel_reason_id": "32",
    }
    job = SimulatedServiceTitan({}, tenant=TENANT).create_job(BookingFactory())

    servicetitan_cancel_job.delay(job.id, "Homeowner called it off", options)

    def cancelled():
        return SimulatedJob.objects.filter(status=SimulatedJob.Status.CANCELLED).exists()

    wait_until(cancelled, timeout=30, workers=workers)
    assert SimulatedJob.objects.get(tenant=TENANT).cancel_reason == "Homeowner called it off"
