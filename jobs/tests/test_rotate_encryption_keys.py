"""``manage.py rotate_encryption_keys``: every stored credential re-encrypted with the newest
key."""

import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection

from jobs.models import Company
from jobs.tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db

OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored_tokens() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT provider_credentials FROM jobs_company")
        return [token for (token,) in cursor.fetchall()]


def test_every_credential_is_re_encrypted_with_the_newest_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD_KEY]
    phoenix = CompanyFactory(provider_credentials={"client_secret": "cs1.very-secret"})
    plain = CompanyFactory()
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out = StringIO()

    call_command("rotate_encryption_keys", stdout=out)

    assert "Re-encrypted 2 rows with the newest key." in out.getvalue()
    assert "jobs.Company.provider_credentials: 2 rows" in out.getvalue()
    tokens = stored_tokens()
    values = [json.loads(Fernet(NEW_KEY).decrypt(token)) for token in tokens]
    assert sorted(values, key=len) == [{}, {"client_secret": "cs1.very-secret"}]
    for token in tokens:
        with pytest.raises(InvalidToken):
            Fernet(OLD_KEY).decrypt(token)
    # ... so the old key can go.
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]
    assert Company.objects.get(id=phoenix.id).provider_credentials == {
        "client_secret": "cs1.very-secret"
    }
    assert Company.objects.get(id=plain.id).provider_credentials == {}


def test_the_command_prints_its_count_when_there_is_nothing_to_rotate():
    out = StringIO()

    call_command("rotate_encryption_keys", stdout=out)

    assert "Re-encrypted 0 rows with the newest key." in out.getvalue()
