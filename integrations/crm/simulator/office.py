"""What happens inside the simulated CRM: the writes that its webhooks report. The API's
writes that emit an event (a work order created or moved, an invoice created, sent or paid, a
payment, a customer created) and what the company's office does by hand in the admin (move a
work order along, issue an invoice for a completed one, mark it paid) go through here, so each
event is recorded in one place, with its row, in one transaction (``deliveries``)."""

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from integrations.crm.simulator.deliveries import deliveries_record, utc_timestamp
from integrations.models import (
    CrmSimCustomer,
    CrmSimInvoice,
    CrmSimPayment,
    CrmSimTechnician,
    CrmSimWebhook,
    CrmSimWorkOrder,
    CrmSimWorkOrderRefused,
)

CENT = Decimal("0.01")
# Texas's combined state and local sales tax rate, as the seed's example invoice (20.63 on 250).
TAX_RATE = Decimal("0.0825")
TRIP_CHARGE = Decimal("89.00")
HOURLY_RATE_WITHOUT_TECHNICIAN = Decimal("85.00")
INVOICE_DUE_DAYS = 30
DEFAULT_TIME_WINDOW_START = time(9, 0)
# Each account's roster, made with its first token (seed 002's example technician first).
ROSTER = (
    ("Mike", "Johnson", "512-555-0101", ["HVAC", "Plumbing", "Septic"], True, "45.00"),
    ("Ana", "Reyes", "512-555-0102", ["Electrical", "Garage Doors"], True, "52.00"),
    ("Luis", "Ortega", "512-555-0103", ["Roofing"], False, "40.00"),
)
# The event each status move is reported as (seed 002's event table has none for cancelled).
MOVE_EVENTS = {
    CrmSimWorkOrder.Status.SCHEDULED: "work_order.scheduled",
    CrmSimWorkOrder.Status.IN_PROGRESS: "work_order.started",
    CrmSimWorkOrder.Status.COMPLETED: "work_order.completed",
}


