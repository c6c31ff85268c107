"""Our shapes and ServiceTitan's v2 API's, both ways: a ``Booking`` as a booking-provider request
body (crm ``CreateBookingRequest``), shaped by the company's ``BookingMapping``, and a booking or
a job (jpm) as it answers them as a ``ServiceTitanJob``."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.providers import PermanentProviderError
from integrations.servicetitan.types import PROBLEM_TYPES, Booking, ServiceTitanJob

# Our problem-type priorities and ServiceTitan's.
PRIORITIES = {"high": "High", "medium": "Normal", "low": "Low"}
OUR_PRIORITIES = {value: key for key, value in PRIORITIES.items()}
# crm v2 ``Crm.V2.Priority`` and ``Crm.V2.CustomerType``.
BOOKING_PRIORITIES = ("Low", "Normal", "High", "Urgent")
CUSTOMER_TYPES = ("Residential", "Commercial")
# A job's ``jobStatus`` (jpm v2 OpenAPI, the jobs list's jobStatus filter: "Scheduled",
# "InProgress", "Hold", "Completed", "Canceled"). Dispatched and Working are its appointments'
# statuses, never a job's. A job on hold is open work, as an in-progress one is.
JOB_STATUSES = {
    "Scheduled": "scheduled",
    "InProgress": "in_progress",
    "Hold": "in_progress",
    "Completed": "completed",
    "Canceled": "cancelled",
}
# ZIP prefixes of ``business_units_by_zip``: 1 to 5 digits, as a booking's ZIP has 5.
ZIP_PREFIX = re.compile(r"[0-9]{1,5}")
MAPPING_KEYS = (
    "campaign_id",
    "business_unit_id",
    "business_units_by_zip",
    "business_units_by_trade",
    "job_type_id",
    "job_types_by_category",
    "priority_by_category",
    "urgent_keywords",
    "customer_type",
)


@dataclass
class BookingMapping:
    """A company's ServiceTitan ids and rules for its bookings, from its provider settings
    (``booking_mapping``). An id left unset is left out of the booking, for ServiceTitan's
    office to choose when it converts the booking into a job."""

    campaign_id: int | None = None
    business_unit_id: int | None = None
    business_units_by_zip: dict[str, int] = field(default_factory=dict)
    business_units_by_trade: dict[str, int] = field(default_factory=dict)
    job_type_id: int | None = None
    job_types_by_category: dict[str, int] = field(default_factory=dict)
    priority_by_category: dict[str, str] = field(default_factory=dict)
    urgent_keywords: tuple[str, ...] = ()
    customer_type: str = "Residential"

    def business_unit_for(self, booking: Booking) -> int | None:
        """The longest ZIP prefix that matches the booking's ZIP, else the first of its trades
        that is mapped, else the default."""
        prefixes = [
            prefix for prefix in self.business_units_by_zip if booking.zip.startswith(prefix)
        ]
        if prefixes:
            return self.business_units_by_zip[max(prefixes, key=len)]
        trade = next((t for t in trades_of(booking) if t in self.business_units_by_trade), None)
        return self.business_units_by_trade[trade] if trade else self.business_unit_id

    def job_type_for(self, booking: Booking) -> int | None:
        """The booking's problem type when it is mapped (the most precise: a broken spring, not
        just garage doors), else its first mapped trade, else the default."""
        keys = (booking.problem_type, *trades_of(booking))
        key = next((key for key in keys if key in self.job_types_by_category), None)
        return self.job_types_by_category[key] if key else self.job_type_id

    def priority_for(self, booking: Booking, summary: str) -> str:
        """Urgent when the summary names an urgent keyword; else its first mapped trade's
        priority; else its problem type's."""
        text = summary.lower()
        # At the start of a word: "flood" finds "flooded", "gas" does not find "Vegas".
        if any(re.search(rf"\b{re.escape(word.lower())}", text) for word in self.urgent_keywords):
            return "Urgent"
        trade = next((t for t in trades_of(booking) if t in self.priority_by_category), None)
        if trade:
            return self.priority_by_category[trade]
        return PRIORITIES[PROBLEM_TYPES[booking.problem_type][0]]


def trades_of(booking: Booking) -> list[str]:
    """The booking's category, then its skills' categories, each once."""
    return [trade for trade in dict.fromkeys((booking.category, *booking.trades)) if trade]


