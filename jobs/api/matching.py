"""Matching explanations (seed 003 "Matching Service"): a job's candidates, ranked again now
(``/api/v1/jobs/{id}/matches``, seed 000's contract), and under ``/api/v1/matching/`` in seed
003's envelope how well the caller's company fits some jobs, and its matching profile.

The ``/api/v1/matching/`` endpoints answer for the key's own company: an ops key, which has
none, is refused (403 ``PERMISSION_DENIED``); ops edit a company's profile in the admin.
"""

import uuid

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from jobs import services
from jobs.matching import job_candidates, match_company_jobs
from jobs.models import Company, Job
from jobs.selectors import company_profile_get, job_get
from jobs.serializers import (
    MAX_MATCHING_JOB_IDS,
    JobMatchesQuerySerializer,
    JobMatchesSerializer,
    MatchingJobsRequestSerializer,
    MatchingJobsSerializer,
    MatchingProfileSerializer,
    MatchingProfileUpdateSerializer,
)
from routing.selectors import jobs_visible_to
from tradeengage.integrator import IntegratorView, integrator_response
from tradeengage.schema import (
    FORBIDDEN,
    INTEGRATOR_FORBIDDEN,
    INTEGRATOR_MALFORMED,
    INTEGRATOR_UNAUTHORIZED,
    MALFORMED,
    NOT_FOUND,
    UNAUTHORIZED,
    integrator_envelope,
)

TAG = "matching"
RECOMPUTED_NOTE = (
    "candidates are ranked now from the current network (skills, service areas, load), by the "
    "computation that routed the job; routings hold the explanations stored when the job was "
    "routed, which may differ since."
)
PROFILE_ENVELOPE = integrator_envelope(MatchingProfileSerializer(), name="MatchingProfile")
OPS_HAS_NO_COMPANY = (
    "Matching answers for the key's own company; an ops key has none. Use a company's key."
)


class JobMatchesApi(APIView):
    required_scopes = {"GET": Scope.JOBS_READ}

    @extend_schema(
        operation_id="jobs_matches",
        tags=[TAG],
        summary="A job's candidates, ranked again now, and its routings' stored explanations",
        description="For the company that requested the job, and ops. `candidates` are ranked "
        "now by the computation that routed the job (the requester excluded), best first and "
        "paged with `skip` and `limit`; each says whether it holds a routing of the job. "
        "`routings` are every routing of the job with the explanation stored when it was made, "
        "including companies the ranking no longer lists. A company that received the job may "
        "not see the other candidates (403); one that neither requested nor received it gets "
        "404, as for a missing job.",
        parameters=[
            OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID"),
            JobMatchesQuerySerializer,
        ],
        responses={
            200: JobMatchesSerializer,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            422: MALFORMED,
        },
    )
    def get(self, request, job_id: str):
        query = JobMatchesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        skip, limit = query.validated_data["skip"], query.validated_data["limit"]
        job = job_get(job_id=job_id, queryset=jobs_visible_to(request.user))
        if not request.user.acts_for(job.created_by_company_id):
            raise PermissionDenied("Only the company that requested the job sees its candidates.")
        recomputed_at = timezone.now()
        candidates = job_candidates(job=job, limit=skip + limit)[skip:]
        routings = list(job.routings.select_related("company"))
        routing_ids = {routing.company_id: routing.id for routing in routings}
        names = dict(
            Company.objects.filter(id__in=[m.company_id for m in candidates]).values_list(
                "id", "name"
            )
        )
        body = {
            "job_id": job.id,
            "recomputed_at": recomputed_at,
            "note": RECOMPUTED_NOTE,
            "skip": skip,
            "limit": limit,
            "candidates": [
                {
                    "rank": skip + index + 1,
                    "company_id": match.company_id,
                    "company_name": names.get(match.company_id, ""),
                    "score": match.score,
                    "matched_skills": match.matched_skills,
                    "missing_skills": match.missing_skills,
                    "reason": match.reason,
                    "routed": match.company_id in routing_ids,
                    "routing_id": routing_ids.get(match.company_id),
                }
                for index, match in enumerate(candidates)
            ],
            "routings": [
                {
                    "routing_id": routing.id,
                    "company_id": routing.company_id,
                    "company_name": routing.company.name,
                    "sync_status": routing.sync_status,
                    "score": routing.matching_score,
                    "matched_skills": routing.matched_skills,
                    "missing_skills": routing.missing_skills,
                    "reason": routing.match_reason,
                    "routed_by": routing.routed_by,
                    "routed_at": routing.created_at,
                }
                for routing in routings
            ],
        }
        return Response(JobMatchesSerializer(body).data)


