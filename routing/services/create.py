"""Routing a job to companies: the only writer of routings, their ``job_sync`` outbox events and
the companies' load, for job creation, client processing's leads and the manual route."""

import logging
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID, uuid4

from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from jobs.matching import Match, match_company
from jobs.models import Company, Job, JobStatus
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.outbox import outbox_relay_kick
from routing.services.load import company_loads_change, company_loads_raise_statement
from routing.services.webhooks import job_routed_notifications, webhooks_notify
from tradeengage import metrics
from tradeengage.db import (
    insert_statement,
    new_object_rows,
    new_objects_insert,
    new_objects_stored,
)
from tradeengage.exceptions import BusinessRuleError

logger = logging.getLogger("routing")


def routings_create(
    *, pairs: list[tuple[Job, Match]], routed_by: str = "", along_with: Sequence[Model] = ()
) -> list[UUID]:
    """Routings for ``(job, match)`` pairs, one ``job_sync`` outbox event each, and each
    company's load raised by its new routings; the new routings' ids. Must run inside the
    caller's transaction; the relay is kicked when it commits (if the kick is lost, the relay's
    beat finds the events anyway). ``routed_by`` names who routed them by hand, if anyone.
    ``along_with`` are new objects of other models stored first, in the same write (a new job
    and its skills), whether or not any routing is made.

    On PostgreSQL all of it is one statement: job creation is on the hot path, and one
    statement costs less than half of the ORM's five.
    """
    rows = routing_rows(pairs, routed_by=routed_by) if pairs else None
    if rows is None and not along_with:
        return []
    if connection.vendor == "postgresql":
        routing_rows_write_in_one_statement(rows, along_with=along_with)
    else:
        new_objects_insert(along_with)
        if rows is not None:
            routing_rows_write_per_table(rows)
    if rows is None:
        return []
    transaction.on_commit(outbox_relay_kick, robust=True)
    routed = metrics.job_routing.labels("manual" if routed_by else "matched")
    transaction.on_commit(lambda: routed.inc(len(rows.routings)))
    return [routing["id"] for routing in rows.routings]


class RoutingRows(NamedTuple):
    """What routing (job, match) pairs writes: the routings' and outbox events' values that
    differ per row and those they share (``{field name: value}``), and the companies' load
    increments as ``(company id, increment)`` in company id order."""

    routings: list[dict]
    routing_defaults: dict
    events: list[dict]
    event_defaults: dict
    loads: list[tuple[UUID, int]]


def routing_rows(pairs: list[tuple[Job, Match]], *, routed_by: str = "") -> RoutingRows:
    now = timezone.now()
    routings = [
        {
            "id": uuid4(),
            "job_id": job.id,
            "company_id": m.company_id,
            "matching_score": m.score,
            "matched_skills": m.matched_skills,
            "missing_skills": m.missing_skills,
            "match_reason": m.reason,
        }
        for job, m in pairs
    ]
    events = [
        {
            "aggregate_id": routing["id"],
            "event_data": OutboxEvent.job_sync_data(
                routing_id=routing["id"],
                job_id=job.id,
                company_id=m.company_id,
                matching_score=m.score,
                matched_skills=m.matched_skills,
                provider_type=m.provider_type,
                correlation_id=job.correlation_id,
            ),
        }
        for routing, (job, m) in zip(routings, pairs, strict=True)
    ]
    return RoutingRows(
        routings=routings,
        routing_defaults={
            "sync_status": SyncStatus.PENDING,
            "retry_count": 0,
            "routed_by": routed_by,
            "created_at": now,
            "updated_at": now,
        },
        events=events,
        event_defaults={
            "event_type": OutboxEvent.JOB_SYNC,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "available_at": now,
            "last_error": "",
            "created_at": now,
        },
        loads=sorted(Counter(m.company_id for _, m in pairs).items()),
    )


def routing_rows_write_in_one_statement(
    rows: RoutingRows | None, *, along_with: Sequence[Model] = ()
) -> None:
    """``along_with``'s objects, then routings, events and the companies' load, in one
    data-modifying ``WITH`` (PostgreSQL; foreign keys are checked at its end). Columns the
    statement does not name get NULL: a new non-null column of ``JobRouting`` or
    ``OutboxEvent`` needs its value here (the writers' equivalence test catches a missing
    one)."""
    inserts = [insert_statement(model, values) for model, values in new_object_rows(along_with)]
    if rows is not None:
        inserts.append(insert_statement(JobRouting, rows.routings, rows.routing_defaults))
        inserts.append(insert_statement(OutboxEvent, rows.events, rows.event_defaults))
        # The loads' statement is a WITH's last part and the statement that ends it.
        loads_sql, loads_params = company_loads_raise_statement(rows.loads)
        parts = [f"new_{number} AS ({sql})" for number, (sql, _) in enumerate(inserts)]
        sql = f"WITH {', '.join([*parts, loads_sql])}"
        params = [param for _, part_params in inserts for param in part_params] + loads_params
    else:
        last_sql, _ = inserts[-1]
        parts = [f"new_{number} AS ({sql})" for number, (sql, _) in enumerate(inserts[:-1])]
        sql = f"WITH {', '.join(parts)} {last_sql}" if parts else last_sql
        params = [param for _, part_params in inserts for param in part_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    new_objects_stored(along_with)


def routing_rows_write_per_table(rows: RoutingRows) -> None:
    JobRouting.objects.bulk_create(JobRouting(**r, **rows.routing_defaults) for r in rows.routings)
    OutboxEvent.objects.bulk_create(OutboxEvent(**e, **rows.event_defaults) for e in rows.events)
    company_loads_change(rows.loads)


def routing_route_manually(
    *, job: Job, company_id, routed_by: str, require_skills: bool = True
) -> JobRouting:
    """Route a job to a company an operator or integrator chose (POST /jobs/{id}/sync), with the
    match explained as matching would (a skill it lacks is listed as missing) and ``routed_by``
    recorded. The company must be active, accept jobs and not be the requester, the job still
    open, and (unless ``require_skills`` is off: an ops override) the company must hold the
    job's required skills at their levels; anything else is a business-rule error. A routing
    made by a concurrent request a moment ago is returned."""
    company = Company.objects.filter(id=company_id).first()
    if company is None:
        raise BusinessRuleError(f"Company {company_id} does not exist.", field="company_id")
    if company.id == job.created_by_company_id:
        raise BusinessRuleError(
            "A job is never routed to the company that requested it.", field="company_id"
        )
    if not (company.is_active and company.accepts_jobs):
        raise BusinessRuleError(
            f"Company {company_id} is not active or does not accept jobs.", field="company_id"
        )
    if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
        raise BusinessRuleError(f"Job {job.id} is {job.status}; it takes no new routings.")
    match = match_company(job=job, company=company)
    if require_skills and match.missing_skills:
        raise BusinessRuleError(
            f"Company {company_id} does not hold the job's required skills at their levels "
            f"(missing: {', '.join(match.missing_skills)}); only an ops key may route it there, "
            'with "override": true.',
            field="company_id",
        )
    match.reason = f"Manual route through POST /jobs/{{id}}/sync; {match.reason}"
    try:
        with transaction.atomic():
            [routing_id] = routings_create(pairs=[(job, match)], routed_by=routed_by)
            webhooks_notify(job_routed_notifications(job=job, routed=[(routing_id, match)]))
    except IntegrityError:
        pass
    routing = JobRouting.objects.select_related("job", "company").get(job=job, company=company)
    logger.info(
        "Manual route created",
        extra={"routing_id": str(routing.id), "job_id": str(job.id), "company_id": str(company.id)},
    )
    return routing
