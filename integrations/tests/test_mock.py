"""The mock field-service system: idempotent creates from provider-neutral work, injected
failures, completion with revenue, cancellation."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.mock import MockProvider
from integrations.models import MockJob
from integrations.providers import (
    Address,
    Customer,
    PermanentProviderError,
    ProviderAccount,
    ProviderJobStatus,
    RetryableProviderError,
    Work,
)
from integrations.tests.factories import MockJobFactory

pytestmark = pytest.mark.django_db


def mock(**options) -> MockProvider:
    return MockProvider(
        ProviderAccount(
            company_id=uuid.uuid4(), company_name="Acme", provider_type="mock", settings=options
        )
    )


def work(key: str = "routing-1") -> Work:
    return Work(
        idempotency_key=key,
        summary="Fix leaky kitchen faucet",
        customer=Customer(name="Jane Smith", phone="(555) 987-6543"),
        address=Address(street="456 Oak Avenue", city="Springfield", state="IL", zip_code="62701"),
    )


def test_a_create_is_idempotent_on_the_work_key():
    provider = mock()

    first = provider.create_job(work=work(), timeout=5)
    again = provider.create_job(work=work(), timeout=5)

    assert first == again and first.startswith("MOCK-")
    job = MockJob.objects.get()
    assert (job.idempotency_key, job.summary, job.create_calls) == (
        "routing-1",
        "Fix leaky kitchen faucet",
        2,
    )


def test_fail_first_refuses_each_keys_first_calls_then_takes_the_job():
    provider = mock(fail_first=2, failure="timeout")

    for _ in range(2):
        with pytest.raises(RetryableProviderError):
            provider.create_job(work=work(), timeout=5)
    external_id = provider.create_job(work=work(), timeout=5)

    assert MockJob.objects.get().external_id == external_id


@pytest.mark.parametrize(
    ("failure", "error"),
    [("validation", PermanentProviderError), ("rate_limited", RetryableProviderError)],
)
def test_injected_failures_raise_their_error_class(failure, error):
    with pytest.raises(error) as raised:
        mock(failure_rate=1, failure=failure, retry_after=7).create_job(work=work(), timeout=5)

    assert raised.value.retry_after == (7 if failure == "rate_limited" else None)


def test_a_job_reports_itself_completed_with_revenue_after_its_delay():
    external_id = mock().create_job(work=work(), timeout=5)
    created_at = timezone.now() - timedelta(seconds=61)
    MockJob.objects.update(created_at=created_at)

    early = mock(complete_after_seconds=120).get_job_status(external_id=external_id, timeout=5)
    done = mock(complete_after_seconds=60).get_job_status(external_id=external_id, timeout=5)

    assert early.status == ProviderJobStatus.OPEN
    assert done.status == ProviderJobStatus.COMPLETED
    assert 150 <= done.revenue <= 2500
    # Completed when its delay ran out, not when it was asked.
    assert done.completed_at == created_at + timedelta(seconds=60)
    job = MockJob.objects.get()
    assert (job.status, job.completed_at, job.revenue) == (
        "completed",
        done.completed_at,
        done.revenue,
    )


def test_a_batch_is_answered_in_one_query_leaving_out_unknown_jobs(django_assert_num_queries):
    jobs = MockJobFactory.create_batch(3)

    with django_assert_num_queries(1):
        statuses = mock().get_job_statuses(
            external_ids=[job.external_id for job in jobs] + ["MOCK-NOPE"], timeout=5
        )

    assert set(statuses) == {job.external_id for job in jobs}
    assert {status.status for status in statuses.values()} == {ProviderJobStatus.OPEN}


def test_a_batchs_completions_are_recorded_in_one_update(django_assert_num_queries):
    now = timezone.now()
    due = MockJobFactory.create_batch(2, created_at=now - timedelta(seconds=90))
    young = MockJobFactory(created_at=now)
    cancelled = MockJobFactory(
        created_at=now - timedelta(seconds=90), status=MockJob.Status.CANCELLED
    )
    jobs = [*due, young, cancelled]

    with django_assert_num_queries(2):
        statuses = mock(complete_after_seconds=60).get_job_statuses(
            external_ids=[job.external_id for job in jobs], timeout=5
        )

    assert [statuses[job.external_id].status for job in jobs] == [
        ProviderJobStatus.COMPLETED,
        ProviderJobStatus.COMPLETED,
        ProviderJobStatus.OPEN,
        ProviderJobStatus.CANCELLED,
    ]
    for job in due:
        job.refresh_from_db()
        assert job.status == MockJob.Status.COMPLETED
        assert job.completed_at == job.created_at + timedelta(seconds=60)
        assert job.revenue == statuses[job.external_id].revenue
    young.refresh_from_db()
    cancelled.refresh_from_db()
    assert (young.status, cancelled.status) == (MockJob.Status.OPEN, MockJob.Status.CANCELLED)


def test_an_unknown_job_is_a_permanent_error():
    with pytest.raises(PermanentProviderError, match="404"):
        mock().get_job_status(external_id="MOCK-NOPE", timeout=5)


def test_a_cancelled_job_keeps_its_reason():
    job = MockJobFactory()

    mock().cancel_job(external_id=job.external_id, reason="Homeowner changed their mind", timeout=5)

    job.refresh_from_db()
    assert (job.status, job.cancel_reason) == (
        MockJob.Status.CANCELLED,
        "Homeowner changed their mind",
    )


def test_a_cancelled_job_is_reported_with_its_reason_and_an_open_one_without():
    cancelled, open_job = MockJobFactory(), MockJobFactory()
    mock().cancel_job(external_id=cancelled.external_id, reason="Outside our area", timeout=5)

    statuses = mock().get_job_statuses(
        external_ids=[cancelled.external_id, open_job.external_id], timeout=5
    )

    assert (statuses[cancelled.external_id].status, statuses[cancelled.external_id].reason) == (
        "cancelled",
        "Outside our area",
    )
    assert (statuses[open_job.external_id].status, statuses[open_job.external_id].reason) == (
        "open",
        "",
    )
