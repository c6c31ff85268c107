import logging
from collections.abc import Callable
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from integrations.crm.connection import crm_account_connect
from jobs.coverage import coverage_rebuild
from jobs.matching import Requirement, match_companies
from jobs.models import Company, CompanySkill, Job, JobSkill, ServiceArea, SkillLevel, Technician
from jobs.selectors import (
    company_profile_get,
    job_with_external_id,
    managed_lists,
    managed_lists_forget,
)
from routing.services.create import routings_create
from routing.services.webhooks import job_created_notifications, webhooks_notify
from tradeengage import metrics
from tradeengage.db import is_lock_conflict
from tradeengage.exceptions import BusinessRuleError, ConflictError, NotFoundError
from tradeengage.logging import get_correlation_id, request_outcome_note

logger = logging.getLogger("jobs")

# How many times job creation runs its transaction when the database aborts it for clashing
# with a concurrent one (a deadlock or serialization failure), before answering 409.
JOB_CREATE_ATTEMPTS = 3


class DuplicateJob(ConflictError):
    """A job with the same company, source and external id exists: the one named."""

    def __init__(self, job_id: UUID):
        super().__init__(f"A job with this external id exists: {job_id}.")
        self.job_id = job_id


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
    company_active, technician_company_id, technician_active = _requester_row(
        company_id, technician_id
    )
    if company_active is None:
        raise BusinessRuleError(
            f"Company {company_id} does not exist.", field="created_by_company_id"
        )
    if not company_active:
        raise BusinessRuleError(
            f"Company {company_id} is not active.", field="created_by_company_id"
        )
    if technician_company_id is None:
        raise BusinessRuleError(
            f"Technician {technician_id} does not exist.",
            field="created_by_technician_id",
        )
    if technician_company_id != company_id:
        raise BusinessRuleError(
            f"Technician {technician_id} does not belong to company {company_id}.",
            field="created_by_technician_id",
        )
    if not technician_active:
        raise BusinessRuleError(
            f"Technician {technician_id} is not active.",
            field="created_by_technician_id",
        )
    return Technician(id=technician_id, company_id=company_id, is_active=True)


def _requester_row(company_id: UUID, technician_id: UUID) -> tuple:
    """The company's is_active, the technician's company_id and is_active (None each where
    there is no such row), in one statement written once: it runs on every job created, and the
    ORM spent longer compiling its two queries than the database spent answering them."""
    company, technician = Company._meta, Technician._meta
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT is_active FROM {company.db_table} WHERE id = %s),"
            f" (SELECT company_id FROM {technician.db_table} WHERE id = %s),"
            f" (SELECT is_active FROM {technician.db_table} WHERE id = %s)",
            [
                company.pk.get_db_prep_value(company_id, connection),
                technician.pk.get_db_prep_value(technician_id, connection),
                technician.pk.get_db_prep_value(technician_id, connection),
            ],
        )
        company_active, technician_company_id, technician_active = cursor.fetchone()
    if technician_company_id is not None:
        technician_company_id = company.pk.to_python(technician_company_id)
    # SQLite answers booleans as integers.
    return (
        None if company_active is None else bool(company_active),
        technician_company_id,
        None if technician_active is None else bool(technician_active),
    )


