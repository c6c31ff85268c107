import logging
from collections import Counter
from typing import NamedTuple
from uuid import UUID, uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from jobs.matching import Match, Requirement, match_companies
from jobs.models import Company, Job, JobSkill, SkillLevel, Technician
from jobs.selectors import managed_lists, managed_lists_forget
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.outbox import outbox_relay_kick
from tradeengage.db import insert_statement, is_lock_conflict
from tradeengage.exceptions import BusinessRuleError, ConflictError

logger = logging.getLogger("jobs")

# How many times job creation runs its transaction when the database aborts it for clashing
# with a concurrent one (a deadlock or serialization failure), before answering 409.
JOB_CREATE_ATTEMPTS = 3


def resolve_skills(*, skill_levels: dict[str, str], skill_ids: dict[str, int]) -> list[Requirement]:
    """Map skill slugs to managed skills; an unknown slug is an error naming the known ones."""
    if not skill_levels:
        return []
    unknown = [slug for slug in skill_levels if slug not in skill_ids]
    if unknown:
        raise ValidationError(
            {
                "required_skills": f"Unknown skill(s): {', '.join(unknown)}. "
                f"Known skills: {', '.join(sorted(skill_ids))}."
            }
        )
    return [
        Requirement(skill_id=skill_ids[slug], slug=slug, level=SkillLevel.from_name(level))
        for slug, level in skill_levels.items()
    ]


def resolve_category(*, slug: str | None, category_ids: dict[str, int]) -> int | None:
    """The id of a managed category; an unknown slug is an error naming the known ones."""
    if not slug:
        return None
    if slug not in category_ids:
        raise ValidationError(
            {
                "category": f"Unknown category '{slug}'. "
                f"Known categories: {', '.join(sorted(category_ids))}."
            }
        )
    return category_ids[slug]


def requester_check(*, company_id: UUID, technician_id: UUID) -> Technician:
    """The requesting company must exist and be active, and the technician must belong to it."""
    technician = (
        Technician.objects.select_related("company")
        .only("id", "company_id", "is_active", "company__id", "company__is_active")
        .filter(id=technician_id)
        .first()
    )
    if technician is not None and technician.company_id == company_id:
        company = technician.company
    else:
        company = Company.objects.only("id", "is_active").filter(id=company_id).first()
    if company is None:
        raise BusinessRuleError(
            f"Company {company_id} does not exist.", field="created_by_company_id"
        )
    if not company.is_active:
        raise BusinessRuleError(
            f"Company {company_id} is not active.", field="created_by_company_id"
        )
    if technician is None:
        raise BusinessRuleError(
            f"Technician {technician_id} does not exist.",
            field="created_by_technician_id",
        )
    if technician.company_id != company_id:
        raise BusinessRuleError(
            f"Technician {technician_id} does not belong to company {company_id}.",
            field="created_by_technician_id",
        )
    if not technician.is_active:
        raise BusinessRuleError(
            f"Technician {technician_id} is not active.",
            field="created_by_technician_id",
        )
    return technician


