"""The slice of ServiceTitan's public API that our client uses, served by the simulator at
``/servicetitan-sim/`` and backed by the database, so the real client (or any public client
library) runs over HTTP against it: a company's ``api_url`` and ``auth_url`` pointing here.

A test double of a vendor, not our API, built from ServiceTitan's published v2 OpenAPI specs
(crm, jpm, accounting, marketing, settings) to refuse what ServiceTitan refuses: plain Django
views (outside our OpenAPI schema) speaking ServiceTitan's shapes, OAuth errors at
``connect/token`` and ServiceTitan's ``ApiErrorResponse`` elsewhere. A booking stays ``New``
until the office converts it into a job or dismisses it (``office``). Mounted only where
``SERVICETITAN_SIMULATOR_ENABLED`` is on (``tradeengage/urls.py``); its token endpoint answers
only the clients of ``SERVICETITAN_SIMULATOR_CLIENTS``. Like ServiceTitan, it answers 429 with
``Retry-After`` above a number of requests per second per app key and tenant.
"""

import functools
import hashlib
import hmac
import json
import re
import secrets
import time

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from integrations.models import SimulatedBooking, SimulatedCustomer, SimulatedJob
from integrations.providers import PermanentProviderError, RetryableProviderError
from integrations.servicetitan.simulator import office
from integrations.servicetitan.simulator.simulation import (
    CANCEL_REASONS,
    SimulatedServiceTitan,
    error_triggers,
)
from integrations.servicetitan.types import Booking
from tradeengage.exceptions import flatten_errors

TOKEN_SECONDS = 900
TOKEN_CACHE_PREFIX = "servicetitan-sim:token:"
RATE_CACHE_PREFIX = "servicetitan-sim:rate:"
INVOICE_ID_OFFSET = 1_000_000
LARGEST_ID = 2**63 - 1

APPOINTMENT_ID_OFFSET = 6_000_000
# The office user who converts bookings (JobResponse.createdById).
OFFICE_USER_ID = 7_000_001

# The simulation's statuses as a job's ``jobStatus`` (jpm v2 OpenAPI, the jobs list's jobStatus
# filter: Scheduled, InProgress, Hold, Completed, Canceled). Dispatched and Working are statuses
# of a job's appointments: the job is in progress once one is dispatched.
JOB_STATUSES = {
    SimulatedJob.Status.SCHEDULED: "Scheduled",
    SimulatedJob.Status.DISPATCHED: "InProgress",
    SimulatedJob.Status.IN_PROGRESS: "InProgress",
    SimulatedJob.Status.COMPLETED: "Completed",
    SimulatedJob.Status.CANCELLED: "Canceled",
}
JOB_PRIORITIES = {"urgent": "Urgent", "high": "High", "medium": "Normal", "low": "Low"}
PHONE_CONTACT_TYPES = {"Phone", "MobilePhone"}

# The simulation's error codes as ServiceTitan answers them: status, and whether the problem
# lists field errors (validation problems only).
PROBLEMS = {
    "Validation Error": (400, True),
    "Service Area Not Supported": (400, True),
    "Customer Conflict": (409, False),
    "Not Found": (404, False),
    "Invalid Status Transition": (400, False),
    "Conflict": (409, False),
}


