"""Matching's coverage index follows the service areas and skills it is derived from."""

import io
import random

import pytest
from django.core.management import call_command
from django.db import connection

from jobs.coverage import coverage_rebuild
from jobs.models import Company, CompanySkill, ServiceArea, SkillCoverage, SkillLevel
from jobs.tests.factories import CompanyFactory, skill

pytestmark = pytest.mark.django_db

BASIC, EXPERT = SkillLevel.BASIC, SkillLevel.EXPERT


def coverage(company=None) -> set:
    rows = SkillCoverage.objects.all()
    if company is not None:
        rows = rows.filter(company=company)
    return {(r.company_id, r.area, r.skill.slug, r.level) for r in rows.select_related("skill")}


def derived() -> set:
    """What the index should hold: every (area, skill) pair of every company."""
    return {
        (area.company_id, f"{area.kind}:{area.code}", held.skill.slug, held.level)
        for area in ServiceArea.objects.all()
        for held in CompanySkill.objects.filter(company_id=area.company_id).select_related("skill")
    }


def test_a_company_covers_each_of_its_areas_with_each_of_its_skills():
    company = CompanyFactory(
        service_areas=["IL", "627"], skills={"plumbing": EXPERT, "hvac": BASIC}
    )

    assert coverage(company) == {
        (company.id, "state:IL", "plumbing", EXPERT),
        (company.id, "state:IL", "hvac", BASIC),
        (company.id, "zip_prefix:627", "plumbing", EXPERT),
        (company.id, "zip_prefix:627", "hvac", BASIC),
    }


def test_saving_an_area_or_a_skill_one_at_a_time_updates_its_company_coverage():
    """As the admin's inlines do: each row saved on its own."""
    company = CompanyFactory()
    area = ServiceArea.objects.create(company=company, kind=ServiceArea.Kind.STATE, code="IL")
    held = CompanySkill.objects.create(company=company, skill=skill("plumbing"), level=BASIC)
    assert coverage(company) == {(company.id, "state:IL", "plumbing", BASIC)}

    held.level = EXPERT
    held.save()
    area.code = "WI"
    area.save()

    assert coverage(company) == {(company.id, "state:WI", "plumbing", EXPERT)}


def test_deleting_an_area_or_a_skill_drops_its_rows_only():
    company = CompanyFactory(
        service_areas=["IL", "627"], skills={"plumbing": EXPERT, "hvac": BASIC}
    )
    other = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})

    ServiceArea.objects.get(company=company, code="627").delete()
    CompanySkill.objects.get(company=company, skill__slug="hvac").delete()

    assert coverage(company) == {(company.id, "state:IL", "plumbing", EXPERT)}
    assert coverage(other) == {(other.id, "state:IL", "plumbing", EXPERT)}


def test_deleting_a_company_takes_its_coverage_with_it():
    company = CompanyFactory(
        service_areas=["IL", "627"], skills={"plumbing": EXPERT, "hvac": BASIC}
    )
    kept = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})

    company.delete()
    connection.check_constraints()  # PostgreSQL checks foreign keys at commit; check them now

    assert coverage() == {(kept.id, "state:IL", "plumbing", EXPERT)}


def test_a_rebuild_of_everything_matches_what_the_areas_and_skills_say():
    rng = random.Random(3)
    for _ in range(25):
        CompanyFactory(
            service_areas=rng.sample(["IL", "WI", "627", "53", "6"], rng.randint(0, 3)),
            skills={
                slug: SkillLevel(rng.randint(1, 3))
                for slug in rng.sample(["plumbing", "hvac", "roofing"], rng.randint(0, 3))
            },
        )
    SkillCoverage.objects.all().delete()

    written = coverage_rebuild()

    assert coverage() == derived()
    assert written == len(derived()) > 0


def test_a_rebuild_of_some_companies_leaves_the_others_alone():
    first = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    second = CompanyFactory(service_areas=["WI"], skills={"hvac": BASIC})
    # Changed behind the signals' back, as a bulk write or SQL would.
    CompanySkill.objects.filter(company=first).update(level=BASIC)
    CompanySkill.objects.filter(company=second).update(level=EXPERT)

    coverage_rebuild(company_ids=[first.id])

    assert coverage(first) == {(first.id, "state:IL", "plumbing", BASIC)}
    assert coverage(second) == {(second.id, "state:WI", "hvac", BASIC)}  # stale until rebuilt


def test_the_command_rebuilds_the_whole_index(capsys):
    company = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    SkillCoverage.objects.all().delete()

    call_command("rebuild_coverage")

    assert coverage(company) == {(company.id, "state:IL", "plumbing", EXPERT)}
    assert "Coverage rebuilt: 1 rows." in capsys.readouterr().out


def test_seed_demo_builds_the_coverage_of_its_network():
    call_command("seed_demo", "--companies", "60", stdout=io.StringIO())

    assert Company.objects.count() >= 60
    assert coverage() == derived()
