"""Outbound webhooks in-process (``routing.services.webhooks`` and ``webhook_delivery``): who
hears what (the tenant rule), the one writer's query cost, delivery through the outbox with
both signatures, rotation, the retry schedule, 410, the failure window and its email. Time is
a controllable clock (``django.utils.timezone.now`` patched); outbound HTTP is ``responses``."""

import hashlib
import hmac
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.core import mail
from django.db import connection, transaction
from standardwebhooks import Webhook

from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory
from routing.models import (
    OutboxEvent,
    OutboxStatus,
    SyncStatus,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
)
from routing.outbox import outbox_claim_batch, outbox_relay
from routing.services.backsync import routing_complete, routing_decline
from routing.services.sync import outbox_events_sync
from routing.services.webhook_delivery import webhook_deliveries_send
from routing.services.webhooks import (
    Notification,
    companies_with_endpoints,
    webhook_delivery_redeliver,
    webhook_endpoint_rotate_secret,
    webhooks_notify,
)
from routing.tests.factories import JobRoutingFactory, WebhookEndpointFactory, routing_with_event
from routing.tests.in_process import fresh

pytestmark = pytest.mark.django_db

SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


def verify_webhook_signature(payload: bytes, signature: str, secret: str) -> bool:
    """Seed 003's recipe, verbatim."""
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def relay_all() -> list[dict]:
    """One relay run, each claimed batch handled here: syncs synced, deliveries sent. Returns
    the counts of each delivery batch."""
    counts = []

    def enqueue(event_type, event_ids, claimed_at):
        if event_type == OutboxEvent.WEBHOOK_DELIVERY:
            counts.append(webhook_deliveries_send(event_ids=event_ids, claimed_at=claimed_at))
        else:
            outbox_events_sync(event_ids=event_ids, claimed_at=claimed_at)

    outbox_relay(enqueue=enqueue)
    return counts


def heard(endpoint) -> list[tuple[str, dict]]:
    """What the endpoint was sent: (event, data) per delivery, oldest first."""
    return [
        (d.event, json.loads(d.body)["data"])
        for d in WebhookDelivery.objects.filter(endpoint=endpoint).order_by("created_at", "id")
    ]


def events_heard(endpoint) -> list[str]:
    return sorted(event for event, _ in heard(endpoint))


@pytest.fixture
def network(requesting_company, requesting_technician, settings):
    """The requester, two plumbing companies that will receive its job, and a stranger, each
    with an endpoint subscribed to everything."""
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True
    receivers = [
        CompanyFactory(
            name=f"Receiver {n}",
            service_areas=["IL"],
            skills={"plumbing": SkillLevel.EXPERT},
            provider_type="mock",
        )
        for n in range(2)
    ]
    stranger = CompanyFactory(name="Stranger")
    endpoints = {
        "requester": WebhookEndpointFactory(company=requesting_company),
        "receiver0": WebhookEndpointFactory(company=receivers[0]),
        "receiver1": WebhookEndpointFactory(company=receivers[1]),
        "stranger": WebhookEndpointFactory(company=stranger),
    }
    return {"receivers": receivers, "stranger": stranger, "endpoints": endpoints}


# The one writer


def test_notify_costs_nothing_for_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert webhooks_notify([]) == 0


def test_notify_finds_the_endpoints_in_one_query_for_any_number_of_notifications(
    django_assert_num_queries,
):
    companies = [CompanyFactory() for _ in range(5)]
    notifications = [
        Notification(WebhookEvent.JOB_CREATED, company.id, {"n": n})
        for n, company in enumerate(companies * 4)
    ]

    with django_assert_num_queries(1):
        assert webhooks_notify(notifications) == 0