class InvalidRequest(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("One or more validation errors occurred.")
        self.errors = errors


def problem(status: int, title: str, *, errors: dict | None = None, headers=None) -> JsonResponse:
    """An error as ServiceTitan sends it: ``ApiErrorResponse`` of its v2 OpenAPI specs, which
    requires ``errors`` (field: messages, ``{}`` when no field is at fault) and ``data``, and
    allows no other property (no RFC 7807 ``detail``)."""
    body = {
        "type": f"https://httpstatuses.io/{status}",
        "title": title,
        "status": status,
        "traceId": secrets.token_hex(16),
        "errors": errors or {},
        "data": {},
    }
    return JsonResponse(
        body, status=status, content_type="application/problem+json", headers=headers
    )


def _method_not_allowed(request, methods) -> JsonResponse:
    return problem(405, "Method Not Allowed", headers={"Allow": ", ".join(methods)})


def _authorized(request) -> bool:
    """An issued token and an app key. The token comes as ``Bearer <token>`` or bare, as public
    clients (servicepytan, Titanpy) send it and ServiceTitan accepts it."""
    credentials = request.headers.get("Authorization", "").strip()
    scheme, _, rest = credentials.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else credentials
    # A token is one word: "Basic ..." is no bare token.
    if len(token.split()) != 1 or not request.headers.get("ST-App-Key", "").strip():
        return False
    return cache.get(TOKEN_CACHE_PREFIX + token) is not None


# The clock of the request windows; tests set it instead of sleeping.
clock = time.time


def _over_rate_limit(request, tenant: str) -> bool:
    """Whether this request is one too many: ServiceTitan allows 60 requests per second per app
    (``ST-App-Key``) and tenant (its developer documentation, "Rate limits"), here
    ``SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND``, counted in fixed one-second windows in the
    cache. Not the client's token bucket (``ratelimit``): that one waits for a token in Redis,
    while this answers at once and must work on the file cache of ``make run`` too."""
    window = int(clock())
    app_key = hashlib.sha256(request.headers["ST-App-Key"].strip().encode()).hexdigest()[:32]
    key = f"{RATE_CACHE_PREFIX}{app_key}:{tenant}:{window}"
    # add + incr is atomic in Redis; the window's key outlives the window so incr finds it.
    cache.add(key, 0, timeout=2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: this request opens the window again
        cache.set(key, 1, timeout=2)
        count = 1
    return count > settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND


def _check_path_ids(path_arguments: dict) -> None:
    """The tenant and the booking provider are integer path parameters in ServiceTitan's v2
    specs (tenant-crm-v2.yml, tenant-jpm-v2.yml); every operation declares a 400 for a request
    it cannot process, so one that is not an integer is refused as a validation error."""
    errors = {
        name: [f"The value '{value}' is not valid."]
        for name, value in path_arguments.items()
        if name in ("tenant", "provider")
        and not (re.fullmatch("[0-9]{1,19}", value) and int(value) <= LARGEST_ID)
    }
    if errors:
        raise InvalidRequest(errors)


def servicetitan_endpoint(*methods: str):
    """An endpoint of the slice: the methods it allows, a bearer token issued by ``token`` and
    an app key, and the simulation's errors answered as ServiceTitan answers them."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return _method_not_allowed(request, methods)
            if not _authorized(request):
                return problem(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
            if _over_rate_limit(request, kwargs.get("tenant", "")):
                # The window is one second, so the next one opens within a second.
                return problem(429, "Too Many Requests", headers={"Retry-After": "1"})
            try:
                _check_path_ids(kwargs)
                return view(request, *args, **kwargs)
            except InvalidRequest as exc:
                return problem(400, "Validation Error", errors=exc.errors)
            except office.OfficeRefused as exc:
                return problem(exc.status, exc.title, errors={"": [str(exc)]})
            except RetryableProviderError:
                return problem(503, "Service Unavailable", headers={"Retry-After": "1"})
            except PermanentProviderError as exc:
                status, lists_fields = PROBLEMS.get(exc.code, (400, False))
                errors = {}
                for detail in exc.details if lists_fields else ():
                    errors.setdefault(detail["field"], []).append(detail["message"])
                return problem(status, exc.code or "Bad Request", errors=errors)

        return wrapper

    return decorate


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        errors = {}
        for error in flatten_errors(serializer.errors):
            errors.setdefault(error["field"] or "body", []).append(error["message"])
        raise InvalidRequest(errors)
    return serializer.validated_data


def _json_body(request):
    if not request.body:
        return {}
    try:
        return json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest({"body": [f"Malformed JSON: {exc}"]}) from exc


# Request bodies: ServiceTitan's models are closed ("additionalProperties": false) and typed as
# JSON is; a number sent as a string, or a property the model does not have, is refused.


class ClosedSerializer(serializers.Serializer):
    """A request model that refuses properties it does not define."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Could not find member '{name}'."] for name in unknown}
                )
        return super().to_internal_value(data)


class JsonBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise serializers.ValidationError("A boolean (true or false) is required.")
        return data


class JsonIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("An integer is required.")
        return super().to_internal_value(data)


class JsonStringField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("A string is required.")
        return super().to_internal_value(data)


class AddressInput(ClosedSerializer):
    """crm v2 ``AddressModel``: street, city, state, zip and country required."""

    street = JsonStringField(max_length=255)
    unit = JsonStringField(max_length=50, required=False, allow_null=True, allow_blank=True)
    city = JsonStringField(max_length=100)
    state = JsonStringField(max_length=50)
    zip = JsonStringField(max_length=10)
    country = JsonStringField(max_length=50)


