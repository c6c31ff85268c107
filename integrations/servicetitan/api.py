"""The ServiceTitan module's endpoints (seed 001), under /api/integrations/servicetitan, with the
seed's envelopes: ``{"success": true, "data": ...}`` and ``{"success": false, "error",
"message", "details": [{field, message, value}]}``."""

import logging

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from integrations.servicetitan import serializers as st
from integrations.servicetitan.service import servicetitan_service
from integrations.servicetitan.types import ServiceTitanJob
from tradeengage.exceptions import (
    InvalidInput,
    NotFoundError,
    ProblemError,
    servicetitan_body,
    servicetitan_exception_handler,
)

logger = logging.getLogger("integrations")


def job_data(job: ServiceTitanJob) -> dict:
    data = {
        "id": job.id,
        "jobNumber": job.job_number,
        "bookingId": job.booking_id or None,
        "status": job.status,
        "priority": job.priority,
        "description": job.description,
        "businessUnit": job.business_unit,
        "customer": job.customer,
        "location": job.location,
        "estimatedDuration": job.estimated_duration,
        "createdAt": job.created_at,
        "completedAt": job.completed_at,
    }
    if job.cancel_reason:
        data["cancelReason"] = job.cancel_reason
    if job.invoice_total is not None:
        data["invoiceTotal"] = str(job.invoice_total)
    return data


def ok(data, http_status=status.HTTP_200_OK) -> Response:
    return Response({"success": True, "data": data}, status=http_status)


def _validated(serializer_class, data):
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise InvalidInput(serializer.errors, data=data)
    return serializer


def _job_id(job_id: str) -> int:
    if not job_id.isdigit() or len(job_id) > 12:
        raise NotFoundError(f"Job {job_id} not found")
    return int(job_id)


# Schema pieces: the envelopes of seed 001.
ErrorEnvelope = inline_serializer(
    "ServiceTitanError",
    {
        "success": serializers.BooleanField(default=False),
        "error": serializers.CharField(),
        "message": serializers.CharField(),
        "details": inline_serializer(
            "ServiceTitanErrorDetail",
            {
                "field": serializers.CharField(allow_null=True),
                "message": serializers.CharField(),
                "value": serializers.JSONField(allow_null=True),
            },
            many=True,
        ),
    },
)
JobEnvelope = inline_serializer(
    "ServiceTitanJobEnvelope",
    {"success": serializers.BooleanField(default=True), "data": serializers.DictField()},
)
JobListEnvelope = inline_serializer(
    "ServiceTitanJobListEnvelope",
    {
        "success": serializers.BooleanField(default=True),
        "data": serializers.ListField(child=serializers.DictField()),
    },
)
ERRORS = {
    400: OpenApiResponse(ErrorEnvelope, description="Validation Error or a rejected change"),
    404: OpenApiResponse(ErrorEnvelope, description="Not Found"),
    409: OpenApiResponse(ErrorEnvelope, description="Customer Conflict"),
    422: OpenApiResponse(ErrorEnvelope, description="Service Area Not Supported"),
    503: OpenApiResponse(ErrorEnvelope, description="ServiceTitan unavailable (retry later)"),
}
# Every endpoint of the module but the signed webhook takes an ops key.
KEY_ERRORS = {
    401: OpenApiResponse(
        ErrorEnvelope, description="No API key, or one that is unknown, revoked or expired"
    ),
    403: OpenApiResponse(ErrorEnvelope, description="Not an ops key"),
}
JOB_ID = OpenApiParameter("job_id", int, OpenApiParameter.PATH, description="ServiceTitan job id")


class ServiceTitanView(APIView):
    """Seed 001's module acts on any tenant's simulated or real ServiceTitan jobs: ops keys
    only."""

    required_scopes = {method: Scope.OPS for method in ("GET", "POST", "PATCH", "DELETE")}

    def get_exception_handler(self):
        return servicetitan_exception_handler


class HealthApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_health",
        tags=["servicetitan"],
        summary="ServiceTitan integration health",
        responses={200: JobEnvelope, **KEY_ERRORS},
    )
    def get(self, request):
        return ok(servicetitan_service().get_health_status())


class AuthTestApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_auth_test",
        tags=["servicetitan"],
        summary="Test ServiceTitan authentication",
        responses={
            200: JobEnvelope,
            401: OpenApiResponse(
                ErrorEnvelope,
                description="No valid API key, or ServiceTitan refused the credentials",
            ),
            403: KEY_ERRORS[403],
            503: ERRORS[503],
        },
    )
    def get(self, request):
        return ok(servicetitan_service().authenticate())


class JobsApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_jobs_by_date_range",
        tags=["servicetitan"],
        summary="Jobs created in a date range (any span, every job in it)",
        parameters=[st.DateRangeSerializer],
        responses={200: JobListEnvelope, 400: ERRORS[400], **KEY_ERRORS, 503: ERRORS[503]},
    )
    def get(self, request):
        query = _validated(st.DateRangeSerializer, request.query_params.dict()).validated_data
        jobs = servicetitan_service().get_jobs_by_date_range(query["startDate"], query["endDate"])
        return ok([job_data(job) for job in jobs])

    @extend_schema(
        operation_id="servicetitan_jobs_create",
        tags=["servicetitan"],
        summary="Create a job in ServiceTitan from booking data",
        request=st.BookingSerializer,
        responses={201: JobEnvelope, **ERRORS, **KEY_ERRORS},
    )
    def post(self, request):
        booking = _validated(st.BookingSerializer, request.data).to_booking()
        job = servicetitan_service().create_job(booking)
        logger.info(
            "ServiceTitan job created",
            extra={
                "servicetitan_job_id": job.id,
                "job_number": job.job_number,
                "booking_id": booking.booking_id or None,
                "status": job.status,
            },
        )
        return ok(job_data(job), status.HTTP_201_CREATED)


class JobDetailApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_jobs_retrieve",
        tags=["servicetitan"],
        summary="Get a ServiceTitan job",
        parameters=[JOB_ID],
        responses={200: JobEnvelope, 404: ERRORS[404], **KEY_ERRORS, 503: ERRORS[503]},
    )
    def get(self, request, job_id: str):
        return ok(job_data(servicetitan_service().get_job(_job_id(job_id))))

    @extend_schema(
        operation_id="servicetitan_jobs_cancel",
        tags=["servicetitan"],
        summary="Cancel a ServiceTitan job (with a reason)",
        description='Send the reason as the JSON body, {"reason": "..."} (at most 500 printable '
        "characters); without one the answer is 400. OpenAPI 3.0 gives a DELETE no request "
        "body, so the schema cannot list it.",
        parameters=[JOB_ID],
        request=st.CancelSerializer,
        responses={
            200: JobEnvelope,
            400: ERRORS[400],
            404: ERRORS[404],
            **KEY_ERRORS,
            503: ERRORS[503],
        },
    )
    def delete(self, request, job_id: str):
        number = _job_id(job_id)
        reason = _validated(st.CancelSerializer, request.data).validated_data["reason"]
        return ok(job_data(servicetitan_service().cancel_job(number, reason)))


class JobStatusApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_jobs_status",
        tags=["servicetitan"],
        summary="Update a ServiceTitan job's status",
        description="Allowed moves: scheduled → dispatched | cancelled; dispatched → scheduled | "
        "in_progress | cancelled; in_progress → completed | cancelled; completed and cancelled "
        "are final. Any other move is a 400 Invalid Status Transition.",
        parameters=[JOB_ID],
        request=st.StatusUpdateSerializer,
        responses={
            200: JobEnvelope,
            400: ERRORS[400],
            404: ERRORS[404],
            **KEY_ERRORS,
            503: ERRORS[503],
        },
    )
    def patch(self, request, job_id: str):
        number = _job_id(job_id)
        new_status = _validated(st.StatusUpdateSerializer, request.data).validated_data["status"]
        return ok(job_data(servicetitan_service().update_job_status(number, new_status)))


class JobsBatchApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_jobs_batch",
        tags=["servicetitan"],
        summary=f"Create up to {st.MAX_BATCH_SIZE} jobs; each booking succeeds or fails alone",
        request=st.BatchSerializer,
        responses={200: JobEnvelope, 400: ERRORS[400], **KEY_ERRORS},
    )
    def post(self, request):
        items = _validated(st.BatchSerializer, request.data).validated_data["bookings"]
        results, valid, positions = [None] * len(items), [], []
        for index, item in enumerate(items):
            serializer = st.BookingSerializer(data=item)
            if serializer.is_valid():
                valid.append(serializer.to_booking())
                positions.append(index)
            else:
                results[index] = _failure(index, InvalidInput(serializer.errors, data=item))
        for position, outcome in zip(
            positions, servicetitan_service().create_jobs_batch(valid), strict=True
        ):
            if outcome["success"]:
                results[position] = {
                    "index": position,
                    "success": True,
                    "data": job_data(outcome["job"]),
                }
            else:
                results[position] = _failure(position, outcome["exception"])
        succeeded = sum(1 for result in results if result["success"])
        return ok(
            {
                "total": len(items),
                "succeeded": succeeded,
                "failed": len(items) - succeeded,
                "results": results,
            }
        )


def _failure(index: int, exc: ProblemError) -> dict:
    """One booking's failure in a batch: its seed-001 error envelope, with its position."""
    _, envelope = servicetitan_body(exc.problem())
    return {"index": index, **envelope}