def test_notify_writes_a_delivery_and_its_event_for_each_subscribed_enabled_endpoint(
    django_assert_max_num_queries,
):
    company = CompanyFactory()
    subscribed = WebhookEndpointFactory(company=company, events=["job.created"])
    WebhookEndpointFactory(company=company, events=["job.completed"])
    WebhookEndpointFactory(company=company, enabled=False)
    WebhookEndpointFactory()  # another company's
    companies_with_endpoints()  # read once a process in a while, not per notification

    with transaction.atomic(), django_assert_max_num_queries(3):
        written = webhooks_notify([Notification("job.created", company.id, {"job_id": "j1"})] * 3)

    assert written == 3
    deliveries = list(WebhookDelivery.objects.all())
    assert {d.endpoint_id for d in deliveries} == {subscribed.id}
    body = json.loads(deliveries[0].body)
    assert body["type"] == "job.created"
    assert body["data"] == {"job_id": "j1"}
    assert "timestamp" in body
    events = OutboxEvent.objects.filter(event_type=OutboxEvent.WEBHOOK_DELIVERY)
    assert {e.aggregate_id for e in events} == {d.id for d in deliveries}
    assert {e.status for e in events} == {OutboxStatus.PENDING}


def test_companies_without_endpoints_cost_no_query(django_assert_num_queries):
    WebhookEndpointFactory()
    companies_with_endpoints()
    quiet = CompanyFactory()

    with django_assert_num_queries(0):
        assert webhooks_notify([Notification("job.created", quiet.id, {})]) == 0


def test_a_companys_first_endpoint_is_heard_at_once_in_its_process_and_soon_in_others(settings):
    settings.WEBHOOK_ENDPOINT_COMPANIES_TTL_SECONDS = 60
    company = CompanyFactory()
    assert company.id not in companies_with_endpoints()

    WebhookEndpointFactory(company=company)  # saved here: this process forgets what it read

    assert company.id in companies_with_endpoints()
    assert webhooks_notify([Notification("job.created", company.id, {})]) == 1


def test_a_delivery_is_undone_with_the_change_that_caused_it():
    endpoint = WebhookEndpointFactory()

    with pytest.raises(RuntimeError), transaction.atomic():
        webhooks_notify([Notification("job.created", endpoint.company_id, {})])
        raise RuntimeError("the job's transaction fails")

    assert not WebhookDelivery.objects.exists()
    assert not OutboxEvent.objects.exists()


# Who hears what


