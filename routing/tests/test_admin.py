from datetime import timedelta

import factory
import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from integrations.models import MockJob
from jobs.tests.factories import CompanyFactory
from routing import admin as routing_admin
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncAttempt, SyncStatus
from routing.services.sync import routing_sync_now
from routing.tests.factories import JobRoutingFactory, OutboxEventFactory, routing_with_event
from tradeengage.admin import ERROR_PREVIEW_CHARS

ROUTINGS_URL = reverse("admin:routing_jobrouting_changelist")
EVENTS_URL = reverse("admin:routing_outboxevent_changelist")

PERMANENT_ERROR = (
    "Mock provider: HTTP 400 invalid customer phone. The field-service system refused the "
    "customer record for this job: phone must have ten digits, got (555) 987-654 (end of error)"
)


class SyncAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncAttempt

    routing = factory.SubFactory(JobRoutingFactory)
    number = factory.Sequence(lambda n: n + 1)
    provider = "mock"
    outcome = SyncAttempt.Outcome.RETRY
    error = "Mock provider: HTTP 503 Service Unavailable"
    started_at = factory.LazyFunction(timezone.now)
    duration_ms = 12


def failed_routing(**kwargs) -> tuple[JobRouting, OutboxEvent]:
    """A routing in the dead-letter queue, as the engine leaves it: failed with its error, and
    its ``job_sync`` event dead. Company fields go in as ``company__...``."""
    kwargs.setdefault("error_message", PERMANENT_ERROR)
    routing, event = routing_with_event(
        sync_status=SyncStatus.FAILED, retry_count=3, last_sync_attempt=timezone.now(), **kwargs
    )
    OutboxEvent.objects.filter(id=event.id).update(
        status=OutboxStatus.DEAD, processed_at=timezone.now(), last_error=routing.error_message
    )
    event.refresh_from_db()
    return routing, event


def waiting_routing() -> JobRouting:
    """A routing whose last attempt failed and whose next one is scheduled."""
    routing, event = routing_with_event(
        retry_count=1,
        next_retry_at=timezone.now() + timedelta(seconds=10),
        error_message="Mock provider: HTTP 503 Service Unavailable",
    )
    OutboxEvent.objects.filter(id=event.id).update(available_at=routing.next_retry_at)
    return routing


@pytest.fixture
def backlog(db):
    """A little of everything the engine can have on its plate."""
    failed, _ = failed_routing()
    waiting = waiting_routing()
    synced, synced_event = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")
    OutboxEvent.objects.filter(id=synced_event.id).update(
        status=OutboxStatus.DONE, processed_at=timezone.now()
    )
    fresh, _ = routing_with_event()
    OutboxEventFactory(status=OutboxStatus.PROCESSING, claimed_at=timezone.now())
    return {"failed": failed, "waiting": waiting, "synced": synced, "fresh": fresh}


def preview(message: str) -> str:
    """How the lists show the start of a long error."""
    return message[: ERROR_PREVIEW_CHARS - 1] + "…"


def run_action(client, url, action, objects):
    return client.post(
        url,
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects]},
        follow=True,
    )


def shown_messages(response) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in response.context["messages"]]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?sync_status__exact=failed",
        "?sync_status__exact=pending&waiting=yes",
        "?waiting=no",
        "?has_error=yes",
        "?has_error=no",
        "?declined=yes",
        "?declined=no",
        "?sync_status__exact=synced&declined=no",
        "?company__provider_type__exact=mock",
        "?created_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00",
        "?last_sync_attempt__isnull=True",
        "?q=invalid+customer+phone",
        "?q=Company",
        "?o=4.-6",
    ],
)
def test_routing_list_renders_with_each_filter(ops_client, backlog, query):
    response = ops_client.get(ROUTINGS_URL + query)

    assert response.status_code == 200
    assert "Sync backlog" in response.text


