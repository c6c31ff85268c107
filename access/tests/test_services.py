import pytest
from django.core.exceptions import ValidationError

from access.models import KEY_MARK, ApiKey, Scope
from access.services import api_key_create, demo_key_text, demo_keys_create

pytestmark = pytest.mark.django_db


def test_a_company_key_is_shown_once_and_stored_hashed(requesting_company):
    api_key, text = api_key_create(name="integrator", company_id=requesting_company.id)

    assert text.startswith(KEY_MARK)
    prefix, _, secret = text.removeprefix(KEY_MARK).partition(".")
    assert (len(prefix), len(secret)) == (8, 32)
    stored = ApiKey.objects.get()
    assert secret not in stored.hashed_key and secret not in stored.id
    assert stored.hashed_key.startswith("sha512$$")
    assert ApiKey.objects.get_from_key(text) == api_key
    assert api_key.scopes == [
        Scope.JOBS_READ,
        Scope.JOBS_WRITE,
        Scope.SYNC,
        Scope.PROCESSING,
        Scope.PROFILE,
        Scope.WEBHOOKS,
    ]


def test_an_ops_key_has_no_company_and_the_ops_scope():
    api_key, _ = api_key_create(name="ops")

    assert (api_key.company_id, api_key.scopes) == (None, [Scope.OPS])


@pytest.mark.parametrize(
    ("company", "scopes", "message"),
    [
        (True, ["ops"], "cannot carry the ops scope"),
        (False, ["jobs:read"], "add ops"),
        (True, ["jobs:delete"], "Unknown scope"),
    ],
)
def test_keys_that_make_no_sense_are_refused(requesting_company, company, scopes, message):
    company_id = requesting_company.id if company else None

    with pytest.raises(ValidationError, match=message):
        api_key_create(name="odd", company_id=company_id, scopes=scopes)
    assert not ApiKey.objects.exists()


def test_demo_keys_are_derived_from_the_ids_and_made_once(requesting_company, plumbing_company):
    ids = [requesting_company.id, plumbing_company.id]

    first = demo_keys_create(company_ids=ids)
    again = demo_keys_create(company_ids=ids)

    assert first == again
    assert first[requesting_company.id] == demo_key_text(str(requesting_company.id))
    assert ApiKey.objects.count() == 3
    assert ApiKey.objects.get_from_key(first["ops"]).scopes == [Scope.OPS]
    owner = ApiKey.objects.get_from_key(first[plumbing_company.id]).company_id
    assert owner == plumbing_company.id