def create_job(api_client, job_payload) -> dict:
    response = api_client.post("/api/v1/jobs/", job_payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_job_creation_tells_the_requester_everything_and_each_receiver_its_own_routing(
    network, api_client, job_payload, requesting_company
):
    job = create_job(api_client, job_payload)

    endpoints = network["endpoints"]
    requester = heard(endpoints["requester"])
    assert events_heard(endpoints["requester"]) == ["job.created", "job.routed"]
    requester = dict(requester)
    assert requester["job.created"]["job_id"] == job["id"]
    routed = requester["job.routed"]["routings"]
    receiver_ids = {str(c.id) for c in network["receivers"]}
    assert {r["company_id"] for r in routed} == receiver_ids
    for n, receiver in enumerate(network["receivers"]):
        [(event, data)] = heard(endpoints[f"receiver{n}"])
        assert event == "job.routed"
        assert [r["company_id"] for r in data["routings"]] == [str(receiver.id)]
        assert set(data["routings"][0]) >= {"routing_id", "score", "matched_skills", "reason"}
    assert heard(endpoints["stranger"]) == []


def test_a_sync_tells_the_routings_company_and_the_requester_only(network, api_client, job_payload):
    create_job(api_client, job_payload)
    WebhookDelivery.objects.all().delete()
    OutboxEvent.objects.filter(event_type=OutboxEvent.WEBHOOK_DELIVERY).delete()

    with responses.RequestsMock(assert_all_requests_are_fired=False):
        outbox_relay(
            dispatch=lambda ids, at: (
                outbox_events_sync(event_ids=ids, claimed_at=at)
                if OutboxEvent.objects.filter(id__in=ids, event_type="job_sync").exists()
                else None
            )
        )

    endpoints = network["endpoints"]
    assert events_heard(endpoints["requester"]) == ["routing.synced", "routing.synced"]
    for n, receiver in enumerate(network["receivers"]):
        [(event, data)] = heard(endpoints[f"receiver{n}"])
        assert event == "routing.synced"
        assert data["company_id"] == str(receiver.id)
        assert data["external_id"].startswith("MOCK-")
    assert heard(endpoints["stranger"]) == []


def test_a_failed_sync_tells_routing_failed(requesting_company):
    routing, _ = routing_with_event(
        job=JobFactory(
            created_by_company=requesting_company, created_by_technician__company=requesting_company
        ),
        company__provider_settings={"fail_first": 1, "failure": "conflict"},
    )
    requester = WebhookEndpointFactory(company=requesting_company)
    receiver = WebhookEndpointFactory(company=routing.company)

    relay_all()

    for endpoint in (requester, receiver):
        [(_event, data)] = [h for h in heard(endpoint) if h[0] == "routing.failed"]
        assert data["routing_id"] == str(routing.id)
        assert data["status"] == "failed"
        assert data["error"]


def completed_world(requesting_company):
    job = JobFactory(
        created_by_company=requesting_company, created_by_technician__company=requesting_company
    )
    mine = JobRoutingFactory(job=job, sync_status=SyncStatus.SYNCED, external_id="X-1")
    other = JobRoutingFactory(job=job, sync_status=SyncStatus.SYNCED, external_id="X-2")
    endpoints = {
        "requester": WebhookEndpointFactory(company=requesting_company),
        "mine": WebhookEndpointFactory(company=mine.company),
        "other": WebhookEndpointFactory(company=other.company),
    }
    return job, mine, other, endpoints


def test_a_completion_tells_the_routing_company_and_the_requester_with_their_own_figures(
    requesting_company, clock
):
    _job, mine, other, endpoints = completed_world(requesting_company)
    routing_complete(routing=other, completed_at=clock.now, revenue=Decimal("100.00"))
    WebhookDelivery.objects.all().delete()

    routing_complete(routing=mine, completed_at=clock.now, revenue=Decimal("250.00"))

    assert events_heard(endpoints["mine"]) == ["job.completed", "routing.completed"]
    mine_heard = dict(heard(endpoints["mine"]))
    assert mine_heard["routing.completed"]["routing_id"] == str(mine.id)
    assert mine_heard["job.completed"]["revenue"] == "250.00"  # its own, not the job's total
    assert mine_heard["job.completed"]["routing_id"] == str(mine.id)
    requester = dict(heard(endpoints["requester"]))
    assert requester["job.completed"]["revenue"] == "350.00"
    assert requester["routing.completed"]["routing_id"] == str(mine.id)
    assert heard(endpoints["other"]) == []
    for endpoint in endpoints.values():
        for _, data in heard(endpoint):
            assert str(other.id) not in json.dumps(data)


def test_a_decline_tells_the_routing_company_and_the_requester(requesting_company, clock):
    _job, mine, _other, endpoints = completed_world(requesting_company)

    routing_decline(routing=mine, reason="Too far", declined_at=clock.now)

    for name in ("requester", "mine"):
        [(event, data)] = heard(endpoints[name])
        assert event == "routing.declined"
        assert (data["routing_id"], data["reason"]) == (str(mine.id), "Too far")
    assert heard(endpoints["other"]) == []


def test_a_manual_route_tells_job_routed(
    api_client, requesting_company, requesting_technician, settings
):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True
    job = JobFactory(
        created_by_company=requesting_company, created_by_technician=requesting_technician
    )
    receiver = CompanyFactory(provider_type="mock")
    endpoint = WebhookEndpointFactory(company=receiver)

    response = api_client.post(
        f"/api/v1/jobs/{job.id}/sync", {"company_id": str(receiver.id)}, format="json"
    )

    assert response.status_code == 200, response.content
    assert "job.routed" in events_heard(endpoint)


# Delivery


@responses.activate
def test_a_delivery_is_sent_signed_both_ways_and_recorded(clock):
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/in")
    secret = endpoint.secrets["secret"]
    webhooks_notify([Notification("job.created", endpoint.company_id, {"job_id": "j1"})])
    responses.post("https://hooks.example.com/in", status=200, body="thanks")

    assert relay_all() == [{"delivered": 1, "retry": 0, "failed": 0, "skipped": 0}]

    request = responses.calls[0].request
    headers = dict(request.headers)
    delivery = WebhookDelivery.objects.get()
    assert Webhook(secret).verify(request.body, headers)["data"] == {"job_id": "j1"}
    assert verify_webhook_signature(request.body, headers["X-Webhook-Signature"], secret)
    assert headers["webhook-id"] == str(delivery.id)
    assert headers["webhook-timestamp"] == str(int(clock.now.timestamp()))
    assert delivery.status == WebhookDeliveryStatus.DELIVERED
    assert (delivery.attempt_count, delivery.last_response_status) == (1, 200)
    attempt = delivery.attempts.get()
    assert (attempt.number, attempt.response_status, attempt.response_start) == (1, 200, "thanks")
    assert attempt.succeeded
    event = OutboxEvent.objects.get(aggregate_id=delivery.id)
    assert event.status == OutboxStatus.DONE


def rotated(endpoint, clock) -> tuple[str, str]:
    old = endpoint.secrets["secret"]
    new = webhook_endpoint_rotate_secret(endpoint=endpoint, now=clock.now)
    return old, new


@responses.activate
def test_after_a_rotation_both_secrets_sign_for_24_hours_then_only_the_new(clock):
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/in")
    old, new = rotated(endpoint, clock)
    assert fresh(endpoint).previous_secret_expires_at == clock.now + timedelta(hours=24)
    responses.post("https://hooks.example.com/in", status=204)

    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    relay_all()
    request = responses.calls[0].request
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(request.body, dict(request.headers))
    assert verify_webhook_signature(request.body, request.headers["X-Webhook-Signature"], new)

    # 24 hours later (the expiry moved back: the library checks timestamps by the real clock)
    WebhookEndpoint.objects.filter(id=endpoint.id).update(
        previous_secret_expires_at=clock.now - timedelta(seconds=1)
    )
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    relay_all()
    request = responses.calls[1].request
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(request.body, dict(request.headers))
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(old).verify(request.body, dict(request.headers))


@responses.activate
def test_a_failing_delivery_is_retried_on_the_schedule_then_dead(clock, settings):
    assert settings.WEBHOOK_RETRY_SCHEDULE_SECONDS == SCHEDULE
    settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS = 30
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/in")
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    responses.post("https://hooks.example.com/in", status=503)
    delivery = WebhookDelivery.objects.get()

    for retries, wait in enumerate(SCHEDULE):
        assert relay_all() == [{"delivered": 0, "retry": 1, "failed": 0, "skipped": 0}]
        delivery = fresh(delivery)
        assert delivery.retry_count == retries + 1
        assert delivery.next_attempt_at == clock.now + timedelta(seconds=wait)
        clock.advance(wait - 1)
        assert relay_all() == []  # not yet due
        clock.advance(1)

    assert relay_all() == [{"delivered": 0, "retry": 0, "failed": 1, "skipped": 0}]
    delivery = fresh(delivery)
    assert delivery.status == WebhookDeliveryStatus.FAILED
    assert (delivery.attempt_count, delivery.last_response_status) == (8, 503)
    event = OutboxEvent.objects.get(aggregate_id=delivery.id)
    assert (event.status, event.last_error) == (OutboxStatus.DEAD, "HTTP 503")
    assert len(responses.calls) == 8

    # Redelivered (the admin's action): a new round, and this time it is answered.
    responses.replace(responses.POST, "https://hooks.example.com/in", status=200)
    assert webhook_delivery_redeliver(delivery=delivery)
    assert relay_all() == [{"delivered": 1, "retry": 0, "failed": 0, "skipped": 0}]
    assert fresh(delivery).status == WebhookDeliveryStatus.DELIVERED
    assert fresh(delivery).attempt_count == 9


@responses.activate
def test_410_disables_the_endpoint_at_once_and_ends_its_pending_deliveries(clock):
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/in")
    webhooks_notify([Notification("job.created", endpoint.company_id, {})] * 2)
    first, waiting = WebhookDelivery.objects.order_by("id")
    # The second waits for a later attempt, as a retried one would.
    OutboxEvent.objects.filter(aggregate_id=waiting.id).update(
        available_at=clock.now + timedelta(hours=1)
    )
    responses.post("https://hooks.example.com/in", status=410)

    assert relay_all() == [{"delivered": 0, "retry": 0, "failed": 1, "skipped": 0}]

    endpoint = fresh(endpoint)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "The receiver answered 410 Gone."
    assert fresh(first).status == WebhookDeliveryStatus.FAILED
    assert fresh(waiting).status == WebhookDeliveryStatus.FAILED
    assert fresh(waiting).last_error.startswith("Endpoint disabled")
    assert not OutboxEvent.objects.filter(status=OutboxStatus.PENDING).exists()
    clock.advance(3600)
    assert relay_all() == []
    assert len(responses.calls) == 1
    assert webhooks_notify([Notification("job.created", endpoint.company_id, {})]) == 0
    assert not mail.outbox


@responses.activate
def test_an_endpoint_failing_for_5_days_is_disabled_and_its_company_told(clock, settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [3600.0] * 500
    company = CompanyFactory(notification_email="ops@receiver.example")
    endpoint = WebhookEndpointFactory(company=company, url="https://hooks.example.com/in")
    responses.post("https://hooks.example.com/in", status=500)
    webhooks_notify([Notification("job.created", company.id, {})])
    started = clock.now

    relay_all()
    assert fresh(endpoint).failing_since == started
    for _ in range(5 * 24 - 1):
        clock.advance(3600)
        relay_all()
        assert fresh(endpoint).enabled
    clock.advance(3600)
    relay_all()

    endpoint = fresh(endpoint)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "Every delivery failed for 5 days."
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.FAILED
    [message] = mail.outbox
    assert message.to == ["ops@receiver.example"]
    assert endpoint.url in message.subject
    assert "failed for 5 days" in message.body
    assert endpoint.secrets["secret"] not in message.body


@responses.activate
def test_a_success_resets_the_failure_window(clock, settings):
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/in")
    responses.post("https://hooks.example.com/in", status=500)
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    relay_all()
    assert fresh(endpoint).failing_since == clock.now

    responses.replace(responses.POST, "https://hooks.example.com/in", status=200)
    clock.advance(5)
    relay_all()

    assert fresh(endpoint).failing_since is None


def test_an_endpoint_without_a_notification_email_tells_the_ops_addresses(clock, settings):
    settings.OPS_ALERT_EMAILS = ["cto@tradeengage.example"]
    settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS = 0
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/in")
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])

    with responses.RequestsMock() as mock:
        mock.post("https://hooks.example.com/in", status=500)
        relay_all()

    assert not fresh(endpoint).enabled
    assert mail.outbox[0].to == ["cto@tradeengage.example"]