def job_create(
    *,
    summary: str,
    address: dict,
    homeowner: dict,
    created_by_company_id: UUID,
    created_by_technician_id: UUID,
    skill_levels: dict[str, str],
    category: str | None = None,
    source: str = "",
    external_id: str | None = None,
    on_created: Callable[[Job], None] | None = None,
) -> Job:
    """Create a job, route it to the best-matching companies and record one ``job_sync`` outbox
    event per routing, all in one transaction: either everything is stored or nothing is.

    ``skill_levels`` maps each required skill slug to its level name, in the order the client
    listed them. The routings and their events are written by ``routing``'s one writer.
    ``source`` and ``external_id`` name the job in an integrator's system (batch ingestion): a
    company's pair is unique, and a second job with it is refused by the database (409).
    ``on_created(job)`` runs last in that transaction (again if it is run again): what it writes
    commits with the job, and what it raises undoes the job.
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
                job, skills = _new_job(
                    summary=summary,
                    address=address,
                    homeowner=homeowner,
                    technician=technician,
                    category_id=category_id,
                    requirements=requirements,
                    source=source,
                    external_id=external_id,
                )
                # The job and its skills are stored with its routings, in one statement where
                # the database allows.
                routing_ids = routings_create(
                    pairs=[(job, match) for match in matches], along_with=[job, *skills]
                )
                webhooks_notify(
                    job_created_notifications(
                        job=job, routed=list(zip(routing_ids, matches, strict=True))
                    )
                )
                if on_created is not None:
                    on_created(job)
                transaction.on_commit(metrics.job_creation.inc)
            break
        except IntegrityError as exc:
            if external_id is not None:
                existing = job_with_external_id(
                    company_id=technician.company_id, source=source, external_id=external_id
                )
                if existing is not None:
                    raise DuplicateJob(existing) from exc
            # A skill, category, company or technician read above was deleted before the insert.
            managed_lists_forget()
            raise ConflictError(
                "The network changed while the job was being created; send it again."
            ) from exc
        except OperationalError as exc:
            if not is_lock_conflict(exc) or attempt == JOB_CREATE_ATTEMPTS:
                raise
            logger.warning("Job creation clashed with a concurrent write; trying again (%s)", exc)

    fields = {
        "job_id": str(job.id),
        "routings": len(routing_ids),
        "matching_score": max((m.score for m in matches), default=None),
    }
    # In a request, its one log line says it; elsewhere (a worker, a command), a line of its own.
    if not request_outcome_note("Job created successfully", **fields):
        logger.info("Job created", extra=fields)
    return job


def _new_job(
    *, summary, address, homeowner, technician, category_id, requirements, source, external_id
) -> tuple[Job, list[JobSkill]]:
    job = Job(
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
        correlation_id=get_correlation_id() or "",
        source=source,
        external_id=external_id,
    )
    return job, [JobSkill(job=job, skill_id=r.skill_id, level=r.level) for r in requirements]


def crm_receiver_url(*, base_url: str, company_id) -> str:
    """Our CRM webhook receiver's absolute URL for one company's account."""
    return f"{base_url.rstrip('/')}/api/integrations/crm/webhook?account={company_id}"


def company_crm_connect(*, company: Company, base_url: str) -> dict:
    """Connect a CRM company's account (``crm_account_connect``) and merge the webhook secret
    into its encrypted provider credentials, keeping the others; the CRM's answer about the
    webhook (no secret in it). Raises what connecting raises, having stored nothing.

    The row is locked and read again before the merge, so credentials saved in the admin
    while the CRM answered are kept."""
    result = crm_account_connect(
        options=company.provider_account().settings,
        receiver_url=crm_receiver_url(base_url=base_url, company_id=company.id),
    )
    with transaction.atomic():
        locked = Company.objects.select_for_update().get(pk=company.pk)
        locked.provider_credentials = {
            **(locked.provider_credentials or {}),
            "webhook_secret": result["webhook_secret"],
        }
        locked.save(update_fields=["provider_credentials", "updated_at"])
    company.provider_credentials = locked.provider_credentials
    return result["webhook"]


# The profile's names of the fields that resolve_skills and resolve_category name in their errors.
PROFILE_FIELDS = {"required_skills": "skills", "category": "primary_category"}


def company_profile_update(
    *,
    company_id: UUID,
    skills: dict[str, str],
    service_areas: list[tuple[str, str]],
    primary_category: str | None,
) -> Company:
    """Replace a company's matching profile wholesale, in one transaction: its skills (``{slug:
    level name}``), its service areas (``[(kind, code)]`` as ``ServiceArea.clean`` leaves them)
    and its primary category (a slug, or None); then its coverage is rebuilt, since bulk writes
    send no signals. An unknown skill or category is an error naming the known ones, and
    changes nothing. Returns the company as ``company_profile_get`` reads it."""
    lists = managed_lists()
    try:
        requirements = resolve_skills(skill_levels=skills, skill_ids=lists["skills"])
        category_id = resolve_category(slug=primary_category, category_ids=lists["categories"])
    except ValidationError as exc:
        raise ValidationError(
            {PROFILE_FIELDS.get(name, name): errors for name, errors in exc.message_dict.items()}
        ) from exc
    with transaction.atomic():
        # The row lock taken here orders concurrent updates of one company's profile.
        updated = Company.objects.filter(id=company_id).update(
            primary_category_id=category_id, updated_at=timezone.now()
        )
        if not updated:
            raise NotFoundError(f"Company {company_id} not found.")
        # Raw deletes: the per-row signals would each delete coverage rebuilt below anyway.
        skills_held = CompanySkill.objects.filter(company_id=company_id)
        skills_held._raw_delete(skills_held.db)
        areas = ServiceArea.objects.filter(company_id=company_id)
        areas._raw_delete(areas.db)
        CompanySkill.objects.bulk_create(
            CompanySkill(company_id=company_id, skill_id=r.skill_id, level=r.level)
            for r in requirements
        )
        ServiceArea.objects.bulk_create(
            ServiceArea(company_id=company_id, kind=kind, code=code) for kind, code in service_areas
        )
        coverage_rebuild(company_ids=[company_id])
    return company_profile_get(company_id=company_id)
