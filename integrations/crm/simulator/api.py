"""Seed 002's CRM public API v2, served by the simulator at ``/crm-sim/api/v2/`` and backed by
the database, so our CRM client runs over HTTP against it. A test double of a vendor, not our
API: plain Django views (outside our OpenAPI schema) speaking the seed's shapes and refusing
what the seed refuses. Mounted only where ``SERVICETITAN_SIMULATOR_ENABLED`` is on.

- OAuth 2 client credentials at ``oauth/token`` for the pairs of ``CRM_SIMULATOR_CLIENTS``;
  every other endpoint wants ``Authorization: Bearer <token>``. Each account (OAuth client)
  sees only its own records: another account's id is a 404. A client of
  ``CRM_SIMULATOR_READ_ONLY_CLIENTS`` may read but not write (403).
- Errors always ``{"error": <snake_case code>, "detail", "hint"}`` (seed, "Error Handling"):
  400 malformed JSON, 401, 403, 404, 405, 422 validation (a body field the resource does not
  have, too; a referenced record of the body that does not exist too), 429.
- ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` on every response; fixed one-minute windows,
  per client when authenticated, per IP address otherwise (seed, "Rate Limiting").
- ``GET customers/`` is the one deprecated path (``Deprecation``, ``Sunset``, ``Link``).
"""

import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, Value
from django.db.models.functions import Concat
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from integrations.crm.simulator import office
from integrations.crm.simulator.deliveries import WEBHOOK_EVENTS, utc_timestamp
from integrations.models import (
    CrmSimCustomer,
    CrmSimInvoice,
    CrmSimPayment,
    CrmSimTechnician,
    CrmSimWebhook,
    CrmSimWorkOrder,
)

TOKEN_SECONDS = 3600
TOKEN_CACHE_PREFIX = "crm-sim:token:"
RATE_CACHE_PREFIX = "crm-sim:rate:"
RATE_WINDOW_SECONDS = 60
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
SUNSET = "Sat, 01 Mar 2027 00:00:00 GMT"
INVOICE_STATUSES = ("draft", "sent", "paid", "overdue", "cancelled")

# The clock of the rate windows; tests set it instead of sleeping.
clock = time.time

