"""The retry policies (``routing.retry``): a routing's push to its provider (seconds, a
Retry-After honoured up to a cap) and a client's processing run (hours, no Retry-After), both
read from settings when asked."""

import pytest

from routing.retry import CLIENT_PROCESSING_RETRY, PROVIDER_CALL_RETRY, RetryPolicy

# Provider calls


@pytest.mark.parametrize(
    ("retries_so_far", "retry_after", "expected"),
    [(0, None, 5), (1, None, 10), (2, None, 20), (3, None, None), (0, 60, 60), (2, 3, 20)],
)
def test_retry_delay_follows_the_backoff_schedule_and_honours_retry_after(
    retries_so_far, retry_after, expected
):
    assert (
        PROVIDER_CALL_RETRY.delay(retries_so_far=retries_so_far, retry_after=retry_after)
        == expected
    )


def test_retry_after_is_capped(settings):
    settings.SYNC_MAX_RETRY_AFTER_SECONDS = 120
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=0, retry_after=86400) == 120


def test_the_backoff_schedule_is_a_setting(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = [1.0]
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=0) == 1.0
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=1) is None


def test_a_retry_after_shorter_than_the_schedule_keeps_the_schedule(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = [30.0]

    assert PROVIDER_CALL_RETRY.delay(retries_so_far=0, retry_after=5) == 30.0


def test_a_retry_after_does_not_add_a_retry_after_the_last(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = [5.0, 10.0]

    assert PROVIDER_CALL_RETRY.delay(retries_so_far=2, retry_after=60) is None


def test_the_cap_on_a_retry_after_is_read_when_asked(settings):
    settings.SYNC_MAX_RETRY_AFTER_SECONDS = 30
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=0, retry_after=90) == 30

    settings.SYNC_MAX_RETRY_AFTER_SECONDS = 3600
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=0, retry_after=90) == 90


def test_provider_call_retries_are_as_many_as_the_schedule_lists(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = [1.0, 2.0, 4.0, 8.0]

    assert PROVIDER_CALL_RETRY.retries == 4
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=3) == 8.0
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=4) is None


# Client processing


@pytest.mark.parametrize(
    ("failed", "hours"), [(1, 1), (2, 2), (3, 4), (4, None)], ids=["1st", "2nd", "3rd", "4th"]
)
def test_retry_delays(failed, hours):
    expected = hours * 3600.0 if hours else None
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=failed - 1) == expected


def test_the_client_processing_schedule_is_a_setting_in_hours(settings):
    settings.PROCESSING_RETRY_BACKOFF_HOURS = [0.5, 3]

    assert CLIENT_PROCESSING_RETRY.retries == 2
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=0) == 1800.0
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=1) == 10800.0
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=2) is None


@pytest.mark.parametrize("retry_after", [60, 86400, 0, None])
def test_client_processing_ignores_a_retry_after(retry_after):
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=1, retry_after=retry_after) == 7200.0


def test_client_processing_retries_end_whatever_the_retry_after():
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=3, retry_after=60) is None


# A policy of its own


def test_a_policy_without_a_cap_setting_ignores_a_retry_after(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = [5.0]
    policy = RetryPolicy(schedule_setting="SYNC_RETRY_BACKOFF_SECONDS")

    assert policy.delay(retries_so_far=0, retry_after=60) == 5.0


def test_an_empty_schedule_gives_no_retry(settings):
    settings.SYNC_RETRY_BACKOFF_SECONDS = []

    assert PROVIDER_CALL_RETRY.retries == 0
    assert PROVIDER_CALL_RETRY.delay(retries_so_far=0, retry_after=60) is None
