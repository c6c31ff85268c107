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


def test_a_kick_that_could_not_be_sent_leaves_the_window_open_for_the_next(db, clock, monkeypatch):
    sent = []

    def broker_down(**kwargs):
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(relay_outbox, "apply_async", broker_down)
    with pytest.raises(ConnectionRefusedError):
        outbox.outbox_relay_kick()

    monkeypatch.setattr(relay_outbox, "apply_async", lambda **kwargs: sent.append(kwargs))
    outbox.outbox_relay_kick()

    assert sent == [{"countdown": 1.0}]


def test_the_window_length_is_a_setting(db, clock, published, settings):
    settings.OUTBOX_KICK_WINDOW_SECONDS = 3.0

    outbox.outbox_relay_kick()
    clock.now += 2.0
    outbox.outbox_relay_kick()

    assert published == [{"countdown": 3.0}]
