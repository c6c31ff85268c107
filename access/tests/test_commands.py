from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from access.models import ApiKey

pytestmark = pytest.mark.django_db


def create_api_key(*args) -> str:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_a_company_key_is_printed_once_and_works(requesting_company):
    text = create_api_key("--company", str(requesting_company.id), "--name", "crm sync")

    api_key = ApiKey.objects.get_from_key(text)
    assert (api_key.name, api_key.company_id) == ("crm sync", requesting_company.id)


def test_an_ops_key_with_an_expiry(db):
    text = create_api_key("--ops", "--name", "night shift", "--expires", "2030-01-01T00:00:00Z")

    api_key = ApiKey.objects.get_from_key(text)
    assert api_key.scopes == ["ops"]
    assert api_key.expiry_date.year == 2030


@pytest.mark.parametrize(
    "args",
    [
        ["--company", "00000000-0000-4000-8000-000000000000", "--name", "ghost"],
        ["--ops", "--name", "x", "--expires", "tomorrow"],
    ],
    ids=["unknown-company", "bad-expiry"],
)
def test_bad_arguments_are_command_errors(args):
    with pytest.raises(CommandError):
        create_api_key(*args)
    assert not ApiKey.objects.exists()
