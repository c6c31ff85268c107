"""Our bookings as ServiceTitan's request bodies, and its bookings and jobs as ours."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integrations.providers import PermanentProviderError
from integrations.servicetitan.mapping import (
    booking_request,
    decimal_amount,
    job_from_booking,
    job_from_job,
    timestamp,
    timestamp_text,
)
from integrations.tests.factories import BookingFactory


def test_booking_request_is_servicetitans_booking():
    body = booking_request(
        BookingFactory(
            summary="Fix leaky kitchen faucet",
            scheduled_date=datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
        )
    )

    assert body == {
        "source": "TradeEngage",
        "name": "Jane Smith",
        "summary": "Fix leaky kitchen faucet",
        "isFirstTimeClient": True,
        "externalId": "routing-42",
        "address": {
            "street": "456 Oak Avenue",
            "city": "Springfield",
            "state": "IL",
            "zip": "62701",
            "country": "USA",
        },
        "contacts": [
            {"type": "Phone", "value": "5559876543"},
            {"type": "Email", "value": "jane.smith@email.com"},
        ],
        "priority": "Normal",
        "start": "2026-03-02T14:00:00Z",
    }


def test_booking_request_summarises_with_the_problem_type_and_omits_empty_contacts():
    body = booking_request(BookingFactory(problem_type="broken_spring", email="", summary=""))

    assert body["summary"] == "Garage door spring repair/replacement"
    assert body["priority"] == "High"
    assert body["contacts"] == [{"type": "Phone", "value": "5559876543"}]
    assert "start" not in body


def test_booking_request_with_an_unknown_problem_type_is_a_validation_error():
    with pytest.raises(PermanentProviderError) as raised:
        booking_request(BookingFactory(problem_type="time_travel"))

    assert raised.value.code == "Validation Error"
    assert raised.value.details == [
        {"field": "problem_type", "message": "Unknown problem type", "value": "time_travel"}
    ]


@pytest.mark.parametrize(
    ("booking_status", "status"),
    [("Pending", "scheduled"), ("Converted", "scheduled"), ("Dismissed", "cancelled")],
)
def test_a_booking_is_reported_as_its_own_job(booking_status, status):
    job = job_from_booking(
        {
            "id": 5001,
            "externalId": "routing-42",
            "status": booking_status,
            "name": "Jane Smith",
            "summary": "Fix leaky kitchen faucet",
            "address": {"street": "456 Oak Avenue"},
            "priority": "Urgent",
            "createdOn": "2026-03-01T09:30:00.1234567Z",
        }
    )

    assert (job.id, job.job_number, job.status) == (5001, "BOOKING-5001", status)
    assert (job.reference, job.booking_id) == ("5001", "routing-42")
    assert job.priority == ""
    assert job.customer == {"name": "Jane Smith"}
    assert job.location == {"address": {"street": "456 Oak Avenue"}}
    assert job.created_at == datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("job_status", "status"),
    [
        ("Scheduled", "scheduled"),
        ("InProgress", "in_progress"),
        ("Hold", "in_progress"),
        ("Completed", "completed"),
        ("Canceled", "cancelled"),
        ("SomethingNew", "scheduled"),
        (None, "scheduled"),
    ],
)
def test_job_statuses_map_to_ours(job_status, status):
    assert job_from_job({"id": 7001, "jobStatus": job_status}).status == status


def test_a_job_is_referenced_by_the_booking_it_came_from():
    job = job_from_job(
        {
            "id": 7001,
            "jobNumber": "70012",
            "jobStatus": "Completed",
            "completedOn": "2026-03-03T16:45:00",
            "priority": "Low",
            "businessUnitId": 12,
            "customerId": 301,
            "locationId": 401,
        },
        booking={"id": 5001, "externalId": "routing-42"},
    )

    assert (job.id, job.job_number, job.reference, job.booking_id) == (
        7001,
        "70012",
        "5001",
        "routing-42",
    )
    assert (job.priority, job.business_unit) == ("low", "12")
    assert (job.customer, job.location) == ({"id": 301}, {"id": 401})
    assert job.completed_at == datetime(2026, 3, 3, 16, 45, tzinfo=UTC)


def test_an_open_job_has_no_completion_time_whatever_it_says():
    job = job_from_job(
        {"id": 7001, "jobStatus": "InProgress", "completedOn": "2026-03-03T16:45:00Z"}
    )

    assert job.completed_at is None
    assert (job.job_number, job.reference, job.booking_id) == ("7001", "", "")


@pytest.mark.parametrize(
    ("convert", "kind"), [(job_from_booking, "booking"), (job_from_job, "job")]
)
def test_an_answer_without_an_id_is_an_invalid_response(convert, kind):
    with pytest.raises(PermanentProviderError) as raised:
        convert({"id": None, "jobStatus": "Scheduled"})

    assert raised.value.code == "Invalid Response"
    assert f"a {kind} without an id" in str(raised.value)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("2026-03-01T09:30:00.1234567Z", datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)),
        ("2026-03-01T09:30:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T10:30:00+01:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-02-30T09:30:00Z", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_timestamps_are_utc_and_unreadable_ones_are_none(value, parsed):
    assert timestamp(value) == parsed


def test_timestamps_are_sent_in_utc(settings):
    settings.TIME_ZONE = "America/Chicago"

    assert timestamp_text(datetime(2026, 3, 2, 8, 0)) == "2026-03-02T14:00:00Z"
    assert timestamp_text(datetime(2026, 3, 2, 14, 0, tzinfo=UTC)) == "2026-03-02T14:00:00Z"


def test_invoice_totals_are_exact_and_a_total_that_is_not_a_number_is_invalid():
    assert decimal_amount("123.45") + decimal_amount(10.1) == Decimal("133.55")

    with pytest.raises(PermanentProviderError) as raised:
        decimal_amount("12,50")

    assert raised.value.code == "Invalid Response"
