"""The admin's login is throttled (django-axes): AXES_FAILURE_LIMIT failures for one username from
one address lock that pair out for AXES_COOLOFF_TIME, the right password included."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.http import HttpRequest
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
PASSWORD = "a-long-password"


@pytest.fixture(autouse=True)
def _throttling(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    # Dozens of logins per test: a fast hasher keeps them quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def log_in(client, password: str, username: str = "ops", address: str = "203.0.113.7"):
    return client.post(
        LOGIN_URL,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def fail(client, times: int, **kwargs):
    return [log_in(client, "not-the-password", **kwargs) for _ in range(times)]


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_a_login_before_the_limit_works(client, staff):
    for response in fail(client, 4):
        assert response.status_code == 200  # the login form again, with its error

    response = log_in(client, PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert logged_in(client)


def test_failed_logins_up_to_the_limit_lock_out_even_the_right_password(client, staff):
    responses = fail(client, 5)

    assert [response.status_code for response in responses] == [200, 200, 200, 200, 429]
    response = log_in(client, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)


def test_the_lockout_page_says_why_and_for_how_long(client, staff):
    fail(client, 5)

    response = log_in(client, PASSWORD)

    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "Logins as “ops” from your address are locked after 5 failed attempts" in page
    assert "Try again 15 minutes after your last attempt." in page


def time_passes(duration: timedelta) -> None:
    """The recorded attempts grow older, as if the clock moved on."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - duration)


def test_a_lockout_expires_after_the_cool_off(client, staff):
    fail(client, 5)
    time_passes(timedelta(minutes=14, seconds=59))
    assert log_in(client, PASSWORD).status_code == 429

    # The cool-off counts from the last attempt: that refused login included.
    time_passes(timedelta(minutes=15, seconds=1))

    response = log_in(client, PASSWORD)
    assert response.status_code == 302
    assert logged_in(client)


def test_a_successful_login_starts_the_count_again(client, staff):
    fail(client, 4)
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()

    assert [response.status_code for response in fail(client, 4)] == [200] * 4
    assert log_in(client, PASSWORD).status_code == 302


def test_lockout_holds_one_username_from_one_address(client, staff, django_user_model):
    django_user_model.objects.create_superuser("lead", "lead@example.com", PASSWORD)
    fail(client, 5)

    assert log_in(client, PASSWORD, username="lead").status_code == 302
    client.logout()
    assert log_in(client, PASSWORD, address="198.51.100.9").status_code == 302


def test_failed_logins_are_listed_in_the_admin(client, ops_client):
    fail(client, 5, username="mallory")

    response = ops_client.get("/admin/axes/accessattempt/")

    assert response.status_code == 200
    assert "mallory" in response.content.decode()
    attempt = AccessAttempt.objects.get(username="mallory")
    assert (attempt.ip_address, attempt.failures_since_start) == ("203.0.113.7", 5)


def test_deleting_the_attempt_in_the_admin_unlocks_the_login(client, staff, django_user_model):
    fail(client, 5)
    lead = django_user_model.objects.create_superuser("lead", "lead@example.com", PASSWORD)
    ops_client = Client()
    ops_client.force_login(lead)
    attempt = AccessAttempt.objects.get(username="ops")

    response = ops_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert log_in(client, PASSWORD).status_code == 302


def test_only_staff_log_in_to_the_admin(client, django_user_model):
    django_user_model.objects.create_user("homeowner", "h@example.com", PASSWORD)

    response = log_in(client, PASSWORD, username="homeowner")

    assert response.status_code == 200
    assert "Please enter the correct username and password for a staff account" in (
        response.content.decode()
    )
    assert not logged_in(client)


def test_the_test_clients_login_works_given_a_request(client, staff):
    assert client.login(request=HttpRequest(), username="ops", password=PASSWORD)
    assert logged_in(client)
