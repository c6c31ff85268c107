import uuid

import factory
from django.utils import timezone

from integrations.webhooks import secret_generate
from jobs.tests.factories import CompanyFactory, JobFactory
from routing.models import (
    JobRouting,
    OutboxEvent,
    SyncStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)


class JobRoutingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRouting

    job = factory.SubFactory(JobFactory)
    company = factory.SubFactory(CompanyFactory)
    sync_status = SyncStatus.PENDING
    matching_score = 2.0
    matched_skills = factory.LazyFunction(lambda: ["plumbing"])
    missing_skills = factory.LazyFunction(list)
    match_reason = "Skills match: plumbing basic (needs basic)"

    class Params:
        # Pushed, then turned down by the company in its system, as the back-sync leaves it.
        declined = factory.Trait(
            sync_status=SyncStatus.SYNCED,
            external_id=factory.Sequence(lambda n: f"MOCK-D{n:05d}"),
            last_synced_at=factory.LazyFunction(timezone.now),
            declined_at=factory.LazyFunction(timezone.now),
            decline_reason="Customer went with another plumber",
        )


class OutboxEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboxEvent

    event_type = OutboxEvent.JOB_SYNC
    aggregate_id = factory.LazyFunction(uuid.uuid4)
    event_data = factory.LazyFunction(dict)


def routing_with_event(**kwargs) -> tuple[JobRouting, OutboxEvent]:
    """A pending routing to a company on the mock provider, with its ``job_sync`` event, as job
    creation leaves them. ``provider_settings`` (the mock's options) and other company fields go
    in as ``company__...``."""
    kwargs.setdefault("company__provider_type", "mock")
    routing = JobRoutingFactory(**kwargs)
    event = OutboxEvent.for_routing(routing)
    event.save()
    return routing, event


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """An enabled endpoint subscribed to every event, with a fresh secret."""

    class Meta:
        model = WebhookEndpoint

    company = factory.SubFactory(CompanyFactory)
    url = factory.Sequence(lambda n: f"https://hooks{n}.example.com/in")
    events = factory.LazyFunction(WebhookEvent.subscribable)
    secrets = factory.LazyFunction(lambda: {"secret": secret_generate()})


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    event = WebhookEvent.WEBHOOK_TEST
    body = '{"type":"webhook.test","timestamp":"2026-11-30T10:00:00+00:00","data":{}}'
