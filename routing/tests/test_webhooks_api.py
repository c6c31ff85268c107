"""The webhook endpoints' API (/api/v1/webhooks): registration with a secret shown once, reads,
changes, deletion, rotation, test deliveries and the delivery list, in seed 000's shapes. Who
may do what to whose endpoint is also in access/tests/test_tenant_matrix.py."""

import uuid

import pytest
from rest_framework.test import APIClient

from jobs.tests.factories import CompanyFactory
from routing.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from routing.tests.factories import WebhookDeliveryFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/webhooks"


@pytest.fixture
def company():
    return CompanyFactory()


@pytest.fixture
def company_client(company, company_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(company))
    return client


def body(**fields):
    return {"url": "https://hooks.example.com/in", "events": ["job.created"], **fields}


def test_registering_an_endpoint_shows_its_secret_once(company_client, company):
    response = company_client.post(URL, body(description="CRM"), format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["company_id"] == str(company.id)
    assert (created["url"], created["events"], created["description"]) == (
        "https://hooks.example.com/in",
        ["job.created"],
        "CRM",
    )
    assert created["enabled"] is True
    endpoint = WebhookEndpoint.objects.get(id=created["id"])
    assert endpoint.secrets["secret"] == created["secret"]
    for path in (URL, f"{URL}/{endpoint.id}"):
        assert created["secret"] not in company_client.get(path).content.decode()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "http://hooks.example.com/in"}, "url"),
        ({"url": "https://127.0.0.1/in"}, "url"),
        ({"url": "https://10.0.0.1/in"}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "https://[::1]/in"}, "url"),
        ({"url": "https://intranet.example.com/in"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["job.teleported"]}, "events.0"),
        ({"events": ["webhook.test"]}, "events.0"),
        ({"description": "x" * 501}, "description"),
    ],
)
def test_malformed_or_unsafe_registrations_are_422_with_a_field_error(
    company_client, resolver, fields, field, settings
):
    settings.WEBHOOK_ALLOW_HTTP = False
    resolver["intranet.example.com"] = ["192.168.1.20"]

    response = company_client.post(URL, body(**fields), format="json")

    assert response.status_code == 422, response.content
    problem = response.json()
    assert problem["error_code"] == "VALIDATION_ERROR"
    assert field in {error["field"] for error in problem["errors"]}
    assert not WebhookEndpoint.objects.exists()


def test_a_private_address_is_accepted_where_the_setting_allows_it(company_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_ALLOW_HTTP = True

    response = company_client.post(URL, body(url="http://127.0.0.1:9000/"), format="json")

    assert response.status_code == 201, response.content


def test_an_ops_key_registers_only_for_a_named_company(api_client, company):
    assert api_client.post(URL, body(), format="json").status_code == 422

    response = api_client.post(URL, body(company_id=str(company.id)), format="json")

    assert response.status_code == 201
    assert response.json()["company_id"] == str(company.id)


def test_an_unknown_company_is_400(api_client):
    response = api_client.post(URL, body(company_id=str(uuid.uuid4())), format="json")

    assert response.status_code == 400


def test_a_company_key_naming_another_company_is_403(company_client):
    other = CompanyFactory()

    response = company_client.post(URL, body(company_id=str(other.id)), format="json")

    assert response.status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_no_key_is_401_and_a_key_without_the_webhooks_scope_403(company, company_key):
    assert APIClient().get(URL).status_code == 401
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(company, scopes=["jobs:read"]))

    assert client.get(URL).status_code == 403
    assert client.post(URL, body(), format="json").status_code == 403


def test_listing_shows_the_callers_endpoints_and_ops_every_one(company_client, company, api_client):
    mine = WebhookEndpointFactory(company=company)
    theirs = WebhookEndpointFactory()

    assert [e["id"] for e in company_client.get(URL).json()] == [str(mine.id)]
    assert {e["id"] for e in api_client.get(URL).json()} == {str(mine.id), str(theirs.id)}


def test_another_companys_or_an_unknown_endpoint_is_404(company_client):
    theirs = WebhookEndpointFactory()

    for endpoint_id in (theirs.id, uuid.uuid4(), "not-a-uuid"):
        assert company_client.get(f"{URL}/{endpoint_id}").status_code == 404
        assert company_client.patch(f"{URL}/{endpoint_id}", {}, format="json").status_code == 404
        assert company_client.delete(f"{URL}/{endpoint_id}").status_code == 404
        assert company_client.post(f"{URL}/{endpoint_id}/rotate-secret").status_code == 404
        assert company_client.post(f"{URL}/{endpoint_id}/test").status_code == 404
        assert company_client.get(f"{URL}/{endpoint_id}/deliveries").status_code == 404
    assert WebhookEndpoint.objects.filter(id=theirs.id).exists()