def test_routing_list_filters_by_company(ops_client, backlog):
    company = backlog["failed"].company

    response = ops_client.get(ROUTINGS_URL + f"?company__id__exact={company.id}")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [backlog["failed"]]


def test_routing_list_finds_a_routing_by_its_id_and_by_its_job_id(ops_client, backlog):
    routing = backlog["waiting"]

    by_id = ops_client.get(ROUTINGS_URL + f"?q={routing.id}")
    by_job = ops_client.get(ROUTINGS_URL + f"?q={routing.job_id}")

    assert list(by_id.context["cl"].result_list) == [routing]
    assert list(by_job.context["cl"].result_list) == [routing]


@pytest.mark.parametrize("query", ["", "?status=dead", "?status=due", "?status=processing"])
def test_outbox_list_renders_with_each_filter(ops_client, backlog, query):
    response = ops_client.get(EVENTS_URL + query)

    assert response.status_code == 200
    assert "Sync backlog" in response.text


def test_failed_syncs_list_is_titled_and_holds_only_failed_routings(ops_client, backlog):
    response = ops_client.get(ROUTINGS_URL + "?sync_status__exact=failed")

    assert "<h1>Failed syncs</h1>" in response.text
    assert list(response.context["cl"].result_list) == [backlog["failed"]]
    assert preview(PERMANENT_ERROR) in response.text


def test_dead_letters_list_is_titled_and_links_each_event_to_its_routing(ops_client, backlog):
    response = ops_client.get(EVENTS_URL + "?status=dead")

    routing = backlog["failed"]
    assert "<h1>Dead letters</h1>" in response.text
    assert [event.aggregate_id for event in response.context["cl"].result_list] == [routing.id]
    assert reverse("admin:routing_jobrouting_change", args=[routing.id]) in response.text


def test_an_event_whose_routing_is_gone_shows_its_id_without_a_link(ops_client, db):
    event = OutboxEventFactory(status=OutboxStatus.DEAD)

    response = ops_client.get(EVENTS_URL)

    assert str(event.aggregate_id) in response.text
    assert reverse("admin:routing_jobrouting_change", args=[event.aggregate_id]) not in (
        response.text
    )


def test_routing_app_page_links_to_failed_syncs_and_dead_letters(ops_client, db):
    response = ops_client.get(reverse("admin:app_list", args=["routing"]))

    assert f'href="{ROUTINGS_URL}?sync_status__exact=failed">Failed syncs' in response.text
    assert f'href="{EVENTS_URL}?status=dead">Dead letters' in response.text


def test_backlog_counts_events_due_in_flight_and_dead_and_routings_failed_and_waiting(
    ops_client, backlog, django_assert_num_queries
):
    failed_routing()
    OutboxEventFactory(available_at=timezone.now() + timedelta(minutes=5))  # pending, not due

    with django_assert_num_queries(5):  # a count each, each from its own index
        counts = routing_admin.sync_backlog()

    assert counts == {
        "events_due": 1,  # the fresh routing's event
        "events_in_flight": 1,
        "dead_letters": 2,
        "routings_failed": 2,
        "routings_waiting": 1,
    }
    assert ops_client.get(ROUTINGS_URL).context["backlog"] == counts
    assert ops_client.get(EVENTS_URL).context["backlog"] == counts


def test_routing_list_costs_the_same_queries_for_many_routings(
    ops_client, backlog, django_assert_max_num_queries
):
    for _ in range(30):
        failed_routing()

    # session, user, filtered count, page, companies of the company filter, backlog (5)
    with django_assert_max_num_queries(11):
        response = ops_client.get(ROUTINGS_URL)

    assert len(response.context["cl"].result_list) == 34


def test_outbox_list_costs_the_same_queries_for_many_events(
    ops_client, backlog, django_assert_max_num_queries
):
    for _ in range(30):
        failed_routing()

    with django_assert_max_num_queries(9):
        response = ops_client.get(EVENTS_URL)

    assert len(response.context["cl"].result_list) == 35