class OfficeRefused(Exception):
    """What the CRM does not allow in a record's current state (the API answers 422 with
    ``code``)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


def money(amount) -> Decimal:
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def technicians_ensure(*, client_id: str) -> None:
    """Give an account its roster the first time it is seen."""
    if CrmSimTechnician.objects.filter(client_id=client_id).exists():
        return
    CrmSimTechnician.objects.bulk_create(
        CrmSimTechnician(
            client_id=client_id,
            first_name=first_name,
            last_name=last_name,
            email=f"{first_name.lower()}@example.com",
            phone=phone,
            skills=skills,
            is_active=is_active,
            hourly_rate=Decimal(rate),
        )
        for first_name, last_name, phone, skills, is_active, rate in ROSTER
    )


def _work_order_event(work_order: CrmSimWorkOrder, event: str, *, now: datetime) -> None:
    data = {
        "work_order_id": work_order.api_id,
        "customer_id": work_order.customer.api_id,
        "technician_id": work_order.technician.api_id if work_order.technician else None,
        "status": work_order.status,
        "scheduled_date": work_order.scheduled_date.isoformat()
        if work_order.scheduled_date
        else None,
    }
    if event == "work_order.started":
        data["started_at"] = utc_timestamp(work_order.started_at)
    if event == "work_order.completed":
        data["completed_at"] = utc_timestamp(work_order.completed_at)
    deliveries_record(client_id=work_order.client_id, event=event, data=data, now=now)


def _invoice_event(invoice: CrmSimInvoice, event: str, *, now: datetime) -> None:
    data = {
        "invoice_id": invoice.api_id,
        "work_order_id": invoice.work_order.api_id,
        "customer_id": invoice.customer.api_id,
        "total": float(invoice.total),
        "status": invoice.status,
    }
    if event == "invoice.paid":
        data["paid_at"] = utc_timestamp(invoice.paid_at)
    deliveries_record(client_id=invoice.client_id, event=event, data=data, now=now)


def customer_create(*, client_id: str, fields: dict) -> CrmSimCustomer:
    now = timezone.now()
    with transaction.atomic():
        customer = CrmSimCustomer.objects.create(client_id=client_id, **fields)
        data = {
            "customer_id": customer.api_id,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "email": customer.email,
            "phone": customer.phone,
            "status": customer.status,
        }
        deliveries_record(client_id=client_id, event="customer.created", data=data, now=now)
    return customer


def customer_update(*, customer: CrmSimCustomer, fields: dict) -> CrmSimCustomer:
    for name, value in fields.items():
        setattr(customer, name, value)
    customer.save()
    return customer


def record_delete(record: CrmSimCustomer | CrmSimWorkOrder) -> None:
    """Delete a customer or work order; one that others refer to (a customer's work orders, a
    work order's invoices) stays, as the CRM keeps its books."""
    try:
        record.delete()
    except ProtectedError:
        raise OfficeRefused(
            f"{type(record)._meta.verbose_name.removeprefix('simulated CRM ').capitalize()} "
            f"{record.api_id} has records that refer to it.",
            code="record_in_use",
        ) from None


def webhook_register(*, client_id: str, url: str, events: list[str], secret: str) -> CrmSimWebhook:
    return CrmSimWebhook.objects.create(
        client_id=client_id, url=url, events=sorted(set(events)), secret=secret
    )


def work_order_create(*, client_id: str, customer: CrmSimCustomer, fields: dict) -> CrmSimWorkOrder:
    """A new work order: ``draft``, or ``scheduled`` when it comes with a date."""
    now = timezone.now()
    status = (
        CrmSimWorkOrder.Status.SCHEDULED
        if fields.get("scheduled_date")
        else CrmSimWorkOrder.Status.DRAFT
    )
    with transaction.atomic():
        work_order = CrmSimWorkOrder.objects.create(
            client_id=client_id, customer=customer, status=status, **fields
        )
        _work_order_event(work_order, "work_order.created", now=now)
    return work_order


def work_order_update(
    *, work_order: CrmSimWorkOrder, fields: dict, status: str | None = None
) -> CrmSimWorkOrder:
    """Change a work order's fields and move its status (``CrmSimWorkOrder.move_to``), the move
    reported as its event. A closed work order takes only notes."""
    now = timezone.now()
    with transaction.atomic():
        work_order = (
            CrmSimWorkOrder.objects.select_for_update(of=("self",))
            .select_related("customer", "technician")
            .get(pk=work_order.pk)
        )
        if work_order.is_final and set(fields) - {"notes"}:
            raise OfficeRefused(
                f"Work order {work_order.api_id} is {work_order.status}; only its notes change.",
                code="work_order_closed",
            )
        for name, value in fields.items():
            setattr(work_order, name, value)
        moved = status is not None and status != work_order.status
        if moved:
            try:
                work_order.move_to(status, now=now)
            except CrmSimWorkOrderRefused as exc:
                raise OfficeRefused(str(exc), code="invalid_status_transition") from None
        work_order.save()
        if moved and status in MOVE_EVENTS:
            _work_order_event(work_order, MOVE_EVENTS[status], now=now)
    return work_order


def work_order_schedule(
    work_order: CrmSimWorkOrder, *, scheduled_date: date | None = None
) -> CrmSimWorkOrder:
    """The office schedules a draft work order: tomorrow unless it has a date, in the morning
    window, with the account's first active technician unless one is assigned."""
    technicians_ensure(client_id=work_order.client_id)
    fields = {}
    if scheduled_date or work_order.scheduled_date is None:
        fields["scheduled_date"] = scheduled_date or timezone.localdate() + timedelta(days=1)
    if work_order.time_window_start is None:
        fields["time_window_start"] = DEFAULT_TIME_WINDOW_START
    if work_order.technician_id is None:
        fields["technician"] = CrmSimTechnician.objects.filter(
            client_id=work_order.client_id, is_active=True
        ).first()
    if work_order.status != CrmSimWorkOrder.Status.DRAFT:
        raise OfficeRefused(
            f"Work order {work_order.api_id} is {work_order.status}, not draft.",
            code="invalid_status_transition",
        )
    return work_order_update(
        work_order=work_order, fields=fields, status=CrmSimWorkOrder.Status.SCHEDULED
    )


def work_order_start(work_order: CrmSimWorkOrder) -> CrmSimWorkOrder:
    return _work_order_move(work_order, CrmSimWorkOrder.Status.IN_PROGRESS)


def work_order_complete(work_order: CrmSimWorkOrder) -> CrmSimWorkOrder:
    return _work_order_move(work_order, CrmSimWorkOrder.Status.COMPLETED)


def work_order_cancel(work_order: CrmSimWorkOrder) -> CrmSimWorkOrder:
    return _work_order_move(work_order, CrmSimWorkOrder.Status.CANCELLED)


def _work_order_move(work_order: CrmSimWorkOrder, status: str) -> CrmSimWorkOrder:
    if work_order.status == status:
        raise OfficeRefused(
            f"Work order {work_order.api_id} is already {status}.",
            code="invalid_status_transition",
        )
    return work_order_update(work_order=work_order, fields={}, status=status)


def invoice_amounts(work_order: CrmSimWorkOrder) -> tuple[Decimal, Decimal]:
    """A realistic bill for a work order: a trip charge and its hours at its technician's rate,
    and the sales tax on that."""
    rate = (
        work_order.technician.hourly_rate
        if work_order.technician
        else HOURLY_RATE_WITHOUT_TECHNICIAN
    )
    subtotal = money(TRIP_CHARGE + rate * work_order.estimated_duration_hours)
    return subtotal, money(subtotal * TAX_RATE)


def invoice_create(
    *,
    work_order: CrmSimWorkOrder,
    subtotal: Decimal | None = None,
    tax: Decimal | None = None,
    due_date: date | None = None,
) -> CrmSimInvoice:
    """Invoice a completed work order, once (a cancelled invoice aside); the amounts computed
    (``invoice_amounts``) when not given."""
    now = timezone.now()
    if work_order.status != CrmSimWorkOrder.Status.COMPLETED:
        raise OfficeRefused(
            f"Work order {work_order.api_id} is {work_order.status}; only a completed work "
            "order is invoiced.",
            code="work_order_not_completed",
        )
    if subtotal is None:
        subtotal, computed_tax = invoice_amounts(work_order)
        tax = computed_tax if tax is None else tax
    subtotal = money(subtotal)
    tax = money(subtotal * TAX_RATE) if tax is None else money(tax)
    with transaction.atomic():
        # One invoicing of a work order at a time.
        CrmSimWorkOrder.objects.select_for_update().get(pk=work_order.pk)
        if work_order.invoices.exclude(status=CrmSimInvoice.Status.CANCELLED).exists():
            raise OfficeRefused(
                f"Work order {work_order.api_id} is already invoiced.", code="already_invoiced"
            )
        invoice = CrmSimInvoice.objects.create(
            client_id=work_order.client_id,
            customer=work_order.customer,
            work_order=work_order,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            due_date=due_date or timezone.localdate() + timedelta(days=INVOICE_DUE_DAYS),
        )
        _invoice_event(invoice, "invoice.created", now=now)
    return invoice


def invoice_send(invoice: CrmSimInvoice) -> CrmSimInvoice:
    now = timezone.now()
    with transaction.atomic():
        changed = CrmSimInvoice.objects.filter(
            pk=invoice.pk, status=CrmSimInvoice.Status.DRAFT
        ).update(status=CrmSimInvoice.Status.SENT, sent_at=now)
        invoice.refresh_from_db()
        if not changed:
            raise OfficeRefused(
                f"Invoice {invoice.api_id} is {invoice.status}, not draft.",
                code="invalid_status_transition",
            )
        _invoice_event(invoice, "invoice.sent", now=now)
    return invoice


def invoice_issue(work_order: CrmSimWorkOrder) -> CrmSimInvoice:
    """The office invoices a completed work order and sends the invoice."""
    with transaction.atomic():
        return invoice_send(invoice_create(work_order=work_order))


def invoice_mark_paid(invoice: CrmSimInvoice) -> CrmSimInvoice:
    """Paid in full, now: a draft, sent or overdue invoice."""
    now = timezone.now()
    with transaction.atomic():
        changed = CrmSimInvoice.objects.filter(
            pk=invoice.pk, status__in=[CrmSimInvoice.Status.DRAFT, CrmSimInvoice.Status.SENT]
        ).update(status=CrmSimInvoice.Status.PAID, paid_at=now)
        invoice.refresh_from_db()
        if not changed:
            raise OfficeRefused(
                f"Invoice {invoice.api_id} is {invoice.status}; it cannot be marked paid.",
                code="invalid_status_transition",
            )
        _invoice_event(invoice, "invoice.paid", now=now)
    return invoice


def payment_create(
    *, invoice: CrmSimInvoice, amount: Decimal, method: str, reference: str
) -> CrmSimPayment:
    """Record a payment of an open invoice, at most its balance; the payment that settles the
    balance marks the invoice paid."""
    now = timezone.now()
    with transaction.atomic():
        invoice = (
            CrmSimInvoice.objects.select_for_update(of=("self",))
            .select_related("customer", "work_order")
            .get(pk=invoice.pk)
        )
        if invoice.status not in (CrmSimInvoice.Status.DRAFT, CrmSimInvoice.Status.SENT):
            raise OfficeRefused(
                f"Invoice {invoice.api_id} is {invoice.status}; it takes no payment.",
                code="invoice_not_payable",
            )
        paid = sum((payment.amount for payment in invoice.payments.all()), Decimal(0))
        balance = invoice.total - paid
        if amount > balance:
            raise OfficeRefused(
                f"The amount {amount} is more than the invoice's balance of {balance}.",
                code="amount_exceeds_balance",
            )
        payment = CrmSimPayment.objects.create(
            client_id=invoice.client_id,
            invoice=invoice,
            amount=amount,
            method=method,
            reference=reference,
        )
        data = {
            "payment_id": payment.api_id,
            "invoice_id": invoice.api_id,
            "amount": float(payment.amount),
            "method": payment.method,
            "reference": payment.reference,
        }
        deliveries_record(client_id=invoice.client_id, event="payment.received", data=data, now=now)
        if amount == balance:
            invoice_mark_paid(invoice)
    return payment
