"""A client's leads: open jobs in its service area that it is qualified for, assigned up to its
plan's ``leads_per_report`` as routings through routing's one writer."""

import random
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from jobs.matching import Match
from jobs.models import Company, CompanySkill, Job, JobSkill, JobStatus, ServiceArea
from processing.models import LOOKBACK, ProcessingJob
from routing.models import JobRouting
from routing.services.create import routings_create
from routing.services.webhooks import job_routed_notifications, webhooks_notify

OPEN_JOB_STATUSES = [JobStatus.PENDING, JobStatus.IN_PROGRESS]
LEAD_SCORE = 2.0


@dataclass(frozen=True)
class LeadRef:
    id: object
    created_at: datetime


def leads_collect(*, client: Company, now: datetime) -> list["LeadRef"]:
    """Open jobs of the last 3 months in the client's service area whose required skills it
    holds at their levels, not requested by it and not already routed to it.

    Three indexed reads (the jobs in its area, their skills, its routings among them) and the
    skill check in Python: cheaper than one statement whose planner hashes every job skill."""
    areas = list(ServiceArea.objects.filter(company=client).values_list("kind", "code"))
    in_area = Q(pk__in=[])
    for kind, code in areas:
        in_area |= Q(state=code) if kind == ServiceArea.Kind.STATE else Q(zip_code__startswith=code)
    in_reach = Job.objects.filter(
        in_area, status__in=OPEN_JOB_STATUSES, created_at__gte=now - LOOKBACK
    ).exclude(created_by_company=client)
    candidates = list(in_reach.values_list("id", "created_at"))
    held = dict(CompanySkill.objects.filter(company=client).values_list("skill_id", "level"))
    lacking = {
        job_id
        for job_id, skill_id, level in JobSkill.objects.filter(
            job__in=in_reach.values("id")
        ).values_list("job_id", "skill_id", "level")
        if held.get(skill_id, 0) < level
    }
    routed = set(
        JobRouting.objects.filter(company=client, job__in=in_reach.values("id")).values_list(
            "job_id", flat=True
        )
    )
    return [
        LeadRef(id=job_id, created_at=created_at)
        for job_id, created_at in candidates
        if job_id not in lacking and job_id not in routed
    ]


def leads_order(leads: list[Job], *, seed) -> list[Job]:
    """Oldest months first, shuffled within each month (seeded: the same seed, the same order)."""
    rng = random.Random(str(seed))
    by_month: dict = {}
    for lead in sorted(leads, key=lambda job: (job.created_at, str(job.id))):
        by_month.setdefault(_month(lead), []).append(lead)
    ordered = []
    for month in sorted(by_month):
        batch = by_month[month]
        rng.shuffle(batch)
        ordered += batch
    return ordered


def _month(lead) -> tuple[int, int]:
    return lead.created_at.year, lead.created_at.month


def leads_assign(
    *, client: Company, leads: list["LeadRef"], seed, job: ProcessingJob | None = None
) -> list[Job]:
    """Route up to the client's ``leads_per_report`` leads to it, as job creation routes a job:
    a routing and its ``job_sync`` outbox event each, so they sync to the client's provider.

    With ``job``, the leads an earlier attempt of the run assigned count towards the quota and
    are returned first, and the new ones are recorded on it in the same transaction."""
    already = list(Job.objects.filter(id__in=job.assigned_job_ids)) if job else []
    quota = client.leads_per_report - len(already)
    if quota <= 0:
        return already
    # Whole months, oldest first, until the quota is filled, so the shuffle within the last
    # month taken is fair.
    candidates: list[LeadRef] = []
    for lead in sorted(leads, key=lambda ref: (ref.created_at, str(ref.id))):
        if len(candidates) >= quota and _month(lead) != _month(candidates[-1]):
            break
        candidates.append(lead)
    chosen_ids = [lead.id for lead in leads_order(candidates, seed=seed)[:quota]]
    by_id = Job.objects.in_bulk(chosen_ids)
    chosen = [by_id[lead_id] for lead_id in chosen_ids]
    required: dict = {}
    for job_id, slug in JobSkill.objects.filter(job__in=chosen).values_list(
        "job_id", "skill__slug"
    ):
        required.setdefault(job_id, []).append(slug)
    pairs = [
        (
            lead,
            Match(
                company_id=client.id,
                provider_type=client.provider_type,
                score=LEAD_SCORE,
                matched_skills=required.get(lead.id, []),
                reason="Assigned as a lead in the client's report",
            ),
        )
        for lead in chosen
    ]
    with transaction.atomic():
        routing_ids = routings_create(pairs=pairs)
        webhooks_notify(
            [
                notification
                for (lead, match), routing_id in zip(pairs, routing_ids, strict=True)
                for notification in job_routed_notifications(job=lead, routed=[(routing_id, match)])
            ]
        )
        if job is not None and chosen:
            job.assigned_job_ids = [str(lead.id) for lead in [*already, *chosen]]
            ProcessingJob.objects.filter(job_id=job.job_id).update(
                assigned_job_ids=job.assigned_job_ids
            )
    return [*already, *chosen]