def test_routing_page_shows_its_full_error_and_attempt_history_newest_first(ops_client, db):
    routing, _ = failed_routing()
    now = timezone.now()
    SyncAttemptFactory(
        routing=routing,
        number=1,
        started_at=now - timedelta(minutes=2),
        error="Mock provider: HTTP 503 Service Unavailable",
    )
    SyncAttemptFactory(
        routing=routing,
        number=2,
        started_at=now - timedelta(minutes=1),
        outcome=SyncAttempt.Outcome.FAILED,
        error=PERMANENT_ERROR,
        duration_ms=845,
    )

    response = ops_client.get(reverse("admin:routing_jobrouting_change", args=[routing.id]))

    assert response.status_code == 200
    page = response.text
    assert PERMANENT_ERROR in page
    history = page[page.index("Attempt history") :]
    assert history.index("HTTP 400") < history.index("HTTP 503")
    assert "Failed (dead letter)" in history
    assert "845" in history


def test_engine_fields_cannot_be_edited_by_hand(ops_client, db):
    routing, _ = failed_routing()
    url = reverse("admin:routing_jobrouting_change", args=[routing.id])

    page = ops_client.get(url)
    response = ops_client.post(url, {"sync_status": "synced", "external_id": "MADE-UP"})

    assert 'name="sync_status"' not in page.text
    assert response.status_code == 403
    routing.refresh_from_db()
    assert routing.sync_status == SyncStatus.FAILED
    assert routing.external_id is None


def test_routings_and_events_cannot_be_added_by_hand(ops_client, db):
    assert ops_client.get(reverse("admin:routing_jobrouting_add")).status_code == 403
    assert ops_client.get(reverse("admin:routing_outboxevent_add")).status_code == 403


def test_event_page_is_read_only_and_links_to_its_routing(ops_client, db):
    routing, event = failed_routing()
    url = reverse("admin:routing_outboxevent_change", args=[event.id])

    page = ops_client.get(url)
    response = ops_client.post(url, {"status": "done"})

    assert page.status_code == 200
    assert reverse("admin:routing_jobrouting_change", args=[routing.id]) in page.text
    assert PERMANENT_ERROR in page.text
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.status == OutboxStatus.DEAD


def test_only_superusers_delete_events(client, django_user_model, db):
    staff = django_user_model.objects.create_user("staff", password="a-long-password")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.set(Permission.objects.filter(codename__endswith="_outboxevent"))
    client.force_login(staff)
    _, event = failed_routing()

    response = client.get(reverse("admin:routing_outboxevent_delete", args=[event.id]))

    assert response.status_code == 403


def test_attempt_history_is_shown_to_staff_who_may_view_routings(client, django_user_model, db):
    staff = django_user_model.objects.create_user("viewer", password="a-long-password")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.set(Permission.objects.filter(codename="view_jobrouting"))
    client.force_login(staff)
    routing, _ = failed_routing()
    SyncAttemptFactory(routing=routing, error="Mock provider: HTTP 503 Service Unavailable")

    response = client.get(reverse("admin:routing_jobrouting_change", args=[routing.id]))

    assert "HTTP 503" in response.text
    assert "Retry now" not in client.get(ROUTINGS_URL).text


def test_retry_now_syncs_a_failed_routing(ops_client, db):
    routing, _ = failed_routing()

    response = run_action(ops_client, ROUTINGS_URL, "retry_now", [routing])

    routing.refresh_from_db()
    assert routing.sync_status == SyncStatus.SYNCED
    assert routing.external_id.startswith("MOCK-")
    assert routing.error_message is None
    assert shown_messages(response) == [(messages.SUCCESS, "Retry now: 1 synced.")]