def test_a_private_address_is_refused_at_delivery_and_retried(clock, resolver):
    endpoint = WebhookEndpointFactory(url="https://rebound.example.com/in")
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    resolver["rebound.example.com"] = ["10.0.0.8"]  # the name changed after registration

    with responses.RequestsMock() as mock:
        assert relay_all() == [{"delivered": 0, "retry": 1, "failed": 0, "skipped": 0}]
        assert not mock.calls

    attempt = WebhookDelivery.objects.get().attempts.get()
    assert attempt.error.startswith("Refused: rebound.example.com resolves to 10.0.0.8")


def test_a_delivery_of_a_disabled_endpoint_is_ended_not_sent(clock):
    endpoint = WebhookEndpointFactory()
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    WebhookEndpoint.objects.filter(id=endpoint.id).update(enabled=False)

    with responses.RequestsMock():
        assert relay_all() == [{"delivered": 0, "retry": 0, "failed": 0, "skipped": 1}]

    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.FAILED
    assert OutboxEvent.objects.get().status == OutboxStatus.DONE


@responses.activate
def test_a_batch_of_deliveries_is_sent_side_by_side_in_a_bounded_number_of_queries(
    clock, django_assert_max_num_queries
):
    endpoints = [WebhookEndpointFactory(url=f"https://hooks{n}.example.com/in") for n in range(20)]
    for endpoint in endpoints:
        responses.post(endpoint.url, status=204)
        webhooks_notify([Notification("job.created", endpoint.company_id, {})])

    # Whatever the batch's size: the relay's count and two claims (the second finds nothing),
    # 10 with their savepoints; the batch's lease renewed (3, and on PostgreSQL one more to
    # take only the rows nobody else holds), its events and deliveries read (2), and its
    # outcomes recorded in one transaction (7): the events still held, attempts, deliveries,
    # events, the endpoints' health.
    with django_assert_max_num_queries(23 if connection.vendor == "postgresql" else 22):
        assert relay_all() == [{"delivered": 20, "retry": 0, "failed": 0, "skipped": 0}]

    assert len(responses.calls) == 20


