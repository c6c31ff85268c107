"""The slice of ServiceTitan's public API that our client uses, served by the simulator at
``/servicetitan-sim/`` and backed by the database simulation, so the real client runs over HTTP
against it (a company's ``api_url`` and ``auth_url`` pointing here).

A test double of a vendor, not our API: plain Django views (outside the OpenAPI schema) that
speak ServiceTitan's shapes, OAuth errors at ``connect/token`` and RFC 7807 problems elsewhere.
A booking made here is converted to a job at once, with the same number (``SimulatedJob``).
Mounted only where ``SERVICETITAN_SIMULATOR_ENABLED`` is on (``tradeengage/urls.py``); its token
endpoint answers only the clients of ``SERVICETITAN_SIMULATOR_CLIENTS``. Like ServiceTitan, it
answers 429 with ``Retry-After`` above a number of requests per second per app key and tenant.
"""

import functools
import hashlib
import hmac
import json
import re
import secrets
import time
import zlib

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from integrations.models import SimulatedJob
from integrations.providers import PermanentProviderError, RetryableProviderError
from integrations.servicetitan.simulator.simulation import CANCEL_REASONS, SimulatedServiceTitan
from integrations.servicetitan.types import PROBLEM_TYPES, Booking
from tradeengage.exceptions import flatten_errors

TOKEN_SECONDS = 900
TOKEN_CACHE_PREFIX = "servicetitan-sim:token:"
RATE_CACHE_PREFIX = "servicetitan-sim:rate:"
INVOICE_ID_OFFSET = 1_000_000
LARGEST_ID = 2**63 - 1

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
JOB_PRIORITIES = {"high": "High", "medium": "Normal", "low": "Low"}
PHONE_CONTACT_TYPES = {"Phone", "MobilePhone"}

