from datetime import timedelta

import pytest
from django.utils import timezone


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    """``django.utils.timezone.now`` under the test's control: ``clock.advance(seconds)``."""
    # A second ahead of the real clock, which model defaults such as available_at still read.
    clock = Clock(timezone.now() + timedelta(seconds=1))
    monkeypatch.setattr(timezone, "now", clock)
    return clock
