"""Unknown API paths answer 404 in their prefix's contract, whatever the method: never CSRF's
403 page, never HTML."""

from datetime import datetime

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture
def client():
    """A browser-like client: CSRF is checked, as it is for a real request."""
    return Client(enforce_csrf_checks=True)


def request(client, method: str, path: str):
    response = client.generic(method, path, "{}", content_type="application/json")
    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


@pytest.mark.parametrize("method", METHODS)
def test_an_unknown_v1_path_answers_in_the_v1_shape(client, method):
    body = request(client, method, "/api/v1/nope")

    assert set(body) == {"detail", "error_code", "timestamp"}
    assert (body["detail"], body["error_code"]) == ("No route for /api/v1/nope", "NOT_FOUND")
    datetime.fromisoformat(body["timestamp"])


@pytest.mark.parametrize("method", METHODS)
def test_an_unknown_servicetitan_path_answers_in_the_envelope(client, method):
    body = request(client, method, "/api/integrations/servicetitan/nope")

    assert body == {
        "success": False,
        "error": "Not Found",
        "message": "No route for /api/integrations/servicetitan/nope",
        "details": [],
    }


@pytest.mark.parametrize("method", METHODS)
def test_any_other_unknown_api_path_answers_with_a_detail(client, method):
    assert request(client, method, "/api/nope") == {"detail": "No route for /api/nope"}


def test_an_unknown_path_outside_the_api_answers_in_the_v1_shape(client):
    response = client.get("/nope")

    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"