# The simulation's error codes as ServiceTitan answers them: status, and whether the problem
# lists field errors (validation problems only).
PROBLEMS = {
    "Validation Error": (400, True),
    "Service Area Not Supported": (400, True),
    "Customer Conflict": (409, False),
    "Not Found": (404, False),
    "Invalid Status Transition": (400, False),
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


class BookingListQuery(PageQuery):
    ids = IdsField(required=False)
    externalId = serializers.CharField(required=False, allow_blank=True)


class JobListQuery(PageQuery):
    ids = IdsField(required=False)
    createdOnOrAfter = serializers.DateTimeField(required=False)
    createdBefore = serializers.DateTimeField(required=False)


class InvoiceListQuery(PageQuery):
    jobId = serializers.IntegerField(required=False)


class AddressInput(serializers.Serializer):
    # The lengths are SimulatedJob's columns.
    street = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    state = serializers.CharField(max_length=2, required=False, allow_blank=True, default="")
    zip = serializers.CharField(max_length=10, required=False, allow_blank=True, default="")
    country = serializers.CharField(required=False, allow_blank=True, default="")


class ContactInput(serializers.Serializer):
    type = serializers.CharField()
    value = serializers.CharField()


class BookingInput(serializers.Serializer):
    source = serializers.CharField()
    name = serializers.CharField(max_length=201)
    summary = serializers.CharField()
    isFirstTimeClient = serializers.BooleanField()
    externalId = serializers.CharField(max_length=100, required=False, allow_blank=True)
    address = AddressInput(required=False)
    contacts = ContactInput(many=True, required=False)
    priority = serializers.ChoiceField(["Urgent", "High", "Normal", "Low"], required=False)
    start = serializers.DateTimeField(required=False, allow_null=True)

    def validate_name(self, value):
        first_name, _, last_name = value.partition(" ")
        if len(first_name) > 100 or len(last_name.strip()) > 100:
            raise serializers.ValidationError("First and last name are at most 100 characters.")
        return value

    def validate_contacts(self, contacts):
        for contact in contacts:
            if contact["type"] in PHONE_CONTACT_TYPES and len(contact["value"]) > 20:
                raise serializers.ValidationError("A phone number is at most 20 characters.")
            if contact["type"] == "Email":
                serializers.EmailField(max_length=255).run_validation(contact["value"])
        return contacts


class CancelInput(serializers.Serializer):
    """jpm v2 ``CancelJobRequest``: both fields required, ``reasonId`` an active reason of the
    tenant's job-cancel-reasons."""

    reasonId = serializers.IntegerField()
    memo = serializers.CharField(allow_blank=True)

    def validate_reasonId(self, value):
        if not any(reason["id"] == value and reason["active"] for reason in CANCEL_REASONS):
            raise serializers.ValidationError(f"{value} is not an active job cancel reason.")
        return value


class CancelReasonListQuery(PageQuery):
    active = serializers.ChoiceField(["True", "Any", "False"], required=False)


class CancelReasons(tuple):
    """The cancel reasons, counted as a queryset is, for the page envelope (``_page``)."""

    def count(self) -> int:
        return len(self)


def _problem_type_for(summary: str) -> str:
    """The problem type whose description the summary starts with (the longest), else "other":
    a real booking names no problem type."""
    matches = [
        (len(description), problem_type)
        for problem_type, (_, _, description) in PROBLEM_TYPES.items()
        if summary.lower().startswith(description.lower())
    ]
    return max(matches)[1] if matches else "other"


def _contact(contacts: list[dict], types: set[str]) -> str:
    return next((contact["value"] for contact in contacts if contact["type"] in types), "")


def _booking_from(data: dict) -> Booking:
    first_name, _, last_name = data["name"].partition(" ")
    address = data.get("address") or {}
    contacts = data.get("contacts") or []
    return Booking(
        first_name=first_name,
        last_name=last_name.strip(),
        phone=_contact(contacts, PHONE_CONTACT_TYPES),
        email=_contact(contacts, {"Email"}),
        address=address.get("street", ""),
        city=address.get("city", ""),
        state=address.get("state", ""),
        zip=address.get("zip", ""),
        problem_type=_problem_type_for(data["summary"]),
        booking_id=data.get("externalId", ""),
        scheduled_date=data.get("start"),
        summary=data["summary"],
    )


def _booking(job: SimulatedJob, submitted: dict | None = None) -> dict:
    """A booking (converted to its job at once, so always "Converted", a cancelled one too).

    SimulatedJob keeps no source, first-time flag, requested priority or country: the answer to
    a create echoes them from the request; a read answers null for them, and the job's priority.
    """
    submitted = submitted or {}
    return {
        "id": job.job_id,
        "externalId": job.booking_id,
        "status": "Converted",
        "jobId": job.job_id,
        "name": f"{job.first_name} {job.last_name}".strip(),
        "summary": job.summary,
        "address": {
            "street": job.street,
            "city": job.city,
            "state": job.state,
            "zip": job.zip,
            "country": (submitted.get("address") or {}).get("country"),
        },
        "priority": submitted.get("priority") or JOB_PRIORITIES.get(job.priority, "Normal"),
        "source": submitted.get("source"),
        "isFirstTimeClient": submitted.get("isFirstTimeClient"),
        "createdOn": job.created_at,
        "modifiedOn": job.updated_at,
    }


def _job(job: SimulatedJob) -> dict:
    return {
        "id": job.job_id,
        "jobNumber": job.job_number,
        "jobStatus": JOB_STATUSES[job.status],
        "completedOn": job.completed_at,
        "createdOn": job.created_at,
        "modifiedOn": job.updated_at,
        "summary": job.summary or job.description,
        "priority": JOB_PRIORITIES.get(job.priority, "Normal"),
        # crc32, unlike hash(), is the same in every process.
        "businessUnitId": zlib.crc32(job.business_unit.encode()),
        "customerId": job.customer_id,
        "externalData": [{"key": "bookingId", "value": job.booking_id}] if job.booking_id else [],
    }


def _invoice(job: SimulatedJob) -> dict:
    return {
        "id": INVOICE_ID_OFFSET + job.pk,
        "total": f"{job.invoice_total:.2f}",
        "job": {"id": job.job_id, "number": job.job_number},
    }


def _page(jobs, query: dict, serialize) -> dict:
    """ServiceTitan's page envelope over a queryset of jobs: ``totalCount`` is null unless
    ``includeTotal`` asked for it (nullable, "can optionally be populated", in the specs'
    ``PaginatedResponse``), so ``hasMore`` comes from reading one row past the page."""
    page, size = query["page"], query["pageSize"]
    start = (page - 1) * size
    rows = list(jobs[start : start + size + 1])
    return {
        "page": page,
        "pageSize": size,
        "hasMore": len(rows) > size,
        "totalCount": jobs.count() if query["includeTotal"] else None,
        "data": [serialize(job) for job in rows[:size]],
    }


def _job_pk(job_id: int) -> int | None:
    pk = job_id - SimulatedJob.JOB_ID_OFFSET
    return pk if 0 < pk <= LARGEST_ID else None


def _listed_by_ids(listed, query: dict):
    """A booking and its job share their id here (``SimulatedJob``), so one filter serves both."""
    if "ids" not in query:
        return listed
    return listed.filter(pk__in=[pk for pk in map(_job_pk, query["ids"]) if pk is not None])


def _tenant_job(tenant: str, job_id: int, kind: str = "Job") -> SimulatedJob:
    job = SimulatedJob.objects.filter(tenant=tenant, pk=_job_pk(job_id)).first()
    if job is None:
        raise PermanentProviderError(f"{kind} {job_id} not found", code="Not Found")
    return job


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


@servicetitan_endpoint("GET", "POST")
def bookings(request, tenant: str, provider: str):
    if request.method == "POST":
        data = _validated(BookingInput, _json_body(request))
        created = _simulation(tenant).create_job(_booking_from(data))
        job = SimulatedJob.objects.get(pk=_job_pk(created.id))
        return JsonResponse(_booking(job, submitted=data))
    query = _validated(BookingListQuery, request.GET)
    listed = _listed_by_ids(SimulatedJob.objects.filter(tenant=tenant), query)
    if "externalId" in query:
        listed = listed.filter(booking_id=query["externalId"])
    return JsonResponse(_page(listed, query, _booking))


@servicetitan_endpoint("GET")
def booking_detail(request, tenant: str, provider: str, booking_id: int):
    return JsonResponse(_booking(_tenant_job(tenant, booking_id, kind="Booking")))


@servicetitan_endpoint("GET")
def jobs(request, tenant: str):
    query = _validated(JobListQuery, request.GET)
    listed = _listed_by_ids(SimulatedJob.objects.filter(tenant=tenant), query)
    if "createdOnOrAfter" in query:
        listed = listed.filter(created_at__gte=query["createdOnOrAfter"])
    if "createdBefore" in query:
        listed = listed.filter(created_at__lt=query["createdBefore"])
    return JsonResponse(_page(listed, query, _job))


@servicetitan_endpoint("GET")
def job_detail(request, tenant: str, job_id: int):
    return JsonResponse(_job(_tenant_job(tenant, job_id)))


@servicetitan_endpoint("PUT")
def job_cancel(request, tenant: str, job_id: int):
    data = _validated(CancelInput, _json_body(request))
    # The simulation finds jobs across tenants; the tenant's own job is checked first.
    job = _tenant_job(tenant, job_id)
    reason = next(reason for reason in CANCEL_REASONS if reason["id"] == data["reasonId"])
    _simulation(tenant).cancel_job(job.job_id, data["memo"] or reason["name"])
    return JsonResponse({})


@servicetitan_endpoint("GET")
def job_cancel_reasons(request, tenant: str):
    """Every tenant's reasons are the simulation's ``CANCEL_REASONS``; ``active`` filters them
    (True, False, or Any, the default)."""
    query = _validated(CancelReasonListQuery, request.GET)
    wanted = {"True": True, "False": False}.get(query.get("active", "Any"))
    listed = CancelReasons(r for r in CANCEL_REASONS if wanted is None or r["active"] == wanted)
    return JsonResponse(_page(listed, query, dict))


@servicetitan_endpoint("GET")
def invoices(request, tenant: str):
    """One invoice per completed job with a total; none for any other job."""
    query = _validated(InvoiceListQuery, request.GET)
    invoiced = SimulatedJob.objects.filter(
        tenant=tenant, status=SimulatedJob.Status.COMPLETED, invoice_total__isnull=False
    )
    if "jobId" in query:
        invoiced = invoiced.filter(pk=_job_pk(query["jobId"]))
    return JsonResponse(_page(invoiced, query, _invoice))


@csrf_exempt
def not_found(request, path: str = ""):
    return problem(404, "Not Found")
