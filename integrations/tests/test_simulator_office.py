from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import SimulatedBooking, SimulatedCustomer, SimulatedJob
from integrations.servicetitan.simulator import office
from integrations.tests.factories import SimulatedBookingFactory, SimulatedJobFactory

pytestmark = pytest.mark.django_db

TENANT = "1234"


@pytest.fixture(autouse=True)
def _office_without_delays(settings):
    settings.SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS = None
    settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = None


def made_ago(row, age: timedelta):
    type(row).objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
    row.refresh_from_db()
    return row


# Converting.


def test_convert_makes_a_scheduled_job_with_the_bookings_ids_and_a_new_customer():
    booking = SimulatedBookingFactory(campaign_id=41, business_unit_id=51, job_type_id=60)

    job = office.booking_convert(booking)

    booking.refresh_from_db()
    assert (booking.status, booking.job) == (SimulatedBooking.Status.CONVERTED, job)
    assert job.status == SimulatedJob.Status.SCHEDULED
    assert job.tenant == TENANT
    assert (job.campaign_id, job.business_unit_id, job.job_type_id) == (41, 51, 60)
    assert job.business_unit == "Garage Doors"
    assert (job.first_name, job.last_name) == ("Mary", "Ann Smith")
    assert (job.street, job.city, job.state, job.zip) == ("12 Oak Street", "Austin", "TX", "78701")
    assert job.problem_type == "broken_spring"
    assert job.priority == "urgent"
    customer = SimulatedCustomer.objects.get()
    assert job.simulated_customer == customer
    assert job.customer_id == str(customer.customer_id)
    assert (customer.tenant, customer.name) == (TENANT, "Mary Ann Smith")
    assert (customer.phone, customer.email) == ("5125550100", "mary@example.com")
    assert (job.phone, job.email) == ("5125550100", "mary@example.com")
    assert (customer.street, customer.city, customer.state, customer.zip, customer.country) == (
        "12 Oak Street",
        "Austin",
        "TX",
        "78701",
        "USA",
    )


def test_convert_schedules_the_job_at_the_bookings_start():
    start = datetime(2025, 3, 4, 15, tzinfo=UTC)

    job = office.booking_convert(SimulatedBookingFactory(start=start))

    assert job.scheduled_date == start


def test_job_numbers_follow_job_ids():
    jobs = [office.booking_convert(SimulatedBookingFactory()) for _ in range(2)]

    assert [job.job_number for job in jobs] == [f"JOB-{job.job_id:06d}" for job in jobs]
    assert jobs[1].job_id == jobs[0].job_id + 1


def test_convert_finds_the_customer_by_the_digits_of_a_phone_or_mobile_phone():
    first = office.booking_convert(SimulatedBookingFactory())

    again = office.booking_convert(
        SimulatedBookingFactory(
            name="Mary Smith",
            contacts=[{"type": "MobilePhone", "value": "(512) 555-0100"}],
        )
    )

    assert again.simulated_customer == first.simulated_customer
    assert SimulatedCustomer.objects.count() == 1
    assert SimulatedCustomer.objects.get().name == "Mary Ann Smith"


def test_convert_does_not_take_another_tenants_customer():
    office.booking_convert(SimulatedBookingFactory(tenant="5678"))

    job = office.booking_convert(SimulatedBookingFactory())

    assert job.simulated_customer.tenant == TENANT
    assert SimulatedCustomer.objects.count() == 2


@pytest.mark.parametrize(
    "contacts",
    [
        [],
        [{"type": "Email", "value": "mary@example.com"}],
        [{"type": "Fax", "value": "5125550100"}],
    ],
    ids=["none", "email only", "fax only"],
)
def test_convert_without_a_phone_makes_a_new_customer_each_time(contacts):
    first = office.booking_convert(SimulatedBookingFactory(contacts=contacts))

    second = office.booking_convert(SimulatedBookingFactory(contacts=contacts))

    assert first.simulated_customer != second.simulated_customer
    assert first.simulated_customer.phone == ""


def test_a_booking_without_ids_lands_on_the_offices_fallbacks():
    job = office.booking_convert(SimulatedBookingFactory())

    assert (job.campaign_id, job.business_unit_id, job.job_type_id) == (42, 50, 69)
    assert job.business_unit == "Residential Service"
    assert office.name_of(office.JOB_TYPES, job.job_type_id) == "Unknown"


@pytest.mark.parametrize(
    ("priority", "summary", "ours"),
    [
        ("Low", "Garage door spring repair/replacement", "low"),
        ("Normal", "Garage door spring repair/replacement", "medium"),
        ("High", "Water heater leaking", "high"),
        ("", "Garage door spring repair/replacement", "high"),
        ("", "Water heater leaking", "low"),
    ],
)
def test_job_priority_is_the_bookings_or_else_the_problem_types(priority, summary, ours):
    job = office.booking_convert(SimulatedBookingFactory(priority=priority, summary=summary))

    assert job.priority == ours