def test_retry_now_reports_a_routing_that_fails_again_as_an_error(ops_client, db):
    routing, _ = failed_routing(
        company__provider_settings={"fail_first": 5, "failure": "validation"}
    )

    response = run_action(ops_client, ROUTINGS_URL, "retry_now", [routing])

    routing.refresh_from_db()
    assert routing.sync_status == SyncStatus.FAILED
    assert routing.error_message == "Mock provider: HTTP 400 invalid customer phone"
    assert shown_messages(response) == [
        (messages.ERROR, "Retry now: 1 failed again (see Failed syncs).")
    ]


def test_retry_now_skips_synced_routings_and_schedules_a_retryable_failure(ops_client, backlog):
    flaky, _ = failed_routing(company__provider_settings={"fail_first": 1})

    response = run_action(ops_client, ROUTINGS_URL, "retry_now", [flaky, backlog["synced"]])

    flaky.refresh_from_db()
    assert flaky.sync_status == SyncStatus.PENDING
    assert flaky.next_retry_at is not None
    assert shown_messages(response) == [
        (
            messages.ERROR,
            "Retry now: 1 not synced, next attempt scheduled, "
            "1 skipped (already synced or being synced).",
        )
    ]


def test_retry_now_leaves_routings_beyond_its_limit_for_requeue(ops_client, db, monkeypatch):
    monkeypatch.setattr(routing_admin, "RETRY_NOW_LIMIT", 1)
    first, _ = failed_routing()
    second, _ = failed_routing()

    response = run_action(ops_client, ROUTINGS_URL, "retry_now", [first, second])

    statuses = set(JobRouting.objects.values_list("sync_status", flat=True))
    assert statuses == {SyncStatus.SYNCED, SyncStatus.FAILED}
    [(level, message)] = shown_messages(response)
    assert level == messages.WARNING
    assert message.startswith("Retry now: 1 synced. 1 not tried")
    assert "use Requeue" in message


def test_retry_now_starts_no_sync_once_its_time_is_up(ops_client, db, monkeypatch):
    monkeypatch.setattr(routing_admin, "RETRY_NOW_SECONDS", -1)
    routing, _ = failed_routing()

    response = run_action(ops_client, ROUTINGS_URL, "retry_now", [routing])

    routing.refresh_from_db()
    assert routing.sync_status == SyncStatus.FAILED
    [(level, message)] = shown_messages(response)
    assert level == messages.WARNING
    assert message.startswith("Retry now: nothing synced. 1 not tried")


def test_requeue_sends_a_failed_routing_back_to_the_outbox_due_now(ops_client, backlog):
    routing, event = failed_routing()

    response = run_action(ops_client, ROUTINGS_URL, "requeue", [routing, backlog["synced"]])

    routing.refresh_from_db()
    event.refresh_from_db()
    assert routing.sync_status == SyncStatus.PENDING
    assert routing.retry_count == 0
    assert event.status == OutboxStatus.PENDING
    assert event.available_at <= timezone.now()
    assert event.processed_at is None
    [(level, message)] = shown_messages(response)
    assert level == messages.SUCCESS
    assert message.startswith("Requeued 1 routing;")
    assert "1 routing was left alone" in message
    assert JobRouting.objects.get(id=backlog["synced"].id).sync_status == SyncStatus.SYNCED


def test_requeue_of_nothing_requeueable_is_a_warning(ops_client, backlog):
    response = run_action(ops_client, ROUTINGS_URL, "requeue", [backlog["synced"]])

    [(level, message)] = shown_messages(response)
    assert level == messages.WARNING
    assert message.startswith("Requeued 0 routings;")


