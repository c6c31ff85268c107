"""The two ways of ranking a network (one query over all of it, or area tiers read in turn)
must always agree: they are the same ranking, chosen only by the network's size."""

import random

import pytest

from jobs import matching
from jobs.matching import Requirement, match_companies
from jobs.models import Category, Company, SkillLevel
from jobs.tests.factories import CompanyFactory, skill

TRADES = ["plumbing", "electrical", "hvac", "roofing"]
AREAS = [["IL"], ["627"], ["IL", "627"], ["IL", "62"], ["WI"], ["53"], [], ["TX", "733"]]
PLACES = [("IL", "62701"), ("IL", "62999"), ("WI", "53001"), ("TX", "73301"), ("IL", "ABCDE")]


@pytest.fixture
def random_network(db):
    rng = random.Random(11)
    categories = list(Category.objects.filter(slug__in=TRADES))
    for index in range(60):
        CompanyFactory(
            primary_category=rng.choice([*categories, None]),
            service_areas=rng.choice(AREAS),
            skills={
                slug: SkillLevel(rng.randint(1, 3))
                for slug in rng.sample(TRADES, rng.randint(1, 3))
            },
            open_routing_count=rng.randint(0, 2),
            is_active=index % 13 != 0,
            accepts_jobs=index % 17 != 0,
        )
    return rng


def ranked(settings, threshold, **job):
    settings.MATCH_SMALL_NETWORK_COMPANIES = threshold
    matching._network_size.clear()
    return [(m.company_id, m.score, m.reason) for m in match_companies(**job)]


def test_whole_network_query_and_area_tiers_rank_alike(random_network, settings):
    rng = random_network
    companies = list(Company.objects.values_list("id", flat=True))
    category_ids = [*Category.objects.filter(slug__in=TRADES).values_list("id", flat=True), None]
    for _ in range(150):
        state, zip_code = rng.choice(PLACES)
        job = {
            "requirements": [
                Requirement(skill(slug).id, slug, rng.randint(1, 3))
                for slug in rng.sample(TRADES, rng.randint(0, 2))
            ],
            "category_id": rng.choice(category_ids),
            "state": state,
            "zip_code": zip_code,
            "exclude_company_id": rng.choice(companies),
            "limit": rng.randint(1, 6),
        }

        assert ranked(settings, 10**9, **job) == ranked(settings, 0, **job), job


def test_small_network_is_ranked_in_one_query(random_network, settings, django_assert_num_queries):
    settings.MATCH_SMALL_NETWORK_COMPANIES = 1000
    matching._network_size.clear()
    matching.network_size()
    plumbing = Requirement(skill("plumbing").id, "plumbing", 1)

    with django_assert_num_queries(1):
        matches = match_companies(
            requirements=[plumbing],
            category_id=None,
            state="WI",
            zip_code="53001",
            exclude_company_id=None,
            limit=3,
        )

    assert len(matches) == 3
