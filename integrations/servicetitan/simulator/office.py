"""The simulated tenant's settings and its office: what the simulator's slice of ServiceTitan's
API serves besides bookings and jobs (campaigns, business units, job types, job cancel reasons,
the same for every tenant), and what a receiving company's office does in ServiceTitan itself,
which the public API cannot: convert a booking into a job, dismiss it, and invoice a completed
job. The admin, the simulator's office endpoints and the delays of
``SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS`` / ``..._COMPLETE_AFTER_SECONDS`` call it."""

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.models import SimulatedBooking, SimulatedCustomer, SimulatedJob
from integrations.servicetitan.simulator.simulation import (
    CANCEL_REASONS,
    invoice_total_for,
    job_details_for,
)
from integrations.servicetitan.types import PROBLEM_TYPES

# marketing v2 campaigns (CampaignResponse: id, name, active, category).
CAMPAIGNS = (
    {"id": 40, "name": "Yellow pages (retired)", "active": False, "category": "Print"},
    {"id": 41, "name": "TradeEngage referrals", "active": True, "category": "Referral"},
    {"id": 42, "name": "Yard signs", "active": True, "category": "Signage"},
)
# settings v2 business units (BusinessUnitResponse: id, active, name, ...).
BUSINESS_UNITS = (
    {"id": 50, "name": "Residential Service", "active": True},
    {"id": 51, "name": "Garage Doors", "active": True},
    {"id": 52, "name": "Plumbing", "active": True},
    {"id": 53, "name": "Electrical", "active": True},
    {"id": 54, "name": "HVAC", "active": True},
    {"id": 55, "name": "Roofing", "active": True},
    {"id": 59, "name": "Closed branch", "active": False},
)
# jpm v2 job types (JobTypeResponse: id, name, ...); active is a list filter of theirs.
JOB_TYPES = (
    {"id": 60, "name": "Garage Door Repair", "active": True},
    {"id": 61, "name": "Garage Door Installation", "active": True},
    {"id": 62, "name": "Plumbing Service", "active": True},
    {"id": 63, "name": "Electrical Service", "active": True},
    {"id": 64, "name": "HVAC Service", "active": True},
    {"id": 65, "name": "Roof Repair", "active": True},
    {"id": 66, "name": "Service Call", "active": True},
    {"id": 68, "name": "Door Painting (retired)", "active": False},
    # What a booking without a job type becomes when the office converts it in a hurry: the
    # "Unknown" job type that users of booking integrations report.
    {"id": 69, "name": "Unknown", "active": True},
)
UNKNOWN_JOB_TYPE_ID = 69
# A booking converted without a campaign or business unit lands on these, as an office in a
# hurry would file it.
FALLBACK_CAMPAIGN_ID = 42
FALLBACK_BUSINESS_UNIT_ID = 50
# Why a booking was dismissed (BookingResponse.dismissingReasonId); ServiceTitan's API lists no
# dismissing reasons, so only their ids travel.
DISMISSING_REASONS = {71: "Outside our service area", 72: "We do not do this work", 73: "Spam"}
DEFAULT_DISMISSING_REASON_ID = 72
# The job cancel reason of a cancellation in the admin (simulation.CANCEL_REASONS).
CUSTOMER_CANCELLED_REASON_ID = 31
# A booking's priority as the simulation's job priority.
OUR_PRIORITIES = {"Urgent": "urgent", "High": "high", "Normal": "medium", "Low": "low"}


def active_ids(records) -> set[int]:
    return {record["id"] for record in records if record["active"]}


def name_of(records, record_id) -> str:
    return next((record["name"] for record in records if record["id"] == record_id), "")


class OfficeRefused(Exception):
    """What the office cannot do to a booking or job in its current state; answered over HTTP
    with ``status`` (jpm v2: 409 for completing a job already completed or cancelled, 400 for
    cancelling one)."""

    def __init__(self, message: str, *, status: int = 409):
        super().__init__(message)
        self.status = status
        self.title = "Conflict" if status == 409 else "Bad Request"


