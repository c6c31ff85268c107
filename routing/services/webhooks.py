"""Outbound webhooks (README "Outbound webhooks"): companies' endpoints, and the one writer of
their deliveries, ``webhooks_notify``, which every emitter calls inside the transaction of the
change it tells about.

Who hears what follows the tenant rule (DESIGN.md "Security and tenancy"): a company hears about
the jobs it created and about its own routings of others' jobs, never about another company's
routing. The emitters build their notifications with the helpers below, one per company that
may hear; ``webhooks_notify`` turns each into a delivery for every enabled endpoint of that
company subscribed to the event. Delivery itself is ``routing.services.webhook_delivery``.
"""

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from integrations.webhooks import secret_generate, url_check
from jobs.matching import Match
from jobs.models import Company, Job
from routing.models import (
    JobRouting,
    OutboxEvent,
    OutboxStatus,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
)
from routing.outbox import outbox_relay_kick
from tradeengage.exceptions import BusinessRuleError


class Notification(NamedTuple):
    """An event for the endpoints of one company: ``data`` is the payload's ``data``, holding
    only what that company may see."""

    event: str
    company_id: UUID
    data: dict


def webhooks_notify(notifications: Sequence[Notification], *, now: datetime | None = None) -> int:
    """Write a delivery, and its ``webhook_delivery`` outbox event, for every enabled endpoint
    subscribed to each notification's event among its company's endpoints. Returns the number
    of deliveries written.

    Runs inside the caller's transaction (in one of its own when there is none), so a delivery
    commits with the change it tells about, or not at all. No query when none of the companies
    has an endpoint (``companies_with_endpoints``: job creation and the sync are hot paths and
    most companies have none), else one to find their endpoints, and two inserts when any
    endpoint hears."""
    if not notifications:
        return 0
    listening = {n.company_id for n in notifications} & companies_with_endpoints()
    if not listening:
        return 0
    now = now or timezone.now()
    endpoints = defaultdict(list)
    for endpoint_id, company_id, events in WebhookEndpoint.objects.filter(
        company_id__in=listening, enabled=True
    ).values_list("id", "company_id", "events"):
        endpoints[company_id].append((endpoint_id, events))
    deliveries = [
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event=notification.event,
            body=payload_body(event=notification.event, data=notification.data, now=now),
            next_attempt_at=now,
            created_at=now,
        )
        for notification in notifications
        for endpoint_id, events in endpoints.get(notification.company_id, ())
        if notification.event in events
    ]
    if deliveries:
        _deliveries_write(deliveries, now=now)
    return len(deliveries)


_endpoint_companies: dict = {}


def companies_with_endpoints() -> frozenset:
    """The ids of the companies with an enabled endpoint, read at most once every
    ``WEBHOOK_ENDPOINT_COMPANIES_TTL_SECONDS`` per process. Saving or deleting an endpoint
    drops them at once in the process that did it (``RoutingConfig.ready``); other processes
    see a company's first endpoint within that time. A company listed that no longer has one
    costs a query that finds nothing, never a delivery to an endpoint that is gone."""
    now = time.monotonic()
    if _endpoint_companies.get("expires", 0.0) <= now:
        _endpoint_companies.update(
            ids=frozenset(
                WebhookEndpoint.objects.filter(enabled=True)
                .order_by()
                .values_list("company_id", flat=True)
                .distinct()
            ),
            expires=now + settings.WEBHOOK_ENDPOINT_COMPANIES_TTL_SECONDS,
        )
    return _endpoint_companies["ids"]


def companies_with_endpoints_forget(**kwargs) -> None:
    _endpoint_companies.clear()


def _deliveries_write(deliveries: list[WebhookDelivery], *, now: datetime) -> None:
    with transaction.atomic(savepoint=False):
        WebhookDelivery.objects.bulk_create(deliveries)
        OutboxEvent.objects.bulk_create(
            OutboxEvent(
                event_type=OutboxEvent.WEBHOOK_DELIVERY,
                aggregate_id=delivery.id,
                event_data={"delivery_id": str(delivery.id), "event": delivery.event},
                available_at=now,
            )
            for delivery in deliveries
        )
        transaction.on_commit(outbox_relay_kick, robust=True)


def payload_body(*, event: str, data: dict, now: datetime) -> str:
    """The JSON sent (Standard Webhooks' shape): stored as text, so every attempt signs the
    same bytes."""
    return json.dumps(
        {"type": event, "timestamp": now.isoformat(), "data": data},
        separators=(",", ":"),
        default=str,
    )


# What each event tells, and to whom.


