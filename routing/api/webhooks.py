"""Companies' outbound webhook endpoints (seed 003): registration, secrets, tests and the
deliveries' log."""

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from routing.selectors import (
    webhook_deliveries_of,
    webhook_endpoint_get,
    webhook_endpoints_visible_to,
)
from routing.serializers import (
    WebhookDeliveryListQuerySerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
    WebhookEndpointWriteSerializer,
    WebhookSecretSerializer,
)
from routing.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
from tradeengage.schema import BUSINESS_RULE, FORBIDDEN, MALFORMED, NOT_FOUND, UNAUTHORIZED

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
