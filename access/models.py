"""API keys: a company's (integrator keys) or operations' (ops keys), with scopes.

Keys are djangorestframework-api-key's: shown once, stored hashed (SHA-512 of a high-entropy
key), found by their 8-character prefix. Ours carry ``te_`` in front, so a leaked one is
recognisable to secret scanners: ``te_<prefix>.<secret>``.
"""

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

KEY_MARK = "te_"


class Scope(models.TextChoices):
    JOBS_READ = "jobs:read", "Read jobs and routings"
    JOBS_WRITE = "jobs:write", "Create jobs"
    SYNC = "sync", "Sync and route jobs by hand"
    PROCESSING = "processing", "Client processing (seed 004)"
    OPS = "ops", "Operations: everything, for every company"


COMPANY_SCOPES = [Scope.JOBS_READ, Scope.JOBS_WRITE, Scope.SYNC, Scope.PROCESSING]


class ApiKeyManager(BaseAPIKeyManager):
    def get_from_key(self, key: str) -> "ApiKey":
        """The unrevoked key for a presented one (``te_`` and all), with its company; raises
        DoesNotExist when it is unknown, revoked or wrong (the hash compared in constant
        time)."""
        if not key.startswith(KEY_MARK):
            raise self.model.DoesNotExist("Not a TradeEngage key.")
        return super().get_from_key(key.removeprefix(KEY_MARK))


class ApiKey(AbstractAPIKey):
    objects = ApiKeyManager()

    company = models.ForeignKey(
        "jobs.Company",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The company the key acts for; empty for an operations key.",
    )
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text="What the key may do: " + ", ".join(Scope.values) + ".",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def clean(self):
        super().clean()
        unknown = sorted(set(self.scopes) - set(Scope.values))
        if unknown:
            raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(unknown)}."})
        if self.company_id is None and Scope.OPS not in self.scopes:
            raise ValidationError({"scopes": "A key without a company is an ops key: add ops."})
        if self.company_id is not None and Scope.OPS in self.scopes:
            raise ValidationError({"scopes": "A company's key cannot carry the ops scope."})
