"""The ServiceTitan service interface (seed 001 "Service Layer Methods") and the shapes it takes
and returns: a ``Booking`` in, a ``ServiceTitanJob`` out, and the seed's problem types and status
moves.

Two implementations keep the same methods: ``SimulatedServiceTitan`` (seed 001 "Simulation
Features", stored in the database) and ``ServiceTitanApi``, the client of ServiceTitan's public
API; ``integrations.servicetitan.service`` chooses one. Errors are the providers' typed errors:
``RetryableProviderError`` and ``PermanentProviderError``, with ``code`` the seed's error name.
"""

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils.dateparse import parse_datetime

from integrations.providers import ProviderError

# seed 001 "Valid Statuses" and the moves allowed between them.
STATUSES = ["scheduled", "dispatched", "in_progress", "completed", "cancelled"]
TRANSITIONS = {
    "scheduled": {"dispatched", "cancelled"},
    "dispatched": {"scheduled", "in_progress", "cancelled"},
    "in_progress": {"completed", "cancelled"},
    "completed": set(),
    "cancelled": set(),
}

# Problem types a booking may name (seed 001 "Problem Type: Must be from predefined list"): the
# garage-door problems of the seed's company, and one general type per trade of the network.
# Each with its priority, its duration estimate in minutes, and its description.
PROBLEM_TYPES = {
    "broken_spring": ("high", 90, "Garage door spring repair/replacement"),
    "door_off_track": ("high", 120, "Garage door off-track repair"),
    "broken_cable": ("high", 75, "Garage door cable repair"),
    "opener_repair": ("medium", 60, "Garage door opener repair"),
    "opener_installation": ("medium", 120, "Garage door opener installation"),
    "panel_replacement": ("medium", 150, "Garage door panel replacement"),
    "new_door_installation": ("low", 240, "New garage door installation"),
    "noisy_door": ("low", 45, "Garage door noise diagnosis and lubrication"),
    "maintenance": ("low", 60, "Garage door tune-up and safety inspection"),
    "plumbing": ("medium", 90, "Plumbing repair"),
    "electrical": ("medium", 90, "Electrical repair"),
    "hvac": ("medium", 120, "Heating and cooling repair"),
    "roofing": ("medium", 180, "Roof repair"),
    "general": ("low", 120, "General home repair"),
    "other": ("low", 60, "Service call"),
}
PER_EXTRA_DOOR_MINUTES = 30


@dataclass
class Booking:
    """What a job is created from (seed 001's job-creation request)."""

    first_name: str
    last_name: str
    phone: str
    email: str
    address: str
    city: str
    state: str
    zip: str
    problem_type: str
    booking_id: str = ""
    door_count: int = 1
    door_age: int | None = None
    is_renter: bool = False
    scheduled_date: datetime | None = None
    time_slot: str = ""
    special_instructions: str = ""
    summary: str = ""
    # The job's category and its skills' categories, in order: what a company's ServiceTitan
    # mapping (business unit, job type, priority) is keyed by.
    category: str = ""
    trades: tuple[str, ...] = ()


def booking_as_json(booking: Booking) -> dict:
    data = asdict(booking)
    if booking.scheduled_date:
        data["scheduled_date"] = booking.scheduled_date.isoformat()
    return data


def booking_from_json(data: dict) -> Booking:
    scheduled = data.get("scheduled_date")
    return Booking(
        **{
            **data,
            "scheduled_date": parse_datetime(scheduled) if scheduled else None,
            "trades": tuple(data.get("trades") or ()),
        }
    )


@dataclass
class ServiceTitanJob:
    """A job as ServiceTitan reports it."""

    id: int
    job_number: str
    status: str
    # What a routing keeps as its external id to find this job again (``job_for_reference``):
    # the job number in the simulation, the booking id in the real API.
    reference: str = ""
    booking_id: str = ""
    priority: str = ""
    description: str = ""
    customer: dict = field(default_factory=dict)
    location: dict = field(default_factory=dict)
    estimated_duration: int | None = None
    business_unit: str = ""
    created_at: datetime | None = None
    completed_at: datetime | None = None
    # Why it was cancelled: our reason when we cancelled it; read back, ServiceTitan's (the job's
    # cancel reason, or the booking's dismissal).
    cancel_reason: str = ""
    invoice_total: Decimal | None = None
    # A ServiceTitan booking the office has not converted into a job yet: ``id`` is then the
    # booking's id, and there is no job the company works from.
    is_booking: bool = False


class ServiceTitanService(ABC):
    """seed 001's service methods; every implementation keeps these signatures."""

    version = ""

    @abstractmethod
    def authenticate(self) -> dict:
        """``{"token", "expiresIn", "authenticated"}``."""
        ...

    @abstractmethod
    def create_job(self, booking: Booking) -> ServiceTitanJob:
        """Create the job for a booking. A booking id seen before returns the job it made."""
        ...

    @abstractmethod
    def get_job(self, job_id: int) -> ServiceTitanJob: ...

    @abstractmethod
    def job_for_reference(self, reference: str) -> ServiceTitanJob:
        """The job ``create_job`` made, from its ``reference``, with ``completed_at`` and
        ``invoice_total`` once it is completed (the sync engine's back-sync)."""
        ...

    @abstractmethod
    def update_job_status(self, job_id: int, status: str) -> ServiceTitanJob: ...

    @abstractmethod
    def cancel_job(self, job_id: int, reason: str) -> ServiceTitanJob: ...

    @abstractmethod
    def get_jobs_by_date_range(self, start: datetime, end: datetime) -> list[ServiceTitanJob]: ...

    def create_jobs_batch(self, bookings: list[Booking]) -> list[dict]:
        """One result per booking, in order: ``{"index", "success", "data" | "error"...}``."""
        results = []
        for index, booking in enumerate(bookings):
            try:
                results.append({"index": index, "success": True, "job": self.create_job(booking)})
            except ProviderError as exc:
                results.append({"index": index, "success": False, "exception": exc})
        return results

    @abstractmethod
    def get_health_status(self) -> dict: ...
