"""Presenting an API key: the headers it may come in, and every way it can fail."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiKey, Scope
from access.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"


@pytest.fixture
def company_key_text(requesting_company):
    return api_key_create(name="integrator", company_id=requesting_company.id)[1]


def get(headers: dict):
    return APIClient().get(JOBS, headers=headers)


@pytest.mark.parametrize(
    "header",
    [
        lambda key: {"X-API-Key": key},
        lambda key: {"Authorization": f"Api-Key {key}"},
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"Authorization": f"bearer {key}"},
    ],
    ids=["x-api-key", "api-key-scheme", "bearer", "bearer-lowercase"],
)
def test_a_key_is_accepted_in_each_header(company_key_text, header):
    assert get(header(company_key_text)).status_code == 200


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("0" if key[-1] != "0" else "1"),
        lambda key: key.removeprefix("te_"),
        lambda key: "te_" + "x" * 8 + "." + "y" * 32,
        lambda key: key + " ",
        lambda key: "",
    ],
    ids=["wrong-secret", "without-te", "unknown-prefix", "trailing-space", "empty"],
)
def test_anything_but_the_key_is_401_in_the_v1_shape(company_key_text, mangle):
    response = get({"X-API-Key": mangle(company_key_text)})

    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHORIZED"
    assert response.json()["detail"] == "Invalid or missing API key"
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'


def test_a_revoked_key_is_401(company_key_text):
    api_key = ApiKey.objects.get()
    assert api_key_revoke(key_id=api_key.id)

    assert get({"X-API-Key": company_key_text}).status_code == 401
    assert not api_key_revoke(key_id=api_key.id)


def test_an_expired_key_is_401(requesting_company):
    _, text = api_key_create(
        name="old", company_id=requesting_company.id, expires_at=timezone.now() - timedelta(1)
    )

    assert get({"X-API-Key": text}).status_code == 401


def test_a_key_without_the_scope_is_403(requesting_company, job_payload):
    _, text = api_key_create(
        name="reader", company_id=requesting_company.id, scopes=[Scope.JOBS_READ]
    )
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=text)

    assert client.get(JOBS).status_code == 200
    response = client.post(JOBS, job_payload, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "This key lacks the jobs:write scope."


def test_the_last_use_is_recorded_at_most_once_a_minute(
    company_key_text, django_assert_num_queries
):
    get({"X-API-Key": company_key_text})
    first = ApiKey.objects.get().last_used_at
    assert first is not None

    with django_assert_num_queries(2):  # the key and the (empty) page of jobs; no write
        get({"X-API-Key": company_key_text})
    assert ApiKey.objects.get().last_used_at == first

    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    get({"X-API-Key": company_key_text})
    assert ApiKey.objects.get().last_used_at > first
