"""API keys: a company's (integrator keys) or operations' (ops keys), with scopes.

Keys are djangorestframework-api-key's: shown once, stored hashed (SHA-512 of a high-entropy
key), found by their 8-character prefix. Ours carry ``te_`` in front, so a leaked one is
recognisable to secret scanners: ``te_<prefix>.<secret>``.

Each key also remembers the ``Idempotency-Key`` values it sent, with the responses to replay.
"""

import functools
from datetime import datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection, models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from tradeengage.db import insert_statement

KEY_MARK = "te_"


class Scope(models.TextChoices):
    JOBS_READ = "jobs:read", "Read jobs and routings"
    JOBS_WRITE = "jobs:write", "Create jobs"
    SYNC = "sync", "Sync and route jobs by hand"
    PROCESSING = "processing", "Client processing (seed 004)"
    PROFILE = "profile", "Update the company's matching profile"
    WEBHOOKS = "webhooks", "Manage the company's outbound webhooks"
    OPS = "ops", "Operations: everything, for every company"


COMPANY_SCOPES = [
    Scope.JOBS_READ,
    Scope.JOBS_WRITE,
    Scope.SYNC,
    Scope.PROCESSING,
    Scope.PROFILE,
    Scope.WEBHOOKS,
]


class UsableKey(NamedTuple):
    """What authenticating a request needs of an unrevoked, unexpired key."""

    id: str
    name: str
    hashed_key: str
    company_id: UUID | None
    scopes: list[str]
    plan: str | None  # its company's; None for an ops key
    last_use_stale: bool  # last used before the moment asked about, or never


class ApiKeyManager(BaseAPIKeyManager):
    def get_from_key(self, key: str) -> "ApiKey":
        """The unrevoked key for a presented one (``te_`` and all), with its company; raises
        DoesNotExist when it is unknown, revoked or wrong (the hash compared in constant
        time)."""
        if not key.startswith(KEY_MARK):
            raise self.model.DoesNotExist("Not a TradeEngage key.")
        return super().get_from_key(key.removeprefix(KEY_MARK))

    def usable_key(self, *, prefix: str, now: datetime, used_since: datetime) -> UsableKey | None:
        """The key with ``prefix`` unless it is revoked or expired at ``now``, with its
        company's plan; ``last_use_stale`` tells whether it was last used before
        ``used_since``. The secret is not checked here.

        Every API request runs this, so it is one statement written once: the ORM's compiling
        a query costs this machine more than the database's running it.
        """
        ops = connection.ops
        with connection.cursor() as cursor:
            cursor.execute(
                _usable_key_sql(),
                [
                    ops.adapt_datetimefield_value(used_since),
                    prefix,
                    ops.adapt_datetimefield_value(now),
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        key_id, name, hashed_key, company_id, scopes, plan, last_use_stale = row
        meta = self.model._meta
        return UsableKey(
            id=key_id,
            name=name,
            hashed_key=hashed_key,
            company_id=meta.get_field("company").target_field.to_python(company_id),
            scopes=meta.get_field("scopes").from_db_value(scopes, None, connection),
            plan=plan,
            last_use_stale=bool(last_use_stale),
        )


@functools.cache
def _usable_key_sql() -> str:
    quote = connection.ops.quote_name
    meta = ApiKey._meta
    company = meta.get_field("company").related_model._meta

    def column(name: str) -> str:
        return f"k.{quote(meta.get_field(name).column)}"

    return (
        f"SELECT {column('id')}, {column('name')}, {column('hashed_key')}, {column('company')}, "
        f"{column('scopes')}, c.{quote(company.get_field('plan').column)}, "
        f"({column('last_used_at')} IS NULL OR {column('last_used_at')} < %s)"
        f" FROM {quote(meta.db_table)} k LEFT JOIN {quote(company.db_table)} c"
        f" ON c.{quote(company.pk.column)} = {column('company')}"
        f" WHERE {column('prefix')} = %s AND NOT {column('revoked')}"
        f" AND ({column('expiry_date')} IS NULL OR {column('expiry_date')} > %s)"
    )


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


class StoredResponse(NamedTuple):
    fingerprint: str
    status: int
    body: str
    expired: bool  # stored before the moment asked about


class IdempotencyKeyManager(models.Manager):
    """Statements written once: each runs on every request that sends an ``Idempotency-Key``
    (see ``ApiKeyManager.usable_key``)."""

    def stored(
        self, *, api_key_id: str, key: str, expired_before: datetime
    ) -> StoredResponse | None:
        """The response stored for ``key`` of the API key ``api_key_id``, if any."""
        expired_before = connection.ops.adapt_datetimefield_value(expired_before)
        with connection.cursor() as cursor:
            cursor.execute(_stored_response_sql(), [expired_before, api_key_id, key])
            row = cursor.fetchone()
        if row is None:
            return None
        fingerprint, status, body, expired = row
        return StoredResponse(fingerprint, status, body, bool(expired))

    def store(self, **values) -> None:
        """Insert one row (``{field name: value}``); IntegrityError when the key is taken."""
        sql, params = insert_statement(self.model, [values])
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


@functools.cache
def _stored_response_sql() -> str:
    quote = connection.ops.quote_name
    meta = IdempotencyKey._meta

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    return (
        f"SELECT {column('fingerprint')}, {column('response_status')}, {column('response_body')},"
        f" {column('created_at')} <= %s FROM {quote(meta.db_table)}"
        f" WHERE {column('api_key')} = %s AND {column('key')} = %s"
    )


class IdempotencyKey(models.Model):
    """One use of an ``Idempotency-Key`` by an API key, with the response to replay (the IETF
    draft "The Idempotency-Key HTTP Header Field"; ``access.idempotency`` holds the flow).

    A row is written in the transaction that stores the request's effects, so it exists exactly
    when they do: a job is never stored without its key's response, nor a response without its
    job, and a request that failed or died leaves the key free.
    """

    # How long a key is remembered, counted from the request that used it.
    KEPT_FOR = timedelta(hours=24)

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
        help_text="When the request that used the key arrived; the key expires a day later."
    )
    response_status = models.PositiveSmallIntegerField()
    response_body = models.TextField(help_text="The JSON sent, as text: its key order is kept.")

    objects = IdempotencyKeyManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="access_idempotency_key_once")
        ]
        indexes = [models.Index(fields=["created_at"], name="access_idempotency_created")]

    def __str__(self):
        return self.key

    @classmethod
    def expired_before(cls, now: datetime) -> datetime:
        """Keys stored up to this moment are forgotten at ``now``."""
        return now - cls.KEPT_FOR
