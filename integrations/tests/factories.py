import uuid

import factory
from django.utils import timezone

from integrations.models import MockJob, SimulatedJob, WebhookReceipt
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
