"""Database helpers the ORM does not offer."""

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import Model

# SQLSTATEs of a transaction PostgreSQL aborted to resolve a clash with a concurrent one: sent
# again, it can succeed. (40P01 deadlock detected, 40001 serialization failure.)
LOCK_CONFLICT_SQLSTATES = {"40P01", "40001"}


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction aborted for clashing with a concurrent one."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    return getattr(cause, "sqlstate", None) in LOCK_CONFLICT_SQLSTATES


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not do the work rather than that the work was
    wrong: a lost or refused connection, a server shutting down or out of resources, a
    statement cancelled. (A bug is a ProgrammingError, IntegrityError or DataError.)"""
    return isinstance(exc, (OperationalError, InterfaceError)) and not is_lock_conflict(exc)


def insert_statement(
    model: type[Model], rows: list[dict], shared: dict | None = None
) -> tuple[str, list]:
    """An ``INSERT`` of ``rows`` (``{field name: value}``, the same names in every row) and its
    parameters, to be run as part of a larger statement such as a data-modifying ``WITH``.

    ``shared`` holds the values that are the same in every row; they are sent once. (psycopg
    caches the parsing of a statement only while it has at most 50 parameters.) Values are
    prepared as the ORM prepares them; columns named nowhere get the database's default, NULL.
    """
    shared = shared or {}
    names = list(rows[0])
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    shared_fields = [meta.get_field(name) for name in shared]
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(shared_fields, shared.values(), strict=True)
    ]
    params += [
        field.get_db_prep_save(row[name], connection)
        for row in rows
        for name, field in zip(names, fields, strict=True)
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in [*fields, *shared_fields])
    row_sql = f"({', '.join(['%s'] * len(fields))})"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns})"
        f" SELECT *{', %s' * len(shared_fields)}"
        f" FROM (VALUES {', '.join([row_sql] * len(rows))}) AS new_row"
    )
    return sql, params


def new_object_rows(objects) -> list[tuple[type[Model], list[dict]]]:
    """New model instances as ``insert_statement``'s rows, grouped by model in their order, each
    value as saving would store it (``auto_now_add`` and ``auto_now`` set now, on the instance
    too); an automatic primary key not set yet is left to the database, and so is a column that
    is NULL in every row of its group (a lone parameter without a value has no type)."""
    groups: list[tuple[type[Model], list[dict]]] = []
    for obj in objects:
        model = type(obj)
        if not groups or groups[-1][0] is not model:
            groups.append((model, []))
        fields = [
            field
            for field in model._meta.concrete_fields
            if not (field.primary_key and getattr(obj, field.attname) is None)
        ]
        groups[-1][1].append({field.attname: field.pre_save(obj, True) for field in fields})
    return [(model, _without_null_columns(rows)) for model, rows in groups]


def _without_null_columns(rows: list[dict]) -> list[dict]:
    named = [name for name in rows[0] if any(row[name] is not None for row in rows)]
    return [{name: row[name] for name in named} for row in rows]


def new_objects_stored(objects) -> None:
    """Mark instances inserted by a statement of their rows as saved, as ``save`` would."""
    for obj in objects:
        obj._state.adding = False
        obj._state.db = connection.alias


def new_objects_insert(objects) -> None:
    """Insert new instances, model by model in their order, with the ORM (``bulk_create``)."""
    for model in dict.fromkeys(type(obj) for obj in objects):
        model.objects.bulk_create([obj for obj in objects if type(obj) is model])