class ContactInput(ClosedSerializer):
    """crm v2 ``BookingContactModel``; ``type`` one of ``ContactType``."""

    type = serializers.ChoiceField(["Phone", "Email", "Fax", "MobilePhone"])
    value = JsonStringField()
    memo = JsonStringField(required=False, allow_null=True, allow_blank=True)

    def validate(self, contact):
        if contact["type"] in PHONE_CONTACT_TYPES and len(contact["value"]) > 20:
            raise serializers.ValidationError({"value": "A phone number is at most 20 characters."})
        if contact["type"] == "Email":
            serializers.EmailField(max_length=255).run_validation(contact["value"])
        return contact


class BookingInput(ClosedSerializer):
    """crm v2 ``CreateBookingRequest``: source, name, summary, isFirstTimeClient and externalId
    required; the ids, when given, of the tenant's active campaigns, business units and job
    types."""

    source = JsonStringField(max_length=100)
    name = JsonStringField(max_length=201)
    address = AddressInput(required=False, allow_null=True)
    contacts = ContactInput(many=True, required=False, allow_null=True)
    customerType = serializers.ChoiceField(
        ["Residential", "Commercial"], required=False, allow_null=True
    )
    start = serializers.DateTimeField(required=False, allow_null=True)
    summary = JsonStringField()
    campaignId = JsonIntegerField(required=False, allow_null=True)
    businessUnitId = JsonIntegerField(required=False, allow_null=True)
    jobTypeId = JsonIntegerField(required=False, allow_null=True)
    priority = serializers.ChoiceField(
        ["Low", "Normal", "High", "Urgent"], required=False, allow_null=True
    )
    isFirstTimeClient = JsonBooleanField()
    uploadedImages = serializers.ListField(child=JsonStringField(), required=False, allow_null=True)
    isSendConfirmationEmail = JsonBooleanField(required=False, allow_null=True)
    # Required, and an empty one names nothing to find the booking by again.
    externalId = JsonStringField(max_length=100)

    def validate_campaignId(self, value):
        return _active_id(value, office.CAMPAIGNS, "campaign")

    def validate_businessUnitId(self, value):
        return _active_id(value, office.BUSINESS_UNITS, "business unit")

    def validate_jobTypeId(self, value):
        return _active_id(value, office.JOB_TYPES, "job type")


def _active_id(value, records, kind: str):
    if value is not None and value not in office.active_ids(records):
        raise serializers.ValidationError(f"{value} is not an active {kind} of the tenant.")
    return value


class CancelInput(ClosedSerializer):
    """jpm v2 ``CancelJobRequest``: both fields required, ``reasonId`` an active reason of the
    tenant's job-cancel-reasons."""

    reasonId = JsonIntegerField()
    memo = JsonStringField(allow_blank=True)

    def validate_reasonId(self, value):
        if not any(reason["id"] == value and reason["active"] for reason in CANCEL_REASONS):
            raise serializers.ValidationError(f"{value} is not an active job cancel reason.")
        return value


class CompleteInput(ClosedSerializer):
    """jpm v2 ``CompleteJobRequest``: ``completedOn`` required."""

    completedOn = serializers.DateTimeField()


class DismissInput(ClosedSerializer):
    """The simulator's office: why a booking is dismissed (``DISMISSING_REASONS``)."""

    dismissingReasonId = JsonIntegerField(required=False, allow_null=True)


# Queries: paging and each list's filters, as its operation in the specs declares them.


class PageQuery(serializers.Serializer):
    """Paging as ServiceTitan documents it (https://developer.servicetitan.io/docs/
    timeouts-and-pagination): page from 1, pageSize 1 to 5000 (50 by default), and a total
    count only when ``includeTotal`` asks for one."""

    page = serializers.IntegerField(min_value=1, max_value=2**31 - 1, default=1)
    pageSize = serializers.IntegerField(min_value=1, max_value=5000, default=50)
    includeTotal = serializers.BooleanField(default=False)


class IdsField(serializers.CharField):
    """``ids``: "Perform lookup by multiple IDs (maximum 50)" (crm and jpm v2 OpenAPI), as a
    comma-separated list; more than 50, or one that is no id, is refused."""

    LIMIT = 50

    def to_internal_value(self, data) -> list[int]:
        parts = [part.strip() for part in super().to_internal_value(data).split(",")]
        if not all(part.isdigit() and len(part) <= 19 for part in parts):
            raise serializers.ValidationError("ids is a comma-separated list of integer ids.")
        if len(parts) > self.LIMIT:
            raise serializers.ValidationError(f"At most {self.LIMIT} ids per request.")
        return [int(part) for part in parts]


class IdField(serializers.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=LARGEST_ID, required=False, **kwargs)


class CreatedModifiedQuery(PageQuery):
    ids = IdsField(required=False)
    createdOnOrAfter = serializers.DateTimeField(required=False)
    createdBefore = serializers.DateTimeField(required=False)
    modifiedOnOrAfter = serializers.DateTimeField(required=False)
    modifiedBefore = serializers.DateTimeField(required=False)


