import pytest

from routing import services
from routing.tasks import relay_outbox


@pytest.fixture
def published(monkeypatch):
    """Record relay kicks instead of running them, as if no worker had picked them up yet."""
    calls = []
    monkeypatch.setattr(relay_outbox, "delay", lambda: calls.append("kick"))
    return calls


def test_kicks_coalesce_while_one_waits_for_its_relay_run(db, published):
    services.outbox_relay_kick()
    services.outbox_relay_kick()
    services.outbox_relay_kick()

    assert published == ["kick"]


def test_a_relay_run_lets_the_next_kick_through(db, published):
    services.outbox_relay_kick()
    relay_outbox()
    services.outbox_relay_kick()

    assert published == ["kick", "kick"]
