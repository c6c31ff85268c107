from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from integrations.providers import ProviderType
from integrations.servicetitan import serializers as st
from integrations.servicetitan.api import ERRORS, ErrorEnvelope, JobEnvelope, ServiceTitanView, ok
from jobs.selectors import job_get
from routing.selectors import jobs_visible_to, routings_visible_to
from routing.serializers import JobRoutingSerializer, ManualSyncSerializer
from routing.services.backsync import provider_webhook_receive
from routing.services.sync import routing_manual_sync
from tradeengage.exceptions import crm_exception_handler
from tradeengage.schema import BUSINESS_RULE, FORBIDDEN, MALFORMED, NOT_FOUND, UNAUTHORIZED


class JobRoutingListApi(APIView):
    required_scopes = {"GET": Scope.JOBS_READ}

    @extend_schema(
        operation_id="jobs_routings_list",
        summary="List a job's routings with their sync state and match explanation",
        description="The requesting company (and ops) see every routing of the job; a company "
        "that received it sees only its own routing.",
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        responses={
            200: JobRoutingSerializer(many=True),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, job_id: str):
        job = job_get(job_id=job_id, queryset=jobs_visible_to(request.user))
        routings = routings_visible_to(request.user, job)
        return Response(JobRoutingSerializer(routings, many=True).data)


class JobSyncApi(APIView):
    required_scopes = {"POST": Scope.SYNC}

    @extend_schema(
        operation_id="jobs_sync",
        summary="Sync a job's routing to a company now",
        description=(
            "Pushes the job's routing to the company's field-service system within the request "
            "(bounded by SYNC_REQUEST_TIMEOUT_SECONDS) and returns it. A routing already synced "
            "is returned unchanged; a failed one is tried again; a retryable failure comes back "
            "as `pending` with `error_message` and `next_retry_at`, and the workers carry on. "
            "Without a routing to that company, the job is routed to it first (a manual route, "
            "its match explained as matching would, missing skills listed) when the company is "
            "active, accepts jobs, did not request the job and holds its required skills at "
            'their levels (an ops key may override the skills with "override": true); '
            "otherwise 400. Only the requesting company's key, or an ops key, may sync a job."
        ),
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        request=ManualSyncSerializer,
        responses={
            200: JobRoutingSerializer,
            400: BUSINESS_RULE,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            422: MALFORMED,
        },
    )
    def post(self, request, job_id: str):
        caller = request.user
        job = job_get(job_id=job_id, queryset=jobs_visible_to(caller))
        if not caller.acts_for(job.created_by_company_id):
            raise PermissionDenied("Only the company that requested the job (or ops) syncs it.")
        serializer = ManualSyncSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        override = serializer.validated_data["override"]
        if override and not caller.is_ops:
            raise PermissionDenied('Only an ops key may route with "override": true.')
        routing = routing_manual_sync(
            job=job,
            company_id=serializer.validated_data["company_id"],
            routed_by=caller.label,
            require_skills=not override,
        )
        return Response(JobRoutingSerializer(routing).data)


class ServiceTitanWebhookApi(ServiceTitanView):
    """Mounted under the ServiceTitan module's prefix and answering in its contract (seed 001),
    but here: applying a webhook is the domain's part, after the integration verified and
    parsed it. Signed by the provider account's secret instead of an API key."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="servicetitan_webhook",
        tags=["servicetitan"],
        summary="Job status updates from ServiceTitan (signed)",
        description=(
            "Verified with the provider account's secret (?company_id= names the account; else "
            "the global SERVICETITAN_WEBHOOK_SECRET), by the scheme its headers name: "
            "ServiceTitan's v2 webhooks (X-ServiceTitan-Signature: HMAC-SHA256 of the raw body "
            "with the app's HMAC key, hex or base64; the body a jpm Job or crm Booking, bare or "
            "under data, as below for the simulator) or Standard Webhooks (webhook-id, "
            "webhook-timestamp within 5 minutes, webhook-signature v1,<base64 HMAC-SHA256 of "
            "id.timestamp.body>; the body below). A bad signature, or both schemes or none, is "
            "401 and changes nothing; an event id seen before is acknowledged again without "
            "effect."
        ),
        parameters=[OpenApiParameter("company_id", str, OpenApiParameter.QUERY, required=False)],
        request=st.WebhookSerializer,
        responses={
            200: JobEnvelope,
            400: ERRORS[400],
            401: OpenApiResponse(ErrorEnvelope, description="Unauthorized"),
        },
    )
    def post(self, request):
        result = provider_webhook_receive(
            provider_type=ProviderType.SERVICETITAN,
            body=request.body,
            headers=request.headers,
            company_id=request.query_params.get("company_id"),
        )
        return ok({**result, "receivedAt": timezone.now()})


CrmError = inline_serializer(
    "CrmError",
    {
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "hint": serializers.CharField(),
    },
)


class CrmWebhookApi(APIView):
    """The CRM's signed webhooks (seed 002 "Webhooks"), answered in seed 002's contract
    (``{error, detail, hint}``). Verifying and parsing is the CRM integration's part, recording
    and applying the back-sync's; signed by the account's secret instead of an API key."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_exception_handler(self):
        return crm_exception_handler

    @extend_schema(
        operation_id="crm_webhook",
        tags=["crm"],
        summary="Work order and invoice events from a company's CRM (signed)",
        description=(
            "?account= is the id of the company whose CRM sends it; its webhook secret (stored "
            "when the account was connected) verifies X-Webhook-Signature: sha256=<hex "
            "HMAC-SHA256 of the raw body>, and the body's timestamp must be within 5 minutes. "
            "X-Webhook-Id names the delivery: a replay is acknowledged again without effect. "
            "work_order.completed and invoice.paid complete the routing (with the invoice's "
            "total as revenue); work_order.scheduled and work_order.started are recorded; other "
            "events are acknowledged and ignored. A bad signature is 401 and changes nothing."
        ),
        parameters=[OpenApiParameter("account", str, OpenApiParameter.QUERY, required=True)],
        request=inline_serializer(
            "CrmWebhookEvent",
            {
                "event": serializers.CharField(),
                "timestamp": serializers.DateTimeField(),
                "data": serializers.DictField(),
            },
        ),
        responses={
            200: inline_serializer(
                "CrmWebhookAcknowledgement",
                {
                    "received": serializers.BooleanField(),
                    "eventId": serializers.CharField(),
                    "applied": serializers.CharField(),
                    "routingId": serializers.UUIDField(allow_null=True),
                },
            ),
            400: OpenApiResponse(CrmError, description="Malformed event"),
            401: OpenApiResponse(CrmError, description="Bad or missing signature, or stale"),
        },
    )
    def post(self, request):
        result = provider_webhook_receive(
            provider_type=ProviderType.CRM,
            body=request.body,
            headers=request.headers,
            company_id=request.query_params.get("account") or "-",
        )
        return Response({"received": True, "routingId": None, **result})
