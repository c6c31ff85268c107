import uuid
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.providers import provider_type_resolved
from jobs.models import Company, Job
from tradeengage.encryption import EncryptedJSONField


class SyncStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"
    COMPLETED = "completed", "Completed"


# The routings in the back-sync's pipeline: synced, and not turned down by their company. The
# condition of the back-sync's partial index, so its scan (which filters on it) reads the index.
IN_BACKSYNC = Q(sync_status=SyncStatus.SYNCED, declined_at__isnull=True)


class JobRouting(models.Model):
    """A job handed to one receiving company, and the state of its push to that company's system."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Both foreign keys are the leading column of an index below; no index of their own.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="routings", db_index=False)
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="routings", db_index=False
    )
    external_id = models.CharField(max_length=255, null=True, blank=True)
    sync_status = models.CharField(
        max_length=20, choices=SyncStatus.choices, default=SyncStatus.PENDING
    )
    retry_count = models.PositiveIntegerField(default=0)
    last_sync_attempt = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a sync took this routing (its claim's token)."
    )
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Until when the sync holding it may keep it; renewed while its worker lives.",
    )
    status_checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the back-sync last asked the provider about it."
    )
    status_check_due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the back-sync asks the provider about it next (never asked: once synced).",
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # A decline keeps the routing synced (its push succeeded; seed 000 fixes the statuses): it
    # is the company turning the work down in its system, and takes the routing out of the
    # back-sync.
    declined_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the company turned the work down in its field-service system.",
    )
    # The text columns default to "" in the database too: routing creation inserts rows naming
    # only the columns it sets (routing.services.create), and so may a process still running
    # the code from before these columns during a deploy.
    decline_reason = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="Why the company turned the work down, as its provider told.",
    )
    provider_job_id = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        help_text="The provider's id of the job the company works from, once it reports one "
        "(ServiceTitan: the booking's job once the office converts it).",
    )
    provider_job_number = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        help_text="The provider's number of that job.",
    )
    provider_status = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="The job's status at its provider as last reported (its own words).",
    )
    matching_score = models.FloatField(default=0.0)
    matched_skills = models.JSONField(default=list, blank=True)
    missing_skills = models.JSONField(default=list, blank=True)
    match_reason = models.TextField(blank=True)
    routed_by = models.CharField(
        max_length=100,
        blank=True,
        help_text="Who routed the job here by hand (a manual route); empty when matching did.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-matching_score", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "company"], name="unique_routing_per_job_company"
            ),
        ]
        indexes = [
            models.Index(fields=["sync_status", "next_retry_at"], name="routing_status_retry_idx"),
            models.Index(fields=["company", "sync_status"], name="routing_company_status_idx"),
            # The back-sync's scan: synced routings not declined, by when they are due for a
            # question to their provider (routing.services.backsync.BACKSYNC_DUE_AT).
            models.Index(
                Coalesce("status_check_due_at", "last_synced_at", "created_at"),
                condition=IN_BACKSYNC,
                name="routing_backsync_due_idx",
            ),
            # The dashboard's windows (analytics): syncs and completions by time. Partial, so a
            # routing enters them when it is synced or completed, not when it is created.
            models.Index(
                fields=["last_synced_at"],
                condition=Q(last_synced_at__isnull=False),
                name="routing_synced_at_idx",
            ),
            models.Index(
                fields=["completed_at"],
                condition=Q(completed_at__isnull=False),
                name="routing_completed_at_idx",
            ),
        ]

    def __str__(self):
        return f"{self.job_id} -> {self.company_id} ({self.sync_status})"

    # The state rules of a sync. A sync claims pending routings (or ones whose claim outlived
    # its lease), then moves each to synced, back to pending to wait, or to failed.

    def is_takeable(self, *, now: datetime) -> bool:
        """Whether a sync may claim it: pending, or claimed by a sync that stopped renewing its
        lease (its worker died); never once its company declined it."""
        if self.is_declined:
            return False
        return self.sync_status == SyncStatus.PENDING or (
            self.sync_status == SyncStatus.PROCESSING
            and (self.lease_expires_at is None or self.lease_expires_at < now)
        )

    @property
    def is_finished(self) -> bool:
        """Synced or completed, or declined by its company whatever its status: a decline is
        the company's answer to a push it received, so nothing pushes it again."""
        return self.sync_status in (SyncStatus.SYNCED, SyncStatus.COMPLETED) or self.is_declined

    @property
    def is_declined(self) -> bool:
        return self.declined_at is not None

    @property
    def is_in_backsync(self) -> bool:
        """``IN_BACKSYNC`` for a loaded routing."""
        return self.sync_status == SyncStatus.SYNCED and not self.is_declined

    # A provider's completion applies to a routing it holds: synced, or still being recorded as
    # synced by the sync that pushed it.
    COMPLETABLE_STATUSES = (SyncStatus.SYNCED, SyncStatus.PROCESSING)

    @classmethod
    def mark_completed(cls, routing_id, *, completed_at: datetime, revenue, now: datetime) -> bool:
        """Completed as its provider reports it, with its revenue: a conditional update, so of
        two reports at once only one changes it. False when it was not completable (already
        completed, declined, or never synced)."""
        return bool(
            cls.objects.filter(
                id=routing_id, sync_status__in=cls.COMPLETABLE_STATUSES, declined_at__isnull=True
            ).update(
                sync_status=SyncStatus.COMPLETED,
                completed_at=completed_at,
                revenue=revenue,
                updated_at=now,
            )
        )

    @classmethod
    def mark_revenue(cls, routing_id, *, revenue, now: datetime) -> bool:
        """The revenue of a routing completed without one, when it arrives later (a CRM's
        invoice.paid after its work_order.completed). False when it was not completed, or
        already has a revenue (the first report's stands)."""
        return bool(
            cls.objects.filter(
                id=routing_id, sync_status=SyncStatus.COMPLETED, revenue__isnull=True
            ).update(revenue=revenue, updated_at=now)
        )

    @classmethod
    def mark_declined(
        cls, routing_id, *, reason: str, declined_at: datetime, now: datetime
    ) -> bool:
        """Turned down by its company in its field-service system (a dismissed booking, a
        cancelled job), with the reason given: a conditional update from the completable
        statuses, so of two reports at once only one changes it. The status stays as it is
        (synced: its push succeeded). False when it was not declinable (already declined,
        completed, or never synced)."""
        return bool(
            cls.objects.filter(
                id=routing_id, sync_status__in=cls.COMPLETABLE_STATUSES, declined_at__isnull=True
            ).update(declined_at=declined_at, decline_reason=reason, updated_at=now)
        )

    def provider_job_record(
        self,
        *,
        provider_job_id: str,
        provider_job_number: str,
        now,
        provider_status: str = "",
    ) -> bool:
        """Take the provider's job id, number and status where it reports them and they differ
        from what is stored (the caller stores the routing), cut to their columns' length so
        that one odd report cannot fail its batch. Returns whether anything changed."""
        changed = False
        for name, value in (
            ("provider_job_id", provider_job_id),
            ("provider_job_number", provider_job_number),
            ("provider_status", provider_status),
        ):
            value = value[: self._meta.get_field(name).max_length]
            if value and value != getattr(self, name):
                setattr(self, name, value)
                changed = True
        if changed:
            self.updated_at = now
        return changed

    def mark_synced(self, *, external_id: str, now: datetime) -> None:
        self.sync_status = SyncStatus.SYNCED
        self.external_id = external_id
        self.last_synced_at = now
        self.next_retry_at = None
        self.error_message = None
        self.claimed_at = None
        self.lease_expires_at = None
        self.updated_at = now

    def mark_waiting(self, *, error: str, seconds: float, now: datetime) -> None:
        """Back to pending, due again in ``seconds`` (a retry, or a look for a provider)."""
        self.sync_status = SyncStatus.PENDING
        self.next_retry_at = now + timedelta(seconds=seconds)
        self.error_message = error
        self.claimed_at = None
        self.lease_expires_at = None
        self.updated_at = now

    def mark_failed(self, *, error: str, now: datetime) -> None:
        """Failed for good: the dead-letter queue, until requeued."""
        self.sync_status = SyncStatus.FAILED
        self.next_retry_at = None
        self.error_message = error
        self.claimed_at = None
        self.lease_expires_at = None
        self.updated_at = now