def test_a_booking_without_an_address_converts_with_a_blank_one():
    job = office.booking_convert(SimulatedBookingFactory(address=None, name="Cher"))

    assert (job.street, job.city, job.zip) == ("", "", "")
    assert (job.first_name, job.last_name) == ("Cher", "")
    assert job.problem_type == "broken_spring"


@pytest.mark.parametrize(
    "status", [SimulatedBooking.Status.CONVERTED, SimulatedBooking.Status.DISMISSED]
)
def test_convert_refuses_a_booking_that_is_not_new(status):
    booking = SimulatedBookingFactory(status=status)

    with pytest.raises(office.OfficeRefused) as refused:
        office.booking_convert(booking)

    assert (refused.value.status, refused.value.title) == (409, "Conflict")
    assert not SimulatedJob.objects.exists()
    assert not SimulatedCustomer.objects.exists()


def test_convert_reads_the_booking_afresh_so_a_stale_copy_is_not_converted_twice():
    booking = SimulatedBookingFactory()
    stale = SimulatedBooking.objects.get(pk=booking.pk)
    office.booking_convert(booking)

    with pytest.raises(office.OfficeRefused):
        office.booking_convert(stale)

    assert SimulatedJob.objects.count() == 1


@pytest.mark.parametrize(
    ("summary", "problem_type"),
    [
        ("Garage door opener installation for a new door", "opener_installation"),
        ("garage door cable repair, left side", "broken_cable"),
        ("Roof repair after the storm", "roofing"),
        ("Something odd", "other"),
        ("", "other"),
    ],
)
def test_problem_type_is_the_one_whose_description_starts_the_summary(summary, problem_type):
    assert office.problem_type_for(summary) == problem_type


@pytest.mark.parametrize(
    ("value", "digits"),
    [("(512) 555-0100", "5125550100"), ("+1 512.555.0100", "15125550100"), ("", ""), (None, "")],
)
def test_phone_digits_keep_only_digits(value, digits):
    assert office.phone_digits(value) == digits


# Dismissing.


def test_dismiss_records_the_default_dismissing_reason():
    booking = SimulatedBookingFactory()

    office.booking_dismiss(booking)

    booking.refresh_from_db()
    assert (booking.status, booking.dismissing_reason_id, booking.job) == (
        SimulatedBooking.Status.DISMISSED,
        72,
        None,
    )


def test_dismiss_records_a_given_dismissing_reason():
    booking = SimulatedBookingFactory()

    office.booking_dismiss(booking, reason_id=73)

    booking.refresh_from_db()
    assert booking.dismissing_reason_id == 73


def test_dismiss_refuses_an_unknown_reason():
    booking = SimulatedBookingFactory()

    with pytest.raises(office.OfficeRefused) as refused:
        office.booking_dismiss(booking, reason_id=99)

    assert (refused.value.status, refused.value.title) == (400, "Bad Request")
    booking.refresh_from_db()
    assert booking.status == SimulatedBooking.Status.NEW


def test_dismiss_refuses_a_converted_booking():
    booking = SimulatedBookingFactory()
    office.booking_convert(booking)

    with pytest.raises(office.OfficeRefused) as refused:
        office.booking_dismiss(booking)

    assert refused.value.status == 409
    booking.refresh_from_db()
    assert (booking.status, booking.dismissing_reason_id) == (
        SimulatedBooking.Status.CONVERTED,
        None,
    )


# Completing and cancelling jobs.


def test_complete_completes_and_invoices_a_job():
    job = office.booking_convert(SimulatedBookingFactory())
    completed_at = datetime(2025, 3, 5, 17, 30, tzinfo=UTC)

    office.job_complete(job, completed_at=completed_at)

    job.refresh_from_db()
    assert (job.status, job.completed_at) == (SimulatedJob.Status.COMPLETED, completed_at)
    # A spring repair is high priority: 325.00, plus 5 per the pk's last digit.
    assert job.invoice_total == Decimal("325.00") + (job.pk % 10) * 5


def test_complete_without_a_time_completes_now():
    job = office.booking_convert(SimulatedBookingFactory())

    completed = office.job_complete(job)

    assert timezone.now() - completed.completed_at < timedelta(seconds=5)


@pytest.mark.parametrize("status", [SimulatedJob.Status.COMPLETED, SimulatedJob.Status.CANCELLED])
def test_complete_refuses_a_job_already_completed_or_cancelled(status):
    job = SimulatedJobFactory(status=status)

    with pytest.raises(office.OfficeRefused) as refused:
        office.job_complete(job)

    assert refused.value.status == 409
    job.refresh_from_db()
    assert (job.status, job.invoice_total) == (status, None)


def test_cancel_records_the_reason_and_memo():
    job = office.booking_convert(SimulatedBookingFactory())

    office.job_cancel(job, reason_id=32, memo="Went with another company")

    job.refresh_from_db()
    assert (job.status, job.cancel_reason_id, job.cancel_reason) == (
        SimulatedJob.Status.CANCELLED,
        32,
        "Went with another company",
    )


