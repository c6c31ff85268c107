"""End to end: a job for a CRM company, real Celery workers, the real CRM client talking HTTP to
the CRM simulator (seed 002, served by the live test server), and the simulator's signed
webhooks delivered back to our receiver by a worker: the job comes back completed with the paid
invoice's revenue; with the webhooks lost, the polling back-sync completes it instead."""

import pytest

from integrations.crm.simulator import office
from integrations.models import (
    CrmSimCustomer,
    CrmSimWebhook,
    CrmSimWebhookDelivery,
    CrmSimWorkOrder,
)
from jobs.models import JobStatus, SkillLevel
from jobs.services import company_crm_connect
from jobs.tests.factories import CompanyFactory, TechnicianFactory
from routing.models import JobRouting, SyncStatus
from routing.tasks import poll_provider_statuses
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]

CLIENT_ID, CLIENT_SECRET = "e2e-crm", "e2e-crm-secret"


@pytest.fixture
def crm_company(live_server, settings):
    # The live server runs in this process: its simulator accepts the company's credentials.
    settings.CRM_SIMULATOR_CLIENTS = {CLIENT_ID: CLIENT_SECRET}
    company = CompanyFactory(
        provider_type="crm",
        provider_settings={
            "api_url": f"{live_server.url}/crm-sim/api/v2",
            "service_types": {"plumbing": "Plumbing Repair"},
        },
        provider_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        service_areas=["TX"],
        skills={"plumbing": SkillLevel.EXPERT},
    )
    company_crm_connect(company=company, base_url=live_server.url)
    return company


def post_job(api_client, company) -> JobRouting:
    requester = CompanyFactory(service_areas=["TX"])
    technician = TechnicianFactory(company=requester)
    response = api_client.post(
        "/api/v1/jobs/",
        {
            "summary": "Kitchen faucet leaking under the sink",
            "address": {
                "street": "12 Oak Street",
                "city": "Austin",
                "state": "TX",
                "zip_code": "78701",
            },
            "homeowner": {
                "name": "Mary Smith",
                "phone": "(512) 555-0100",
                "email": "mary.smith@example.com",
            },
            "created_by_company_id": str(requester.id),
            "created_by_technician_id": str(technician.id),
            "required_skills": ["plumbing"],
            "category": "plumbing",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return JobRouting.objects.get(job_id=response.json()["id"], company=company)


def wait_for(routing: JobRouting, condition, workers, *, poll: bool = False):
    def holds():
        routing.refresh_from_db()
        return condition(routing)

    kick = poll_provider_statuses.delay if poll else None
    wait_until(holds, timeout=40, workers=workers, interval=0.5, kick=kick)


def finish_the_work(work_order: CrmSimWorkOrder):
    """What the company's office and technician do in their CRM; each step signs a webhook."""
    work_order = office.work_order_schedule(work_order)
    work_order = office.work_order_start(work_order)
    work_order = office.work_order_complete(work_order)
    invoice = office.invoice_issue(work_order)
    return office.invoice_mark_paid(invoice)


def test_a_routing_becomes_a_work_order_and_its_signed_webhooks_bring_the_revenue_back(
    workers, api_client, crm_company
):
    # Back-sync polling effectively off: only the webhooks can complete the routing.
    workers.start(BACKSYNC_RECHECK_MIN_SECONDS=3600)
    routing = post_job(api_client, crm_company)

    wait_for(routing, lambda r: r.sync_status == SyncStatus.SYNCED, workers)
    work_order = CrmSimWorkOrder.objects.get(client_id=CLIENT_ID)
    assert routing.external_id == str(work_order.pk)
    assert work_order.service_type == "Plumbing Repair"
    assert f"TradeEngage routing {routing.id}" in work_order.notes
    customer = CrmSimCustomer.objects.get(client_id=CLIENT_ID)
    assert (customer.first_name, customer.last_name, customer.email) == (
        "Mary",
        "Smith",
        "mary.smith@example.com",
    )

    invoice = finish_the_work(work_order)

    wait_for(
        routing,
        lambda r: r.sync_status == SyncStatus.COMPLETED and r.revenue is not None,
        workers,
    )
    assert routing.revenue == invoice.total
    assert routing.provider_status == "completed"
    job = routing.job
    job.refresh_from_db()
    assert (job.status, job.revenue) == (JobStatus.COMPLETED, invoice.total)
    delivered = CrmSimWebhookDelivery.objects.filter(status=CrmSimWebhookDelivery.Status.DELIVERED)
    assert {d.event for d in delivered} >= {
        "work_order.scheduled",
        "work_order.started",
        "work_order.completed",
        "invoice.paid",
    }


def test_with_its_webhooks_lost_the_routing_is_completed_by_polling(
    workers, api_client, crm_company, live_server
):
    workers.start(BACKSYNC_RECHECK_MIN_SECONDS=0)
    routing = post_job(api_client, crm_company)
    wait_for(routing, lambda r: r.sync_status == SyncStatus.SYNCED, workers)
    # The registration now points nowhere: every delivery fails.
    CrmSimWebhook.objects.filter(client_id=CLIENT_ID).update(url=f"{live_server.url}/nowhere")

    invoice = finish_the_work(CrmSimWorkOrder.objects.get(client_id=CLIENT_ID))

    wait_for(
        routing,
        lambda r: r.sync_status == SyncStatus.COMPLETED and r.revenue is not None,
        workers,
        poll=True,
    )
    assert routing.revenue == invoice.total
    assert not CrmSimWebhookDelivery.objects.filter(
        status=CrmSimWebhookDelivery.Status.DELIVERED
    ).exists()