def test_the_relay_hands_each_type_to_its_task_and_dead_letters_an_unknown_one(clock):
    routing, sync_event = routing_with_event()
    endpoint = WebhookEndpointFactory()
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    unknown = OutboxEvent.objects.create(
        event_type="job_teleport", aggregate_id=routing.id, available_at=clock.now
    )
    handed = []

    outbox_relay(enqueue=lambda event_type, ids, at: handed.append((event_type, ids)))

    assert sorted(handed) == sorted(
        [
            ("job_sync", [sync_event.id]),
            ("webhook_delivery", [OutboxEvent.objects.get(event_type="webhook_delivery").id]),
        ]
    )
    unknown = fresh(unknown)
    assert (unknown.status, unknown.last_error) == (
        OutboxStatus.DEAD,
        "No handler for this event type.",
    )


def test_the_relay_task_enqueues_webhook_deliveries_on_their_queue(clock, settings, monkeypatch):
    from routing import tasks

    sent = []
    monkeypatch.setattr(
        tasks.deliver_webhooks, "apply_async", lambda args: sent.append(args), raising=False
    )
    endpoint = WebhookEndpointFactory()
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])

    assert tasks.relay_outbox() == 1

    assert len(sent) == 1
    assert settings.CELERY_TASK_ROUTES["routing.tasks.deliver_webhooks"] == {"queue": "webhooks"}


def test_a_late_task_for_deliveries_claimed_again_sends_nothing(clock, settings):
    endpoint = WebhookEndpointFactory()
    webhooks_notify([Notification("job.created", endpoint.company_id, {})])
    stale = clock.now
    [event_id] = outbox_claim_batch(now=stale, batch_size=10)
    clock.advance(settings.OUTBOX_LEASE_SECONDS + 1)
    assert outbox_claim_batch(now=clock.now, batch_size=10) == [event_id]  # taken again

    with responses.RequestsMock():
        counts = webhook_deliveries_send(event_ids=[event_id], claimed_at=stale)

    assert counts == {"delivered": 0, "retry": 0, "failed": 0, "skipped": 0}
    assert WebhookDelivery.objects.get().attempt_count == 0
    assert OutboxEvent.objects.get(id=event_id).claimed_at == clock.now
