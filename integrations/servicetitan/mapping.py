"""Our shapes and ServiceTitan's v2 API's, both ways: a ``Booking`` as a booking-provider request
body (crm), and a booking or a job (jpm) as it answers them as a ``ServiceTitanJob``."""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.providers import PermanentProviderError
from integrations.servicetitan.types import PROBLEM_TYPES, Booking, ServiceTitanJob

# Our problem-type priorities and ServiceTitan's.
PRIORITIES = {"high": "High", "medium": "Normal", "low": "Low"}
OUR_PRIORITIES = {value: key for key, value in PRIORITIES.items()}
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


def booking_request(booking: Booking) -> dict:
    """The body that creates ``booking`` at ServiceTitan; its ``externalId`` is our booking id."""
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
    priority, _, description = PROBLEM_TYPES[booking.problem_type]
    contacts = [
        {"type": kind, "value": value}
        for kind, value in (("Phone", booking.phone), ("Email", booking.email))
        if value
    ]
    payload = {
        "source": "TradeEngage",
        "name": f"{booking.first_name} {booking.last_name}".strip(),
        "summary": booking.summary or description,
        "isFirstTimeClient": True,
        "externalId": booking.booking_id,
        "address": {
            "street": booking.address,
            "city": booking.city,
            "state": booking.state,
            "zip": booking.zip,
            "country": "USA",
        },
        "contacts": contacts,
        "priority": PRIORITIES[priority],
    }
    if booking.scheduled_date:
        payload["start"] = timestamp_text(booking.scheduled_date)
    return payload


def job_from_booking(booking: dict) -> ServiceTitanJob:
    """A booking not (yet) converted into a job: open, or cancelled once dismissed."""
    booking_id = _id(booking, "booking")
    return ServiceTitanJob(
        id=booking_id,
        job_number=f"BOOKING-{booking_id}",
        status="cancelled" if booking.get("status") == "Dismissed" else "scheduled",
        reference=str(booking_id),
        booking_id=str(booking.get("externalId") or ""),
        priority=OUR_PRIORITIES.get(booking.get("priority"), ""),
        description=booking.get("summary") or "",
        customer={"name": booking.get("name") or ""},
        location={"address": booking.get("address") or {}},
        created_at=timestamp(booking.get("createdOn")),
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
