"""Our work in the CRM's terms (seed 002: customers and work orders) and its work orders in
ours (``ProviderJobStatus``)."""

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime

from integrations.providers import ProviderJobStatus, Work

# The line of a work order's notes that names the routing it was made for: seed 002 has no
# external-id field, so the notes carry our idempotency key and a retry looks it up there.
REFERENCE_PREFIX = "TradeEngage routing"
DEFAULT_PRIORITY = "normal"
CANCELLED_REASON = "Work order cancelled in the CRM"
# seed 002 work-order statuses: draft, scheduled, in_progress, completed, cancelled. Anything
# else (a status added later) is still open work.
WORK_ORDER_STATUSES = {
    "completed": ProviderJobStatus.COMPLETED,
    "cancelled": ProviderJobStatus.CANCELLED,
}
# The invoices that count as the work's revenue: billed (sent) or paid, not drafts, overdue or
# cancelled ones (seed 002 invoice statuses: draft, sent, paid, overdue, cancelled).
REVENUE_INVOICE_STATUSES = ("paid", "sent")


def reference_line(idempotency_key: str) -> str:
    return f"{REFERENCE_PREFIX} {idempotency_key}"


def has_reference(work_order: dict, idempotency_key: str) -> bool:
    """Whether one line of the work order's notes is exactly our reference line (a key that is
    a prefix of another never matches it)."""
    line = reference_line(idempotency_key)
    return any(text.strip() == line for text in str(work_order.get("notes") or "").splitlines())


def phone_digits(phone: str) -> str:
    """The phone's digits, without a leading US country code: "+1 (512) 555-0100" and
    "512-555-0100" are the same number."""
    digits = re.sub(r"\D", "", phone or "")
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def customer_matches(customer: dict, *, email: str = "", phone: str = "") -> bool:
    """An exact match on the email (case-insensitive) or on the phone's digits: the CRM's
    ``search`` also matches names and parts of numbers, so its first hit may be someone else."""
    if email:
        return str(customer.get("email") or "").strip().lower() == email.strip().lower()
    if phone:
        return phone_digits(str(customer.get("phone") or "")) == phone_digits(phone)
    return False


def customer_body(work: Work) -> dict:
    """seed 002 "Create Customer": the homeowner's name split at its first space (a one-word
    name is all first name), the contacts and the address. Empty contacts are left out."""
    first, _, last = work.customer.name.strip().partition(" ")
    body = {
        "first_name": first,
        "last_name": last.strip(),
        "email": work.customer.email.strip(),
        "phone": work.customer.phone.strip(),
        "address": work.address.street,
        "city": work.address.city,
        "state": work.address.state,
        "zip": work.address.zip_code[:5],
    }
    return {key: value for key, value in body.items() if value or key == "last_name"}


def work_order_body(work: Work, *, customer_id: str, config: dict) -> dict:
    """seed 002 "Create Work Order": the service type from the job's category
    (``service_types`` {category: service type}, else ``default_service_type``), the
    ``priority`` setting ("normal" unless a company sets another: our jobs carry no urgency),
    and the summary followed by our reference line as the notes. No date: the office schedules."""
    service_types = config.get("service_types") or {}
    service_type = (work.category and service_types.get(work.category)) or config.get(
        "default_service_type"
    )
    return {
        "customer_id": customer_id,
        "service_type": service_type,
        "priority": config.get("priority") or DEFAULT_PRIORITY,
        "notes": f"{work.summary}\n\n{reference_line(work.idempotency_key)}",
    }


def cancelled_notes(notes: str, reason: str) -> str:
    """The notes with the cancellation's reason appended; the reference line stays."""
    addition = (
        f"Cancelled through TradeEngage: {reason}" if reason else "Cancelled through TradeEngage"
    )
    return f"{notes}\n\n{addition}" if notes else addition


def work_order_status(
    work_order: dict, *, external_id: str, invoices: list[dict] | None = None
) -> ProviderJobStatus:
    """The back-sync's view of a work order: open, completed (with ``completed_at``, else
    ``updated_at``, and the revenue of its invoices) or cancelled (the company turned it
    down)."""
    status = WORK_ORDER_STATUSES.get(str(work_order.get("status") or "").lower())
    status = status or ProviderJobStatus.OPEN
    completed_at = None
    revenue = None
    if status == ProviderJobStatus.COMPLETED:
        completed_at = timestamp(work_order.get("completed_at")) or timestamp(
            work_order.get("updated_at")
        )
        revenue = invoice_total(invoices or [], work_order_id=str(work_order.get("id")))
    return ProviderJobStatus(
        external_id=external_id,
        status=status,
        completed_at=completed_at,
        revenue=revenue,
        reason=CANCELLED_REASON if status == ProviderJobStatus.CANCELLED else "",
        provider_job_id=str(work_order.get("id") or external_id),
        provider_status=str(work_order.get("status") or ""),
    )


def invoice_total(invoices: list[dict], *, work_order_id: str) -> Decimal | None:
    """The total of the work order's paid and sent invoices; None while it has none (not
    "zero revenue")."""
    totals = [
        decimal_amount(invoice.get("total"))
        for invoice in invoices
        if str(invoice.get("work_order_id")) == work_order_id
        and str(invoice.get("status") or "").lower() in REVENUE_INVOICE_STATUSES
    ]
    totals = [total for total in totals if total is not None]
    return sum(totals, Decimal("0")) if totals else None


def decimal_amount(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def timestamp(value) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (UTC when it names no offset); None when it
    is absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parse_datetime(str(value))
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
