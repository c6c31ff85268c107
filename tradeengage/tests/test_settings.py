"""The settings helpers: what an environment gives. Settings load once per process, so the
helpers are called here with the environment each test sets."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobs.management.commands.seed_demo import demo_provider
from tradeengage.settings import env_credentials, servicetitan_simulator_settings

SIMULATOR_VARIABLES = ["SERVICETITAN_SIMULATOR_ENABLED", "SERVICETITAN_SIMULATOR_CLIENTS"]


@pytest.fixture
def environ(monkeypatch):
    for name in SIMULATOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_simulator_is_on_for_the_demo_client_when_debug_is_on(environ):
    enabled, clients = servicetitan_simulator_settings(debug=True)

    assert enabled is True
    # The demo's Phoenix Garage Doors, whose real ServiceTitan client talks to the simulator.
    phoenix = {}
    for part in demo_provider("garage_doors", "Phoenix")[1:]:
        phoenix.update(part)
    assert clients == {phoenix["client_id"]: phoenix["client_secret"]}


def test_simulator_is_off_and_accepts_nobody_when_debug_is_off(environ):
    assert servicetitan_simulator_settings(debug=False) == (False, {})


def test_simulator_settings_come_from_the_environment(environ):
    environ.setenv("SERVICETITAN_SIMULATOR_ENABLED", "true")
    environ.setenv("SERVICETITAN_SIMULATOR_CLIENTS", "bench:bench-secret, partner:p4ss:word")

    enabled, clients = servicetitan_simulator_settings(debug=False)

    assert enabled is True
    assert clients == {"bench": "bench-secret", "partner": "p4ss:word"}


def test_simulator_can_be_off_and_accept_nobody_with_debug_on(environ):
    environ.setenv("SERVICETITAN_SIMULATOR_ENABLED", "false")
    environ.setenv("SERVICETITAN_SIMULATOR_CLIENTS", "")

    assert servicetitan_simulator_settings(debug=True) == (False, {})


@pytest.mark.parametrize("value", ["hunter2", ":hunter2", "bench:", "bench:hunter2,hunter2", " : "])
def test_malformed_credentials_fail_loudly_without_echoing_a_secret(monkeypatch, value):
    monkeypatch.setenv("CREDENTIALS", value)

    with pytest.raises(ImproperlyConfigured) as raised:
        env_credentials("CREDENTIALS", {})

    assert "hunter2" not in str(raised.value)


def test_credentials_given_twice_fail_loudly(monkeypatch):
    monkeypatch.setenv("CREDENTIALS", "bench:one,bench:two")

    with pytest.raises(ImproperlyConfigured, match="'bench' is given twice"):
        env_credentials("CREDENTIALS", {})
