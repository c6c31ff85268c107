"""Connecting a CRM account: authenticate, generate a secret, register the webhook."""

import json

import pytest
import responses

from integrations.crm.connection import crm_account_connect
from integrations.providers import PermanentProviderError, ProviderNotConfigured

API_URL = "https://crm.example.com/api/v2"
OPTIONS = {"api_url": API_URL, "client_id": "te-client", "client_secret": "crm-client-secret"}
RECEIVER = "https://te.example.com/api/integrations/crm/webhook?account=c1"


@pytest.fixture
def http():
    with responses.RequestsMock() as mock:
        yield mock


def test_connecting_registers_the_receiver_under_a_new_secret(http):
    token = http.post(f"{API_URL}/oauth/token", json={"access_token": "t", "expires_in": 3600})
    register = http.post(
        f"{API_URL}/webhooks", status=201, json={"id": "wh-1", "url": RECEIVER, "secret": "echo"}
    )

    result = crm_account_connect(options=OPTIONS, receiver_url=RECEIVER)

    sent = json.loads(register.calls[0].request.body)
    assert sent["url"] == RECEIVER
    assert sent["events"] == [
        "work_order.scheduled",
        "work_order.started",
        "work_order.completed",
        "invoice.paid",
    ]
    assert len(sent["secret"]) >= 40
    assert result["webhook_secret"] == sent["secret"]
    assert result["webhook"] == {"id": "wh-1", "url": RECEIVER}
    assert token.call_count == 1


def test_each_connection_gets_its_own_secret(http):
    http.post(f"{API_URL}/oauth/token", json={"access_token": "t", "expires_in": 3600})
    http.post(f"{API_URL}/webhooks", status=201, json={"id": "wh-1"})

    first = crm_account_connect(options=OPTIONS, receiver_url=RECEIVER)
    second = crm_account_connect(options=OPTIONS, receiver_url=RECEIVER)

    assert first["webhook_secret"] != second["webhook_secret"]


def test_refused_credentials_register_nothing(http):
    http.post(f"{API_URL}/oauth/token", status=401, json={"error": "invalid_client"})

    with pytest.raises(PermanentProviderError, match="refused the credentials"):
        crm_account_connect(options=OPTIONS, receiver_url=RECEIVER)


def test_an_account_without_credentials_is_not_configured():
    with pytest.raises(ProviderNotConfigured):
        crm_account_connect(options={"api_url": API_URL}, receiver_url=RECEIVER)