def test_cancel_without_a_memo_records_the_reasons_name():
    job = office.job_cancel(SimulatedJobFactory(), reason_id=31, memo="")

    assert job.cancel_reason == "Customer cancelled"


@pytest.mark.parametrize("status", [SimulatedJob.Status.COMPLETED, SimulatedJob.Status.CANCELLED])
def test_cancel_refuses_a_job_already_completed_or_cancelled(status):
    job = SimulatedJobFactory(status=status)

    with pytest.raises(office.OfficeRefused) as refused:
        office.job_cancel(job, reason_id=31, memo="")

    assert (refused.value.status, refused.value.title) == (400, "Bad Request")
    job.refresh_from_db()
    assert (job.status, job.cancel_reason_id) == (status, None)


@pytest.mark.parametrize("reason_id", [30, 99])
def test_cancel_refuses_a_reason_that_is_not_an_active_cancel_reason(reason_id):
    job = SimulatedJobFactory()

    with pytest.raises(office.OfficeRefused) as refused:
        office.job_cancel(job, reason_id=reason_id, memo="")

    assert refused.value.status == 400
    job.refresh_from_db()
    assert job.status == SimulatedJob.Status.SCHEDULED


# Catching up with the delays.


def test_catch_up_does_nothing_without_delays():
    booking = made_ago(SimulatedBookingFactory(), timedelta(days=30))
    job = made_ago(office.booking_convert(SimulatedBookingFactory()), timedelta(days=30))

    office.office_catch_up(TENANT)

    booking.refresh_from_db()
    job.refresh_from_db()
    assert booking.status == SimulatedBooking.Status.NEW
    assert job.status == SimulatedJob.Status.SCHEDULED


def test_catch_up_converts_the_tenants_new_bookings_older_than_the_convert_delay(settings):
    settings.SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS = 60
    due = made_ago(SimulatedBookingFactory(), timedelta(seconds=61))
    fresh = made_ago(SimulatedBookingFactory(), timedelta(seconds=30))
    other_tenant = made_ago(SimulatedBookingFactory(tenant="5678"), timedelta(hours=1))
    dismissed = made_ago(
        SimulatedBookingFactory(status=SimulatedBooking.Status.DISMISSED), timedelta(hours=1)
    )

    office.office_catch_up(TENANT)

    statuses = dict(SimulatedBooking.objects.values_list("pk", "status"))
    assert statuses == {
        due.pk: SimulatedBooking.Status.CONVERTED,
        fresh.pk: SimulatedBooking.Status.NEW,
        other_tenant.pk: SimulatedBooking.Status.NEW,
        dismissed.pk: SimulatedBooking.Status.DISMISSED,
    }
    assert SimulatedJob.objects.get().booking == due


def test_catch_up_completes_converted_jobs_older_than_the_complete_delay(settings):
    settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = 600
    due = made_ago(office.booking_convert(SimulatedBookingFactory()), timedelta(seconds=601))
    fresh = office.booking_convert(SimulatedBookingFactory())
    cancelled = made_ago(
        office.job_cancel(office.booking_convert(SimulatedBookingFactory()), reason_id=31, memo=""),
        timedelta(hours=1),
    )
    simulation_job = made_ago(SimulatedJobFactory(tenant=TENANT), timedelta(hours=1))
    now = timezone.now()

    office.office_catch_up(TENANT, now=now)

    for job in (due, fresh, cancelled, simulation_job):
        job.refresh_from_db()
    assert (due.status, due.completed_at) == (SimulatedJob.Status.COMPLETED, now)
    assert due.invoice_total is not None
    assert fresh.status == SimulatedJob.Status.SCHEDULED
    assert cancelled.status == SimulatedJob.Status.CANCELLED
    assert (simulation_job.status, simulation_job.invoice_total) == (
        SimulatedJob.Status.SCHEDULED,
        None,
    )


def test_catch_up_completes_a_job_only_once_it_is_older_than_the_delay_after_converting(
    settings,
):
    settings.SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS = 60
    settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = 600
    booking = made_ago(SimulatedBookingFactory(), timedelta(hours=2))

    office.office_catch_up(TENANT)

    job = SimulatedJob.objects.get()
    assert job.status == SimulatedJob.Status.SCHEDULED
    made_ago(job, timedelta(seconds=601))

    office.office_catch_up(TENANT)

    job.refresh_from_db()
    booking.refresh_from_db()
    assert booking.job == job
    assert job.status == SimulatedJob.Status.COMPLETED
    assert job.invoice_total is not None


def test_catch_up_completes_a_converted_job_in_progress_too(settings):
    settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = 600
    job = made_ago(office.booking_convert(SimulatedBookingFactory()), timedelta(hours=1))
    SimulatedJob.objects.filter(pk=job.pk).update(status=SimulatedJob.Status.IN_PROGRESS)

    office.office_catch_up(TENANT)

    job.refresh_from_db()
    assert job.status == SimulatedJob.Status.COMPLETED
