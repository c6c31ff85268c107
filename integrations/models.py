from django.db import models


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
