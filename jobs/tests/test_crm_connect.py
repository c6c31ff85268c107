"""Connecting CRM companies from the company admin's "Connect (register webhooks)" action and
from ``manage.py crm_connect``: the webhook secret is stored encrypted, merged into the other
credentials, and never shown."""

import json
from io import StringIO

import pytest
import responses
from django.contrib.messages import constants
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from jobs.models import Company
from jobs.tests.factories import CompanyFactory

API_URL = "https://crm.example.com/api/v2"
CLIENT_SECRET = "crm-client-secret"
CREDENTIALS = {"client_id": "te-client", "client_secret": CLIENT_SECRET}


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{API_URL}/oauth/token", json={"access_token": "t", "expires_in": 3600})
        mock.post(f"{API_URL}/webhooks", status=201, json={"id": "wh-1"})
        yield mock


def crm_company(name="Austin Plumbing", **credentials):
    return CompanyFactory(
        name=name,
        provider_type="crm",
        provider_settings={"api_url": API_URL},
        provider_credentials={**CREDENTIALS, **credentials},
    )


def registered(http) -> list[dict]:
    return [
        json.loads(call.request.body)
        for call in http.calls
        if call.request.url.endswith("/webhooks")
    ]


def stored_column(company) -> str:
    """The credentials column as stored: ciphertext, read past the field's decryption."""
    key = company.id.hex if connection.vendor == "sqlite" else company.id
    with connection.cursor() as cursor:
        cursor.execute("SELECT provider_credentials FROM jobs_company WHERE id = %s", [key])
        return cursor.fetchone()[0]


def run_connect(ops_client, companies):
    return ops_client.post(
        reverse("admin:jobs_company_changelist"),
        {"action": "connect_webhooks", "_selected_action": [str(c.id) for c in companies]},
        follow=True,
    )


def shown(response):
    return [(message.level, message.message) for message in response.context["messages"]]


@pytest.mark.django_db
def test_the_admin_action_stores_the_secret_encrypted_and_never_shows_it(ops_client, http):
    company = crm_company()

    response = run_connect(ops_client, [company])

    assert response.status_code == 200
    [sent] = registered(http)
    assert sent["url"] == (f"http://testserver/api/integrations/crm/webhook?account={company.id}")
    company.refresh_from_db()
    assert company.provider_credentials == {**CREDENTIALS, "webhook_secret": sent["secret"]}
    assert sent["secret"] not in stored_column(company)
    assert CLIENT_SECRET not in stored_column(company)
    assert sent["secret"] not in response.text
    assert (
        constants.SUCCESS,
        "Austin Plumbing: connected; webhook wh-1 delivers to this site, its secret stored "
        "encrypted.",
    ) in shown(response)


@pytest.mark.django_db
def test_the_admin_action_reports_a_failure_and_skips_other_providers(ops_client, http):
    http.replace(
        responses.POST,
        f"{API_URL}/oauth/token",
        status=401,
        json={"error": "invalid_client", "detail": "Unknown client", "hint": ""},
    )
    broken = crm_company()
    other = CompanyFactory(name="Tulsa Electric", provider_type="servicetitan")

    messages = shown(run_connect(ops_client, [broken, other]))

    broken.refresh_from_db()
    assert "webhook_secret" not in broken.provider_credentials
    levels = dict((text.split(":")[0], level) for level, text in messages)
    assert levels == {"Austin Plumbing": constants.ERROR, "Tulsa Electric": constants.WARNING}
    assert all(CLIENT_SECRET not in text for _, text in messages)


@pytest.mark.django_db
def test_the_command_connects_one_company_with_the_public_base_url(http, settings):
    settings.PUBLIC_BASE_URL = "https://te.example.com/"
    company = crm_company(webhook_secret="old-secret")
    out = StringIO()

    call_command("crm_connect", str(company.id), stdout=out)

    [sent] = registered(http)
    assert (
        sent["url"] == f"https://te.example.com/api/integrations/crm/webhook?account={company.id}"
    )
    company.refresh_from_db()
    assert company.provider_credentials["webhook_secret"] == sent["secret"]
    assert company.provider_credentials["client_secret"] == CLIENT_SECRET
    assert sent["secret"] not in out.getvalue()
    assert "1 of 1 connected." in out.getvalue()


@pytest.mark.django_db
def test_the_command_connects_every_crm_company_with_a_base_url(http):
    first, second = crm_company("A Plumbing"), crm_company("B Plumbing")
    CompanyFactory(name="Mock Co", provider_type="mock")
    out = StringIO()

    call_command("crm_connect", "--all", "--base-url", "https://public.example", stdout=out)

    urls = sorted(sent["url"] for sent in registered(http))
    assert urls == sorted(
        f"https://public.example/api/integrations/crm/webhook?account={company.id}"
        for company in (first, second)
    )
    assert all(
        Company.objects.get(pk=company.pk).provider_credentials.get("webhook_secret")
        for company in (first, second)
    )
    assert "2 of 2 connected." in out.getvalue()


@pytest.mark.django_db
def test_the_command_fails_for_a_company_that_cannot_connect(http):
    company = crm_company(client_secret="")
    err = StringIO()

    with pytest.raises(CommandError, match="1 not connected"):
        call_command("crm_connect", str(company.id), stdout=StringIO(), stderr=err)

    assert "not connected" in err.getvalue()


@pytest.mark.django_db
def test_the_command_refuses_a_company_of_another_provider():
    company = CompanyFactory(provider_type="servicetitan")

    with pytest.raises(CommandError, match="does not use the CRM"):
        call_command("crm_connect", str(company.id))


def test_the_command_needs_a_company_or_all():
    with pytest.raises(CommandError, match="one company id, or --all"):
        call_command("crm_connect")
