"""Seed 004's client-processing endpoints, under /api, with the seed's contract: an ``X-API-Key``
header, and errors as ``{"detail": "..."}`` (not the /api/v1 shape)."""

import hmac
import uuid
from functools import partial

from django.conf import settings
from django.db import transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from access.authentication import ApiKeyAuthentication, presented_key
from access.callers import Caller
from access.models import KEY_MARK, Scope
from processing.models import ProcessingJob
from processing.serializers import (
    DetailErrorSerializer,
    ProcessClientSerializer,
    ProcessingHealthSerializer,
    ProcessingJobStatusSerializer,
    ProcessingStartedSerializer,
    RetryQueueResultSerializer,
)
from processing.services.runs import processing_job_create, retry_queue_process
from processing.tasks import process_client
from tradeengage.exceptions import NotFoundError, processing_exception_handler

INVALID_API_KEY = "Invalid or missing API key"
TAG = "client processing"


def api_key_valid(key: str) -> bool:
    """Whether ``key`` is one of ``PROCESSING_API_KEYS``. Every configured key is compared, in
    constant time, so the answer takes as long whichever key (if any) matches."""
    given = key.encode()
    matched = False
    for configured in settings.PROCESSING_API_KEYS:
        matched |= hmac.compare_digest(given, configured.encode())
    return matched


# PROCESSING_API_KEYS: the seed's operator keys, for these endpoints only.
PROCESSING_KEY_CALLER = Caller(
    key_id="PROCESSING_API_KEYS",
    key_name="PROCESSING_API_KEYS",
    company_id=None,
    scopes=frozenset({Scope.OPS, Scope.PROCESSING}),
)


class ProcessingKeyAuthentication(ApiKeyAuthentication):
    """Seed 004 "Authentication" (``X-API-Key``): the product's API keys with the
    ``processing`` scope, and, as a fallback, the operator keys of ``PROCESSING_API_KEYS``."""

    def authenticate(self, request):
        key = presented_key(request)
        if key and not key.startswith(KEY_MARK) and api_key_valid(key):
            return PROCESSING_KEY_CALLER, key
        return super().authenticate(request)

    def authenticate_header(self, request):
        return "API-Key"


class ProcessingKeyScheme(OpenApiAuthenticationExtension):
    target_class = ProcessingKeyAuthentication
    name = "ProcessingApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key with the processing scope (a company's key acts for its "
            "own company only), or one of the operator keys in PROCESSING_API_KEYS.",
        }


class ProcessingView(APIView):
    authentication_classes = [ProcessingKeyAuthentication]
    required_scopes = {"GET": Scope.PROCESSING, "POST": Scope.PROCESSING}

    def get_exception_handler(self):
        return processing_exception_handler


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(DetailErrorSerializer, description=description)


UNAUTHORIZED = _error("Invalid or missing API key (header WWW-Authenticate: API-Key).")
FORBIDDEN = _error(
    "The key lacks the processing scope, or a company's key names another company (or runs "
    "the retry queue, which is ops' to run)."
)
MALFORMED = _error(
    "Malformed input: not JSON, a content type other than application/json, a body that is "
    "not a JSON object, a missing or malformed field."
)
KEY_NOTE = (
    " Requires the X-API-Key header: an API key with the processing scope (a company's key "
    "acts for its own company only), or one of PROCESSING_API_KEYS; with neither, "
    "every request is 401."
)


class HealthApi(ProcessingView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        operation_id="processing_health",
        tags=[TAG],
        summary="Processing API health (no key needed)",
        responses={200: ProcessingHealthSerializer},
    )
    def get(self, request):
        return Response({"status": "ok"})


class ProcessClientApi(ProcessingView):
    @extend_schema(
        operation_id="processing_process_client",
        tags=[TAG],
        summary="Start processing a client (asynchronous)",
        description="Creates a pending processing job for an active client and queues it: "
        "leads in the client's service area assigned up to its plan's leads_per_report, and "
        "its report emailed. Answers at once with the job id; follow it at "
        "/api/job-status/{job_id}." + KEY_NOTE,
        request=ProcessClientSerializer,
        responses={
            202: ProcessingStartedSerializer,
            400: _error("The client is not active."),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: _error("No client with that id."),
            422: MALFORMED,
        },
    )
    def post(self, request):
        serializer = ProcessClientSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client_id = serializer.validated_data["client_id"]
        if not request.user.acts_for(client_id):
            raise PermissionDenied("A company's key processes only its own company.")
        job, _ = processing_job_create(
            client_id=client_id,
            trigger=ProcessingJob.Trigger.API,
        )
        transaction.on_commit(partial(process_client.delay, str(job.job_id)))
        return Response(
            {
                "success": True,
                "job_id": str(job.job_id),
                "client_id": str(job.client_id),
                "message": "Processing started",
            },
            status=status.HTTP_202_ACCEPTED,
        )


class JobStatusApi(ProcessingView):
    @extend_schema(
        operation_id="processing_job_status",
        tags=[TAG],
        summary="Status of a client processing job",
        description="Seed 004's fields, plus attempt_count, next_attempt, trigger and run_date."
        + KEY_NOTE,
        parameters=[
            OpenApiParameter(
                "job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id"
            )
        ],
        responses={
            200: ProcessingJobStatusSerializer,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: _error("Unknown or malformed job id."),
        },
    )
    def get(self, request, job_id: str):
        jobs = ProcessingJob.objects.all()
        if not request.user.is_ops:
            jobs = jobs.filter(client_id=request.user.company_id)
        try:
            job = jobs.get(job_id=uuid.UUID(job_id))
        except (ValueError, ProcessingJob.DoesNotExist):
            raise NotFoundError(f"Job {job_id} not found.") from None
        return Response(ProcessingJobStatusSerializer(job).data)


class RetryQueueApi(ProcessingView):
    @extend_schema(
        operation_id="processing_retry_queue",
        tags=[TAG],
        summary="Run the due retries of the retry queue now",
        description="Runs, within the request, the pending jobs whose next attempt is due (at "
        "most 100, oldest due first); the beat does the same every 15 minutes. A request body "
        "is ignored." + KEY_NOTE,
        request=None,
        responses={200: RetryQueueResultSerializer, 401: UNAUTHORIZED, 403: FORBIDDEN},
    )
    def post(self, request):
        if not request.user.is_ops:
            raise PermissionDenied("The retry queue is every company's: an ops key runs it.")
        counts = retry_queue_process()
        return Response({"success": True, **counts})