def job_created_notifications(
    *, job: Job, routed: Sequence[tuple[UUID, Match]]
) -> list[Notification]:
    """``job.created`` to the requester, and ``job.routed`` for its new routings: to the
    requester with all of them, to each receiving company with its own only."""
    requester = job.created_by_company_id
    notifications = [
        Notification(
            WebhookEvent.JOB_CREATED,
            requester,
            {**_job_data(job), "status": job.status, "routing_count": len(routed)},
        )
    ]
    return notifications + job_routed_notifications(job=job, routed=routed)


def job_routed_notifications(
    *, job: Job, routed: Sequence[tuple[UUID, Match]]
) -> list[Notification]:
    if not routed:
        return []
    routings = [_routing_match_data(routing_id, match) for routing_id, match in routed]
    notifications = [
        Notification(
            WebhookEvent.JOB_ROUTED,
            job.created_by_company_id,
            {**_job_data(job), "routings": routings},
        )
    ]
    for routing in routings:
        notifications.append(
            Notification(
                WebhookEvent.JOB_ROUTED,
                UUID(routing["company_id"]),
                {**_job_data(job), "routings": [routing]},
            )
        )
    return notifications


def _job_data(job: Job) -> dict:
    return {
        "job_id": str(job.id),
        "summary": job.summary,
        "city": job.city,
        "state": job.state,
        "zip_code": job.zip_code,
    }


def _routing_match_data(routing_id: UUID, match: Match) -> dict:
    return {
        "routing_id": str(routing_id),
        "company_id": str(match.company_id),
        "score": match.score,
        "matched_skills": list(match.matched_skills),
        "missing_skills": list(match.missing_skills),
        "reason": match.reason,
    }


def routing_notifications(
    event: str, *, routing: JobRouting, requester_id: UUID, data: dict
) -> list[Notification]:
    """A routing's event (``routing.*``) to its company and to its job's requester."""
    data = {
        "routing_id": str(routing.id),
        "job_id": str(routing.job_id),
        "company_id": str(routing.company_id),
        **data,
    }
    companies = dict.fromkeys([routing.company_id, requester_id])
    return [Notification(event, company_id, data) for company_id in companies]


def job_completed_notifications(
    *, job_id: UUID, requester_id: UUID, completed_at, revenue, routings: Iterable[tuple]
) -> list[Notification]:
    """``job.completed`` to the requester (the job's total revenue) and to each company whose
    routing completed it (its own routing and revenue only); ``routings`` are
    ``(routing id, company id, revenue)``."""
    base = {"job_id": str(job_id), "status": "completed", "completed_at": completed_at}
    notifications = [
        Notification(WebhookEvent.JOB_COMPLETED, requester_id, {**base, "revenue": revenue})
    ]
    for routing_id, company_id, routing_revenue in routings:
        if company_id != requester_id:
            notifications.append(
                Notification(
                    WebhookEvent.JOB_COMPLETED,
                    company_id,
                    {**base, "routing_id": str(routing_id), "revenue": routing_revenue},
                )
            )
    return notifications


# Endpoints


def webhook_url_check(url: str) -> None:
    """``UnsafeUrl`` when webhooks may not be sent to ``url`` under the current settings."""
    url_check(
        url,
        allow_http=settings.WEBHOOK_ALLOW_HTTP,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
        timeout=settings.WEBHOOK_DNS_TIMEOUT_SECONDS,
    )


def webhook_endpoint_create(
    *, company_id: UUID, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A company's new endpoint and its secret, which is shown this once."""
    if not Company.objects.filter(id=company_id).exists():
        raise BusinessRuleError(f"Company {company_id} does not exist.", field="company_id")
    secret = secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        company_id=company_id,
        url=url,
        events=list(dict.fromkeys(events)),
        description=description,
        secrets={"secret": secret},
    )
    return endpoint, secret


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, **changes) -> WebhookEndpoint:
    """Change an endpoint's ``url``, ``events``, ``description`` or ``enabled``. Enabling one
    clears its failures; disabling one ends its pending deliveries."""
    now = timezone.now()
    with transaction.atomic():
        for name in ("url", "description"):
            if name in changes:
                setattr(endpoint, name, changes[name])
        if "events" in changes:
            endpoint.events = list(dict.fromkeys(changes["events"]))
        enabled = changes.get("enabled")
        if enabled is True and not endpoint.enabled:
            endpoint.enable(now=now)
        elif enabled is False and endpoint.enabled:
            endpoint.disable(reason="Disabled by its owner.", now=now)
            endpoint_deliveries_end(endpoint_ids=[endpoint.id], reason="Endpoint disabled.")
        endpoint.save()
    return endpoint


