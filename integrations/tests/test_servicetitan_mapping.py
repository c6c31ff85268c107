"""Our bookings as ServiceTitan's request bodies, and its bookings and jobs as ours."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integrations.providers import PermanentProviderError
from integrations.servicetitan.mapping import (
    BookingMapping,
    booking_mapping,
    booking_request,
    cancel_reason_text,
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
        "customerType": "Residential",
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
    [
        ("New", "scheduled"),
        ("Accepted", "scheduled"),
        ("Converted", "scheduled"),
        ("Dismissed", "cancelled"),
    ],
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
    assert job.is_booking
    assert job.cancel_reason == (
        "Booking dismissed in ServiceTitan" if status == "cancelled" else ""
    )


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


# A company's mapping


def mapped(**options):
    return booking_mapping(options)


@pytest.mark.parametrize(
    ("zip_code", "business_unit"),
    [("62701", 43), ("62799", 42), ("60601", 44), ("10001", 44)],
)
def test_the_longest_matching_zip_prefix_wins_over_the_trade(zip_code, business_unit):
    mapping = mapped(
        business_units_by_zip={"627": 42, "6270": 43, "606": 44},
        business_units_by_trade={"plumbing": 44},
        business_unit_id=41,
    )

    assert mapping.business_unit_for(BookingFactory(zip=zip_code, category="plumbing")) == (
        business_unit
    )


def test_the_business_unit_is_the_categorys_then_the_first_mapped_trades_then_the_default():
    mapping = mapped(business_units_by_trade={"plumbing": 44, "hvac": 45}, business_unit_id=41)

    assert mapping.business_unit_for(BookingFactory(category="hvac", trades=("plumbing",))) == 45
    assert (
        mapping.business_unit_for(BookingFactory(category="", trades=("roofing", "plumbing"))) == 44
    )
    assert mapping.business_unit_for(BookingFactory(category="roofing")) == 41
    assert mapped().business_unit_for(BookingFactory()) is None


def test_the_job_type_is_the_problem_types_then_the_categorys_then_the_default():
    mapping = mapped(
        job_types_by_category={"broken_spring": 63, "garage_doors": 62}, job_type_id=61
    )

    spring = BookingFactory(problem_type="broken_spring", category="garage_doors")
    opener = BookingFactory(problem_type="opener_repair", category="garage_doors")
    assert mapping.job_type_for(spring) == 63
    assert mapping.job_type_for(opener) == 62
    assert mapping.job_type_for(BookingFactory(category="plumbing")) == 61


@pytest.mark.parametrize(
    ("summary", "priority"),
    [
        ("Basement flooded overnight", "Urgent"),
        ("Smell of a GAS LEAK in the kitchen", "Urgent"),
        ("Moving to Vegas, fix the faucet", "High"),
        ("Leaky faucet", "High"),
    ],
)
def test_urgent_keywords_beat_the_categorys_priority(summary, priority):
    mapping = mapped(
        urgent_keywords=["flood", "gas leak", "gas"], priority_by_category={"plumbing": "High"}
    )

    body = booking_request(BookingFactory(summary=summary, category="plumbing"), mapping=mapping)

    assert body["priority"] == priority


def test_without_a_rule_the_priority_is_the_problem_types():
    mapping = mapped(priority_by_category={"hvac": "Urgent"})

    assert booking_request(BookingFactory(category="plumbing"), mapping=mapping)["priority"] == (
        "Normal"
    )
    assert booking_request(BookingFactory(problem_type="broken_spring"))["priority"] == "High"


def test_configured_ids_are_sent_as_integers_and_unset_ones_are_left_out():
    body = booking_request(
        BookingFactory(category="plumbing"),
        mapping=mapped(campaign_id="31", job_types_by_category={"plumbing": 62}),
    )

    assert (body["campaignId"], body["jobTypeId"]) == (31, 62)
    assert "businessUnitId" not in body


def test_the_customer_type_is_always_sent():
    assert booking_request(BookingFactory())["customerType"] == "Residential"
    commercial = booking_request(BookingFactory(), mapping=mapped(customer_type="Commercial"))
    assert commercial["customerType"] == "Commercial"


def test_a_booking_without_a_booking_id_is_refused():
    with pytest.raises(PermanentProviderError) as raised:
        booking_request(BookingFactory(booking_id=""))

    assert raised.value.code == "Validation Error"
    assert raised.value.details[0]["field"] == "booking_id"


def test_empty_settings_are_the_default_mapping():
    assert mapped(campaign_id="", business_unit_id=None, urgent_keywords=[]) == BookingMapping()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"campaign_id": "Google Ads"}, "campaign_id"),
        ({"campaign_id": 0}, "campaign_id"),
        ({"business_unit_id": True}, "business_unit_id"),
        ({"job_type_id": 6.5}, "job_type_id"),
        ({"business_units_by_zip": {"62a": 42}}, "business_units_by_zip"),
        ({"business_units_by_zip": {"627": "north"}}, "business_units_by_zip"),
        ({"business_units_by_zip": [42]}, "business_units_by_zip"),
        ({"business_units_by_trade": {"plumbing": -1}}, "business_units_by_trade"),
        ({"job_types_by_category": {"plumbing": None}}, "job_types_by_category"),
        ({"priority_by_category": {"plumbing": "ASAP"}}, "priority_by_category"),
        ({"priority_by_category": "High"}, "priority_by_category"),
        ({"urgent_keywords": "flood"}, "urgent_keywords"),
        ({"urgent_keywords": ["flood", ""]}, "urgent_keywords"),
        ({"customer_type": "residential"}, "customer_type"),
    ],
)
def test_invalid_settings_are_a_configuration_error_naming_the_setting(options, field):
    with pytest.raises(PermanentProviderError) as raised:
        booking_mapping(options)

    assert raised.value.code == "Configuration Error"
    assert [detail["field"] for detail in raised.value.details] == [field]
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("record", "text"),
    [
        (
            {"jobId": 1, "reasonId": 2, "name": "Duplicate", "text": "Booked twice"},
            "Duplicate: Booked twice",
        ),
        ({"jobId": 1, "reasonId": 2, "name": "Duplicate", "text": ""}, "Duplicate"),
        (None, "Job canceled in ServiceTitan"),
    ],
)
def test_a_cancel_reason_is_its_name_and_text(record, text):
    assert cancel_reason_text(record) == text