def booking_convert(booking: SimulatedBooking, *, now: datetime | None = None) -> SimulatedJob:
    """Convert a New booking into a Scheduled job, as the office does: its customer found by
    phone in the tenant or created, the booking's campaign, business unit and job type (or the
    office's fallbacks: the "Unknown" job type for a booking without one)."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = SimulatedBooking.objects.select_for_update().get(pk=booking.pk)
        if booking.status != SimulatedBooking.Status.NEW:
            raise OfficeRefused(f"Booking {booking.booking_id} is {booking.status}, not New.")
        customer = _customer_for(booking)
        address = booking.address or {}
        problem_type = problem_type_for(booking.summary)
        description, minutes = job_details_for(problem_type, doors=1)
        job = SimulatedJob.objects.create(
            tenant=booking.tenant,
            customer_id=str(customer.customer_id),
            simulated_customer=customer,
            first_name=booking.name.partition(" ")[0][:100],
            last_name=booking.name.partition(" ")[2].strip()[:100],
            phone=customer.phone,
            email=customer.email,
            street=address.get("street", "")[:255],
            city=address.get("city", "")[:100],
            state=address.get("state", "")[:2],
            zip=address.get("zip", "")[:10],
            problem_type=problem_type,
            scheduled_date=booking.start,
            summary=booking.summary,
            description=description,
            priority=OUR_PRIORITIES.get(booking.priority, PROBLEM_TYPES[problem_type][0]),
            business_unit=name_of(
                BUSINESS_UNITS, booking.business_unit_id or FALLBACK_BUSINESS_UNIT_ID
            ),
            estimated_duration=minutes,
            campaign_id=booking.campaign_id or FALLBACK_CAMPAIGN_ID,
            business_unit_id=booking.business_unit_id or FALLBACK_BUSINESS_UNIT_ID,
            job_type_id=booking.job_type_id or UNKNOWN_JOB_TYPE_ID,
        )
        booking.status = SimulatedBooking.Status.CONVERTED
        booking.job = job
        booking.updated_at = now
        booking.save(update_fields=["status", "job", "updated_at"])
    return job


def booking_dismiss(booking: SimulatedBooking, *, reason_id: int | None = None) -> None:
    """Dismiss a New booking: the company does not take the work."""
    reason_id = reason_id or DEFAULT_DISMISSING_REASON_ID
    if reason_id not in DISMISSING_REASONS:
        raise OfficeRefused(f"{reason_id} is not a dismissing reason.", status=400)
    changed = SimulatedBooking.objects.filter(
        pk=booking.pk, status=SimulatedBooking.Status.NEW
    ).update(
        status=SimulatedBooking.Status.DISMISSED,
        dismissing_reason_id=reason_id,
        updated_at=timezone.now(),
    )
    if not changed:
        raise OfficeRefused(f"Booking {booking.booking_id} is not New.")


def job_complete(job: SimulatedJob, *, completed_at: datetime | None = None) -> SimulatedJob:
    """Complete an open job and invoice it (jpm v2 ``PUT jobs/{id}/complete``: 409 for a job
    already completed or cancelled)."""
    with transaction.atomic():
        job = SimulatedJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (SimulatedJob.Status.COMPLETED, SimulatedJob.Status.CANCELLED):
            raise OfficeRefused(f"Job {job.job_id} is already {job.get_status_display().lower()}.")
        job.status = SimulatedJob.Status.COMPLETED
        job.completed_at = completed_at or timezone.now()
        job.invoice_total = invoice_total_for(job)
        job.save(update_fields=["status", "completed_at", "invoice_total", "updated_at"])
    return job


def job_cancel(job: SimulatedJob, *, reason_id: int, memo: str) -> SimulatedJob:
    """Cancel an open job with one of the tenant's active job cancel reasons."""
    reason = next((r for r in CANCEL_REASONS if r["id"] == reason_id and r["active"]), None)
    if reason is None:
        raise OfficeRefused(f"{reason_id} is not an active job cancel reason.", status=400)
    with transaction.atomic():
        job = SimulatedJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (SimulatedJob.Status.COMPLETED, SimulatedJob.Status.CANCELLED):
            raise OfficeRefused(
                f"Job {job.job_id} is already {job.get_status_display().lower()}.", status=400
            )
        job.status = SimulatedJob.Status.CANCELLED
        job.cancel_reason_id = reason["id"]
        job.cancel_reason = memo or reason["name"]
        job.save(update_fields=["status", "cancel_reason_id", "cancel_reason", "updated_at"])
    return job


def office_catch_up(tenant: str, *, now: datetime | None = None) -> None:
    """What the office has done by now with the tenant's bookings and jobs, when delays are
    set: bookings New for ``SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS`` converted, jobs
    converted from bookings and open for ``..._COMPLETE_AFTER_SECONDS`` completed and invoiced.
    Called before the slice reads, so a client sees the office's work as soon as it is due."""
    now = now or timezone.now()
    convert_after = settings.SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS
    complete_after = settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS
    if convert_after is not None:
        due = SimulatedBooking.objects.filter(
            tenant=tenant,
            status=SimulatedBooking.Status.NEW,
            created_at__lte=now - timedelta(seconds=convert_after),
        )
        for booking in due.order_by("id")[:100]:
            try:
                booking_convert(booking, now=now)
            except OfficeRefused:
                continue  # converted by a concurrent request a moment ago
    if complete_after is not None:
        open_jobs = SimulatedJob.objects.filter(
            tenant=tenant,
            booking__isnull=False,
            status__in=[
                SimulatedJob.Status.SCHEDULED,
                SimulatedJob.Status.DISPATCHED,
                SimulatedJob.Status.IN_PROGRESS,
            ],
            created_at__lte=now - timedelta(seconds=complete_after),
        )
        for job in open_jobs.order_by("id")[:100]:
            try:
                job_complete(job, completed_at=now)
            except OfficeRefused:
                continue


def problem_type_for(summary: str) -> str:
    """The problem type whose description the summary starts with (the longest), else "other":
    a real booking names no problem type."""
    matches = [
        (len(description), problem_type)
        for problem_type, (_, _, description) in PROBLEM_TYPES.items()
        if summary.lower().startswith(description.lower())
    ]
    return max(matches)[1] if matches else "other"


def _customer_for(booking: SimulatedBooking) -> SimulatedCustomer:
    phone = phone_digits(next(_contacts(booking, {"Phone", "MobilePhone"}), ""))
    if phone:
        existing = SimulatedCustomer.objects.filter(tenant=booking.tenant, phone=phone).first()
        if existing is not None:
            return existing
    address = booking.address or {}
    return SimulatedCustomer.objects.create(
        tenant=booking.tenant,
        name=booking.name[:201],
        phone=phone,
        email=next(_contacts(booking, {"Email"}), "")[:255],
        street=address.get("street", "")[:255],
        unit=(address.get("unit") or "")[:50],
        city=address.get("city", "")[:100],
        state=address.get("state", "")[:50],
        zip=address.get("zip", "")[:10],
        country=address.get("country", "")[:50],
    )


def _contacts(booking: SimulatedBooking, types: set[str]):
    return (contact["value"] for contact in booking.contacts or [] if contact["type"] in types)


def phone_digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")[-20:]