def booking_mapping(config: dict) -> BookingMapping:
    """The ``BookingMapping`` of a company's merged ServiceTitan configuration, its types checked:
    a ``PermanentProviderError`` ("Configuration Error") names every setting that is wrong."""
    problems: list[dict] = []

    def problem(key: str, message: str) -> None:
        problems.append({"field": key, "message": message, "value": config.get(key)})

    def service_titan_id(key: str, value) -> int | None:
        number = _positive_integer(value)
        if number is None:
            problem(key, f"must be a ServiceTitan id (a positive whole number), not {value!r}")
        return number

    def optional_id(key: str) -> int | None:
        value = config.get(key)
        return None if value in (None, "") else service_titan_id(key, value)

    def ids_by_key(key: str, is_valid_key, key_rule: str) -> dict[str, int]:
        value = config.get(key)
        if value in (None, "", {}):
            return {}
        if not isinstance(value, dict):
            problem(key, f"must be an object of {key_rule} to ServiceTitan ids")
            return {}
        ids = {}
        for name, id_value in value.items():
            if not is_valid_key(name):
                problem(key, f"{name!r} is not {key_rule}")
            number = service_titan_id(key, id_value)
            if number is not None:
                ids[str(name)] = number
        return ids

    def is_name(name) -> bool:
        return isinstance(name, str) and bool(name.strip())

    mapping = BookingMapping(
        campaign_id=optional_id("campaign_id"),
        business_unit_id=optional_id("business_unit_id"),
        business_units_by_zip=ids_by_key(
            "business_units_by_zip",
            lambda name: isinstance(name, str) and ZIP_PREFIX.fullmatch(name) is not None,
            "a ZIP prefix of 1 to 5 digits",
        ),
        business_units_by_trade=ids_by_key("business_units_by_trade", is_name, "a trade slug"),
        job_type_id=optional_id("job_type_id"),
        job_types_by_category=ids_by_key(
            "job_types_by_category", is_name, "a category slug or problem type"
        ),
    )
    priorities = config.get("priority_by_category") or {}
    if not isinstance(priorities, dict) or not all(
        is_name(name) and value in BOOKING_PRIORITIES for name, value in priorities.items()
    ):
        problem(
            "priority_by_category",
            f"must be an object of category slugs to one of {', '.join(BOOKING_PRIORITIES)}",
        )
    else:
        mapping.priority_by_category = dict(priorities)
    keywords = config.get("urgent_keywords") or []
    if not isinstance(keywords, list) or not all(is_name(word) for word in keywords):
        problem("urgent_keywords", "must be a list of words or phrases")
    else:
        mapping.urgent_keywords = tuple(word.strip() for word in keywords)
    customer_type = config.get("customer_type") or "Residential"
    if customer_type not in CUSTOMER_TYPES:
        problem("customer_type", f"must be {' or '.join(CUSTOMER_TYPES)}, not {customer_type!r}")
    else:
        mapping.customer_type = customer_type
    if problems:
        raise PermanentProviderError(
            "ServiceTitan settings are invalid: "
            + "; ".join(f"{entry['field']} {entry['message']}" for entry in problems),
            code="Configuration Error",
            details=problems,
        )
    return mapping


