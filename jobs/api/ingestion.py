"""Seed 003's batch ingestion: ``POST /api/v1/ingestion/jobs`` and ``GET /api/v1/ingestion/{id}``,
in seed 003's envelope (``tradeengage.integrator``)."""

import uuid

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status

from access.models import Scope
from access.ratelimit import ingested_jobs_limit
from jobs.ingestion import ItemIn, ingestion_batch_create
from jobs.models import IngestionBatch, IngestionItemStatus
from jobs.serializers import (
    IngestionAcceptedSerializer,
    IngestionBatchSerializer,
    IngestionItemSerializer,
    IngestionRequestSerializer,
)
from tradeengage.exceptions import NotFoundError, Problem, ProblemError, flatten_errors
from tradeengage.integrator import IntegratorView, integrator_response
from tradeengage.schema import (
    INTEGRATOR_FORBIDDEN,
    INTEGRATOR_MALFORMED,
    INTEGRATOR_NOT_FOUND,
    INTEGRATOR_UNAUTHORIZED,
    IntegratorErrorSerializer,
    integrator_envelope,
)

OWN_COMPANY_ONLY = "A company's key creates jobs only as its own company."


class BatchTooLarge(ProblemError):
    def __init__(self, received: int, limit: int):
        super().__init__(f"A batch holds at most {limit} jobs; this one has {received}.")

    def problem(self) -> Problem:
        return Problem(413, "VALIDATION_ERROR", f"{self} Send them in several batches.")


class IngestionJobsApi(IntegratorView):
    required_scopes = {"POST": Scope.JOBS_WRITE}

    @extend_schema(
        operation_id="ingestion_jobs_create",
        summary="Submit a batch of jobs for ingestion",
        description='Seed 003 "Job Ingestion". Up to `INGESTION_MAX_JOBS` (500 by default) '
        "jobs, each the body of `POST /api/v1/jobs/` with an `external_id`. The batch's shape "
        "is checked first (422, or 413 for too many jobs); then each job on its own: an "
        "invalid one is reported in the batch's results and never fails the others. Valid "
        "jobs are created by workers, routed as `POST /api/v1/jobs/` routes them; follow "
        "them at `GET /api/v1/ingestion/{ingestion_id}`.\n\n"
        "A company's `(source, external_id)` names one job: sending it again, in this batch, "
        "a later one or one at the same time, reports a duplicate of the job made the first "
        "time and creates nothing.\n\n"
        "Besides the key's requests a minute, each valid job of a batch counts against the "
        "key's jobs ingested an hour (by plan: free 1,000, pro 10,000, enterprise 50,000): a "
        "batch that does not fit is refused whole (429), and nothing is stored.",
        request=IngestionRequestSerializer,
        responses={
            202: integrator_envelope(IngestionAcceptedSerializer(), name="IngestionAccepted"),
            401: INTEGRATOR_UNAUTHORIZED,
            403: INTEGRATOR_FORBIDDEN,
            413: OpenApiResponse(
                IntegratorErrorSerializer,
                description="More jobs than a batch may hold, or a body too large "
                "(VALIDATION_ERROR).",
            ),
            422: INTEGRATOR_MALFORMED,
        },
    )
    def post(self, request):
        jobs = request.data.get("jobs") if isinstance(request.data, dict) else None
        limit = settings.INGESTION_MAX_JOBS
        if isinstance(jobs, list) and len(jobs) > limit:
            raise BatchTooLarge(len(jobs), limit)
        envelope = IngestionRequestSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        caller = request.user
        items = [item_validated(raw, caller=caller) for raw in envelope.validated_data["jobs"]]
        queued = sum(1 for item in items if item.payload is not None)
        if queued:
            ingested_jobs_limit(request, caller, jobs=queued)
        batch = ingestion_batch_create(
            company_id=caller.company_id,
            submitted_by=caller.key_name,
            source=envelope.validated_data["source"],
            items=items,
        )
        return integrator_response(
            {
                "ingestion_id": str(batch.id),
                "jobs_received": batch.jobs_received,
                "jobs_queued": batch.jobs_queued,
                "status": batch.status,
            },
            status=status.HTTP_202_ACCEPTED,
        )


def item_validated(raw, *, caller) -> ItemIn:
    """One job of a batch, validated alone: its payload, or its errors (seed 000's shape)."""
    external_id = raw.get("external_id") if isinstance(raw, dict) else None
    external_id = external_id if isinstance(external_id, str) else ""
    serializer = IngestionItemSerializer(data=raw)
    if not serializer.is_valid():
        errors = [
            {"field": error["field"], "message": error["message"]}
            for error in flatten_errors(serializer.errors)
        ]
        return ItemIn(external_id=external_id[:255], payload=None, errors=errors)
    payload = dict(serializer.validated_data)
    if not caller.acts_for(uuid.UUID(payload["created_by_company_id"])):
        errors = [{"field": "created_by_company_id", "message": OWN_COMPANY_ONLY}]
        return ItemIn(external_id=external_id, payload=None, errors=errors)
    return ItemIn(external_id=payload.pop("external_id"), payload=payload, errors=[])


class IngestionDetailApi(IntegratorView):
    required_scopes = {"GET": Scope.JOBS_READ}

    @extend_schema(
        operation_id="ingestion_retrieve",
        summary="Follow a batch: its status, counts and each job's result",
        description="`processing` while jobs wait for a worker; then `completed`, or "
        "`completed_with_errors` when some jobs were invalid. Each job's result: `created` "
        "(`job_id`), `duplicate` (`duplicate_of`: the job its external_id made before), "
        "`invalid` (`errors`, seed 000's field errors) or still `queued`. A company's key sees "
        "the batches it sent; an ops key every batch.",
        parameters=[
            OpenApiParameter(
                "ingestion_id", str, OpenApiParameter.PATH, description="The batch's id"
            )
        ],
        responses={
            200: integrator_envelope(IngestionBatchSerializer(), name="IngestionBatch"),
            401: INTEGRATOR_UNAUTHORIZED,
            403: INTEGRATOR_FORBIDDEN,
            404: INTEGRATOR_NOT_FOUND,
        },
    )
    def get(self, request, ingestion_id: str):
        batch = _batch_visible(request.user, ingestion_id)
        items = list(
            batch.items.order_by("position").values_list(
                "position", "external_id", "status", "job_id", "errors"
            )
        )
        counts = dict.fromkeys(IngestionItemStatus.values, 0)
        for _, _, item_status, _, _ in items:
            counts[item_status] += 1
        context = {"items": items, "counts": counts}
        return integrator_response(IngestionBatchSerializer(batch, context=context).data)


def _batch_visible(caller, ingestion_id: str) -> IngestionBatch:
    try:
        parsed = uuid.UUID(ingestion_id)
    except ValueError:
        parsed = None
    batches = IngestionBatch.objects.filter(id=parsed)
    if not caller.is_ops:
        batches = batches.filter(company_id=caller.company_id)
    batch = batches.first() if parsed else None
    if batch is None:
        raise NotFoundError(f"Ingestion {ingestion_id} not found.")
    return batch