class BookingListQuery(CreatedModifiedQuery):
    externalId = serializers.CharField(required=False, allow_blank=True)


class JobListQuery(CreatedModifiedQuery):
    number = serializers.CharField(required=False)
    bookingId = IdField()
    customerId = IdField()
    # One status, or several comma-separated.
    jobStatus = serializers.RegexField(
        r"^(Scheduled|InProgress|Hold|Completed|Canceled)(,(Scheduled|InProgress|Hold|Completed|"
        r"Canceled))*$",
        required=False,
    )
    completedOnOrAfter = serializers.DateTimeField(required=False)
    completedBefore = serializers.DateTimeField(required=False)


class InvoiceListQuery(PageQuery):
    ids = IdsField(required=False)
    jobId = IdField()
    jobNumber = serializers.CharField(required=False)
    customerId = IdField()


class JobCancelReasonsQuery(PageQuery):
    ids = IdsField()


class CustomerListQuery(CreatedModifiedQuery):
    name = serializers.CharField(required=False)
    phone = serializers.CharField(required=False)
    zip = serializers.CharField(required=False)


class SettingsListQuery(PageQuery):
    """Campaigns, business units, job types and job cancel reasons: by ids, name and ``active``
    (True, False or Any; the specs' default lists active ones only for campaigns, business
    units and job types, every one for cancel reasons)."""

    ids = IdsField(required=False)
    name = serializers.CharField(required=False)
    active = serializers.ChoiceField(["True", "Any", "False"], required=False)


class Records(tuple):
    """Fixed records, counted as a queryset is, for the page envelope (``_page``)."""

    def count(self) -> int:
        return len(self)


def _settings_listed(records, query: dict, *, active_default: str) -> Records:
    wanted = {"True": True, "False": False}.get(query.get("active", active_default))
    return Records(
        record
        for record in records
        if (wanted is None or record["active"] == wanted)
        and ("ids" not in query or record["id"] in query["ids"])
        and query.get("name", "").lower() in record["name"].lower()
    )


# Shapes: what ServiceTitan answers.


def _booking(booking: SimulatedBooking) -> dict:
    """crm v2 ``BookingResponse``."""
    return {
        "id": booking.booking_id,
        "source": booking.source,
        "createdOn": booking.created_at,
        "name": booking.name,
        "address": booking.address,
        "customerType": booking.customer_type or None,
        # Required in the response; a booking asked for no time starts when it was made.
        "start": booking.start or booking.created_at,
        "summary": booking.summary,
        "campaignId": booking.campaign_id,
        "businessUnitId": booking.business_unit_id,
        "isFirstTimeClient": booking.is_first_time_client,
        "uploadedImages": booking.uploaded_images,
        "isSendConfirmationEmail": booking.is_send_confirmation_email,
        "status": booking.status,
        "dismissingReasonId": booking.dismissing_reason_id,
        "jobId": booking.job.job_id if booking.job else None,
        "externalId": booking.external_id,
        "priority": booking.priority or None,
        "jobTypeId": booking.job_type_id,
        "bookingProviderId": booking.booking_provider,
        "modifiedOn": booking.updated_at,
    }


def _job(job: SimulatedJob) -> dict:
    """jpm v2 ``JobResponse``: one appointment per job."""
    booking = getattr(job, "booking", None)
    customer = job.simulated_customer
    return {
        "id": job.job_id,
        "jobNumber": job.job_number,
        "customerId": customer.customer_id if customer else None,
        "locationId": customer.location_id if customer else None,
        "jobStatus": JOB_STATUSES[job.status],
        "completedOn": job.completed_at,
        "businessUnitId": job.business_unit_id,
        "jobTypeId": job.job_type_id,
        "priority": JOB_PRIORITIES.get(job.priority, "Normal"),
        "campaignId": job.campaign_id,
        "summary": job.summary or job.description,
        "customFields": [],
        "appointmentCount": 1,
        "firstAppointmentId": APPOINTMENT_ID_OFFSET + job.pk,
        "lastAppointmentId": APPOINTMENT_ID_OFFSET + job.pk,
        "recallForId": None,
        "warrantyId": None,
        "jobGeneratedLeadSource": None,
        "noCharge": False,
        "notificationsEnabled": True,
        "createdOn": job.created_at,
        "createdById": OFFICE_USER_ID,
        "modifiedOn": job.updated_at,
        "tagTypeIds": [],
        "leadCallId": None,
        "bookingId": booking.booking_id if booking else None,
        "soldById": None,
        "externalData": [],
    }