def test_changing_an_endpoint(company_client, company):
    endpoint = WebhookEndpointFactory(company=company)

    response = company_client.patch(
        f"{URL}/{endpoint.id}",
        {"events": ["job.completed", "job.completed"], "description": "new", "enabled": False},
        format="json",
    )

    assert response.status_code == 200, response.content
    changed = response.json()
    assert (changed["events"], changed["description"], changed["enabled"]) == (
        ["job.completed"],
        "new",
        False,
    )
    assert changed["disabled_at"] is not None
    response = company_client.patch(f"{URL}/{endpoint.id}", {"enabled": True}, format="json")
    assert (response.json()["enabled"], response.json()["disabled_at"]) == (True, None)


def test_a_changed_url_is_checked_as_at_registration(company_client, company):
    endpoint = WebhookEndpointFactory(company=company)

    response = company_client.patch(
        f"{URL}/{endpoint.id}", {"url": "https://127.0.0.1/"}, format="json"
    )

    assert response.status_code == 422
    assert WebhookEndpoint.objects.get(id=endpoint.id).url == endpoint.url


def test_deleting_an_endpoint_deletes_its_deliveries(company_client, company):
    endpoint = WebhookEndpointFactory(company=company)
    WebhookDeliveryFactory(endpoint=endpoint)

    assert company_client.delete(f"{URL}/{endpoint.id}").status_code == 204

    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_rotating_the_secret_shows_the_new_one_once(company_client, company):
    endpoint = WebhookEndpointFactory(company=company)
    old = endpoint.secrets["secret"]

    response = company_client.post(f"{URL}/{endpoint.id}/rotate-secret")

    assert response.status_code == 200, response.content
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != old
    assert rotated["previous_secret_expires_at"]
    endpoint.refresh_from_db()
    assert endpoint.secrets == {"secret": rotated["secret"], "previous_secret": old}


def test_a_test_delivery_is_queued_through_the_outbox(company_client, company):
    endpoint = WebhookEndpointFactory(company=company, events=["job.created"])

    response = company_client.post(f"{URL}/{endpoint.id}/test")

    assert response.status_code == 202, response.content
    delivery = response.json()
    assert (delivery["event"], delivery["status"]) == ("webhook.test", "pending")
    assert delivery["payload"]["type"] == "webhook.test"
    assert OutboxEvent.objects.get(aggregate_id=delivery["id"]).event_type == "webhook_delivery"


def test_testing_a_disabled_endpoint_is_400(company_client, company):
    endpoint = WebhookEndpointFactory(company=company, enabled=False)

    assert company_client.post(f"{URL}/{endpoint.id}/test").status_code == 400


def test_deliveries_are_listed_newest_first_and_paged(company_client, company, clock):
    endpoint = WebhookEndpointFactory(company=company)
    deliveries = []
    for _ in range(3):
        clock.advance(1)
        deliveries.append(WebhookDeliveryFactory(endpoint=endpoint, created_at=clock.now))
    WebhookDeliveryFactory()  # another endpoint's

    listed = company_client.get(f"{URL}/{endpoint.id}/deliveries?limit=2").json()
    rest = company_client.get(f"{URL}/{endpoint.id}/deliveries?skip=2").json()

    assert [d["id"] for d in listed + rest] == [str(d.id) for d in reversed(deliveries)]
    assert company_client.get(f"{URL}/{endpoint.id}/deliveries?limit=0").status_code == 422


def test_listing_deliveries_costs_a_fixed_number_of_queries(
    company_client, company, django_assert_max_num_queries
):
    endpoint = WebhookEndpointFactory(company=company)
    for _ in range(10):
        WebhookDeliveryFactory(endpoint=endpoint)
    company_client.get(URL)  # the key's last use is recorded once a minute

    # The API key, the endpoint, the deliveries and their attempts.
    with django_assert_max_num_queries(4):
        assert len(company_client.get(f"{URL}/{endpoint.id}/deliveries").json()) == 10
