import pytest
from django.core.cache import cache

from routing import outbox
from routing.tasks import relay_outbox


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def time(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(outbox, "time", clock)
    return clock


@pytest.fixture
def published(monkeypatch):
    """Record scheduled relay runs instead of sending them."""
    calls = []
    monkeypatch.setattr(relay_outbox, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


def test_kicks_within_a_window_schedule_one_relay_run_at_its_end(db, clock, published):
    outbox.outbox_relay_kick()
    clock.now += 0.5
    outbox.outbox_relay_kick()
    outbox.outbox_relay_kick()

    assert published == [{"countdown": 1.0}]


def test_a_kick_after_the_window_schedules_the_next_run(db, clock, published):
    outbox.outbox_relay_kick()
    clock.now += 1.0
    cache.delete(outbox.RELAY_KICK_KEY)  # the cache entry expires with the window

    outbox.outbox_relay_kick()

    assert published == [{"countdown": 1.0}, {"countdown": 1.0}]


def test_another_process_in_the_same_window_sends_nothing(db, clock, published):
    outbox.outbox_relay_kick()
    outbox.outbox_relay_kick_forget()  # a second process: no local memory of the window
    clock.now += 0.2

    outbox.outbox_relay_kick()

    assert published == [{"countdown": 1.0}]


class UnreachableCache:
    def get_or_set(self, *args, **kwargs):
        pytest.fail("the cache was read inside a known window")


def test_a_process_skips_the_cache_while_it_knows_the_window(db, clock, published, monkeypatch):
    outbox.outbox_relay_kick()
    monkeypatch.setattr(outbox, "cache", UnreachableCache())
    clock.now += 0.5

    outbox.outbox_relay_kick()

    assert published == [{"countdown": 1.0}]


def test_kicks_lost_to_a_broker_outage_log_one_warning_and_the_next_kick_sends(
    db, clock, monkeypatch, caplog
):
    sent = []

    def broker_down(**kwargs):
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(relay_outbox, "apply_async", broker_down)
    for _ in range(50):  # a burst of jobs during the outage: none of them fails
        outbox.outbox_relay_kick()

    lost = [r for r in caplog.records if "kick lost" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in lost] == [("WARNING", None)]
    assert "ConnectionRefusedError: broker unreachable" in lost[0].getMessage()
    monkeypatch.setattr(relay_outbox, "apply_async", lambda **kwargs: sent.append(kwargs))
    outbox.outbox_relay_kick()
    assert sent == [{"countdown": 1.0}]


def test_a_kick_lost_to_a_cache_outage_does_not_fail_the_commit(db, clock, published, monkeypatch):
    class CacheDown:
        def get_or_set(self, *args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(outbox, "cache", CacheDown())

    outbox.outbox_relay_kick()

    assert published == []


def test_the_window_length_is_a_setting(db, clock, published, settings):
    settings.OUTBOX_KICK_WINDOW_SECONDS = 3.0

    outbox.outbox_relay_kick()
    clock.now += 2.0
    outbox.outbox_relay_kick()

    assert published == [{"countdown": 3.0}]