def _invoice(job: SimulatedJob) -> dict:
    """accounting v2 ``InvoiceResponse``: one invoice per completed job, no tax, unpaid."""
    customer = job.simulated_customer
    total = f"{job.invoice_total:.2f}"
    # The customer's address as the booking gave it (the job keeps seed 001's two-letter state).
    address = {
        "street": customer.street if customer else job.street,
        "unit": (customer.unit or None) if customer else None,
        "city": customer.city if customer else job.city,
        "state": customer.state if customer else job.state,
        "zip": customer.zip if customer else job.zip,
        "country": customer.country if customer else "",
    }
    return {
        "id": INVOICE_ID_OFFSET + job.pk,
        "syncStatus": "Pending",
        "summary": job.summary or job.description,
        "referenceNumber": str(INVOICE_ID_OFFSET + job.pk),
        "invoiceDate": job.completed_at,
        "dueDate": job.completed_at,
        "subTotal": total,
        "salesTax": "0.00",
        "salesTaxCode": None,
        "total": total,
        "balance": total,
        "customer": {"id": customer.customer_id, "name": customer.name} if customer else None,
        "customerAddress": address,
        "locationAddress": address,
        "businessUnit": {
            "id": job.business_unit_id,
            "name": office.name_of(office.BUSINESS_UNITS, job.business_unit_id),
        },
        "termName": "Due Upon Receipt",
        "createdBy": "Office",
        "batch": None,
        "modifiedOn": job.updated_at,
        "adjustmentToId": None,
        "job": {
            "id": job.job_id,
            "number": job.job_number,
            "type": office.name_of(office.JOB_TYPES, job.job_type_id),
        },
        "projectId": None,
        "royalty": None,
        "employeeInfo": None,
        "commissionEligibilityDate": None,
        "items": [],
        "customFields": [],
    }


def _customer(customer: SimulatedCustomer) -> dict:
    """crm v2 ``CustomerResponse``."""
    return {
        "id": customer.customer_id,
        "active": True,
        "name": customer.name,
        "type": "Residential",
        "address": {
            "street": customer.street,
            "unit": customer.unit or None,
            "city": customer.city,
            "state": customer.state,
            "zip": customer.zip,
            "country": customer.country,
            "latitude": None,
            "longitude": None,
        },
        "customFields": [],
        "balance": 0,
        "doNotMail": False,
        "doNotService": False,
        "createdOn": customer.created_at,
        "createdById": OFFICE_USER_ID,
        "modifiedOn": customer.updated_at,
        "mergedToId": None,
    }


def _campaign(campaign: dict) -> dict:
    return {
        "id": campaign["id"],
        "name": campaign["name"],
        "modifiedOn": SETTINGS_MODIFIED_ON,
        "active": campaign["active"],
        "category": {"id": campaign["id"] * 10, "name": campaign["category"], "active": True},
    }


def _business_unit(unit: dict) -> dict:
    return {
        "id": unit["id"],
        "active": unit["active"],
        "name": unit["name"],
        "officialName": unit["name"],
        "createdOn": SETTINGS_MODIFIED_ON,
        "modifiedOn": SETTINGS_MODIFIED_ON,
        "externalData": [],
    }


def _job_type(job_type: dict) -> dict:
    return {
        "id": job_type["id"],
        "name": job_type["name"],
        "modifiedOn": SETTINGS_MODIFIED_ON,
        "externalData": [],
    }


# The tenant's settings were last changed when the simulator was written.
SETTINGS_MODIFIED_ON = "2026-11-01T00:00:00Z"


def _page(rows, query: dict, serialize) -> dict:
    """ServiceTitan's page envelope over a queryset: ``totalCount`` is null unless
    ``includeTotal`` asked for it (nullable, "can optionally be populated", in the specs'
    ``PaginatedResponse``), so ``hasMore`` comes from reading one row past the page."""
    page, size = query["page"], query["pageSize"]
    start = (page - 1) * size
    listed = list(rows[start : start + size + 1])
    return {
        "page": page,
        "pageSize": size,
        "hasMore": len(listed) > size,
        "totalCount": rows.count() if query["includeTotal"] else None,
        "data": [serialize(row) for row in listed[:size]],
    }


def _pk(api_id: int, offset: int) -> int | None:
    pk = api_id - offset
    return pk if 0 < pk <= LARGEST_ID else None


def _pks(api_ids, offset: int) -> list[int]:
    return [pk for pk in (_pk(api_id, offset) for api_id in api_ids) if pk is not None]