class SyncAttempt(models.Model):
    """One push of a routing to its provider: when, how long, and what came of it."""

    class Outcome(models.TextChoices):
        SYNCED = "synced", "Synced"
        RETRY = "retry", "Failed, retry scheduled"
        FAILED = "failed", "Failed (dead letter)"
        WAITING = "waiting", "No provider yet"

    routing = models.ForeignKey(JobRouting, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    provider = models.CharField(max_length=20, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["routing", "started_at"]
        indexes = [
            # The dashboard's failed calls by time; successes stay out of it.
            models.Index(
                fields=["started_at"],
                condition=Q(outcome__in=["retry", "failed"]),
                name="attempt_failed_started_idx",
            ),
        ]

    def __str__(self):
        return f"attempt {self.number}: {self.outcome}"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    DEAD = "dead", "Dead letter"


class OutboxEvent(models.Model):
    """Work recorded in the same transaction as the change that caused it (transactional outbox)."""

    JOB_SYNC = "job_sync"
    WEBHOOK_DELIVERY = "webhook_delivery"

    event_type = models.CharField(max_length=50)
    aggregate_id = models.UUIDField()
    event_data = models.JSONField(default=dict)
    status = models.CharField(
        max_length=20, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's scan: pending events that are due, oldest first.
            models.Index(
                fields=["available_at", "id"],
                condition=Q(status="pending"),
                name="outbox_due_pending_idx",
            ),
            # Leases: events whose worker died (expired first), and the count in flight.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="processing"),
                name="outbox_lease_idx",
            ),
            # The dead-letter queue: its admin list and the backlog count.
            models.Index(
                fields=["processed_at"],
                condition=Q(status="dead"),
                name="outbox_dead_idx",
            ),
            models.Index(fields=["aggregate_id"], name="outbox_aggregate_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.aggregate_id} ({self.status})"

    @staticmethod
    def job_sync_data(
        *,
        routing_id,
        job_id,
        company_id,
        matching_score: float,
        matched_skills: list[str],
        provider_type: str,
        correlation_id: str | None = None,
    ) -> dict:
        """A ``job_sync`` event's data (seed 000 "Outbox Events"), for every writer of one:
        ``provider_type`` is the company's own, resolved to the provider its routings go to;
        ``correlation_id`` is the request's that created the job, where there was one."""
        data = {
            "routing_id": str(routing_id),
            "job_id": str(job_id),
            "company_id": str(company_id),
            "matching_score": matching_score,
            "matched_skills": matched_skills,
            "provider_type": provider_type_resolved(provider_type),
        }
        if correlation_id:
            data["correlation_id"] = correlation_id
        return data

    @classmethod
    def for_routing(cls, routing: "JobRouting", **fields) -> "OutboxEvent":
        """A new ``job_sync`` event for a routing (its company loaded)."""
        return cls(
            event_type=cls.JOB_SYNC,
            aggregate_id=routing.id,
            event_data=cls.job_sync_data(
                routing_id=routing.id,
                job_id=routing.job_id,
                company_id=routing.company_id,
                matching_score=routing.matching_score,
                matched_skills=routing.matched_skills,
                provider_type=routing.company.provider_type,
            ),
            **fields,
        )

    def close(self, status: str, *, now: datetime, error: str = "") -> None:
        """Done, or dead (the dead-letter queue)."""
        self.status = status
        self.processed_at = now
        self.claimed_at = None
        self.lease_expires_at = None
        if error:
            self.last_error = error

    def wait_until(self, available_at: datetime, *, error: str = "") -> None:
        """Pending again, due at ``available_at``."""
        self.status = OutboxStatus.PENDING
        self.available_at = available_at
        self.claimed_at = None
        self.lease_expires_at = None
        self.last_error = error


class WebhookEvent(models.TextChoices):
    """What a company's outbound webhooks tell (README "Outbound webhooks"); ``webhook.test``
    goes only to the endpoint asked to test itself, whatever it subscribed to."""

    JOB_CREATED = "job.created", "A job the company requested was created"
    JOB_ROUTED = "job.routed", "A job was routed (to the company, or the company's job onward)"
    ROUTING_SYNCED = "routing.synced", "A routing reached its company's field-service system"
    ROUTING_FAILED = "routing.failed", "A routing's sync failed for good"
    ROUTING_DECLINED = "routing.declined", "A routing was turned down by its company"
    ROUTING_COMPLETED = "routing.completed", "A routing was completed"
    JOB_COMPLETED = "job.completed", "A job was completed"
    INGESTION_COMPLETED = "ingestion.completed", "A batch ingestion finished"
    WEBHOOK_TEST = "webhook.test", "A test delivery"

    @classmethod
    def subscribable(cls) -> list[str]:
        return [event for event in cls.values if event != cls.WEBHOOK_TEST]


class WebhookEndpoint(models.Model):
    """A company's URL that hears the events it subscribed to, signed with its secret.

    The secrets are encrypted at rest and served once, when made; during a rotation the
    previous one keeps signing beside the new one until ``previous_secret_expires_at``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    events = models.JSONField(default=list)
    # {"secret": "whsec_...", "previous_secret": "whsec_..." during a rotation}
    secrets = EncryptedJSONField(default=dict)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    failing_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when every delivery attempt has failed; any success clears it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.url} ({self.company_id})"

    def subscribes_to(self, event: str) -> bool:
        return event == WebhookEvent.WEBHOOK_TEST or event in self.events

    def signing_secrets(self, *, now: datetime) -> list[str]:
        """The secrets that sign a delivery at ``now``, newest first."""
        signing = [self.secrets["secret"]]
        previous = self.secrets.get("previous_secret")
        if previous and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            signing.append(previous)
        return signing

    def secret_rotate(self, *, secret: str, now: datetime, overlap: timedelta) -> None:
        """A new secret; the current one keeps signing beside it for ``overlap``."""
        self.secrets = {"secret": secret, "previous_secret": self.secrets["secret"]}
        self.previous_secret_expires_at = now + overlap
        self.updated_at = now

    def disable(self, *, reason: str, now: datetime) -> None:
        self.enabled = False
        self.disabled_at = now
        self.disabled_reason = reason[: self._meta.get_field("disabled_reason").max_length]
        self.updated_at = now

    def enable(self, *, now: datetime) -> None:
        self.enabled = True
        self.disabled_at = None
        self.disabled_reason = ""
        self.failing_since = None
        self.updated_at = now

    def failing_for_too_long(self, *, now: datetime, window: timedelta) -> bool:
        return self.failing_since is not None and now - self.failing_since >= window


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (dead letter)"


class WebhookDelivery(models.Model):
    """One event for one endpoint; its id is the ``webhook-id``, the same on every retry.

    ``body`` is the exact JSON sent, so every attempt signs the same bytes. ``retry_count``
    counts the retries of the current round (a redelivery starts a new one);
    ``attempt_count`` every attempt ever made."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event = models.CharField(max_length=50)
    body = models.TextField()
    status = models.CharField(
        max_length=20,
        choices=WebhookDeliveryStatus.choices,
        default=WebhookDeliveryStatus.PENDING,
    )
    attempt_count = models.PositiveIntegerField(default=0)
    retry_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The owner's list (newest first) and the endpoint's pending ones.
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint_idx"),
            models.Index(
                fields=["endpoint"],
                condition=Q(status="pending"),
                name="webhook_delivery_pending_idx",
            ),
            # The admin's dead letters.
            models.Index(
                fields=["-created_at"],
                condition=Q(status="failed"),
                name="webhook_delivery_failed_idx",
            ),
        ]

    def __str__(self):
        return f"{self.event} {self.id} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == WebhookDeliveryStatus.PENDING

    def mark_delivered(self, *, status: int, now: datetime) -> None:
        self.status = WebhookDeliveryStatus.DELIVERED
        self.delivered_at = now
        self.next_attempt_at = None
        self.last_response_status = status
        self.last_error = ""

    def mark_retry(self, *, status: int | None, error: str, seconds: float, now: datetime) -> None:
        self.retry_count += 1
        self.next_attempt_at = now + timedelta(seconds=seconds)
        self.last_response_status = status
        self.last_error = error

    def mark_failed(self, *, status: int | None, error: str) -> None:
        """Failed for good: the dead-letter queue, until redelivered."""
        self.status = WebhookDeliveryStatus.FAILED
        self.next_attempt_at = None
        self.last_response_status = status
        self.last_error = error

    def redeliver(self, *, now: datetime) -> None:
        """A new round of attempts, due now."""
        self.status = WebhookDeliveryStatus.PENDING
        self.retry_count = 0
        self.next_attempt_at = now
        self.delivered_at = None


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, how long, what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    response_status = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    response_start = models.TextField(
        blank=True, help_text="The first bytes of the receiver's answer."
    )
    error = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self):
        return f"attempt {self.number}: {self.response_status or self.error}"
