"""Values encrypted at rest: ``EncryptedJSONField`` stores a JSON value as a Fernet token
(AES-128-CBC and HMAC-SHA256: a token can be neither read nor altered without the key).

The keys are ``settings.FIELD_ENCRYPTION_KEYS``, newest first, separate from ``SECRET_KEY``. The
first key encrypts; every key decrypts (``MultiFernet``), so a key is rotated by putting a new one
first, running ``manage.py rotate_encryption_keys`` (``encrypted_values_rotate``), and only then
dropping the old one. A token no key opens raises ``UndecryptableValue``: a lost key is an
outage to fix, never credentials silently read as empty.
"""

import functools
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction


class UndecryptableValue(ImproperlyConfigured):
    """A stored token that no key in ``FIELD_ENCRYPTION_KEYS`` opens."""


@functools.lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def field_fernet() -> MultiFernet:
    """The keys of ``FIELD_ENCRYPTION_KEYS``, read at each call so a changed setting (a test's)
    takes effect."""
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def json_encrypt(value) -> str:
    """``value`` as JSON, encrypted with the newest key."""
    return field_fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode("ascii")


def json_decrypt(token: str):
    """The JSON value in ``token``; ``UndecryptableValue`` when no key opens it."""
    try:
        plaintext = field_fernet().decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise UndecryptableValue(
            "A value encrypted at rest cannot be decrypted with any key in "
            "FIELD_ENCRYPTION_KEYS: the key that encrypted it is missing (keep an old key listed, "
            "after the new one, until manage.py rotate_encryption_keys has run) or the stored "
            "value is corrupt."
        ) from None
    return json.loads(plaintext)


class EncryptedJSONField(models.TextField):
    """A JSON value (a dict of secrets, typically) stored as a Fernet token in a text column.

    Not editable by default: a model form would show the secrets; edit them through write-only
    form fields instead. The column holds ciphertext only, so it cannot be filtered on (any lookup
    but ``isnull`` is refused rather than silently matching nothing), and serialization
    (``dumpdata``) writes the token, not the secrets.
    """

    description = "A JSON value encrypted at rest"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.editable:
            kwargs["editable"] = True
        else:
            kwargs.pop("editable", None)
        return name, path, args, kwargs

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return json_decrypt(value)

    def to_python(self, value):
        # A string is a token (from a serialized dump); anything else is the value itself.
        if isinstance(value, str):
            return json_decrypt(value)
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return json_encrypt(value)

    def value_to_string(self, obj):
        return self.get_prep_value(self.value_from_object(obj))

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)

    def get_transform(self, lookup_name):
        return None


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedJSONField]]:
    """Every encrypted field of every installed model."""
    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedJSONField)
    ]


def encrypted_values_rotate(*, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every stored encrypted value with the newest key; the rows rewritten, by
    ``app_label.Model.field``. Each batch is read and rewritten under a row lock in one
    transaction, so an edit made meanwhile (in the admin) is neither lost nor overwritten."""
    rewritten = {}
    for model, field in encrypted_fields():
        label = f"{model._meta.label}.{field.name}"
        rewritten[label] = 0
        manager = model._base_manager
        ids = list(manager.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), batch_size):
            with transaction.atomic():
                rows = list(
                    manager.select_for_update()
                    .filter(pk__in=ids[start : start + batch_size])
                    .only("pk", field.attname)
                )
                manager.bulk_update(rows, [field.attname])
            rewritten[label] += len(rows)
    return rewritten
