"""A company's load (``routing.services.load``): open routings counted up and down, never below
zero, one statement per distinct change with the rows locked in id order first, and nothing
written when nothing changes."""

import uuid

import pytest
from django.db import connection

from jobs.models import Company
from jobs.tests.factories import CompanyFactory
from routing.services.load import company_loads_change, company_loads_raise_statement

pytestmark = pytest.mark.django_db


def loads(*companies) -> list[int]:
    counts = dict(Company.objects.values_list("id", "open_routing_count"))
    return [counts[company.id] for company in companies]


def lock_queries(companies: int) -> int:
    """The statement locking the rows in id order, where the database can (not SQLite), when
    more than one company changes."""
    return 1 if companies > 1 and connection.features.has_select_for_update else 0


def test_a_raise_adds_to_the_open_routings_in_one_statement(django_assert_num_queries):
    company = CompanyFactory(open_routing_count=2)

    with django_assert_num_queries(1):
        company_loads_change([(company.id, 3)])

    assert loads(company) == [5]


def test_a_negative_change_lowers_the_open_routings(django_assert_num_queries):
    company = CompanyFactory(open_routing_count=4)

    with django_assert_num_queries(1):
        company_loads_change([(company.id, -1)])

    assert loads(company) == [3]


@pytest.mark.parametrize(("count", "change"), [(1, -3), (0, -1), (2, -2)])
def test_a_load_never_goes_below_zero(count, change):
    company = CompanyFactory(open_routing_count=count)

    company_loads_change([(company.id, change)])

    assert loads(company) == [0]


def test_several_companies_change_in_one_statement_per_distinct_change(
    django_assert_num_queries,
):
    busy, quiet, freed, rising, untouched = (
        CompanyFactory(open_routing_count=count) for count in (5, 0, 1, 2, 7)
    )
    changes = [(busy.id, 1), (quiet.id, 1), (freed.id, -2), (rising.id, 2)]

    with django_assert_num_queries(3 + lock_queries(companies=4)):
        company_loads_change(changes)

    assert loads(busy, quiet, freed, rising, untouched) == [6, 1, 0, 4, 7]


def test_changes_to_one_company_add_up_before_they_are_written(django_assert_num_queries):
    company = CompanyFactory(open_routing_count=1)

    with django_assert_num_queries(1):
        company_loads_change([(company.id, 1), (company.id, 1), (company.id, -1)])

    assert loads(company) == [2]


def test_changes_may_come_from_a_generator():
    companies = CompanyFactory.create_batch(3)

    company_loads_change((company.id, 1) for company in companies)

    assert loads(*companies) == [1, 1, 1]


@pytest.mark.parametrize(
    "changes",
    [
        [],
        [("first", 0)],
        [("first", 2), ("first", -2)],
        [("first", 1), ("second", 0), ("first", -1)],
    ],
    ids=["none", "zero", "cancelling-out", "zero-for-several"],
)
def test_no_change_writes_nothing(django_assert_num_queries, changes):
    companies = {"first": CompanyFactory(open_routing_count=3), "second": CompanyFactory()}

    with django_assert_num_queries(0):
        company_loads_change([(companies[name].id, change) for name, change in changes])

    assert loads(companies["first"], companies["second"]) == [3, 0]


def test_an_unknown_company_changes_nothing_else():
    company = CompanyFactory(open_routing_count=1)

    company_loads_change([(uuid.uuid4(), 1)])

    assert loads(company) == [1]


# The raise as one SQL statement (the one-statement routing write on PostgreSQL)


def test_the_raise_statement_lists_the_companies_in_id_order():
    low, high = uuid.UUID(int=1), uuid.UUID(int=2)

    sql, params = company_loads_raise_statement([(high, 3), (low, 1)])

    assert params == [[low, high], [1, 3]]
    assert "ORDER BY c.id FOR NO KEY UPDATE OF c" in sql
    assert sql.startswith("raised AS (")


@pytest.mark.postgres
def test_the_raise_statement_raises_each_company_by_its_increment():
    first, second, untouched = (CompanyFactory(open_routing_count=n) for n in (0, 2, 5))
    sql, params = company_loads_raise_statement([(second.id, 3), (first.id, 1)])

    with connection.cursor() as cursor:
        cursor.execute(f"WITH {sql}", params)

    assert loads(first, second, untouched) == [1, 5, 5]
