"""A client's leads (``processing.services.leads``): which open jobs are leads, the order they
are taken in, and their assignment as routings up to the client's quota."""

import json

import pytest

from jobs.models import JobStatus, SkillLevel
from jobs.tests.factories import JobFactory, JobSkillFactory, skill
from processing.services.leads import leads_assign, leads_collect, leads_order
from processing.tests.factories import NOW, lead
from routing.models import JobRouting, OutboxEvent, SyncStatus, WebhookDelivery
from routing.tests.factories import JobRoutingFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db


def test_leads_are_open_recent_jobs_in_the_area_that_the_client_can_do(client_company):
    wanted = [
        lead(),  # in IL
        lead(state="WI", zip_code="60601"),  # ZIP area 606, another state
        lead(level=SkillLevel.INTERMEDIATE),  # the level it holds
    ]
    lead(state="WI", zip_code="53201")  # outside the area
    lead(level=SkillLevel.EXPERT)  # above its level
    lead(days_ago=91)  # older than 3 months
    lead(status=JobStatus.COMPLETED)
    lead(status=JobStatus.CANCELLED)
    lead(created_by_technician__company=client_company)  # its own request
    JobRoutingFactory(job=lead(), company=client_company)  # already routed to it
    electrical = JobFactory(state="IL")
    JobSkillFactory(job=electrical, skill=skill("electrical"))  # a skill it lacks

    found = {ref.id for ref in leads_collect(client=client_company, now=NOW)}

    assert found == {job.id for job in wanted}


def test_leads_are_ordered_oldest_month_first_shuffled_within_a_month():
    leads = [lead(days_ago=days) for days in (5, 6, 7, 8, 40, 41, 42, 43)]
    october = {lead for lead in leads if lead.created_at.month == 10}

    first = leads_order(leads, seed="a")
    orders = {tuple(job.id for job in leads_order(leads, seed=seed)) for seed in "abcdefgh"}

    assert set(first[:4]) == october  # the older month first
    assert leads_order(leads, seed="a") == first  # seeded: the same seed, the same order
    assert len(orders) > 1  # randomised within the months


def test_assignment_stops_at_the_quota_and_routes_like_job_creation(client_company):
    client_company.leads_per_report = 3
    client_company.save()
    leads = [lead(days_ago=days) for days in (5, 40, 41, 42, 70)]

    assigned = leads_assign(
        client=client_company, leads=leads_collect(client=client_company, now=NOW), seed="x"
    )

    assert len(assigned) == 3
    assert set(assigned) <= set(leads[1:])  # the oldest months first: the 5-day-old one waits
    assert leads[4] in assigned  # August before October
    routings = JobRouting.objects.filter(company=client_company)
    assert {r.job_id for r in routings} == {job.id for job in assigned}
    assert all(r.sync_status == SyncStatus.PENDING for r in routings)
    events = OutboxEvent.objects.filter(aggregate_id__in=[r.id for r in routings])
    assert events.count() == 3
    assert {e.event_data["provider_type"] for e in events} == {"mock"}
    client_company.refresh_from_db()
    assert client_company.open_routing_count == 3


def test_the_client_hears_of_its_leads_and_each_requester_of_its_job(client_company):
    client_endpoint = WebhookEndpointFactory(company=client_company, events=["job.routed"])
    leads = [lead(days_ago=days) for days in (5, 6)]
    requester_endpoint = WebhookEndpointFactory(
        company=leads[0].created_by_company, events=["job.routed"]
    )

    leads_assign(
        client=client_company, leads=leads_collect(client=client_company, now=NOW), seed="x"
    )

    told = [json.loads(d.body) for d in WebhookDelivery.objects.filter(endpoint=client_endpoint)]
    assert {body["data"]["job_id"] for body in told} == {str(job.id) for job in leads}
    for body in told:
        assert body["type"] == "job.routed"
        [routing] = body["data"]["routings"]
        assert routing["company_id"] == str(client_company.id)
    requester_told = WebhookDelivery.objects.filter(endpoint=requester_endpoint)
    assert [json.loads(d.body)["data"]["job_id"] for d in requester_told] == [str(leads[0].id)]
