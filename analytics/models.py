from django.db import models


class DailyFigures(models.Model):
    """One closed day of the network's figures, rolled up once (``analytics.services``) so the
    dashboard's 30-day charts and totals read a row a day instead of the routings behind it."""

    day = models.DateField(primary_key=True)
    jobs_created = models.PositiveIntegerField(default=0)
    routings_created = models.PositiveIntegerField(default=0)
    routings_synced = models.PositiveIntegerField(default=0)
    sync_retries = models.PositiveIntegerField(default=0)
    sync_failures = models.PositiveIntegerField(
        default=0, help_text="Provider calls that dead-lettered their routing."
    )
    routings_completed = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    latency_p50_seconds = models.FloatField(
        null=True, blank=True, help_text="Routing created to synced, of the day's syncs."
    )
    latency_p95_seconds = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "daily figures"

    def __str__(self):
        return f"Figures of {self.day}"