def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, now: datetime) -> bool:
    """Disable an endpoint and end its pending deliveries; False when it was disabled already."""
    with transaction.atomic():
        if not WebhookEndpoint.objects.filter(id=endpoint.id, enabled=True).update(
            enabled=False,
            disabled_at=now,
            disabled_reason=reason[:500],
            updated_at=now,
        ):
            return False
        endpoint_deliveries_end(endpoint_ids=[endpoint.id], reason=f"Endpoint disabled: {reason}")
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason[:500]
    return True


def endpoint_deliveries_end(*, endpoint_ids: list, reason: str) -> int:
    """The pending deliveries of these endpoints fail (no more attempts), and their outbox
    events are closed. Returns the number of deliveries ended."""
    now = timezone.now()
    pending = WebhookDelivery.objects.filter(
        endpoint_id__in=endpoint_ids, status=WebhookDeliveryStatus.PENDING
    )
    delivery_ids = list(pending.values_list("id", flat=True))
    if not delivery_ids:
        return 0
    pending.update(status=WebhookDeliveryStatus.FAILED, next_attempt_at=None, last_error=reason)
    OutboxEvent.objects.filter(
        event_type=OutboxEvent.WEBHOOK_DELIVERY,
        aggregate_id__in=delivery_ids,
        status=OutboxStatus.PENDING,
    ).update(status=OutboxStatus.DONE, processed_at=now, last_error=reason)
    return len(delivery_ids)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries; their outbox events are closed."""
    with transaction.atomic():
        delivery_ids = list(endpoint.deliveries.values_list("id", flat=True))
        OutboxEvent.objects.filter(
            event_type=OutboxEvent.WEBHOOK_DELIVERY,
            aggregate_id__in=delivery_ids,
            status=OutboxStatus.PENDING,
        ).update(status=OutboxStatus.DONE, processed_at=timezone.now())
        endpoint.delete()


def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> str:
    """A new secret, shown this once; the current one keeps signing beside it for
    ``WEBHOOK_SECRET_OVERLAP_HOURS``."""
    now = now or timezone.now()
    secret = secret_generate()
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(id=endpoint.id)
        locked.secret_rotate(
            secret=secret,
            now=now,
            overlap=timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS),
        )
        locked.save(update_fields=["secrets", "previous_secret_expires_at", "updated_at"])
    endpoint.secrets = locked.secrets
    endpoint.previous_secret_expires_at = locked.previous_secret_expires_at
    return secret


def webhook_endpoint_test(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``webhook.test`` delivery to this endpoint, whatever it subscribed to."""
    if not endpoint.enabled:
        raise BusinessRuleError("The endpoint is disabled; enable it before testing it.")
    now = timezone.now()
    delivery = WebhookDelivery(
        endpoint=endpoint,
        event=WebhookEvent.WEBHOOK_TEST,
        body=payload_body(
            event=WebhookEvent.WEBHOOK_TEST,
            data={"endpoint_id": str(endpoint.id), "company_id": str(endpoint.company_id)},
            now=now,
        ),
        next_attempt_at=now,
        created_at=now,
    )
    with transaction.atomic():
        _deliveries_write([delivery], now=now)
    return delivery


def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> bool:
    """Send a delivery again (a new round of retries), e.g. a dead letter once its receiver
    is fixed. False when its endpoint is disabled or it is still pending."""
    if not delivery.endpoint.enabled or delivery.is_pending:
        return False
    now = timezone.now()
    delivery.redeliver(now=now)
    with transaction.atomic():
        delivery.save(update_fields=["status", "retry_count", "next_attempt_at", "delivered_at"])
        OutboxEvent.objects.create(
            event_type=OutboxEvent.WEBHOOK_DELIVERY,
            aggregate_id=delivery.id,
            event_data={"delivery_id": str(delivery.id), "event": delivery.event},
            available_at=now,
        )
        transaction.on_commit(outbox_relay_kick, robust=True)
    return True


def webhook_endpoint_disabled_tell(*, endpoint: WebhookEndpoint) -> list[str]:
    """Email the endpoint's company (its notification address, else ``OPS_ALERT_EMAILS``) that
    the endpoint was disabled. Returns the addresses told."""
    company = endpoint.company
    recipients = [company.notification_email] if company.notification_email else []
    recipients = recipients or list(settings.OPS_ALERT_EMAILS)
    if not recipients:
        return []
    send_mail(
        subject=f"[TradeEngage] Webhook endpoint disabled: {endpoint.url}",
        message=render_to_string(
            "routing/webhook_endpoint_disabled.txt",
            {
                "endpoint": endpoint,
                "company": company,
                "days": settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS,
            },
        ),
        from_email=None,
        recipient_list=recipients,
    )
    return recipients