def _positive_integer(value) -> int | None:
    """An id as settings hold it: a number, or digits in a string (the environment's, or typed
    into the admin's JSON as text); booleans are numbers to Python, never ids to us."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else None
    return None


def booking_request(
    booking: Booking, *, mapping: BookingMapping | None = None, is_first_time_client: bool = True
) -> dict:
    """The ``CreateBookingRequest`` (crm v2) that creates ``booking`` at ServiceTitan: its
    ``externalId`` is our booking id, required by the model and our idempotency key, so a
    booking without one is refused here, before any request."""
    mapping = mapping or BookingMapping()
    if not booking.booking_id:
        raise PermanentProviderError(
            "A ServiceTitan booking needs a booking id: it is the booking's required externalId, "
            "which makes a retried create find the first one",
            code="Validation Error",
            details=[{"field": "booking_id", "message": "Required", "value": booking.booking_id}],
        )
    if booking.problem_type not in PROBLEM_TYPES:
        raise PermanentProviderError(
            f"Unknown problem type {booking.problem_type!r}",
            code="Validation Error",
            details=[
                {
                    "field": "problem_type",
                    "message": "Unknown problem type",
                    "value": booking.problem_type,
                }
            ],
        )
    summary = booking.summary or PROBLEM_TYPES[booking.problem_type][2]
    contacts = [
        {"type": kind, "value": value}
        for kind, value in (("Phone", booking.phone), ("Email", booking.email))
        if value
    ]
    payload = {
        "source": "TradeEngage",
        "name": f"{booking.first_name} {booking.last_name}".strip(),
        "summary": summary,
        "isFirstTimeClient": is_first_time_client,
        "externalId": booking.booking_id,
        "address": {
            "street": booking.address,
            "city": booking.city,
            "state": booking.state,
            "zip": booking.zip,
            "country": "USA",
        },
        "contacts": contacts,
        "customerType": mapping.customer_type,
        "priority": mapping.priority_for(booking, summary),
    }
    # The ids are nullable int64s: an unset one is left out, never sent as null or 0.
    ids = {
        "campaignId": mapping.campaign_id,
        "businessUnitId": mapping.business_unit_for(booking),
        "jobTypeId": mapping.job_type_for(booking),
    }
    payload.update({name: value for name, value in ids.items() if value is not None})
    if booking.scheduled_date:
        payload["start"] = timestamp_text(booking.scheduled_date)
    return payload


def job_from_booking(booking: dict) -> ServiceTitanJob:
    """A booking not (yet) converted into a job (``BookingStatus`` New, Accepted, or Converted
    before its job is there): open; or cancelled once dismissed, with the dismissing reason's id
    when it has one."""
    booking_id = _id(booking, "booking")
    dismissed = booking.get("status") == "Dismissed"
    reason = ""
    if dismissed:
        reason = "Booking dismissed in ServiceTitan"
        if booking.get("dismissingReasonId"):
            reason += f" (dismissing reason {booking['dismissingReasonId']})"
    return ServiceTitanJob(
        id=booking_id,
        job_number=f"BOOKING-{booking_id}",
        status="cancelled" if dismissed else "scheduled",
        reference=str(booking_id),
        booking_id=str(booking.get("externalId") or ""),
        priority=OUR_PRIORITIES.get(booking.get("priority"), ""),
        description=booking.get("summary") or "",
        customer={"name": booking.get("name") or ""},
        location={"address": booking.get("address") or {}},
        created_at=timestamp(booking.get("createdOn")),
        cancel_reason=reason,
        is_booking=True,
    )


def job_from_job(job: dict, booking: dict | None = None) -> ServiceTitanJob:
    """A job, referenced by the booking it was converted from when that is given."""
    job_id = _id(job, "job")
    # An unknown status is taken as open: the back-sync only acts on completed or cancelled.
    status = JOB_STATUSES.get(job.get("jobStatus"), "scheduled")
    return ServiceTitanJob(
        id=job_id,
        job_number=str(job.get("jobNumber") or job_id),
        status=status,
        reference=str(booking["id"]) if booking else "",
        booking_id=str((booking or {}).get("externalId") or ""),
        priority=OUR_PRIORITIES.get(job.get("priority"), ""),
        description=job.get("summary") or "",
        customer={"id": job.get("customerId")},
        location={"id": job.get("locationId")},
        business_unit=str(job.get("businessUnitId") or ""),
        created_at=timestamp(job.get("createdOn")),
        completed_at=timestamp(job.get("completedOn")) if status == "completed" else None,
    )


def cancel_reason_text(record: dict | None) -> str:
    """A cancelled job's reason from jpm v2 ``CancelReasonResponse``: the reason's name and the
    office's text."""
    if not record:
        return "Job canceled in ServiceTitan"
    parts = [str(record.get(key) or "").strip() for key in ("name", "text")]
    return ": ".join(part for part in parts if part) or "Job canceled in ServiceTitan"


def _id(payload: dict, kind: str) -> int:
    if payload.get("id") is None:
        raise PermanentProviderError(
            f"ServiceTitan answered with a {kind} without an id", code="Invalid Response"
        )
    return payload["id"]


def decimal_amount(value) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise PermanentProviderError(
            f"ServiceTitan answered with an invoice total that is not a number: {value!r}",
            code="Invalid Response",
        ) from exc


def timestamp(value: str | None) -> datetime | None:
    """ServiceTitan's timestamps are UTC, with up to seven fractional digits."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def timestamp_text(value: datetime) -> str:
    """A timestamp as ServiceTitan takes it: UTC, ``Z``; a naive one is in our time zone."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
