"""Keeping ``SkillCoverage`` in step with the service areas and skills it is derived from.

Saving or deleting a ``ServiceArea`` or ``CompanySkill`` one at a time (the admin, the API, a
shell) updates it through the signals connected in ``JobsConfig.ready``. Bulk writes send no
signals: code that bulk-creates or updates areas or skills calls ``coverage_rebuild`` for the
companies it touched (``seed_demo`` and the test factories do), and ``manage.py
rebuild_coverage`` rebuilds the whole index.
"""

from collections.abc import Callable

from django.db import connection, transaction

from jobs.models import Company, CompanySkill, ServiceArea, SkillCoverage

REBUILD_CHUNK = 1000


def coverage_area(kind: str, code: str) -> str:
    """The key of an area in ``SkillCoverage.area``: "state:CA", "zip_prefix:902"."""
    return f"{kind}:{code}"


def coverage_rebuild(
    *, company_ids: list | None = None, on_progress: Callable[[int], None] | None = None
) -> int:
    """Derive the coverage of these companies (every company when None) afresh from their
    service areas and skills, a chunk of companies per statement. Returns the rows written.
    ``on_progress`` is told how many companies each chunk held once it is written."""
    written = 0
    if company_ids is None:
        with transaction.atomic():
            SkillCoverage.objects.all().delete()
            company_ids = list(Company.objects.order_by("id").values_list("id", flat=True))
            for start in range(0, len(company_ids), REBUILD_CHUNK):
                chunk = company_ids[start : start + REBUILD_CHUNK]
                written += _coverage_insert(company_ids=chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
        return written
    with transaction.atomic():
        for start in range(0, len(company_ids), REBUILD_CHUNK):
            chunk = company_ids[start : start + REBUILD_CHUNK]
            if connection.vendor == "postgresql":
                # Two edits of one company's areas at once rebuild one after the other, so the
                # later one reads what the earlier one committed and no stale row survives.
                list(
                    Company.objects.select_for_update()
                    .filter(id__in=chunk)
                    .order_by("id")
                    .values_list("id", flat=True)
                )
            SkillCoverage.objects.filter(company_id__in=chunk).delete()
            written += _coverage_insert(company_ids=chunk)
            if on_progress is not None:
                on_progress(len(chunk))
    return written


def _coverage_insert(*, company_ids: list) -> int:
    pk = SkillCoverage._meta.get_field("company").target_field
    ids = [pk.get_db_prep_value(company_id, connection) for company_id in company_ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SkillCoverage._meta.db_table} (company_id, area, skill_id, level)"
            f" SELECT a.company_id, a.kind || ':' || a.code, s.skill_id, s.level"
            f" FROM {ServiceArea._meta.db_table} a"
            f" JOIN {CompanySkill._meta.db_table} s ON s.company_id = a.company_id"
            f" WHERE a.company_id IN ({', '.join(['%s'] * len(ids))})",
            ids,
        )
        return cursor.rowcount


def coverage_follow_save(sender, instance, **kwargs) -> None:
    """A service area or skill was created or changed: its company's coverage is rebuilt."""
    coverage_rebuild(company_ids=[instance.company_id])


def coverage_follow_delete(sender, instance, **kwargs) -> None:
    """A service area or skill was deleted: its rows go. Only deletes, never inserts, so a
    company being deleted (its areas and skills with it) is never given new rows."""
    rows = SkillCoverage.objects.filter(company_id=instance.company_id)
    if isinstance(instance, ServiceArea):
        rows = rows.filter(area=coverage_area(instance.kind, instance.code))
    else:
        rows = rows.filter(skill_id=instance.skill_id)
    rows.delete()
