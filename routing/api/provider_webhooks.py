"""The providers' signed webhooks coming in: ServiceTitan's (seed 001) and the CRM's (seed
002), each answered in its own contract."""

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.providers import ProviderType
from integrations.servicetitan import serializers as st
from integrations.servicetitan.api import ERRORS, ErrorEnvelope, JobEnvelope, ServiceTitanView, ok
from routing.services.backsync import provider_webhook_receive
from tradeengage.exceptions import crm_exception_handler


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
