"""API keys: a company's (integrator keys) or operations' (ops keys), with scopes.

Keys are djangorestframework-api-key's: shown once, stored hashed (SHA-512 of a high-entropy
key), found by their 8-character prefix. Ours carry ``te_`` in front, so a leaked one is
recognisable to secret scanners: ``te_<prefix>.<secret>``.

Each key also remembers the ``Idempotency-Key`` values it sent, with the responses to replay.
"""

from datetime import datetime, timedelta

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


class IdempotencyKey(models.Model):
    """One use of an ``Idempotency-Key`` by an API key, with the response to replay (the IETF
    draft "The Idempotency-Key HTTP Header Field"; ``access.idempotency`` holds the flow).

    While the request that claimed it runs, ``response_status`` is empty; the row is completed in
    the transaction that stores the request's effects, so a completed row always has them and an
    empty one never does.
    """

    # How long a key is remembered, counted from the request that claimed it.
    KEPT_FOR = timedelta(hours=24)
    # An unfinished claim older than this is taken to be abandoned (its process died): a retry
    # may claim it again. Longer than any request may run; a request outliving it can no
    # longer complete the row and is undone (see ``access.idempotency``).
    LEASE = timedelta(seconds=60)

    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.CASCADE,
        related_name="idempotency_keys",
        db_index=False,  # the unique constraint's index starts with it
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of the method, path and canonical JSON of the body."
    )
    created_at = models.DateTimeField(
        help_text="When the request holding the key arrived; the key expires a day later."
    )
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty while the request is in progress."
    )
    response_body = models.TextField(
        blank=True, help_text="The JSON sent, as text: its key order is kept."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="access_idempotency_key_once")
        ]
        indexes = [models.Index(fields=["created_at"], name="access_idempotency_created")]

    def __str__(self):
        return self.key

    @property
    def is_complete(self) -> bool:
        return self.response_status is not None

    def is_expired(self, now: datetime) -> bool:
        return self.created_at <= now - self.KEPT_FOR

    def is_abandoned(self, now: datetime) -> bool:
        return not self.is_complete and self.created_at <= now - self.LEASE

    def _held(self) -> models.QuerySet:
        """This row as long as the claim this instance knows of still holds it, unfinished: the
        claim's ``created_at`` is its token."""
        return type(self).objects.filter(
            id=self.id, created_at=self.created_at, response_status__isnull=True
        )

    def claim_again(self, *, fingerprint: str, now: datetime) -> bool:
        """Take over the row for a new request while it is still expired or abandoned: a
        conditional update, so of two requests doing it at once only one wins, and a claim its
        request completed meanwhile is kept. False when the row was not taken."""
        expired = models.Q(created_at__lte=now - self.KEPT_FOR)
        abandoned = models.Q(created_at__lte=now - self.LEASE, response_status__isnull=True)
        taken = (
            type(self)
            .objects.filter(expired | abandoned, id=self.id)
            .update(fingerprint=fingerprint, created_at=now, response_status=None, response_body="")
        )
        if taken:
            self.fingerprint, self.created_at = fingerprint, now
            self.response_status, self.response_body = None, ""
        return bool(taken)

    def complete(self, *, status: int, body: str) -> bool:
        """Record the response; False when the claim was lost (its lease passed and a retry took
        the row), in which case the caller must undo what the request did."""
        completed = self._held().update(response_status=status, response_body=body)
        if completed:
            self.response_status, self.response_body = status, body
        return bool(completed)

    def release(self) -> None:
        """Forget an unfinished claim, so the client may send the key again."""
        self._held().delete()
