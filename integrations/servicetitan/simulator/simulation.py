"""The ServiceTitan simulation (seed 001 "Simulation Features"): jobs stored in the database,
realistic numbers, customers, business units, priorities and durations, the seed's error
triggers, a random failure rate and realistic delays (both from settings: on in the demo, off in
tests)."""

import random
import string
import time
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.models import SimulatedJob
from integrations.providers import PermanentProviderError, RetryableProviderError
from integrations.servicetitan.types import (
    PER_EXTRA_DOOR_MINUTES,
    PROBLEM_TYPES,
    TRANSITIONS,
    Booking,
    ServiceTitanJob,
    ServiceTitanService,
)

VERSION = "simulation-v1.0.0"
STARTED_AT = time.time()
GARAGE_DOOR_TYPES = {
    "broken_spring",
    "door_off_track",
    "broken_cable",
    "panel_replacement",
    "new_door_installation",
    "noisy_door",
    "maintenance",
}
# Business units by the ZIP's first digit (the national ZIP regions).
BUSINESS_UNITS = {
    "0": "Northeast",
    "1": "New York & Pennsylvania",
    "2": "Mid-Atlantic",
    "3": "Southeast",
    "4": "Great Lakes",
    "5": "Upper Midwest",
    "6": "Central Plains",
    "7": "South Central",
    "8": "Mountain West",
    "9": "Pacific",
}
# Seconds per call kind (seed 001 "Realistic Delays").
DELAYS = {"auth": (0.2, 0.2), "create": (0.8, 0.8), "status": (0.4, 0.4), "query": (0.3, 0.6)}
# Every tenant's job cancel reasons, as jpm v2's job-cancel-reasons lists them; the inactive
# one is listed but cancels nothing.
CANCEL_REASONS = (
    {"id": 30, "name": "Weather (retired)", "active": False},
    {"id": 31, "name": "Customer cancelled", "active": True},
    {"id": 32, "name": "Booked with another company", "active": True},
    {"id": 33, "name": "Duplicate job", "active": True},
)
# Invoice totals of completed jobs: a base per problem type, per door for garage doors.
BASE_PRICE = {"high": Decimal("325.00"), "medium": Decimal("245.00"), "low": Decimal("180.00")}

_random = random.Random()
_seeded_with = None


class SimulatedServiceTitan(ServiceTitanService):
    version = VERSION

    def __init__(self, config: dict, tenant: str = ""):
        global _seeded_with
        self.config = config
        self.tenant = tenant
        seed = config.get("simulation_seed")
        if seed and seed != _seeded_with:
            _random.seed(seed)
            _seeded_with = seed

    def authenticate(self) -> dict:
        self._delay("auth")
        self._maybe_fail()
        return {
            "success": True,
            "token": f"sim_token_{int(time.time() * 1000)}",
            "expiresIn": 3600,
            "authenticated": True,
        }

    def create_job(self, booking: Booking) -> ServiceTitanJob:
        self._delay("create")
        self._maybe_fail()
        error_triggers(booking)
        if booking.booking_id:
            existing = self._find(booking.booking_id)
            if existing is not None:
                return as_servicetitan_job(existing)
        priority = PROBLEM_TYPES[booking.problem_type][0]
        doors = booking.door_count or 1
        description, minutes = job_details_for(booking.problem_type, doors=doors)
        try:
            with transaction.atomic():
                job = SimulatedJob.objects.create(
                    booking_id=booking.booking_id,
                    tenant=self.tenant,
                    customer_id=_customer_id(),
                    first_name=booking.first_name,
                    last_name=booking.last_name,
                    phone=booking.phone,
                    email=booking.email,
                    street=booking.address,
                    city=booking.city,
                    state=booking.state,
                    zip=booking.zip,
                    problem_type=booking.problem_type,
                    door_count=doors,
                    door_age=booking.door_age,
                    is_renter=booking.is_renter,
                    scheduled_date=booking.scheduled_date,
                    time_slot=booking.time_slot,
                    special_instructions=booking.special_instructions,
                    summary=booking.summary,
                    description=description,
                    priority=priority,
                    business_unit=business_unit_for(booking.zip),
                    estimated_duration=minutes,
                )
        except IntegrityError:
            # The same booking created by a concurrent call a moment ago.
            return as_servicetitan_job(self._find(booking.booking_id))
        return as_servicetitan_job(job)

    def get_job(self, job_id: int) -> ServiceTitanJob:
        self._delay("query")
        self._maybe_fail()
        return as_servicetitan_job(self._get(job_id))

    def job_for_reference(self, reference: str) -> ServiceTitanJob:
        number = reference.removeprefix("JOB-")
        if not number.isdigit():
            raise PermanentProviderError(f"Job {reference} not found", code="Not Found")
        return self.get_job(int(number))

    def update_job_status(self, job_id: int, status: str) -> ServiceTitanJob:
        self._delay("status")
        self._maybe_fail()
        with transaction.atomic():
            job = self._get(job_id, for_update=True)
            _check_transition(job, status)
            job.status = status
            if status == SimulatedJob.Status.COMPLETED:
                job.completed_at = timezone.now()
                job.invoice_total = invoice_total_for(job)
            job.save(update_fields=["status", "completed_at", "invoice_total", "updated_at"])
        return as_servicetitan_job(job)

    def cancel_job(self, job_id: int, reason: str) -> ServiceTitanJob:
        self._delay("status")
        self._maybe_fail()
        with transaction.atomic():
            job = self._get(job_id, for_update=True)
            _check_transition(job, SimulatedJob.Status.CANCELLED)
            job.status = SimulatedJob.Status.CANCELLED
            job.cancel_reason = reason
            job.save(update_fields=["status", "cancel_reason", "updated_at"])
        return as_servicetitan_job(job)

    def get_jobs_by_date_range(self, start: datetime, end: datetime) -> list[ServiceTitanJob]:
        self._delay("query")
        self._maybe_fail()
        jobs = SimulatedJob.objects.filter(
            tenant=self.tenant, created_at__gte=start, created_at__lte=end
        )
        return [as_servicetitan_job(job) for job in jobs]

    def get_health_status(self) -> dict:
        last = SimulatedJob.objects.order_by("-id").values_list("created_at", flat=True).first()
        return {
            "status": "healthy",
            "version": VERSION,
            "uptime": int((time.time() - STARTED_AT) * 1000),
            "jobsCreated": SimulatedJob.objects.count(),
            "lastJobCreated": last,
        }

    def _find(self, booking_id: str) -> SimulatedJob | None:
        return SimulatedJob.objects.filter(tenant=self.tenant, booking_id=booking_id).first()

    def _get(self, job_id: int, *, for_update: bool = False) -> SimulatedJob:
        jobs = SimulatedJob.objects.select_for_update() if for_update else SimulatedJob.objects
        job = jobs.filter(tenant=self.tenant, pk=int(job_id) - SimulatedJob.JOB_ID_OFFSET).first()
        if job is None:
            raise PermanentProviderError(f"Job {job_id} not found", code="Not Found")
        return job

    def behave(self, kind: str) -> None:
        """A call of ``kind`` as the simulation makes it: its realistic delay, then perhaps a
        random 503 (both by the configuration)."""
        self._delay(kind)
        self._maybe_fail()

    def _delay(self, kind: str) -> None:
        if self.config.get("simulation_delays"):
            low, high = DELAYS[kind]
            time.sleep(_random.uniform(low, high))

    def _maybe_fail(self) -> None:
        rate = float(self.config.get("simulation_failure_rate") or 0)
        if rate and _random.random() < rate:
            raise RetryableProviderError(
                "ServiceTitan API temporarily unavailable (simulated 503)",
                code="Service Unavailable",
            )