def _created_modified(listed, query: dict):
    for name, lookup in (
        ("createdOnOrAfter", "created_at__gte"),
        ("createdBefore", "created_at__lt"),
        ("modifiedOnOrAfter", "updated_at__gte"),
        ("modifiedBefore", "updated_at__lt"),
    ):
        if name in query:
            listed = listed.filter(**{lookup: query[name]})
    return listed


def _tenant_bookings(tenant: str, provider: str):
    return SimulatedBooking.objects.filter(
        tenant=tenant, booking_provider=int(provider)
    ).select_related("job")


def _tenant_jobs(tenant: str):
    """The tenant's jobs in the real API: those converted from its bookings."""
    return SimulatedJob.objects.filter(tenant=tenant, booking__isnull=False).select_related(
        "booking", "simulated_customer"
    )


def _tenant_job(tenant: str, job_id: int) -> SimulatedJob:
    job = _tenant_jobs(tenant).filter(pk=_pk(job_id, SimulatedJob.JOB_ID_OFFSET)).first()
    if job is None:
        raise PermanentProviderError(f"Job {job_id} not found", code="Not Found")
    return job


def _tenant_booking(tenant: str, provider: str, booking_id: int) -> SimulatedBooking:
    booking = (
        _tenant_bookings(tenant, provider)
        .filter(pk=_pk(booking_id, SimulatedBooking.ID_OFFSET))
        .first()
    )
    if booking is None:
        raise PermanentProviderError(f"Booking {booking_id} not found", code="Not Found")
    return booking


def _simulation(tenant: str) -> SimulatedServiceTitan:
    # The simulation behind the slice is the global one: the slice is the vendor, not a company.
    return SimulatedServiceTitan(settings.SERVICETITAN, tenant=tenant)


def _client_known(client_id: str, client_secret: str) -> bool:
    """Whether the pair is one of ``SERVICETITAN_SIMULATOR_CLIENTS``. Every configured pair is
    compared in full, in constant time, so the answer takes as long whichever part is wrong."""
    given_id, given_secret = client_id.encode(), client_secret.encode()
    known = False
    for configured_id, configured_secret in settings.SERVICETITAN_SIMULATOR_CLIENTS.items():
        id_matches = hmac.compare_digest(given_id, configured_id.encode())
        secret_matches = hmac.compare_digest(given_secret, configured_secret.encode())
        known |= id_matches and secret_matches
    return known and bool(client_id) and bool(client_secret)


