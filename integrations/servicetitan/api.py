"""The ServiceTitan module's endpoints (seed 001), under /api/integrations/servicetitan, with the
seed's envelopes: ``{"success": true, "data": ...}`` and ``{"success": false, "error",
"message", "details": [{field, message, value}]}``."""

import logging

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.providers import ProviderError
from integrations.servicetitan import serializers as st
from integrations.servicetitan.service import ServiceTitanJob, servicetitan_service
from integrations.servicetitan.webhooks import WebhookRejected, servicetitan_webhook_receive

logger = logging.getLogger("integrations")

# Provider error codes and the HTTP status they answer with.
ERROR_STATUS = {
    "Validation Error": 400,
    "Invalid Status Transition": 400,
    "Not Supported": 400,
    "Authentication Failed": 401,
    "Not Found": 404,
    "Customer Conflict": 409,
    "Conflict": 409,
    "Service Area Not Supported": 422,
}


class InvalidInput(Exception):
    """Validation errors already in the seed's ``{field, message, value}`` form."""

    def __init__(self, details: list[dict]):
        super().__init__("Invalid input data")
        self.details = details


def envelope_error(error: str, message: str, details=None, http_status=400, headers=None):
    body = {"success": False, "error": error, "message": message, "details": details or []}
    return Response(body, status=http_status, headers=headers)