def error_triggers(booking: Booking) -> None:
    """seed 001 "Specific error triggers"."""
    if booking.email.lower() == "error@test.com":
        raise PermanentProviderError(
            f"Customer already exists: {booking.email}",
            code="Customer Conflict",
            details=[_detail("email", "Customer already exists", booking.email)],
        )
    if booking.zip == "00000":
        raise PermanentProviderError(
            f"Service area not supported for ZIP {booking.zip}",
            code="Service Area Not Supported",
            details=[_detail("zip", "Service area not supported", booking.zip)],
        )
    if booking.phone == "0000000000":
        raise PermanentProviderError(
            "Invalid phone number",
            code="Validation Error",
            details=[_detail("phone", "Invalid phone number", booking.phone)],
        )


def _detail(field: str, message: str, value) -> dict:
    return {"field": field, "message": message, "value": value}


def _check_transition(job: SimulatedJob, status: str) -> None:
    if status not in TRANSITIONS.get(job.status, set()):
        allowed = ", ".join(sorted(TRANSITIONS[job.status])) or "none (it is final)"
        raise PermanentProviderError(
            f"Invalid status transition: {job.status} -> {status}. Allowed from {job.status}: "
            f"{allowed}.",
            code="Invalid Status Transition",
            details=[_detail("status", "Invalid status transition", status)],
        )


def job_details_for(problem_type: str, *, doors: int) -> tuple[str, int]:
    """A job's description and estimated minutes: the problem type's, per door for a garage
    door."""
    _, minutes, description = PROBLEM_TYPES[problem_type]
    if problem_type in GARAGE_DOOR_TYPES:
        description += f" ({doors} door{'s' if doors != 1 else ''})"
        minutes += PER_EXTRA_DOOR_MINUTES * (doors - 1)
    return description, minutes


def _customer_id() -> str:
    suffix = "".join(_random.choices(string.ascii_lowercase + string.digits, k=6))
    return f"CUST_{int(time.time() * 1000)}_{suffix}"


def business_unit_for(zip_code: str) -> str:
    return BUSINESS_UNITS.get(zip_code[:1], "National")


def invoice_total_for(job: SimulatedJob) -> Decimal:
    priority = PROBLEM_TYPES[job.problem_type][0]
    doors = job.door_count if job.problem_type in GARAGE_DOOR_TYPES else 1
    return BASE_PRICE[priority] * doors + Decimal(job.pk % 10) * 5


def as_servicetitan_job(job: SimulatedJob) -> ServiceTitanJob:
    return ServiceTitanJob(
        id=job.job_id,
        job_number=job.job_number,
        status=job.status,
        reference=job.job_number,
        booking_id=job.booking_id,
        priority=job.priority,
        description=job.description,
        customer={
            "id": job.customer_id,
            "name": f"{job.first_name} {job.last_name}".strip(),
            "phone": job.phone,
            "email": job.email,
        },
        location={
            "address": {"street": job.street, "city": job.city, "state": job.state, "zip": job.zip}
        },
        estimated_duration=job.estimated_duration,
        business_unit=job.business_unit,
        created_at=job.created_at,
        completed_at=job.completed_at,
        cancel_reason=job.cancel_reason,
        invoice_total=job.invoice_total,
    )
