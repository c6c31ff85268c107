"""Migration access.0004: the profile and webhooks scopes go to existing company keys that may
create jobs; other keys keep theirs."""

import importlib

import pytest
from django.apps import apps

from access.models import ApiKey
from access.services import api_key_create

pytestmark = pytest.mark.django_db

migration = importlib.import_module("access.migrations.0004_company_keys_profile_webhooks_scopes")


def test_company_keys_that_create_jobs_get_the_new_scopes(requesting_company):
    writer, _ = api_key_create(
        name="writer", company_id=requesting_company.id, scopes=["jobs:read", "jobs:write"]
    )
    reader, _ = api_key_create(
        name="reader", company_id=requesting_company.id, scopes=["jobs:read"]
    )
    ops, _ = api_key_create(name="ops")

    migration.grant_new_scopes(apps, None)

    assert ApiKey.objects.get(id=writer.id).scopes == [
        "jobs:read",
        "jobs:write",
        "profile",
        "webhooks",
    ]
    assert ApiKey.objects.get(id=reader.id).scopes == ["jobs:read"]
    assert ApiKey.objects.get(id=ops.id).scopes == ["ops"]


def test_running_it_again_changes_nothing(requesting_company):
    key, _ = api_key_create(name="all", company_id=requesting_company.id)
    before = ApiKey.objects.get(id=key.id).scopes

    migration.grant_new_scopes(apps, None)

    assert ApiKey.objects.get(id=key.id).scopes == before