@csrf_exempt
def token(request):
    """OAuth 2 client credentials: only a client configured in ``SERVICETITAN_SIMULATOR_CLIENTS``
    gets a token; any other gets ServiceTitan's ``invalid_client``."""
    if request.method != "POST":
        return _method_not_allowed(request, ("POST",))
    if request.POST.get("grant_type") != "client_credentials":
        return JsonResponse({"error": "unsupported_grant_type"}, status=400)
    client_id = request.POST.get("client_id", "")
    client_secret = request.POST.get("client_secret", "")
    if not _client_known(client_id, client_secret):
        return JsonResponse({"error": "invalid_client"}, status=400)
    access_token = secrets.token_urlsafe(32)
    cache.set(TOKEN_CACHE_PREFIX + access_token, client_id, timeout=TOKEN_SECONDS)
    return JsonResponse(
        {"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS},
        headers={"Cache-Control": "no-store"},
    )


def _booking_for_triggers(data: dict) -> Booking:
    """The request as seed 001's simulation reads it, for its error triggers (an email of
    error@test.com, ZIP 00000, phone 0000000000)."""
    address = data.get("address") or {}
    contacts = data.get("contacts") or []
    phone = next((c["value"] for c in contacts if c["type"] in PHONE_CONTACT_TYPES), "")
    return Booking(
        first_name=data["name"],
        last_name="",
        phone=office.phone_digits(phone),
        email=next((c["value"] for c in contacts if c["type"] == "Email"), ""),
        address=address.get("street", ""),
        city=address.get("city", ""),
        state=address.get("state", ""),
        zip=address.get("zip", ""),
        problem_type="other",
    )


@servicetitan_endpoint("GET", "POST")
def bookings(request, tenant: str, provider: str):
    if request.method == "POST":
        return _booking_create(request, tenant, provider)
    office.office_catch_up(tenant)
    query = _validated(BookingListQuery, request.GET)
    listed = _created_modified(_tenant_bookings(tenant, provider), query)
    if "ids" in query:
        listed = listed.filter(pk__in=_pks(query["ids"], SimulatedBooking.ID_OFFSET))
    if "externalId" in query:
        listed = listed.filter(external_id=query["externalId"])
    return JsonResponse(_page(listed, query, _booking))


def _booking_create(request, tenant: str, provider: str) -> JsonResponse:
    data = _validated(BookingInput, _json_body(request))
    _simulation(tenant).behave("create")
    error_triggers(_booking_for_triggers(data))
    try:
        with transaction.atomic():
            booking = SimulatedBooking.objects.create(
                tenant=tenant,
                booking_provider=int(provider),
                external_id=data["externalId"],
                source=data["source"],
                name=data["name"],
                summary=data["summary"],
                customer_type=data.get("customerType") or "",
                is_first_time_client=data["isFirstTimeClient"],
                priority=data.get("priority") or "",
                campaign_id=data.get("campaignId"),
                business_unit_id=data.get("businessUnitId"),
                job_type_id=data.get("jobTypeId"),
                start=data.get("start"),
                address=data.get("address"),
                contacts=data.get("contacts") or [],
                uploaded_images=data.get("uploadedImages"),
                is_send_confirmation_email=data.get("isSendConfirmationEmail"),
            )
    except IntegrityError:
        # ServiceTitan's documentation does not say what a second booking with the same
        # externalId does; the simulator refuses it, so that a client creating twice is seen.
        raise PermanentProviderError(
            f"A booking with externalId {data['externalId']!r} exists", code="Conflict"
        ) from None
    return JsonResponse(_booking(booking))


@servicetitan_endpoint("GET")
def booking_detail(request, tenant: str, provider: str, booking_id: int):
    office.office_catch_up(tenant)
    return JsonResponse(_booking(_tenant_booking(tenant, provider, booking_id)))


@servicetitan_endpoint("GET")
def jobs(request, tenant: str):
    office.office_catch_up(tenant)
    query = _validated(JobListQuery, request.GET)
    listed = _created_modified(_tenant_jobs(tenant), query)
    if "ids" in query:
        listed = listed.filter(pk__in=_pks(query["ids"], SimulatedJob.JOB_ID_OFFSET))
    if "number" in query:
        number = query["number"].removeprefix("JOB-")
        listed = (
            listed.filter(pk=_pk(int(number), SimulatedJob.JOB_ID_OFFSET) or 0)
            if (number.isdigit() and len(number) <= 18)
            else listed.none()
        )
    if "bookingId" in query:
        listed = listed.filter(booking__pk=_pk(query["bookingId"], SimulatedBooking.ID_OFFSET))
    if "customerId" in query:
        customer_pk = _pk(query["customerId"], SimulatedCustomer.ID_OFFSET)
        listed = listed.filter(simulated_customer__pk=customer_pk)
    if "jobStatus" in query:
        wanted = set(query["jobStatus"].split(","))
        listed = listed.filter(
            status__in=[ours for ours, theirs in JOB_STATUSES.items() if theirs in wanted]
        )
    if "completedOnOrAfter" in query:
        listed = listed.filter(completed_at__gte=query["completedOnOrAfter"])
    if "completedBefore" in query:
        listed = listed.filter(completed_at__lt=query["completedBefore"])
    return JsonResponse(_page(listed, query, _job))


@servicetitan_endpoint("GET")
def job_detail(request, tenant: str, job_id: int):
    office.office_catch_up(tenant)
    return JsonResponse(_job(_tenant_job(tenant, job_id)))


@servicetitan_endpoint("PUT")
def job_cancel(request, tenant: str, job_id: int):
    data = _validated(CancelInput, _json_body(request))
    job = _tenant_job(tenant, job_id)
    _simulation(tenant).behave("status")
    office.job_cancel(job, reason_id=data["reasonId"], memo=data["memo"])
    return _succeeded()


@servicetitan_endpoint("PUT")
def job_complete(request, tenant: str, job_id: int):
    data = _validated(CompleteInput, _json_body(request))
    job = _tenant_job(tenant, job_id)
    _simulation(tenant).behave("status")
    office.job_complete(job, completed_at=data["completedOn"])
    return _succeeded()


def _succeeded() -> HttpResponse:
    """jpm v2's 200 for cancel and complete: "The request has succeeded", with no content."""
    return HttpResponse(status=200)


@servicetitan_endpoint("GET")
def jobs_cancel_reasons(request, tenant: str):
    """jpm v2 "Gets a list of cancel reasons for specific jobs": the cancelled ones of ``ids``."""
    office.office_catch_up(tenant)
    query = _validated(JobCancelReasonsQuery, request.GET)
    cancelled = _tenant_jobs(tenant).filter(
        pk__in=_pks(query["ids"], SimulatedJob.JOB_ID_OFFSET),
        status=SimulatedJob.Status.CANCELLED,
    )
    return JsonResponse(_page(cancelled, query, _job_cancel_reason))


def _job_cancel_reason(job: SimulatedJob) -> dict:
    return {
        "jobId": job.job_id,
        "reasonId": job.cancel_reason_id,
        "name": next((r["name"] for r in CANCEL_REASONS if r["id"] == job.cancel_reason_id), ""),
        "text": job.cancel_reason,
    }


@servicetitan_endpoint("GET")
def job_cancel_reasons(request, tenant: str):
    query = _validated(SettingsListQuery, request.GET)
    listed = _settings_listed(CANCEL_REASONS, query, active_default="Any")
    return JsonResponse(_page(listed, query, dict))


@servicetitan_endpoint("GET")
def job_types(request, tenant: str):
    query = _validated(SettingsListQuery, request.GET)
    listed = _settings_listed(office.JOB_TYPES, query, active_default="True")
    return JsonResponse(_page(listed, query, _job_type))


@servicetitan_endpoint("GET")
def campaigns(request, tenant: str):
    query = _validated(SettingsListQuery, request.GET)
    listed = _settings_listed(office.CAMPAIGNS, query, active_default="True")
    return JsonResponse(_page(listed, query, _campaign))


@servicetitan_endpoint("GET")
def business_units(request, tenant: str):
    query = _validated(SettingsListQuery, request.GET)
    listed = _settings_listed(office.BUSINESS_UNITS, query, active_default="True")
    return JsonResponse(_page(listed, query, _business_unit))


@servicetitan_endpoint("GET")
def customers(request, tenant: str):
    query = _validated(CustomerListQuery, request.GET)
    listed = _created_modified(SimulatedCustomer.objects.filter(tenant=tenant), query)
    if "ids" in query:
        listed = listed.filter(pk__in=_pks(query["ids"], SimulatedCustomer.ID_OFFSET))
    if "phone" in query:
        listed = listed.filter(phone=office.phone_digits(query["phone"]))
    if "name" in query:
        listed = listed.filter(name__icontains=query["name"])
    if "zip" in query:
        listed = listed.filter(zip=query["zip"])
    return JsonResponse(_page(listed, query, _customer))


@servicetitan_endpoint("GET")
def invoices(request, tenant: str):
    """One invoice per completed job; none for any other job."""
    office.office_catch_up(tenant)
    query = _validated(InvoiceListQuery, request.GET)
    invoiced = _tenant_jobs(tenant).filter(
        status=SimulatedJob.Status.COMPLETED, invoice_total__isnull=False
    )
    if "ids" in query:
        invoiced = invoiced.filter(pk__in=_pks(query["ids"], INVOICE_ID_OFFSET))
    if "jobId" in query:
        invoiced = invoiced.filter(pk=_pk(query["jobId"], SimulatedJob.JOB_ID_OFFSET))
    if "jobNumber" in query:
        number = query["jobNumber"].removeprefix("JOB-")
        job_pk = _pk(int(number), SimulatedJob.JOB_ID_OFFSET) if number.isdigit() else None
        invoiced = invoiced.filter(pk=job_pk) if len(number) <= 18 else invoiced.none()
    if "customerId" in query:
        customer_pk = _pk(query["customerId"], SimulatedCustomer.ID_OFFSET)
        invoiced = invoiced.filter(simulated_customer__pk=customer_pk)
    return JsonResponse(_page(invoiced, query, _invoice))


# The office: what the receiving company does in ServiceTitan itself, which its public API
# cannot (convert or dismiss a booking). Not ServiceTitan's; the simulator's, for tests, demos
# and benchmarks, behind the same token and app key.


@servicetitan_endpoint("POST")
def office_booking_convert(request, tenant: str, provider: str, booking_id: int):
    job = office.booking_convert(_tenant_booking(tenant, provider, booking_id))
    return JsonResponse({"bookingId": booking_id, "jobId": job.job_id, "jobNumber": job.job_number})


@servicetitan_endpoint("POST")
def office_booking_dismiss(request, tenant: str, provider: str, booking_id: int):
    data = _validated(DismissInput, _json_body(request))
    booking = _tenant_booking(tenant, provider, booking_id)
    office.booking_dismiss(booking, reason_id=data.get("dismissingReasonId"))
    return JsonResponse({"bookingId": booking_id, "status": SimulatedBooking.Status.DISMISSED})


@csrf_exempt
def not_found(request, path: str = ""):
    return problem(404, "Not Found")
