"""A company's load: its open routings (pending, in flight or synced, not yet completed or
failed), which breaks ties in matching. Every change goes through here.

Rows are locked in company id order before their counts change: an ``UPDATE`` alone takes its
rows in whatever order its scan meets them, and two transactions changing the same companies in
different orders deadlock.
"""

from collections import Counter
from collections.abc import Iterable
from uuid import UUID

from django.db import connection
from django.db.models import F
from django.db.models.functions import Greatest

from jobs.models import Company


def company_loads_change(changes: Iterable[tuple[UUID, int]]) -> None:
    """Add each ``(company id, change)`` to its company's open routings (a change may be
    negative; a count never goes below zero). Must run inside the caller's transaction."""
    totals = Counter()
    for company_id, change in changes:
        totals[company_id] += change
    totals = {company_id: change for company_id, change in totals.items() if change}
    if not totals:
        return
    if len(totals) > 1 and connection.features.has_select_for_update:
        companies = Company.objects.filter(id__in=list(totals)).order_by("id")
        list(companies.select_for_update(no_key=True).values_list("id", flat=True))
    by_change: dict[int, list[UUID]] = {}
    for company_id in sorted(totals):
        by_change.setdefault(totals[company_id], []).append(company_id)
    for change, company_ids in sorted(by_change.items()):
        count = F("open_routing_count") + change
        Company.objects.filter(id__in=company_ids).update(
            open_routing_count=count if change > 0 else Greatest(count, 0)
        )


def company_loads_raise_statement(raises: list[tuple[UUID, int]]) -> tuple[str, list]:
    """``company_loads_change`` for positive changes as SQL to end a data-modifying ``WITH``
    (PostgreSQL), its rows locked in id order in the same statement; and its parameters."""
    table = Company._meta.db_table
    company_ids, increments = zip(*sorted(raises), strict=True)
    sql = (
        f"raised AS (SELECT c.id, raise.n FROM {table} c"
        "  JOIN unnest(%s::uuid[], %s::integer[]) AS raise(id, n) ON raise.id = c.id"
        "  ORDER BY c.id FOR NO KEY UPDATE OF c)"
        f" UPDATE {table} SET open_routing_count = open_routing_count + raised.n"
        f" FROM raised WHERE {table}.id = raised.id"
    )
    return sql, [list(company_ids), list(increments)]