# What to do about a field that is refused (the error's ``hint``).
FIELD_HINTS = {
    "first_name": "first_name is a required string of at most 100 characters",
    "last_name": "last_name is a required string (it may be empty) of at most 100 characters",
    "email": "Email must be a valid email address",
    "phone": "phone is a string of at most 30 characters, e.g. 512-555-0100",
    "state": "state is the two-letter postal abbreviation, e.g. TX",
    "zip": "zip is 5 digits or ZIP+4 (9 digits, e.g. 78701 or 78701-1234)",
    "status": "status is one of the values the API documents for this resource",
    "customer_id": 'customer_id is the string id of one of your customers, e.g. "123"',
    "service_type": 'service_type is a required string, e.g. "Pumping"',
    "priority": "priority is one of low, normal, high, urgent",
    "scheduled_date": "Dates are YYYY-MM-DD",
    "time_window_start": "time_window_start is HH:MM (24-hour)",
    "assigned_technician": "assigned_technician is the id of an active technician, e.g. tech-1",
    "estimated_duration_hours": "estimated_duration_hours is a number of hours, 0.5 to 24",
    "page": "page is an integer, 1 or more",
    "page_size": "page_size is an integer from 1 to 100",
    "work_order_id": "work_order_id is the string id of one of your completed work orders",
    "invoice_id": "invoice_id is the id of one of your invoices, e.g. inv-789",
    "subtotal": "Amounts are JSON numbers, 0 or more, with at most 2 decimals",
    "tax": "Amounts are JSON numbers, 0 or more, with at most 2 decimals",
    "amount": "amount is a JSON number above 0 with at most 2 decimals",
    "method": "method is one of card, cash, check, ach",
    "url": "url is an absolute http or https URL",
    "events": f"events is a non-empty list of: {', '.join(WEBHOOK_EVENTS)}",
    "secret": "secret is a string of 8 to 200 characters",
    "active_only": "active_only is true or false",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, hint: str, *, headers=None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.hint = status, code, detail, hint
        self.headers = headers or {}


def error(status: int, code: str, detail: str, hint: str, *, headers=None) -> JsonResponse:
    """Seed 002's error shape, the only one the simulator answers errors in."""
    return JsonResponse(
        {"error": code, "detail": detail, "hint": hint}, status=status, headers=headers
    )


def _not_found(kind: str, api_id: str) -> ApiError:
    return ApiError(
        404,
        "not_found",
        f"{kind} {api_id} not found.",
        "Check the id; an account sees only its own records.",
    )


def _client_of(request) -> str | None:
    """The account of the request's bearer token, ``None`` without a valid one."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return cache.get(TOKEN_CACHE_PREFIX + token)


def _rate_limit(request, client_id: str | None) -> tuple[bool, dict]:
    """Count this request in its fixed one-minute window: per client when authenticated
    (``CRM_SIMULATOR_RATE_LIMIT_PER_MINUTE``), per IP address otherwise, the token endpoint
    and the 401s included (``..._UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE``). Returns whether it
    is one too many, and the ``X-RateLimit-*`` headers."""
    now = clock()
    window = int(now // RATE_WINDOW_SECONDS)
    reset = (window + 1) * RATE_WINDOW_SECONDS
    if client_id is None:
        limit = settings.CRM_SIMULATOR_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE
        who = "ip:" + request.META.get("REMOTE_ADDR", "")
    else:
        limit = settings.CRM_SIMULATOR_RATE_LIMIT_PER_MINUTE
        who = "client:" + client_id
    who = hashlib.sha256(who.encode()).hexdigest()[:32]
    key = f"{RATE_CACHE_PREFIX}{who}:{window}"
    # add + incr is atomic in Redis; the key outlives its window so incr finds it.
    cache.add(key, 0, timeout=RATE_WINDOW_SECONDS * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: this request opens the window again
        cache.set(key, 1, timeout=RATE_WINDOW_SECONDS * 2)
        count = 1
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - count)),
        "X-RateLimit-Reset": str(reset),
    }
    if count > limit:
        headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
    return count > limit, headers


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(
            400, "invalid_json", f"Malformed JSON: {exc}", "Send a JSON object as the body"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body is not a JSON object.", "Send an object")
    return body


def crm_endpoint(*methods: str, authenticated: bool = True, counts_per_ip: bool = False):
    """An endpoint of the simulated CRM: the methods it allows, the rate limit (per IP address
    for ``counts_per_ip``, the token endpoint; per client with a valid token otherwise), a
    bearer token (unless ``authenticated`` is off), and ``ApiError`` and
    ``office.OfficeRefused`` answered in the seed's error shape. The view gets the account's
    client id."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            client_id = None if counts_per_ip else _client_of(request)
            over, rate_headers = _rate_limit(request, client_id)
            try:
                response = _answer(request, view, methods, authenticated, client_id, over, kwargs)
            except ApiError as exc:
                response = error(exc.status, exc.code, exc.detail, exc.hint, headers=exc.headers)
            except office.OfficeRefused as exc:
                response = error(422, exc.code, str(exc), "Check the record's current status")
            for name, value in rate_headers.items():
                response[name] = value
            return response

        return wrapper

    return decorate


def _answer(request, view, methods, authenticated, client_id, over, kwargs):
    if over:
        raise ApiError(
            429,
            "rate_limit_exceeded",
            "Too many requests in this minute.",
            "Wait for the window in X-RateLimit-Reset (Retry-After seconds) and slow down",
        )
    if authenticated and client_id is None:
        raise ApiError(
            401,
            "unauthorized",
            "Missing or invalid bearer token.",
            "Get a token at POST /oauth/token and send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="crm"'},
        )
    if request.method not in methods:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here.",
            f"Use {', '.join(methods)}",
            headers={"Allow": ", ".join(methods)},
        )
    if client_id in settings.CRM_SIMULATOR_READ_ONLY_CLIENTS and request.method in WRITE_METHODS:
        raise ApiError(
            403,
            "insufficient_permissions",
            f"Client {client_id} may only read.",
            "Use a client with write access for this request",
        )
    if authenticated:
        return view(request, client_id, **kwargs)
    return view(request, **kwargs)