def servicetitan_exception_handler(exc, context):
    if isinstance(exc, InvalidInput):
        return envelope_error("Validation Error", "Invalid input data", exc.details)
    if isinstance(exc, exceptions.ValidationError):
        return envelope_error("Validation Error", "Invalid input data", _details(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        return envelope_error("Validation Error", f"Malformed JSON body: {exc.detail}")
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return envelope_error("Validation Error", f"{exc.detail} Send application/json.")
    if isinstance(exc, ProviderError):
        if exc.retryable:
            headers = {"Retry-After": str(int(exc.retry_after or 5))}
            return envelope_error(
                exc.code or "Service Unavailable", str(exc), exc.details, 503, headers
            )
        return envelope_error(
            exc.code or "Error", str(exc), exc.details, ERROR_STATUS.get(exc.code, 400)
        )
    if isinstance(exc, Http404):
        return envelope_error("Not Found", str(exc) or "Not found.", http_status=404)
    if isinstance(exc, exceptions.APIException):
        return envelope_error(exc.__class__.__name__, str(exc.detail), http_status=exc.status_code)
    logger.exception("Unhandled error in %s", context["view"].__class__.__name__)
    return envelope_error("Internal Error", "An unexpected error occurred.", http_status=500)


def _details(detail, prefix="", value_source=None) -> list[dict]:
    """DRF's nested errors as the seed's flat ``{field, message, value}`` list."""
    if isinstance(detail, dict):
        return [
            item
            for key, sub in detail.items()
            for item in _details(sub, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(detail, list):
        if detail and all(not isinstance(d, (dict, list)) for d in detail):
            return [{"field": prefix or None, "message": str(d), "value": None} for d in detail]
        return [
            item for index, sub in enumerate(detail) for item in _details(sub, f"{prefix}[{index}]")
        ]
    return [{"field": prefix or None, "message": str(detail), "value": None}]


def _with_values(details: list[dict], data) -> list[dict]:
    """Echo the offending input value of each field error, as the seed's example does."""
    for item in details:
        if isinstance(data, dict) and item["field"] in data:
            value = data[item["field"]]
            item["value"] = value if isinstance(value, (str, int, float, bool)) else None
    return details


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
        raise InvalidInput(_with_values(_details(serializer.errors), data))
    return serializer


def _job_id(job_id: str) -> int:
    if not job_id.isdigit() or len(job_id) > 12:
        raise Http404(f"Job {job_id} not found")
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
ERRORS = {
    400: OpenApiResponse(ErrorEnvelope, description="Validation Error or a rejected change"),
    404: OpenApiResponse(ErrorEnvelope, description="Not Found"),
    409: OpenApiResponse(ErrorEnvelope, description="Customer Conflict"),
    422: OpenApiResponse(ErrorEnvelope, description="Service Area Not Supported"),
    503: OpenApiResponse(ErrorEnvelope, description="ServiceTitan unavailable (retry later)"),
}
JOB_ID = OpenApiParameter("job_id", int, OpenApiParameter.PATH, description="ServiceTitan job id")


class ServiceTitanView(APIView):
    def get_exception_handler(self):
        return servicetitan_exception_handler


class HealthApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_health",
        tags=["servicetitan"],
        summary="ServiceTitan integration health",
        responses={200: JobEnvelope},
    )
    def get(self, request):
        return ok(servicetitan_service().get_health_status())


class AuthTestApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_auth_test",
        tags=["servicetitan"],
        summary="Test ServiceTitan authentication",
        responses={200: JobEnvelope, 401: ErrorEnvelope, 503: ERRORS[503]},
    )
    def get(self, request):
        return ok(servicetitan_service().authenticate())


class JobsApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_jobs_by_date_range",
        tags=["servicetitan"],
        summary="Jobs created in a date range (at most 31 days)",
        parameters=[st.DateRangeSerializer],
        responses={200: JobEnvelope, 400: ERRORS[400], 503: ERRORS[503]},
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
        responses={201: JobEnvelope, **ERRORS},
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
        responses={200: JobEnvelope, 404: ERRORS[404], 503: ERRORS[503]},
    )
    def get(self, request, job_id: str):
        return ok(job_data(servicetitan_service().get_job(_job_id(job_id))))

    @extend_schema(
        operation_id="servicetitan_jobs_cancel",
        tags=["servicetitan"],
        summary="Cancel a ServiceTitan job (with a reason)",
        parameters=[JOB_ID],
        request=st.CancelSerializer,
        responses={200: JobEnvelope, 400: ERRORS[400], 404: ERRORS[404], 503: ERRORS[503]},
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
        responses={200: JobEnvelope, 400: ERRORS[400], 404: ERRORS[404], 503: ERRORS[503]},
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
        responses={200: JobEnvelope, 400: ERRORS[400]},
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
                details = _with_values(_details(serializer.errors), item)
                results[index] = _failure(index, "Validation Error", "Invalid input data", details)
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
                error = outcome["exception"]
                results[position] = _failure(
                    position, error.code or "Error", str(error), error.details
                )
        succeeded = sum(1 for result in results if result["success"])
        return ok(
            {
                "total": len(items),
                "succeeded": succeeded,
                "failed": len(items) - succeeded,
                "results": results,
            }
        )


def _failure(index, error, message, details) -> dict:
    return {
        "index": index,
        "success": False,
        "error": error,
        "message": message,
        "details": details,
    }


class WebhookApi(ServiceTitanView):
    @extend_schema(
        operation_id="servicetitan_webhook",
        tags=["servicetitan"],
        summary="Job status updates from ServiceTitan (signed)",
        description=(
            "Signed as Standard Webhooks: headers webhook-id, webhook-timestamp (within 5 "
            "minutes) and webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body>) with "
            "the provider account's secret (?company_id= names the account; else the global "
            "SERVICETITAN_WEBHOOK_SECRET). A bad signature is 401 and changes nothing; an event "
            "id seen before is acknowledged again without effect."
        ),
        parameters=[OpenApiParameter("company_id", str, OpenApiParameter.QUERY, required=False)],
        request=st.WebhookSerializer,
        responses={200: JobEnvelope, 400: ERRORS[400], 401: ErrorEnvelope},
    )
    def post(self, request):
        try:
            result = servicetitan_webhook_receive(
                body=request.body,
                headers=request.headers,
                company_id=request.query_params.get("company_id"),
            )
        except WebhookRejected as exc:
            return envelope_error("Unauthorized", str(exc), http_status=401)
        return ok({**result, "receivedAt": timezone.now()})
