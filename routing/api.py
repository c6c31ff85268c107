from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from integrations.providers import ProviderType
from integrations.servicetitan import serializers as st
from integrations.servicetitan.api import ERRORS, ErrorEnvelope, JobEnvelope, ServiceTitanView, ok
from jobs.selectors import job_get
from routing.selectors import (
    jobs_visible_to,
    routings_visible_to,
    webhook_deliveries_of,
    webhook_endpoint_get,
    webhook_endpoints_visible_to,
)
from routing.serializers import (
    JobRoutingSerializer,
    ManualSyncSerializer,
    WebhookDeliveryListQuerySerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
    WebhookEndpointWriteSerializer,
    WebhookSecretSerializer,
)
from routing.services.backsync import provider_webhook_receive
from routing.services.sync import routing_manual_sync
from routing.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
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


ENDPOINT_ID = OpenApiParameter(
    "endpoint_id", str, OpenApiParameter.PATH, description="Webhook endpoint UUID"
)


class WebhookEndpointListCreateApi(APIView):
    required_scopes = {"GET": Scope.WEBHOOKS, "POST": Scope.WEBHOOKS}

    @extend_schema(
        operation_id="webhooks_list",
        tags=["webhooks"],
        summary="List the caller's webhook endpoints",
        description="A company's key lists its company's endpoints; an ops key every one. "
        "Secrets are never listed.",
        responses={200: WebhookEndpointSerializer(many=True), 401: UNAUTHORIZED, 403: FORBIDDEN},
    )
    def get(self, request):
        endpoints = webhook_endpoints_visible_to(request.user).order_by("-created_at", "-id")
        return Response(WebhookEndpointSerializer(endpoints, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        tags=["webhooks"],
        summary="Register a webhook endpoint; its secret is shown this once",
        description="The URL must be https (unless WEBHOOK_ALLOW_HTTP) and its host must "
        "resolve to public addresses only (unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES): loopback, "
        "private, link-local, metadata, CGNAT and other non-public addresses are refused (422). "
        "A company's key registers for its own company (company_id may be omitted; another "
        "company's is 403); an ops key must name company_id.",
        request=WebhookEndpointCreateSerializer,
        responses={
            201: WebhookEndpointWithSecretSerializer,
            400: BUSINESS_RULE,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            422: MALFORMED,
        },
    )
    def post(self, request):
        caller = request.user
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        company_id = data.get("company_id") or caller.company_id
        if company_id is None:
            raise ValidationError({"company_id": ["An ops key must name the company."]})
        if not caller.acts_for(company_id):
            raise PermissionDenied("A company's key registers endpoints for its own company only.")
        endpoint, secret = webhook_endpoint_create(
            company_id=company_id,
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
        )
        endpoint.secret = secret
        return Response(
            WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )


class WebhookEndpointDetailApi(APIView):
    required_scopes = {
        "GET": Scope.WEBHOOKS,
        "PATCH": Scope.WEBHOOKS,
        "DELETE": Scope.WEBHOOKS,
    }

    @extend_schema(
        operation_id="webhooks_read",
        tags=["webhooks"],
        summary="Read a webhook endpoint",
        parameters=[ENDPOINT_ID],
        responses={
            200: WebhookEndpointSerializer,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, endpoint_id: str):
        endpoint = webhook_endpoint_get(endpoint_id=endpoint_id, caller=request.user)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_update",
        tags=["webhooks"],
        summary="Change a webhook endpoint's url, events, description or enabled",
        description="Enabling a disabled endpoint clears its failures; disabling one ends its "
        "pending deliveries. A new URL is checked as at registration.",
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={
            200: WebhookEndpointSerializer,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            422: MALFORMED,
        },
    )
    def patch(self, request, endpoint_id: str):
        endpoint = webhook_endpoint_get(endpoint_id=endpoint_id, caller=request.user)
        serializer = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, **serializer.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_delete",
        tags=["webhooks"],
        summary="Delete a webhook endpoint and its deliveries",
        parameters=[ENDPOINT_ID],
        responses={204: None, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, endpoint_id: str):
        endpoint = webhook_endpoint_get(endpoint_id=endpoint_id, caller=request.user)
        webhook_endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotateApi(APIView):
    required_scopes = {"POST": Scope.WEBHOOKS}

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        tags=["webhooks"],
        summary="Rotate a webhook endpoint's secret; the new one is shown this once",
        description="Deliveries are signed with both secrets (two v1 signatures in "
        "webhook-signature) until previous_secret_expires_at (WEBHOOK_SECRET_OVERLAP_HOURS, 24 "
        "by default); X-Webhook-Signature uses the new one at once.",
        request=None,
        parameters=[ENDPOINT_ID],
        responses={
            200: WebhookSecretSerializer,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, endpoint_id: str):
        endpoint = webhook_endpoint_get(endpoint_id=endpoint_id, caller=request.user)
        secret = webhook_endpoint_rotate_secret(endpoint=endpoint)
        return Response(
            WebhookSecretSerializer(
                {
                    "id": endpoint.id,
                    "secret": secret,
                    "previous_secret_expires_at": endpoint.previous_secret_expires_at,
                }
            ).data
        )


class WebhookTestApi(APIView):
    required_scopes = {"POST": Scope.WEBHOOKS}

    @extend_schema(
        operation_id="webhooks_test",
        tags=["webhooks"],
        summary="Queue a webhook.test delivery to the endpoint",
        description="Sent through the outbox like every delivery, whatever events the endpoint "
        "subscribed to; follow it at /deliveries. A disabled endpoint is 400.",
        request=None,
        parameters=[ENDPOINT_ID],
        responses={
            202: WebhookDeliverySerializer,
            400: BUSINESS_RULE,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, endpoint_id: str):
        endpoint = webhook_endpoint_get(endpoint_id=endpoint_id, caller=request.user)
        delivery = webhook_endpoint_test(endpoint=endpoint)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(APIView):
    required_scopes = {"GET": Scope.WEBHOOKS}

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        tags=["webhooks"],
        summary="List an endpoint's deliveries with their attempts, newest first",
        parameters=[ENDPOINT_ID, WebhookDeliveryListQuerySerializer],
        responses={
            200: WebhookDeliverySerializer(many=True),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            422: MALFORMED,
        },
    )
    def get(self, request, endpoint_id: str):
        endpoint = webhook_endpoint_get(endpoint_id=endpoint_id, caller=request.user)
        query = WebhookDeliveryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        skip, limit = query.validated_data["skip"], query.validated_data["limit"]
        deliveries = webhook_deliveries_of(endpoint)[skip : skip + limit]
        return Response(WebhookDeliverySerializer(deliveries, many=True).data)
