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


class SimulatedJob(models.Model):
    """A job in the ServiceTitan simulation (seed 001 "Simulation Features"), stored in the
    database so web and worker processes share it. It is also the booking and the job the
    simulator's slice of ServiceTitan's real API serves: a booking made there is converted to a
    job at once, with the same number.

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
