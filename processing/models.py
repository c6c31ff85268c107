import uuid
from datetime import timedelta

from django.db import models
from django.db.models import Q

from jobs.models import Company

# seed 004: a client's leads, data refresh and report look at the last 3 months.
LOOKBACK = timedelta(days=90)


class ProcessingJob(models.Model):
    """One run of a client's processing (seed 004's ``processing_jobs``): leads assigned to a
    subscribing company and its report emailed, retried on failure."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (in the retry queue)"
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        API = "api", "API"
        NIGHTLY = "nightly", "Nightly run"
        COMMAND = "command", "Command"
        RETRY = "retry", "Retry"

    job_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="processing_jobs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    run_date = models.DateField(help_text="The day the run is for (the nightly run's date).")
    attempt_count = models.PositiveIntegerField(default=0)
    last_attempt = models.DateTimeField(null=True, blank=True)
    next_attempt = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    leads_assigned = models.PositiveIntegerField(default=0)
    # The leads routed by this run so far, so a retry after a later step failed reports them
    # too instead of assigning others.
    assigned_job_ids = models.JSONField(default=list, blank=True)
    jobs_completed = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    report_sent_to = models.EmailField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A second beat, or a repeated trigger, never processes a client twice in a night.
            models.UniqueConstraint(
                fields=["client", "run_date"],
                condition=Q(trigger="nightly"),
                name="unique_nightly_run_per_client",
            ),
        ]
        indexes = [
            # The retry queue: pending jobs by when they are due.
            models.Index(
                fields=["next_attempt"], condition=Q(status="pending"), name="processing_due_idx"
            ),
            # The last nightly run, for the dashboard.
            models.Index(
                fields=["run_date"], condition=Q(trigger="nightly"), name="processing_nightly_idx"
            ),
        ]

    def __str__(self):
        return f"{self.client_id} {self.run_date} ({self.status})"
