"""Values encrypted at rest (``tradeengage/encryption.py``) and their keys (settings)."""

import json

import pytest
from cryptography.fernet import Fernet
from django.core import serializers
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import connection

from jobs.models import Company
from jobs.tests.factories import CompanyFactory
from tradeengage.encryption import UndecryptableValue
from tradeengage.settings import DEVELOPMENT_FIELD_ENCRYPTION_KEY, field_encryption_keys

CREDENTIALS = {"client_id": "acme", "client_secret": "cs1.very-secret"}
OLD_KEY, NEW_KEY, UNKNOWN_KEY = (Fernet.generate_key().decode() for _ in range(3))


def stored_token(company) -> str:
    """The raw column, as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT provider_credentials FROM jobs_company WHERE id = %s",
            [Company._meta.pk.get_db_prep_value(company.id, connection)],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def old_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD_KEY]


@pytest.mark.django_db
def test_an_encrypted_value_comes_back_as_it_was_stored():
    company = CompanyFactory(provider_credentials=CREDENTIALS)

    assert Company.objects.get(id=company.id).provider_credentials == CREDENTIALS


@pytest.mark.django_db
def test_the_column_holds_only_ciphertext(settings):
    company = CompanyFactory(provider_credentials=CREDENTIALS)

    token = stored_token(company)

    assert token.startswith("gAAAAA")  # a Fernet token
    assert "cs1.very-secret" not in token
    assert "client_secret" not in token
    assert json.loads(Fernet(settings.FIELD_ENCRYPTION_KEYS[0]).decrypt(token)) == CREDENTIALS


@pytest.mark.django_db
def test_after_a_new_key_is_put_first_values_encrypted_with_the_older_key_still_open(
    settings, old_key
):
    company = CompanyFactory(provider_credentials=CREDENTIALS)

    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    assert Company.objects.get(id=company.id).provider_credentials == CREDENTIALS


@pytest.mark.django_db
def test_the_newest_key_encrypts(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    company = CompanyFactory(provider_credentials=CREDENTIALS)

    assert json.loads(Fernet(NEW_KEY).decrypt(stored_token(company))) == CREDENTIALS


@pytest.mark.django_db
def test_a_value_no_key_opens_fails_loudly_instead_of_reading_as_empty(settings, old_key):
    company = CompanyFactory(provider_credentials=CREDENTIALS)

    settings.FIELD_ENCRYPTION_KEYS = [UNKNOWN_KEY]

    with pytest.raises(UndecryptableValue, match="rotate_encryption_keys"):
        Company.objects.get(id=company.id)


@pytest.mark.django_db
def test_an_encrypted_field_cannot_be_filtered_on():
    CompanyFactory(provider_credentials=CREDENTIALS)

    with pytest.raises(FieldError):
        list(Company.objects.filter(provider_credentials=CREDENTIALS))
    assert Company.objects.filter(provider_credentials__isnull=False).count() == 1


@pytest.mark.django_db
def test_a_dump_holds_the_token_and_loads_back():
    company = CompanyFactory(provider_credentials=CREDENTIALS)

    dump = serializers.serialize("json", [company], fields=["provider_credentials"])

    assert "very-secret" not in dump
    loaded = next(serializers.deserialize("json", dump)).object
    assert loaded.provider_credentials == CREDENTIALS


def test_with_debug_off_and_no_keys_the_settings_refuse_to_start():
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS must be set"):
        field_encryption_keys([], debug=False)


def test_with_debug_on_and_no_keys_the_development_key_is_used():
    assert field_encryption_keys([], debug=True) == [DEVELOPMENT_FIELD_ENCRYPTION_KEY]


def test_the_keys_given_are_used_newest_first():
    assert field_encryption_keys([NEW_KEY, OLD_KEY], debug=False) == [NEW_KEY, OLD_KEY]


def test_a_malformed_key_is_refused_without_being_echoed():
    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key") as error:
        field_encryption_keys([NEW_KEY, "not-a-key-but-a-secret"], debug=True)

    assert "not-a-key-but-a-secret" not in str(error.value)


def test_the_public_development_key_is_refused_with_debug_off():
    with pytest.raises(ImproperlyConfigured, match="development key"):
        field_encryption_keys([NEW_KEY, DEVELOPMENT_FIELD_ENCRYPTION_KEY], debug=False)