def test_outbox_requeue_revives_dead_events_and_leaves_done_ones(ops_client, backlog):
    routing, event = failed_routing()
    done = OutboxEvent.objects.get(aggregate_id=backlog["synced"].id)

    response = run_action(ops_client, EVENTS_URL, "requeue", [event, done])

    routing.refresh_from_db()
    event.refresh_from_db()
    done.refresh_from_db()
    assert routing.sync_status == SyncStatus.PENDING
    assert event.status == OutboxStatus.PENDING
    assert event.available_at <= timezone.now()
    assert done.status == OutboxStatus.DONE
    [(level, message)] = shown_messages(response)
    assert level == messages.SUCCESS
    assert message.startswith("Requeued 1 routing;")
    assert "1 event was left alone" in message


def test_outbox_requeue_of_an_event_without_a_routing_requeues_nothing(ops_client, db):
    orphan = OutboxEventFactory(status=OutboxStatus.DEAD)

    response = run_action(ops_client, EVENTS_URL, "requeue", [orphan])

    orphan.refresh_from_db()
    assert orphan.status == OutboxStatus.DEAD
    [(level, message)] = shown_messages(response)
    assert level == messages.WARNING
    assert "1 routing was left alone" in message


def test_a_company_filter_lists_only_companies_with_routings(ops_client, backlog):
    CompanyFactory(name="Idle Roofing")

    response = ops_client.get(ROUTINGS_URL)

    assert backlog["failed"].company.name in response.text
    assert "Idle Roofing" not in response.text


def test_retry_now_takes_the_synced_routing_out_of_the_dead_letters(ops_client, db):
    routing, _ = failed_routing()

    run_action(ops_client, ROUTINGS_URL, "retry_now", [routing])

    assert routing_admin.sync_backlog()["dead_letters"] == 0


def test_mock_provider_jobs_are_listed_read_only(ops_client):
    routing, _ = routing_with_event()
    routing_sync_now(routing=routing)
    job = MockJob.objects.get()

    listing = ops_client.get("/admin/integrations/mockjob/")
    detail = ops_client.get(f"/admin/integrations/mockjob/{job.id}/change/")

    assert listing.status_code == 200
    assert job.external_id in listing.content.decode()
    assert detail.status_code == 200
    assert ops_client.get("/admin/integrations/mockjob/add/").status_code == 403


# Declines


@pytest.fixture
def declined(backlog):
    """A routing its company turned down in its system, beside the backlog's synced one."""
    routing, _ = routing_with_event(
        sync_status=SyncStatus.SYNCED,
        external_id="MOCK-2",
        declined_at=timezone.now(),
        decline_reason="Customer went with another plumber",
        provider_job_id="81234",
        provider_job_number="JOB-81234",
    )
    return routing


def test_the_declined_filter_lists_declined_routings_or_the_others(ops_client, backlog, declined):
    yes = ops_client.get(ROUTINGS_URL + "?declined=yes")
    synced_open = ops_client.get(ROUTINGS_URL + "?sync_status__exact=synced&declined=no")
    everything = ops_client.get(ROUTINGS_URL)

    assert list(yes.context["cl"].result_list) == [declined]
    assert "Customer went with another plumber" in yes.text
    assert list(synced_open.context["cl"].result_list) == [backlog["synced"]]
    assert declined in everything.context["cl"].result_list


def test_a_declined_routing_shows_its_decline_and_the_providers_job(ops_client, declined):
    response = ops_client.get(reverse("admin:routing_jobrouting_change", args=[declined.id]))

    assert response.status_code == 200
    for shown in ("Customer went with another plumber", "81234", "JOB-81234", "Declined at"):
        assert shown in response.text


def test_a_routing_is_found_by_the_providers_job_number(ops_client, backlog, declined):
    response = ops_client.get(ROUTINGS_URL + "?q=JOB-81234")

    assert list(response.context["cl"].result_list) == [declined]


def test_retry_now_skips_a_declined_routing(ops_client, declined):
    response = run_action(ops_client, ROUTINGS_URL, "retry_now", [declined])

    assert shown_messages(response) == [
        (messages.INFO, "Retry now: 1 skipped (already synced or being synced).")
    ]
    assert not MockJob.objects.exists()