def _own_company_id(request) -> uuid.UUID:
    if request.user.company_id is None:
        raise PermissionDenied(OPS_HAS_NO_COMPANY)
    return request.user.company_id


class MatchingJobsApi(IntegratorView):
    required_scopes = {"POST": Scope.JOBS_READ}

    @extend_schema(
        operation_id="matching_jobs",
        tags=[TAG],
        summary="How well the key's company matches some jobs",
        description=f"Scores the key's company for each job it may see (that it requested or "
        f"received), as matching scores a candidate: a required skill it lacks, or holds below "
        f"the required level, is listed in `missing_skills` and adds nothing. 1 to "
        f"{MAX_MATCHING_JOB_IDS} ids; each job is answered once, in the order first named. A "
        f"job it may not see, an unknown id and a malformed one are all listed in `not_found`, "
        f"alike. Needs a company's key (an ops key has no company: 403).",
        request=MatchingJobsRequestSerializer,
        responses={
            200: integrator_envelope(MatchingJobsSerializer(), name="MatchingJobs"),
            401: INTEGRATOR_UNAUTHORIZED,
            403: INTEGRATOR_FORBIDDEN,
            422: INTEGRATOR_MALFORMED,
        },
    )
    def post(self, request):
        company_id = _own_company_id(request)
        serializer = MatchingJobsRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        asked = list(dict.fromkeys(serializer.validated_data["job_ids"]))
        parsed = {job_id: _uuid_or_none(job_id) for job_id in asked}
        jobs = jobs_visible_to(
            request.user, Job.objects.filter(id__in={p for p in parsed.values() if p})
        ).only("id", "category_id", "state", "zip_code")
        visible = {job.id: job for job in jobs}
        found = [visible[parsed[job_id]] for job_id in asked if parsed[job_id] in visible]
        company = Company.objects.get(id=company_id)
        matches = match_company_jobs(company=company, jobs=found)
        body = {
            "matches": [
                {
                    "job_id": job.id,
                    "score": match.score,
                    "reason": match.reason,
                    "matched_skills": match.matched_skills,
                    "missing_skills": match.missing_skills,
                }
                for job, match in zip(found, matches, strict=True)
            ],
            "not_found": [job_id for job_id in asked if parsed[job_id] not in visible],
        }
        return integrator_response(MatchingJobsSerializer(body).data)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class MatchingProfileApi(IntegratorView):
    required_scopes = {"GET": Scope.JOBS_READ, "PUT": Scope.PROFILE}

    @extend_schema(
        operation_id="matching_profile_retrieve",
        tags=[TAG],
        summary="The key's company's matching profile",
        description="Its skills with levels, service areas and primary category, as matching "
        "reads them. Needs a company's key (an ops key has no company: 403).",
        responses={
            200: PROFILE_ENVELOPE,
            401: INTEGRATOR_UNAUTHORIZED,
            403: INTEGRATOR_FORBIDDEN,
        },
    )
    def get(self, request):
        company = company_profile_get(company_id=_own_company_id(request))
        return integrator_response(MatchingProfileSerializer(company).data)

    @extend_schema(
        operation_id="matching_profile_update",
        tags=[TAG],
        summary="Replace the key's company's matching profile",
        description="Replaces the skills, service areas and primary category wholesale, in one "
        "transaction: what the body leaves out is gone. A skill is "
        '`{"skill": "plumbing", "level": "expert"}`, or a plain slug (seed 003\'s '
        '`["plumbing"]`), held at basic. A service area is `{"kind": "state", "code": "IL"}` '
        'or `{"kind": "zip_prefix", "code": "627"}`. `primary_category` is a category slug or '
        "null. Unknown skills and categories are refused (422, naming the known ones); other "
        "fields of seed 003's profile are ignored. New jobs are matched on the new profile at "
        "once. Needs the profile scope and a company's key (an ops key has no company: 403).",
        request=MatchingProfileUpdateSerializer,
        responses={
            200: PROFILE_ENVELOPE,
            401: INTEGRATOR_UNAUTHORIZED,
            403: INTEGRATOR_FORBIDDEN,
            422: INTEGRATOR_MALFORMED,
        },
    )
    def put(self, request):
        company_id = _own_company_id(request)
        serializer = MatchingProfileUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        company = services.company_profile_update(
            company_id=company_id, **serializer.validated_data
        )
        return integrator_response(MatchingProfileSerializer(company).data)
