import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from integrations.models import (
    CrmSimCustomer,
    CrmSimInvoice,
    CrmSimTechnician,
    CrmSimWebhook,
    CrmSimWorkOrder,
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


class CrmSimCustomerFactory(factory.django.DjangoModelFactory):
    """John Doe of Austin, the CRM simulator's customer of seed 002, of the demo account."""

    class Meta:
        model = CrmSimCustomer

    client_id = "demo-crm"
    first_name = "John"
    last_name = "Doe"
    email = factory.Sequence(lambda n: f"john{n}@example.com")
    phone = "512-555-0100"
    address = "123 Main St"
    city = "Austin"
    state = "TX"
    zip = "78701"


class CrmSimTechnicianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CrmSimTechnician

    client_id = "demo-crm"
    first_name = "Mike"
    last_name = "Johnson"
    email = "mike@example.com"
    phone = "512-555-0101"
    skills = factory.LazyFunction(lambda: ["HVAC", "Plumbing", "Septic"])
    hourly_rate = Decimal("45.00")


class CrmSimWorkOrderFactory(factory.django.DjangoModelFactory):
    """A draft pumping work order of the customer's account."""

    class Meta:
        model = CrmSimWorkOrder

    customer = factory.SubFactory(CrmSimCustomerFactory)
    client_id = factory.SelfAttribute("customer.client_id")
    service_type = "Pumping"
    notes = "Quarterly service"


class CrmSimInvoiceFactory(factory.django.DjangoModelFactory):
    """A draft invoice of a completed work order: seed 002's 250.00 + 20.63."""

    class Meta:
        model = CrmSimInvoice

    work_order = factory.SubFactory(
        CrmSimWorkOrderFactory,
        status=CrmSimWorkOrder.Status.COMPLETED,
        completed_at=factory.LazyFunction(timezone.now),
    )
    client_id = factory.SelfAttribute("work_order.client_id")
    customer = factory.SelfAttribute("work_order.customer")
    subtotal = Decimal("250.00")
    tax = Decimal("20.63")
    total = Decimal("270.63")
    due_date = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=30))


class CrmSimWebhookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CrmSimWebhook

    client_id = "demo-crm"
    url = "https://receiver.example.com/crm-webhook"
    events = factory.LazyFunction(
        lambda: ["work_order.created", "work_order.completed", "invoice.paid"]
    )
    secret = "your-webhook-secret"
