import uuid

from django.db import IntegrityError, models, transaction


class MockJob(models.Model):
    """A job in the mock field-service system, the provider of the demo, the tests and the
    benchmarks. It lives in the database so web and worker processes share one "remote" system,
    and it records every create call so tests can prove a routing reached it exactly once."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    idempotency_key = models.CharField(max_length=64, unique=True)
    # Null while every create call so far was refused (an injected failure).
    external_id = models.CharField(max_length=32, unique=True, null=True, blank=True)
    # The provider side keeps our ids as plain values, not foreign keys into our tables.
    company_id = models.UUIDField()
    summary = models.TextField(blank=True)
    create_calls = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cancel_reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "mock provider job"

    def __str__(self):
        return self.external_id or f"(refused) {self.idempotency_key}"


class SimulatedCustomer(models.Model):
    """A customer of a tenant in the simulator's slice of ServiceTitan's API, made when the
    office converts a booking (and found again by phone, so a returning homeowner is no
    first-time client). Its API id is ``ID_OFFSET + pk``; its one location's
    ``LOCATION_ID_OFFSET + pk``."""

    ID_OFFSET = 3_000_000
    LOCATION_ID_OFFSET = 4_000_000

    tenant = models.CharField(max_length=50)
    name = models.CharField(max_length=201)
    phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(max_length=255, blank=True)
    street = models.CharField(max_length=255, blank=True)
    unit = models.CharField(max_length=50, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    zip = models.CharField(max_length=10, blank=True)
    country = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated ServiceTitan customer"
        indexes = [models.Index(fields=["tenant", "phone"], name="simulated_customer_phone_idx")]

    def __str__(self):
        return f"{self.customer_id} {self.name}"

    @property
    def customer_id(self) -> int:
        return self.ID_OFFSET + self.pk

    @property
    def location_id(self) -> int:
        return self.LOCATION_ID_OFFSET + self.pk


class SimulatedJob(models.Model):
    """A job in the ServiceTitan simulation (seed 001 "Simulation Features"), stored in the
    database so web and worker processes share it. In the simulator's slice of ServiceTitan's
    real API, a job is what the office converts a booking into (``SimulatedBooking.job``), with
    its customer, campaign, business unit and job type ids.

    The API's job id is ``JOB_ID_OFFSET + pk`` (1001, 1002, ...), its job number ``JOB-001001``.
    """

    JOB_ID_OFFSET = 1000

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        DISPATCHED = "dispatched", "Dispatched"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    # The caller's booking id (seed 001) or, through the real-API slice, the booking's
    # externalId (our routing id); a retried create finds the job by it.
    booking_id = models.CharField(max_length=100, blank=True, db_index=True)
    tenant = models.CharField(max_length=50, blank=True)
    customer_id = models.CharField(max_length=50)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(max_length=255, blank=True)
    street = models.CharField(max_length=255)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=2)
    zip = models.CharField(max_length=10)
    problem_type = models.CharField(max_length=50)
    door_count = models.PositiveSmallIntegerField(default=1)
    door_age = models.PositiveSmallIntegerField(null=True, blank=True)
    is_renter = models.BooleanField(default=False)
    scheduled_date = models.DateTimeField(null=True, blank=True)
    time_slot = models.CharField(max_length=50, blank=True)
    special_instructions = models.TextField(blank=True)
    summary = models.TextField(blank=True)
    description = models.CharField(max_length=255)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    priority = models.CharField(max_length=10)
    business_unit = models.CharField(max_length=50)
    estimated_duration = models.PositiveIntegerField(help_text="Minutes")
    cancel_reason = models.TextField(blank=True)
    # The slice of the real API: the job's customer and the tenant's ids it was booked under
    # (null for a job of the seed-001 simulation); the cancel reason id a PUT cancel gave.
    simulated_customer = models.ForeignKey(
        SimulatedCustomer, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    campaign_id = models.BigIntegerField(null=True, blank=True)
    business_unit_id = models.BigIntegerField(null=True, blank=True)
    job_type_id = models.BigIntegerField(null=True, blank=True)
    cancel_reason_id = models.BigIntegerField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    invoice_total = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated ServiceTitan job"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "booking_id"],
                condition=~models.Q(booking_id=""),
                name="unique_simulated_booking",
            )
        ]

    def __str__(self):
        return self.job_number

    @property
    def job_id(self) -> int:
        return self.JOB_ID_OFFSET + self.pk

    @property
    def job_number(self) -> str:
        return f"JOB-{self.job_id:06d}"


class SimulatedBooking(models.Model):
    """A booking made through the simulator's slice of ServiceTitan's booking-provider API
    (crm v2 ``BookingResponse``). As at ServiceTitan it is ``New``, with no job, until the
    receiving company's office converts it into a job (``Converted``, ``job`` set) or dismisses
    it (``Dismissed``); here the office is the admin, the simulator's office endpoints, or a
    delay (``SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS``). Its API id is ``ID_OFFSET + pk``,
    never a job's id."""

    ID_OFFSET = 5_000_000

    class Status(models.TextChoices):
        NEW = "New", "New"
        CONVERTED = "Converted", "Converted"
        DISMISSED = "Dismissed", "Dismissed"

    tenant = models.CharField(max_length=50)
    booking_provider = models.BigIntegerField()
    external_id = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    source = models.CharField(max_length=100)
    name = models.CharField(max_length=201)
    summary = models.TextField()
    customer_type = models.CharField(max_length=20, blank=True)
    is_first_time_client = models.BooleanField()
    priority = models.CharField(max_length=10, blank=True)
    campaign_id = models.BigIntegerField(null=True, blank=True)
    business_unit_id = models.BigIntegerField(null=True, blank=True)
    job_type_id = models.BigIntegerField(null=True, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    # AddressModel and BookingContactModel as sent (street, unit, city, state, zip, country;
    # type, value, memo).
    address = models.JSONField(null=True, blank=True)
    contacts = models.JSONField(default=list, blank=True)
    uploaded_images = models.JSONField(null=True, blank=True)
    is_send_confirmation_email = models.BooleanField(null=True, blank=True)
    dismissing_reason_id = models.BigIntegerField(null=True, blank=True)
    job = models.OneToOneField(
        SimulatedJob, null=True, blank=True, on_delete=models.PROTECT, related_name="booking"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated ServiceTitan booking"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "booking_provider", "external_id"],
                name="unique_simulated_booking_external_id",
            )
        ]

    def __str__(self):
        return f"{self.booking_id} {self.external_id} ({self.status})"

    @property
    def booking_id(self) -> int:
        return self.ID_OFFSET + self.pk