def _validated(serializer_class, data, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    if serializer.is_valid():
        return serializer.validated_data
    field, messages = next(iter(serializer.errors.items()))
    message = messages[0] if isinstance(messages, list) else messages
    if isinstance(message, dict):  # a nested list's errors, by position
        message = next(iter(message.values()))[0]
    if str(message) == UNKNOWN_FIELD:
        hint = f"Send only the fields the API documents: {', '.join(serializer.fields)}"
    else:
        hint = FIELD_HINTS.get(field, "See the API documentation for the field's format")
    raise ApiError(422, "validation_error", f"{field}: {message}", hint)


# Bodies: typed as JSON is (a number sent as a string is refused, and the reverse), and closed.

UNKNOWN_FIELD = "Unknown field."


class ClosedSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
        return super().to_internal_value(data)


class JsonString(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("A string is required.")
        return super().to_internal_value(data)


class JsonEmail(serializers.EmailField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("A string is required.")
        return super().to_internal_value(data)


class JsonNumber(serializers.DecimalField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError("A number is required.")
        return super().to_internal_value(data)


class JsonChoice(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("A string is required.")
        return super().to_internal_value(data)


def money_field(**kwargs) -> JsonNumber:
    return JsonNumber(max_digits=12, decimal_places=2, **kwargs)


class CustomerInput(ClosedSerializer):
    first_name = JsonString(max_length=100)
    # Required, but may be empty: a homeowner known by one name (seed 002 does not say a
    # customer needs two).
    last_name = JsonString(max_length=100, allow_blank=True)
    email = JsonEmail(max_length=254, required=False, allow_blank=True)
    phone = JsonString(max_length=30, required=False, allow_blank=True)
    address = JsonString(max_length=255, required=False, allow_blank=True)
    city = JsonString(max_length=100, required=False, allow_blank=True)
    state = JsonString(required=False, allow_blank=True)
    zip = JsonString(required=False, allow_blank=True)
    status = JsonChoice(CrmSimCustomer.Status.values, required=False)

    def validate_state(self, value):
        if value and not re.fullmatch("[A-Za-z]{2}", value):
            raise serializers.ValidationError("A state is 2 letters.")
        return value.upper()

    def validate_zip(self, value):
        if value and not re.fullmatch(r"[0-9]{5}(-?[0-9]{4})?", value):
            raise serializers.ValidationError("A ZIP code is 5 or 9 digits.")
        return value


class WorkOrderFields(ClosedSerializer):
    service_type = JsonString(max_length=100)
    priority = JsonChoice(CrmSimWorkOrder.Priority.values, default="normal")
    scheduled_date = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)
    time_window_start = serializers.TimeField(input_formats=["%H:%M"], required=False)
    assigned_technician = JsonString(required=False)
    estimated_duration_hours = JsonNumber(
        max_digits=3,
        decimal_places=1,
        min_value=Decimal("0.5"),
        max_value=Decimal(24),
        required=False,
    )
    notes = JsonString(required=False, allow_blank=True)


class WorkOrderInput(WorkOrderFields):
    customer_id = JsonString()


class WorkOrderChange(WorkOrderFields):
    status = JsonChoice(CrmSimWorkOrder.Status.values, required=False)


class InvoiceInput(ClosedSerializer):
    work_order_id = JsonString()
    subtotal = money_field(min_value=Decimal(0), required=False)
    tax = money_field(min_value=Decimal(0), required=False)
    due_date = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)


class PaymentInput(ClosedSerializer):
    invoice_id = JsonString()
    amount = money_field(min_value=Decimal("0.01"))
    method = JsonChoice(CrmSimPayment.Method.values)
    reference = JsonString(max_length=100, required=False, allow_blank=True)


class WebhookInput(ClosedSerializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(child=JsonChoice(WEBHOOK_EVENTS), allow_empty=False)
    secret = JsonString(min_length=8, max_length=200)

    def validate_url(self, value):
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("An http or https URL is required.")
        return value


# Queries.


class PageQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, max_value=2**31 - 1, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=20)


class CustomerQuery(PageQuery):
    search = serializers.CharField(required=False)
    status = serializers.ChoiceField(CrmSimCustomer.Status.values, required=False)


class WorkOrderQuery(PageQuery):
    status = serializers.ChoiceField(CrmSimWorkOrder.Status.values, required=False)
    scheduled_date = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)
    customer_id = serializers.CharField(required=False)
    technician_id = serializers.CharField(required=False)


class TechnicianQuery(PageQuery):
    search = serializers.CharField(required=False)
    active_only = serializers.BooleanField(required=False, default=False)


class InvoiceQuery(PageQuery):
    status = serializers.ChoiceField(INVOICE_STATUSES, required=False)
    customer_id = serializers.CharField(required=False)


class PaymentQuery(PageQuery):
    invoice_id = serializers.CharField(required=False)


def _page(listed, query: dict, shape) -> dict:
    """Seed 002's pagination envelope ("Pagination")."""
    page, page_size = query["page"], query["page_size"]
    total = listed.count()
    start = (page - 1) * page_size
    return {
        "items": [shape(record) for record in listed[start : start + page_size]],
        "total": total,
        "page": page,
        "page_size": page_size,
        "total_pages": math.ceil(total / page_size),
    }


def _pk(api_id: str, prefix: str = "") -> int | None:
    digits = api_id.removeprefix(prefix) if api_id.startswith(prefix) else ""
    return int(digits) if digits.isdigit() and len(digits) <= 18 else None


def _record(queryset, api_id: str, kind: str, prefix: str = ""):
    pk = _pk(api_id, prefix)
    record = queryset.filter(pk=pk).first() if pk is not None else None
    if record is None:
        raise _not_found(kind, api_id)
    return record


def _referenced(queryset, api_id: str, field: str, kind: str, prefix: str = ""):
    """A record the body names: one the account does not have is a validation error (422)."""
    pk = _pk(api_id, prefix)
    record = queryset.filter(pk=pk).first() if pk is not None else None
    if record is None:
        raise ApiError(
            422, "validation_error", f"{field}: {kind} {api_id} does not exist.", FIELD_HINTS[field]
        )
    return record


# Shapes: what the seed answers.


def _number(value):
    return None if value is None else float(value)


def _customer(customer: CrmSimCustomer) -> dict:
    return {
        "id": customer.api_id,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "email": customer.email,
        "phone": customer.phone,
        "address": customer.address,
        "city": customer.city,
        "state": customer.state,
        "zip": customer.zip,
        "status": customer.status,
        "created_at": utc_timestamp(customer.created_at),
    }


def _work_order(work_order: CrmSimWorkOrder) -> dict:
    hours = work_order.estimated_duration_hours
    return {
        "id": work_order.api_id,
        "customer_id": str(work_order.customer_id),
        "status": work_order.status,
        "priority": work_order.priority,
        "service_type": work_order.service_type,
        "scheduled_date": work_order.scheduled_date.isoformat()
        if work_order.scheduled_date
        else None,
        "time_window_start": work_order.time_window_start.strftime("%H:%M")
        if work_order.time_window_start
        else None,
        "assigned_technician": f"{CrmSimTechnician.ID_PREFIX}{work_order.technician_id}"
        if work_order.technician_id
        else None,
        "estimated_duration_hours": int(hours) if hours == int(hours) else float(hours),
        "notes": work_order.notes,
        "created_at": utc_timestamp(work_order.created_at),
        "updated_at": utc_timestamp(work_order.updated_at),
        "completed_at": utc_timestamp(work_order.completed_at) if work_order.completed_at else None,
    }


def _technician(technician: CrmSimTechnician) -> dict:
    return {
        "id": technician.api_id,
        "first_name": technician.first_name,
        "last_name": technician.last_name,
        "email": technician.email,
        "phone": technician.phone,
        "skills": technician.skills,
        "is_active": technician.is_active,
        "hourly_rate": _number(technician.hourly_rate),
    }


def _invoice(invoice: CrmSimInvoice) -> dict:
    return {
        "id": invoice.api_id,
        "customer_id": str(invoice.customer_id),
        "work_order_id": str(invoice.work_order_id),
        "status": invoice.status_on(timezone.localdate()),
        "subtotal": _number(invoice.subtotal),
        "tax": _number(invoice.tax),
        "total": _number(invoice.total),
        "due_date": invoice.due_date.isoformat(),
        "paid_at": utc_timestamp(invoice.paid_at) if invoice.paid_at else None,
        "created_at": utc_timestamp(invoice.created_at),
    }


def _payment(payment: CrmSimPayment) -> dict:
    return {
        "id": payment.api_id,
        "invoice_id": f"{CrmSimInvoice.ID_PREFIX}{payment.invoice_id}",
        "amount": _number(payment.amount),
        "method": payment.method,
        "reference": payment.reference,
        "created_at": utc_timestamp(payment.created_at),
    }


def _webhook(webhook: CrmSimWebhook) -> dict:
    return {
        "id": webhook.api_id,
        "url": webhook.url,
        "events": webhook.events,
        "created_at": utc_timestamp(webhook.created_at),
    }


# The token.


def _client_known(client_id: str, client_secret: str) -> bool:
    """Whether the pair is one of ``CRM_SIMULATOR_CLIENTS``, every pair compared in full and in
    constant time."""
    given_id, given_secret = client_id.encode(), client_secret.encode()
    known = False
    for configured_id, configured_secret in settings.CRM_SIMULATOR_CLIENTS.items():
        id_matches = hmac.compare_digest(given_id, configured_id.encode())
        secret_matches = hmac.compare_digest(given_secret, configured_secret.encode())
        known |= id_matches and secret_matches
    return known and bool(client_id) and bool(client_secret)


@crm_endpoint("POST", authenticated=False, counts_per_ip=True)
def token(request):
    """OAuth 2 client credentials (seed 002, "Authentication"), form-encoded."""
    if request.POST.get("grant_type") != "client_credentials":
        raise ApiError(
            400,
            "unsupported_grant_type",
            "Only the client_credentials grant is supported.",
            "Send grant_type=client_credentials, form-encoded",
        )
    client_id = request.POST.get("client_id", "")
    if not _client_known(client_id, request.POST.get("client_secret", "")):
        raise ApiError(
            401,
            "invalid_client",
            "Unknown client or wrong secret.",
            "Check client_id and client_secret",
        )
    office.technicians_ensure(client_id=client_id)
    access_token = secrets.token_urlsafe(32)
    cache.set(TOKEN_CACHE_PREFIX + access_token, client_id, timeout=TOKEN_SECONDS)
    return JsonResponse(
        {"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS},
        headers={"Cache-Control": "no-store"},
    )


# Customers.


@crm_endpoint("GET", "POST")
def customers(request, client_id: str):
    if request.method == "POST":
        data = _validated(CustomerInput, _json_body(request))
        customer = office.customer_create(client_id=client_id, fields=data)
        return JsonResponse(_customer(customer), status=201)
    query = _validated(CustomerQuery, request.GET)
    listed = CrmSimCustomer.objects.filter(client_id=client_id)
    if "status" in query:
        listed = listed.filter(status=query["status"])
    if query.get("search"):
        listed = _searched(listed, query["search"])
    response = JsonResponse(_page(listed, query, _customer))
    # Seed 002, "Versioning": this list is the deprecated path, still served.
    response["Deprecation"] = "true"
    response["Sunset"] = SUNSET
    successor = request.build_absolute_uri(request.path.replace("/api/v2/", "/api/v3/"))
    response["Link"] = f'<{successor.rstrip("/")}>; rel="successor-version"'
    return response


def _searched(listed, search: str):
    """By name (first, last or both), email, or phone: a search that looks like a phone
    number matches the phone's digits, whatever its punctuation."""
    matches = (
        Q(full_name__icontains=search) | Q(email__icontains=search) | Q(phone__icontains=search)
    )
    digits = re.sub("[^0-9]", "", search)
    if digits and re.fullmatch(r"[0-9 ()+.\-]+", search):
        matches |= Q(phone_digits__contains=digits)
    return listed.annotate(full_name=Concat("first_name", Value(" "), "last_name")).filter(matches)


@crm_endpoint("GET", "PATCH", "DELETE")
def customer_detail(request, client_id: str, customer_id: str):
    customer = _record(CrmSimCustomer.objects.filter(client_id=client_id), customer_id, "Customer")
    if request.method == "PATCH":
        data = _validated(CustomerInput, _json_body(request), partial=True)
        customer = office.customer_update(customer=customer, fields=data)
    elif request.method == "DELETE":
        office.record_delete(customer)
        return HttpResponse(status=204)
    return JsonResponse(_customer(customer))


# Work orders.


def _work_order_fields(client_id: str, data: dict) -> dict:
    fields = {
        name: value
        for name, value in data.items()
        if name not in ("customer_id", "assigned_technician", "status")
    }
    if "assigned_technician" in data:
        fields["technician"] = _referenced(
            CrmSimTechnician.objects.filter(client_id=client_id, is_active=True),
            data["assigned_technician"],
            "assigned_technician",
            "Active technician",
            CrmSimTechnician.ID_PREFIX,
        )
    return fields


@crm_endpoint("GET", "POST")
def work_orders(request, client_id: str):
    if request.method == "POST":
        data = _validated(WorkOrderInput, _json_body(request))
        customer = _referenced(
            CrmSimCustomer.objects.filter(client_id=client_id),
            data["customer_id"],
            "customer_id",
            "Customer",
        )
        work_order = office.work_order_create(
            client_id=client_id, customer=customer, fields=_work_order_fields(client_id, data)
        )
        return JsonResponse(_work_order(work_order), status=201)
    query = _validated(WorkOrderQuery, request.GET)
    listed = CrmSimWorkOrder.objects.filter(client_id=client_id)
    if "status" in query:
        listed = listed.filter(status=query["status"])
    if "scheduled_date" in query:
        listed = listed.filter(scheduled_date=query["scheduled_date"])
    if "customer_id" in query:
        listed = listed.filter(customer_id=_pk(query["customer_id"]))
    if "technician_id" in query:
        listed = listed.filter(
            technician_id=_pk(query["technician_id"], CrmSimTechnician.ID_PREFIX)
        )
    return JsonResponse(_page(listed, query, _work_order))


@crm_endpoint("GET", "PATCH", "DELETE")
def work_order_detail(request, client_id: str, work_order_id: str):
    work_order = _record(
        CrmSimWorkOrder.objects.filter(client_id=client_id), work_order_id, "Work order"
    )
    if request.method == "PATCH":
        data = _validated(WorkOrderChange, _json_body(request), partial=True)
        work_order = office.work_order_update(
            work_order=work_order,
            fields=_work_order_fields(client_id, data),
            status=data.get("status"),
        )
    elif request.method == "DELETE":
        office.record_delete(work_order)
        return HttpResponse(status=204)
    return JsonResponse(_work_order(work_order))


# Technicians.


@crm_endpoint("GET")
def technicians(request, client_id: str):
    query = _validated(TechnicianQuery, request.GET)
    listed = CrmSimTechnician.objects.filter(client_id=client_id)
    if query["active_only"]:
        listed = listed.filter(is_active=True)
    if query.get("search"):
        listed = listed.annotate(full_name=Concat("first_name", Value(" "), "last_name")).filter(
            full_name__icontains=query["search"]
        )
    return JsonResponse(_page(listed, query, _technician))


# Invoices and payments.


@crm_endpoint("GET", "POST")
def invoices(request, client_id: str):
    if request.method == "POST":
        data = _validated(InvoiceInput, _json_body(request))
        work_order = _referenced(
            CrmSimWorkOrder.objects.filter(client_id=client_id).select_related(
                "customer", "technician"
            ),
            data["work_order_id"],
            "work_order_id",
            "Work order",
        )
        invoice = office.invoice_create(
            work_order=work_order,
            subtotal=data.get("subtotal"),
            tax=data.get("tax"),
            due_date=data.get("due_date"),
        )
        return JsonResponse(_invoice(invoice), status=201)
    query = _validated(InvoiceQuery, request.GET)
    listed = CrmSimInvoice.objects.filter(client_id=client_id)
    today = timezone.localdate()
    status = query.get("status")
    if status == "overdue":
        listed = listed.filter(status=CrmSimInvoice.Status.SENT, due_date__lt=today)
    elif status == CrmSimInvoice.Status.SENT:
        listed = listed.filter(status=status, due_date__gte=today)
    elif status:
        listed = listed.filter(status=status)
    if "customer_id" in query:
        listed = listed.filter(customer_id=_pk(query["customer_id"]))
    return JsonResponse(_page(listed, query, _invoice))


def _invoice_of(client_id: str, invoice_id: str) -> CrmSimInvoice:
    invoices_of_client = CrmSimInvoice.objects.filter(client_id=client_id).select_related(
        "customer", "work_order"
    )
    return _record(invoices_of_client, invoice_id, "Invoice", CrmSimInvoice.ID_PREFIX)


@crm_endpoint("POST")
def invoice_send(request, client_id: str, invoice_id: str):
    return JsonResponse(_invoice(office.invoice_send(_invoice_of(client_id, invoice_id))))


@crm_endpoint("POST")
def invoice_mark_paid(request, client_id: str, invoice_id: str):
    return JsonResponse(_invoice(office.invoice_mark_paid(_invoice_of(client_id, invoice_id))))


@crm_endpoint("GET", "POST")
def payments(request, client_id: str):
    if request.method == "POST":
        data = _validated(PaymentInput, _json_body(request))
        invoice = _referenced(
            CrmSimInvoice.objects.filter(client_id=client_id),
            data["invoice_id"],
            "invoice_id",
            "Invoice",
            CrmSimInvoice.ID_PREFIX,
        )
        payment = office.payment_create(
            invoice=invoice,
            amount=data["amount"],
            method=data["method"],
            reference=data.get("reference", ""),
        )
        return JsonResponse(_payment(payment), status=201)
    query = _validated(PaymentQuery, request.GET)
    listed = CrmSimPayment.objects.filter(client_id=client_id)
    if "invoice_id" in query:
        listed = listed.filter(invoice_id=_pk(query["invoice_id"], CrmSimInvoice.ID_PREFIX))
    return JsonResponse(_page(listed, query, _payment))


# Webhooks.


@crm_endpoint("POST")
def webhooks(request, client_id: str):
    data = _validated(WebhookInput, _json_body(request))
    webhook = office.webhook_register(client_id=client_id, **data)
    return JsonResponse(_webhook(webhook), status=201)


@crm_endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", authenticated=False)
def not_found(request, path: str = ""):
    raise ApiError(
        404, "not_found", f"No endpoint at {request.path}.", "Check the path against the API v2"
    )
