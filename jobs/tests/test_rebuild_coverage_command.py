"""``manage.py rebuild_coverage``: a progress bar over the companies on a terminal, and a summary
whose figures are the index's."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from jobs import coverage
from jobs.coverage import coverage_rebuild
from jobs.models import SkillCoverage
from jobs.tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db

SUMMARY = re.compile(r"Coverage rebuilt: (\d+) rows\. (\d+) compan(?:y|ies) in \d+\.\d s\.")


class Terminal(StringIO):
    """Standard error as an interactive shell has it: a terminal, where the progress bar shows."""

    def isatty(self):
        return True


@pytest.fixture
def network():
    """Five companies (skill levels 1 to 3), one without a service area, whose index went stale."""
    companies = [
        CompanyFactory(service_areas=["IL", "627"], skills={"plumbing": 3}),
        CompanyFactory(service_areas=["TX"], skills={"hvac": 1, "roofing": 3}),
        CompanyFactory(service_areas=["CO", "802", "805"], skills={"electrical": 2}),
        CompanyFactory(service_areas=["OR"], skills={"plumbing": 1, "hvac": 2, "roofing": 3}),
        CompanyFactory(skills={"general": 2}),
    ]
    SkillCoverage.objects.all().delete()
    return companies


def test_the_summary_counts_the_rows_and_companies_and_the_bar_reaches_its_total(network):
    stdout, stderr = StringIO(), Terminal()

    call_command("rebuild_coverage", stdout=stdout, stderr=stderr)

    rows, companies = SUMMARY.fullmatch(stdout.getvalue().strip()).groups()
    assert int(rows) == SkillCoverage.objects.count() == 2 + 2 + 3 + 3
    assert int(companies) == len(network)
    assert "Rebuilding coverage: 100%|" in stderr.getvalue()
    assert "5/5" in stderr.getvalue()


def test_no_progress_bar_off_a_terminal(network):
    stdout, stderr = StringIO(), StringIO()

    call_command("rebuild_coverage", stdout=stdout, stderr=stderr)

    assert SUMMARY.fullmatch(stdout.getvalue().strip()).groups() == ("10", "5")
    assert stderr.getvalue() == ""


def test_the_rebuild_reports_each_chunk_of_companies(network, monkeypatch):
    monkeypatch.setattr(coverage, "REBUILD_CHUNK", 2)
    whole, some = [], []

    assert coverage_rebuild(on_progress=whole.append) == 10
    assert coverage_rebuild(company_ids=[c.id for c in network[:3]], on_progress=some.append) == 7

    assert whole == [2, 2, 1]
    assert some == [2, 1]
    assert SkillCoverage.objects.count() == 10