class WebhookReceipt(models.Model):
    """An inbound webhook event already handled, so a replay is acknowledged and ignored."""

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=200)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="unique_webhook_event")
        ]

    def __str__(self):
        return f"{self.provider} {self.event_id}"

    @classmethod
    def record(cls, *, provider: str, event_id: str) -> bool:
        """Record an event as handled; False when it was already (a replay)."""
        try:
            with transaction.atomic():
                cls.objects.create(provider=provider, event_id=event_id)
        except IntegrityError:
            return False
        return True


class CrmSimCustomer(models.Model):
    """A customer in the CRM simulator (seed 002, "Customers"), owned by the OAuth client that
    made it: every query of the simulator is scoped by ``client_id``, so two accounts never see
    each other's records. Its API id is ``str(pk)`` ("123")."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"

    client_id = models.CharField(max_length=100)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(max_length=254, blank=True)
    # As given ("512-555-0100"); its digits are kept apart for the search by phone.
    phone = models.CharField(max_length=30, blank=True)
    phone_digits = models.CharField(max_length=30, blank=True, editable=False)
    address = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=2, blank=True)
    zip = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated CRM customer"
        indexes = [models.Index(fields=["client_id", "status"], name="crm_sim_customer_status_idx")]

    def __str__(self):
        return f"{self.pk} {self.first_name} {self.last_name}"

    def save(self, *args, **kwargs):
        self.phone_digits = "".join(character for character in self.phone if character.isdigit())
        if kwargs.get("update_fields") is not None and "phone" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "phone_digits"}
        super().save(*args, **kwargs)

    @property
    def api_id(self) -> str:
        return str(self.pk)


class CrmSimTechnician(models.Model):
    """A technician of a CRM simulator account (seed 002, "Technicians"); the API lists them and
    work orders are assigned to them. Each account gets a small roster with its first token.
    API id ``tech-<pk>``."""

    ID_PREFIX = "tech-"

    client_id = models.CharField(max_length=100, db_index=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=30, blank=True)
    skills = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    hourly_rate = models.DecimalField(max_digits=8, decimal_places=2)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated CRM technician"

    def __str__(self):
        return f"{self.api_id} {self.first_name} {self.last_name}"

    @property
    def api_id(self) -> str:
        return f"{self.ID_PREFIX}{self.pk}"


class CrmSimWorkOrderRefused(Exception):
    """A status move the CRM does not allow (answered 422 ``invalid_status_transition``)."""


class CrmSimWorkOrder(models.Model):
    """A work order in the CRM simulator (seed 002, "Work Orders"). It moves along draft →
    scheduled → in_progress → completed, and any open one may be cancelled (``move_to``).
    API id ``str(pk)``."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    FINAL = frozenset({Status.COMPLETED, Status.CANCELLED})
    # The one status each status moves on to (cancelled aside, open to any open work order).
    NEXT = {
        Status.DRAFT: Status.SCHEDULED,
        Status.SCHEDULED: Status.IN_PROGRESS,
        Status.IN_PROGRESS: Status.COMPLETED,
    }

    client_id = models.CharField(max_length=100)
    customer = models.ForeignKey(
        CrmSimCustomer, on_delete=models.PROTECT, related_name="work_orders"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    service_type = models.CharField(max_length=100)
    scheduled_date = models.DateField(null=True, blank=True)
    time_window_start = models.TimeField(null=True, blank=True)
    technician = models.ForeignKey(
        CrmSimTechnician,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="work_orders",
    )
    estimated_duration_hours = models.DecimalField(max_digits=4, decimal_places=1, default=2)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated CRM work order"
        indexes = [
            models.Index(fields=["client_id", "status"], name="crm_sim_work_order_status_idx")
        ]

    def __str__(self):
        return f"{self.pk} {self.service_type} ({self.status})"

    @property
    def api_id(self) -> str:
        return str(self.pk)

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    def move_to(self, status: str, *, now) -> None:
        """Move to ``status``, stamping when work started or completed; a move the CRM does not
        allow raises ``CrmSimWorkOrderRefused``. Moving to the current status changes nothing."""
        if status == self.status:
            return
        allowed = status == self.Status.CANCELLED or self.NEXT.get(self.status) == status
        if self.is_final or not allowed:
            raise CrmSimWorkOrderRefused(
                f"Work order {self.api_id} cannot move from {self.status} to {status}."
            )
        if status == self.Status.SCHEDULED and self.scheduled_date is None:
            raise CrmSimWorkOrderRefused(
                f"Work order {self.api_id} needs a scheduled_date to be scheduled."
            )
        self.status = status
        if status == self.Status.IN_PROGRESS:
            self.started_at = now
        elif status == self.Status.COMPLETED:
            self.completed_at = now


class CrmSimInvoice(models.Model):
    """An invoice in the CRM simulator (seed 002, "Invoices"): draft, then sent, then paid. A
    sent invoice past its due date reads as ``overdue``. API id ``inv-<pk>``."""

    ID_PREFIX = "inv-"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    client_id = models.CharField(max_length=100)
    customer = models.ForeignKey(CrmSimCustomer, on_delete=models.PROTECT, related_name="invoices")
    work_order = models.ForeignKey(
        CrmSimWorkOrder, on_delete=models.PROTECT, related_name="invoices"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    tax = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    due_date = models.DateField()
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated CRM invoice"
        indexes = [models.Index(fields=["client_id", "status"], name="crm_sim_invoice_status_idx")]

    def __str__(self):
        return f"{self.api_id} {self.total} ({self.status})"

    @property
    def api_id(self) -> str:
        return f"{self.ID_PREFIX}{self.pk}"

    def status_on(self, today) -> str:
        """The status the API answers: a sent invoice past its due date is overdue."""
        if self.status == self.Status.SENT and self.due_date < today:
            return "overdue"
        return self.status


class CrmSimPayment(models.Model):
    """A payment recorded against an invoice (seed 002, "Payments"). API id ``pay-<pk>``."""

    ID_PREFIX = "pay-"

    class Method(models.TextChoices):
        CARD = "card", "Card"
        CASH = "cash", "Cash"
        CHECK = "check", "Check"
        ACH = "ach", "ACH"

    client_id = models.CharField(max_length=100, db_index=True)
    invoice = models.ForeignKey(CrmSimInvoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    method = models.CharField(max_length=10, choices=Method.choices)
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated CRM payment"

    def __str__(self):
        return f"{self.api_id} {self.amount} {self.method}"

    @property
    def api_id(self) -> str:
        return f"{self.ID_PREFIX}{self.pk}"


class CrmSimWebhook(models.Model):
    """A webhook registration of a CRM simulator account (seed 002, "Register Webhook"): the
    events it wants and the secret its deliveries are signed with. API id ``wh-<pk>``."""

    ID_PREFIX = "wh-"

    client_id = models.CharField(max_length=100, db_index=True)
    url = models.URLField(max_length=500)
    events = models.JSONField()
    secret = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "simulated CRM webhook"

    def __str__(self):
        return f"{self.api_id} {self.url}"

    @property
    def api_id(self) -> str:
        return f"{self.ID_PREFIX}{self.pk}"


class CrmSimWebhookDelivery(models.Model):
    """One event sent to one registration. ``body`` is the exact bytes signed and sent, and
    ``delivery_id`` the ``X-Webhook-Id``: both the same on every attempt, so a receiver can
    drop a retry it already handled."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    webhook = models.ForeignKey(CrmSimWebhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=50)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "simulated CRM webhook delivery"
        verbose_name_plural = "simulated CRM webhook deliveries"

    def __str__(self):
        return f"{self.event} {self.delivery_id} ({self.status})"
