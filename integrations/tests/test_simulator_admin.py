import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.models import SimulatedBooking, SimulatedJob
from integrations.servicetitan.simulator import office
from integrations.tests.factories import SimulatedBookingFactory

pytestmark = pytest.mark.django_db

BOOKINGS_URL = reverse("admin:integrations_simulatedbooking_changelist")
JOBS_URL = reverse("admin:integrations_simulatedjob_changelist")


def act(client, url: str, action: str, rows):
    return client.post(
        url,
        {"action": action, "_selected_action": [row.pk for row in rows], "index": 0},
        follow=True,
    )


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def offered_actions(response) -> set[str]:
    action_form = response.context["action_form"]  # None when no action is offered
    if action_form is None:
        return set()
    return {name for name, _ in action_form.fields["action"].choices if name}


@pytest.fixture
def staff_client(client, django_user_model):
    """A logged-in staff user allowed to view simulated bookings and jobs, and nothing else."""

    def log_in(*codenames: str):
        user = django_user_model.objects.create_user(
            "clerk", password="a-long-password", is_staff=True
        )
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="integrations", codename__in=codenames
            )
        )
        client.force_login(user)
        return client

    return log_in


def test_convert_action_converts_new_bookings_and_reports_the_others(ops_client):
    new = SimulatedBookingFactory()
    dismissed = SimulatedBookingFactory(status=SimulatedBooking.Status.DISMISSED)

    response = act(ops_client, BOOKINGS_URL, "convert", [new, dismissed])

    assert response.status_code == 200
    new.refresh_from_db()
    dismissed.refresh_from_db()
    assert new.status == SimulatedBooking.Status.CONVERTED
    assert new.job.status == SimulatedJob.Status.SCHEDULED
    assert dismissed.status == SimulatedBooking.Status.DISMISSED
    assert shown_messages(response) == [
        "1 converted into jobs.",
        f"Booking {dismissed.booking_id} is Dismissed, not New.",
    ]


def test_dismiss_action_dismisses_with_the_default_reason(ops_client):
    bookings = SimulatedBookingFactory.create_batch(2)

    response = act(ops_client, BOOKINGS_URL, "dismiss", bookings)

    assert shown_messages(response) == ["2 dismissed."]
    assert set(SimulatedBooking.objects.values_list("status", "dismissing_reason_id")) == {
        (SimulatedBooking.Status.DISMISSED, 72)
    }


def test_complete_action_completes_and_invoices_open_jobs(ops_client):
    job = office.booking_convert(SimulatedBookingFactory())
    done = office.job_complete(office.booking_convert(SimulatedBookingFactory()))
    done_total = done.invoice_total

    response = act(ops_client, JOBS_URL, "complete", [job, done])

    job.refresh_from_db()
    done.refresh_from_db()
    assert job.status == SimulatedJob.Status.COMPLETED
    assert job.invoice_total is not None
    assert done.invoice_total == done_total
    assert shown_messages(response) == [
        "1 completed and invoiced.",
        f"Job {done.job_id} is already completed.",
    ]


def test_cancel_action_cancels_as_customer_cancelled(ops_client):
    job = office.booking_convert(SimulatedBookingFactory())

    response = act(ops_client, JOBS_URL, "cancel", [job])

    job.refresh_from_db()
    assert (job.status, job.cancel_reason_id, job.cancel_reason) == (
        SimulatedJob.Status.CANCELLED,
        31,
        "Customer cancelled",
    )
    assert shown_messages(response) == ["1 cancelled."]


@pytest.mark.parametrize(
    ("model", "make"),
    [
        ("simulatedbooking", lambda: SimulatedBookingFactory()),
        ("simulatedjob", lambda: office.booking_convert(SimulatedBookingFactory())),
    ],
)
def test_rows_open_read_only_and_a_change_form_post_is_refused(ops_client, model, make):
    row = make()
    url = reverse(f"admin:integrations_{model}_change", args=[row.pk])

    page = ops_client.get(url)
    posted = ops_client.post(url, {"status": "Dismissed", "summary": "changed", "_save": "Save"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.text
    assert posted.status_code == 403
    assert ops_client.get(reverse(f"admin:integrations_{model}_add")).status_code == 403
    before = row.status
    row.refresh_from_db()
    assert row.status == before
    assert row.summary != "changed"


@pytest.mark.parametrize(
    ("model", "make"),
    [
        ("simulatedbooking", lambda: SimulatedBookingFactory()),
        ("simulatedjob", lambda: office.booking_convert(SimulatedBookingFactory())),
    ],
)
def test_rows_cannot_be_deleted_in_the_admin(ops_client, model, make):
    row = make()

    page = ops_client.get(reverse(f"admin:integrations_{model}_changelist"))
    delete_page = ops_client.get(reverse(f"admin:integrations_{model}_delete", args=[row.pk]))

    assert "delete_selected" not in offered_actions(page)
    assert delete_page.status_code == 403


def test_superuser_is_offered_the_office_actions(ops_client):
    assert {"convert", "dismiss"} <= offered_actions(ops_client.get(BOOKINGS_URL))
    assert {"complete", "cancel"} <= offered_actions(ops_client.get(JOBS_URL))


def test_staff_without_the_change_permission_sees_no_office_actions(staff_client):
    client = staff_client("view_simulatedbooking", "view_simulatedjob")
    booking = SimulatedBookingFactory()
    job = office.booking_convert(SimulatedBookingFactory())

    bookings_page = client.get(BOOKINGS_URL)
    jobs_page = client.get(JOBS_URL)
    act(client, BOOKINGS_URL, "convert", [booking])
    act(client, JOBS_URL, "complete", [job])

    assert bookings_page.status_code == jobs_page.status_code == 200
    assert not {"convert", "dismiss"} & offered_actions(bookings_page)
    assert not {"complete", "cancel"} & offered_actions(jobs_page)
    booking.refresh_from_db()
    job.refresh_from_db()
    assert booking.status == SimulatedBooking.Status.NEW
    assert job.status == SimulatedJob.Status.SCHEDULED


def test_staff_with_the_change_permission_acts_as_the_office(staff_client):
    client = staff_client("view_simulatedbooking", "change_simulatedbooking")
    booking = SimulatedBookingFactory()

    page = client.get(BOOKINGS_URL)
    act(client, BOOKINGS_URL, "convert", [booking])

    assert {"convert", "dismiss"} <= offered_actions(page)
    booking.refresh_from_db()
    assert booking.status == SimulatedBooking.Status.CONVERTED