def job_create(
    *,
    summary: str,
    address: dict,
    homeowner: dict,
    created_by_company_id: UUID,
    created_by_technician_id: UUID,
    skill_levels: dict[str, str],
    category: str | None = None,
) -> Job:
    """Create a job, route it to the best-matching companies and record one ``job_sync`` outbox
    event per routing, all in one transaction: either everything is stored or nothing is.

    ``skill_levels`` maps each required skill slug to its level name, in the order the client
    listed them. The relay is kicked after commit; if that kick is lost, the relay's beat finds
    the events anyway.
    """
    lists = managed_lists()
    requirements = resolve_skills(skill_levels=skill_levels, skill_ids=lists["skills"])
    category_id = resolve_category(slug=category, category_ids=lists["categories"])
    technician = requester_check(
        company_id=created_by_company_id, technician_id=created_by_technician_id
    )
    matches = match_companies(
        requirements=requirements,
        category_id=category_id,
        state=address["state"],
        zip_code=address["zip_code"],
        exclude_company_id=technician.company_id,
        limit=settings.MATCH_LIMIT,
    )

    for attempt in range(1, JOB_CREATE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                job = _job_insert(
                    summary=summary,
                    address=address,
                    homeowner=homeowner,
                    technician=technician,
                    category_id=category_id,
                    requirements=requirements,
                )
                routings = routings_create(job=job, matches=matches)
            break
        except IntegrityError as exc:
            # A skill, category, company or technician read above was deleted before the insert.
            managed_lists_forget()
            raise ConflictError(
                "The network changed while the job was being created; send it again."
            ) from exc
        except OperationalError as exc:
            if not is_lock_conflict(exc) or attempt == JOB_CREATE_ATTEMPTS:
                raise
            logger.warning("Job creation clashed with a concurrent write; trying again (%s)", exc)

    transaction.on_commit(outbox_relay_kick, robust=True)
    logger.info(
        "Job created",
        extra={
            "job_id": str(job.id),
            "routings": len(routings),
            "matching_score": max((m.score for m in matches), default=None),
        },
    )
    return job


def _job_insert(*, summary, address, homeowner, technician, category_id, requirements) -> Job:
    job = Job.objects.create(
        summary=summary,
        street=address["street"],
        city=address["city"],
        state=address["state"],
        zip_code=address["zip_code"],
        homeowner_name=homeowner["name"],
        homeowner_phone=homeowner.get("phone") or "",
        homeowner_email=homeowner.get("email") or "",
        created_by_company_id=technician.company_id,
        created_by_technician=technician,
        category_id=category_id,
    )
    JobSkill.objects.bulk_create(
        JobSkill(job=job, skill_id=r.skill_id, level=r.level) for r in requirements
    )
    return job


def routings_create(*, job: Job, matches: list[Match]) -> list[UUID]:
    """Route a job to matched companies: routings, their outbox events, and the companies' load.

    Must run inside the caller's transaction. The load update comes last so the company rows are
    locked for as short a time as possible.
    """
    return routings_store(pairs=[(job, match) for match in matches])


def routings_store(*, pairs: list[tuple[Job, Match]]) -> list[UUID]:
    """Routings for (job, match) pairs, one ``job_sync`` outbox event each (seed 000's event
    data), and each company's load raised by its new routings; the new routings' ids. Must run
    inside the caller's transaction.

    On PostgreSQL all of it is one statement: the routings are the part of job creation that
    grows with the matches, and one statement costs less than half of the ORM's three.
    """
    if not pairs:
        return []
    rows = routing_rows(pairs)
    if connection.vendor == "postgresql":
        routing_rows_write_in_one_statement(rows)
    else:
        routing_rows_write_per_table(rows)
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


def routing_rows(pairs: list[tuple[Job, Match]]) -> RoutingRows:
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
            "event_data": {
                "routing_id": str(routing["id"]),
                "job_id": str(job.id),
                "company_id": str(m.company_id),
                "matching_score": m.score,
                "matched_skills": m.matched_skills,
                "provider_type": m.provider_type,
            },
        }
        for routing, (job, m) in zip(routings, pairs, strict=True)
    ]
    return RoutingRows(
        routings=routings,
        routing_defaults={
            "sync_status": SyncStatus.PENDING,
            "retry_count": 0,
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


def routing_rows_write_in_one_statement(rows: RoutingRows) -> None:
    """Routings, events and the companies' load in one data-modifying ``WITH`` (PostgreSQL).

    The company rows are locked in id order before their load is raised: an ``UPDATE`` alone
    takes its rows in whatever order its scan meets them, and two jobs raising the same
    companies in different orders deadlock."""
    routings_sql, routings_params = insert_statement(
        JobRouting, rows.routings, rows.routing_defaults
    )
    events_sql, events_params = insert_statement(OutboxEvent, rows.events, rows.event_defaults)
    company_table = Company._meta.db_table
    company_ids, increments = zip(*rows.loads, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH new_routings AS ({routings_sql}), new_events AS ({events_sql}),"
            f" raised AS (SELECT c.id, raise.n FROM {company_table} c"
            "  JOIN unnest(%s::uuid[], %s::integer[]) AS raise(id, n) ON raise.id = c.id"
            "  ORDER BY c.id FOR NO KEY UPDATE OF c)"
            f" UPDATE {company_table} SET open_routing_count = open_routing_count + raised.n"
            f" FROM raised WHERE {company_table}.id = raised.id",
            [*routings_params, *events_params, list(company_ids), list(increments)],
        )


def routing_rows_write_per_table(rows: RoutingRows) -> None:
    JobRouting.objects.bulk_create(JobRouting(**r, **rows.routing_defaults) for r in rows.routings)
    OutboxEvent.objects.bulk_create(OutboxEvent(**e, **rows.event_defaults) for e in rows.events)
    _loads_raise(rows.loads)


def _loads_raise(loads: list[tuple[UUID, int]]) -> None:
    """Raise the companies' load, their rows locked in id order first where the database
    locks rows (see ``routing_rows_write_in_one_statement``)."""
    company_ids = [company_id for company_id, _ in loads]
    if connection.features.has_select_for_update:
        companies = Company.objects.filter(id__in=company_ids).order_by("id")
        list(companies.select_for_update(no_key=True).values_list("id", flat=True))
    by_increment: dict[int, list[UUID]] = {}
    for company_id, increment in loads:
        by_increment.setdefault(increment, []).append(company_id)
    for increment, ids in sorted(by_increment.items()):
        Company.objects.filter(id__in=ids).update(
            open_routing_count=F("open_routing_count") + increment
        )
