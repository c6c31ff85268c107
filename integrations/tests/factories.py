import uuid

import factory
from django.utils import timezone

from integrations.models import (
    MockJob,
    SimulatedBooking,
    SimulatedCustomer,
    SimulatedJob,
    WebhookReceipt,
)
from integrations.servicetitan.types import Booking


class MockJobFactory(factory.django.DjangoModelFactory):
    """A job the mock provider made for one create call, as ``MockProvider.create_job`` leaves
    it; ``MockJobFactory(external_id=routing.external_id, idempotency_key=str(routing.id))``."""

    class Meta:
        model = MockJob

    idempotency_key = factory.LazyFunction(lambda: str(uuid.uuid4()))
    external_id = factory.Sequence(lambda n: f"MOCK-{n:012d}")
    company_id = factory.LazyFunction(uuid.uuid4)
    summary = "Fix leaky kitchen faucet"
    create_calls = 1
    created_at = factory.LazyFunction(timezone.now)


class SimulatedJobFactory(factory.django.DjangoModelFactory):
    """A job of the ServiceTitan simulation, as a spring-repair booking in Austin makes it."""

    class Meta:
        model = SimulatedJob

    booking_id = factory.Sequence(lambda n: f"routing-{n}")
    customer_id = factory.Sequence(lambda n: f"CUST_{n:013d}_abc123")
    first_name = "Mary"
    last_name = "Smith"
    phone = "5125550100"
    email = "mary@example.com"
    street = "12 Oak Street"
    city = "Austin"
    state = "TX"
    zip = "78701"
    problem_type = "broken_spring"
    summary = "Garage door spring repair/replacement: the left spring snapped"
    description = "Garage door spring repair/replacement (1 door)"
    priority = "high"
    business_unit = "South Central"
    estimated_duration = 90


class WebhookReceiptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookReceipt

    provider = "servicetitan"
    event_id = factory.Sequence(lambda n: f"evt_{n}")


class BookingFactory(factory.Factory):
    """The booking a plumbing routing in Springfield becomes (``Booking`` is not a model)."""

    class Meta:
        model = Booking

    first_name = "Jane"
    last_name = "Smith"
    phone = "5559876543"
    email = "jane.smith@email.com"
    address = "456 Oak Avenue"
    city = "Springfield"
    state = "IL"
    zip = "62701"
    problem_type = "plumbing"
    booking_id = "routing-42"


class SimulatedCustomerFactory(factory.django.DjangoModelFactory):
    """A customer of the simulated ServiceTitan tenant, as the office makes it converting a
    booking: Mary Smith of Austin, found again by her phone's digits."""

    class Meta:
        model = SimulatedCustomer

    tenant = "1234"
    name = "Mary Smith"
    phone = "5125550100"
    email = "mary@example.com"
    street = "12 Oak Street"
    city = "Austin"
    state = "TX"
    zip = "78701"
    country = "USA"


class SimulatedBookingFactory(factory.django.DjangoModelFactory):
    """A New booking made through the simulated ServiceTitan's booking-provider API, as our
    client sends a spring repair in Austin (``job`` set once the office converts it)."""

    class Meta:
        model = SimulatedBooking

    tenant = "1234"
    booking_provider = 77
    external_id = factory.Sequence(lambda n: f"routing-{n}")
    source = "TradeEngage"
    name = "Mary Ann Smith"
    summary = "Garage door spring repair/replacement: the left spring snapped"
    customer_type = "Residential"
    is_first_time_client = True
    priority = "Urgent"
    address = factory.LazyFunction(
        lambda: {
            "street": "12 Oak Street",
            "city": "Austin",
            "state": "TX",
            "zip": "78701",
            "country": "USA",
        }
    )
    contacts = factory.LazyFunction(
        lambda: [
            {"type": "Phone", "value": "512-555-0100"},
            {"type": "Email", "value": "mary@example.com"},
        ]
    )
