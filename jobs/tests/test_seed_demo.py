"""``manage.py seed_demo``: the demo network, its history written through the services, and the
README walkthrough's names and ids."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count, Q

from integrations.models import CrmSimWebhook
from jobs.management.commands.seed_demo import DEMO_SERVICETITAN_MAPPING, HISTORIC_JOBS
from jobs.models import (
    Company,
    CompanySkill,
    Job,
    JobStatus,
    ServiceArea,
    SkillCoverage,
    Technician,
)
from routing.models import JobRouting, SyncAttempt, SyncStatus

pytestmark = pytest.mark.django_db

README = Path(settings.BASE_DIR, "README.md").read_text()
SUMMARY = re.compile(
    r"Demo network ready: (\d+) companies \((\d+) new\), (\d+) technicians, (\d+) service areas, "
    r"(\d+) company skills, (\d+) coverage rows, .* Done in \d+\.\d s\."
)


class Terminal(StringIO):
    """Standard error as an interactive shell has it: a terminal, where the progress bars show."""

    def isatty(self):
        return True


def seed_demo() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_historic_jobs_are_created_once_and_a_second_run_says_so():
    first = seed_demo()
    jobs = Job.objects.count()

    second = seed_demo()

    assert f"{len(HISTORIC_JOBS)} historic jobs created." in first
    assert "historic jobs kept." in second
    assert "historic jobs created" not in second
    assert "(0 new)" in second
    assert Job.objects.count() == jobs == len(HISTORIC_JOBS)


def test_completed_history_went_through_the_sync_and_the_back_sync():
    seed_demo()

    completed = Job.objects.filter(status=JobStatus.COMPLETED)
    assert completed.exists()
    for job in completed:
        [routing] = job.routings.filter(sync_status=SyncStatus.COMPLETED)
        assert routing.external_id.startswith("MOCK-")
        assert routing.revenue is not None and routing.revenue > 0
        assert (job.revenue, job.completed_at) == (routing.revenue, routing.completed_at)
        assert SyncAttempt.objects.filter(routing=routing, outcome="synced").exists()


def test_every_company_load_counts_its_open_routings():
    seed_demo()

    open_routings = Count(
        "routings",
        filter=Q(
            routings__sync_status__in=[
                SyncStatus.PENDING,
                SyncStatus.PROCESSING,
                SyncStatus.SYNCED,
            ]
        ),
    )
    for company in Company.objects.annotate(open_now=open_routings):
        assert company.open_routing_count == company.open_now, company.name
    assert JobRouting.objects.filter(sync_status=SyncStatus.COMPLETED).exists()


def test_the_readme_walkthrough_names_demo_companies_and_ids():
    seed_demo()

    requester = re.search(r'"created_by_company_id": "([0-9a-f-]{36})"', README).group(1)
    technician = re.search(r'"created_by_technician_id": "([0-9a-f-]{36})"', README).group(1)
    assert Technician.objects.get(id=technician).company_id == Company.objects.get(id=requester).id
    names = set(Company.objects.values_list("name", flat=True))
    walkthrough = README[README.index("## Walkthrough") : README.index("## API at a glance")]
    for name in re.findall(
        r"(Springfield(?: (?:Co\.|[A-Z][a-z]+))+|Nationwide [A-Z][a-z]+)", walkthrough
    ):
        assert name in names, name


def test_the_phoenix_servicetitan_credentials_are_stored_encrypted_not_in_the_settings():
    seed_demo()

    phoenix = Company.objects.get(name__startswith="Phoenix", provider_type="servicetitan")
    assert set(phoenix.provider_settings) == {"api_url", "auth_url", *DEMO_SERVICETITAN_MAPPING}
    assert phoenix.provider_credentials["client_secret"] == "demo-secret"
    assert phoenix.provider_account().settings["client_id"] == "demo-phoenix"


def test_json_gives_the_servicetitan_simulator_account_a_client_can_be_pointed_at(
    monkeypatch,
):
    monkeypatch.setenv("DEMO_BASE_URL", "http://127.0.0.1:8123")
    stdout = StringIO()

    call_command("seed_demo", "--json", stdout=stdout, stderr=StringIO())

    simulator = json.loads(stdout.getvalue())["servicetitan_simulator"]
    phoenix = Company.objects.get(name__startswith="Phoenix", provider_type="servicetitan")
    credentials = phoenix.provider_credentials
    assert simulator == {
        "auth_url": "http://127.0.0.1:8123/servicetitan-sim/connect/token",
        "api_url": "http://127.0.0.1:8123/servicetitan-sim",
        "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
        "app_key": credentials["app_key"],
        "tenant_id": int(credentials["tenant_id"]),
        "booking_provider_id": int(credentials["booking_provider_id"]),
        "bookings_url": "http://127.0.0.1:8123/servicetitan-sim/crm/v2/tenant/1001/"
        "booking-provider/7/bookings",
    }


def test_a_grown_network_shows_full_progress_bars_and_a_true_summary():
    stdout, stderr = StringIO(), Terminal()

    call_command("seed_demo", "--companies", "53", "--api-keys", stdout=stdout, stderr=stderr)

    summary = stdout.getvalue().splitlines()[-1]
    assert [int(figure) for figure in SUMMARY.search(summary).groups()] == [
        Company.objects.count(),
        53,
        Technician.objects.count(),
        ServiceArea.objects.count(),
        CompanySkill.objects.count(),
        SkillCoverage.objects.count(),
    ]
    assert "6 historic jobs created. 54 demo API keys: see the README." in summary
    bars = stderr.getvalue()
    assert "Companies: 100%|" in bars
    assert "53/53" in bars
    assert "API keys: 100%|" in bars


def test_no_progress_bar_off_a_terminal_and_json_output_stays_one_object():
    stdout, stderr = StringIO(), StringIO()

    call_command("seed_demo", "--json", stdout=stdout, stderr=stderr)

    assert len(json.loads(stdout.getvalue())["companies"]) == Company.objects.count() == 48
    assert "%|" not in stderr.getvalue()
    assert SUMMARY.search(stderr.getvalue()).group(1, 2) == ("48", "48")


def test_austin_plumbing_is_on_the_crm_simulator_and_connected_once(monkeypatch):
    monkeypatch.setenv("DEMO_BASE_URL", "http://127.0.0.1:8123")
    seed_demo()
    seed_demo()

    austin = Company.objects.get(name="Austin Plumbing")
    assert austin.provider_type == "crm"
    assert austin.provider_settings["api_url"] == "http://127.0.0.1:8123/crm-sim/api/v2"
    credentials = austin.provider_credentials
    assert credentials["client_id"] in settings.CRM_SIMULATOR_CLIENTS
    [webhook] = CrmSimWebhook.objects.filter(client_id=credentials["client_id"])
    assert webhook.url == (
        f"http://127.0.0.1:8123/api/integrations/crm/webhook?account={austin.id}"
    )
    assert webhook.secret == credentials["webhook_secret"]
    assert set(webhook.events) >= {"work_order.completed", "invoice.paid"}


def test_json_names_each_companys_provider_type():
    stdout = StringIO()

    call_command("seed_demo", "--json", stdout=stdout, stderr=StringIO())

    types = {c["name"]: c["provider_type"] for c in json.loads(stdout.getvalue())["companies"]}
    assert types["Austin Plumbing"] == "crm"
    assert types["Phoenix Overhead Door"] == "servicetitan"
    assert types["Springfield Plumbing"] == "mock"
