"""A new model instance inserted as `QuerySet.create` inserts it, by a statement fixed once.

`Model.save` compiles an INSERT (`SQLInsertCompiler`) on every call; a worker inserts an
event and a review on every pause (the review's INSERT alone was a fifth of opening it, by a
py-spy profile of bench.worker_cpu). Here the statement's text is built once per model (and conflict
clause), and the instance goes through the steps `create` takes: the related objects checked
as `save` checks them, `pre_save`, each field's `pre_save(add=True)` (`auto_now_add` stamps
the instance) and `get_db_prep_save`, the primary key set from `RETURNING`, the instance's
state, `post_save(created=True)`; an error inside an atomic block marks it for rollback as
`save_base` does.

With `along` (`events.EventNaming`: the event that records the new row) the same statement
writes a second row that names the first, only if the first was inserted.

The statement is sent as a typed, prepared `pgstatement.PgStatement`, each parameter typed
by its column's type (no cursor, no dumper looked up per value). Values only, not expressions
(F(), Now(): those need the compiler). Only for plain models (no parents, no proxy, no field
but the primary key returned by the database, no `order_with_respect_to`, columns of the
types in `_PG_TYPES`), and on PostgreSQL; anything else is `create`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Protocol

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

from orchestration.runtime import pgstatement

__all__ = ["Along", "insert"]


class Along(Protocol):
    """A row written by the statement of `insert` after its own: `sql` is a data-modifying
    statement that reads the new row's primary key as `n.pk` and returns one value,
    `types` and `params` its parameters' (named apart from the model's attnames; `params`
    asked for after the model's row is stamped); `value` what it returned, once written."""

    sql: str
    types: Mapping[str, str]
    value: Any

    @property
    def params(self) -> Mapping[str, Any]: ...


# PostgreSQL's type of a parameter, by its column's type (Django's `db_type` up to any
# "(length)"): a character column takes text (assignment casts it)
_PG_TYPES = {
    "integer": "int4", "bigint": "int8", "smallint": "int2", "boolean": "bool",
    "timestamp with time zone": "timestamptz", "date": "date", "double precision": "float8",
    "varchar": "text", "text": "text", "jsonb": "jsonb", "uuid": "uuid", "bytea": "bytea",
}


@functools.cache
def _fields(model: type[Model]) -> tuple[Field, ...]:
    meta = model._meta
    return tuple(f for f in meta.local_concrete_fields
                 if not f.generated and f is not meta.auto_field)


def _pg_type(field: Field, using: str) -> str | None:
    return _PG_TYPES.get((field.db_type(connections[using]) or "").split("(")[0])


@functools.cache
def _insert_sql(model: type[Model], using: str, skip_conflict: bool) -> tuple[str, str]:
    """The INSERT of `model`'s concrete fields but its automatic primary key (parameters
    named by their attnames), up to its RETURNING; and its primary key's column. With
    `skip_conflict` a row that would break a unique constraint is not inserted."""
    meta = model._meta
    quote = connections[using].ops.quote_name
    fields = _fields(model)
    columns = ", ".join(quote(f.column) for f in fields)
    values = ", ".join(f"%({f.attname})s" for f in fields)
    conflict = " ON CONFLICT DO NOTHING" if skip_conflict else ""
    return (f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608 - names from the model
            f"{conflict}", quote(meta.pk.column))


def _types(model: type[Model], using: str) -> dict[str, str]:
    return {f.attname: str(_pg_type(f, using)) for f in _fields(model)}


@functools.cache
def _statement(model: type[Model], using: str, skip_conflict: bool) -> pgstatement.PgStatement:
    """`_insert_sql`'s statement returning the new row's key (nothing if none inserted)."""
    insert, pk = _insert_sql(model, using, skip_conflict)
    return pgstatement.fixed_statement(f"{insert} RETURNING {pk}", _types(model, using))


def _statement_along(model: type[Model], using: str, skip_conflict: bool,
                     along: Along) -> pgstatement.PgStatement:
    """`_statement` with `along`'s row written after it (only if the model's row was)."""
    return _statement_with(model, using, skip_conflict, along.sql,
                           tuple(along.types.items()))


@functools.cache
def _statement_with(model: type[Model], using: str, skip_conflict: bool, along_sql: str,
                    along_types: tuple[tuple[str, str], ...]) -> pgstatement.PgStatement:
    # built once per statement text: a pause opens its review through this on every run
    insert, pk = _insert_sql(model, using, skip_conflict)
    return pgstatement.fixed_statement(
        f"WITH n AS ({insert} RETURNING {pk} AS pk), a AS ({along_sql}) "  # noqa: S608
        "SELECT n.pk, (SELECT * FROM a) FROM n",
        {**_types(model, using), **dict(along_types)},
    )


@functools.cache
def _supported(model: type[Model], using: str) -> bool:
    meta = model._meta
    return (connections[using].vendor == "postgresql" and not meta.parents and not meta.proxy
            and not meta.auto_created and meta.order_with_respect_to is None
            and meta.auto_field is not None and meta.pk is meta.auto_field
            and list(meta.db_returning_fields) == [meta.pk]
            # the compiler asks these fields for their own placeholder; a database default
            # is an expression the compiler writes
            and not any(hasattr(f, "get_placeholder") or f.has_db_default()
                        for f in meta.local_concrete_fields)
            and all(_pg_type(f, using) for f in _fields(model)))


def insert(obj: Model, *, using: str = DEFAULT_DB_ALIAS, skip_conflict: bool = False,
           along: Along | None = None) -> bool:
    """Insert the unsaved `obj` as `obj.save(force_insert=True, using=using)` would (what
    `Model.objects.create` does); True if inserted. With `skip_conflict`, a row that a unique
    constraint refuses is left out instead of raising IntegrityError: False, nothing is sent
    after `pre_save`, and `obj` stays unsaved (as after a failed `save` in a savepoint).
    With `along` (PostgreSQL), `along`'s row is written by the same statement if `obj`'s
    was, and what its statement returned is set as its `value` (before `post_save`)."""
    model = type(obj)
    if not _supported(model, using):
        if skip_conflict or along is not None:
            raise NotImplementedError(f"{model.__name__}: skip_conflict, along need PostgreSQL")
        obj.save(force_insert=True, using=using)
        return True
    obj._prepare_related_fields_for_save(operation_name="save")
    pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
    connection = connections[using]
    with transaction.mark_for_rollback_on_error(using=using):
        params = {}
        for field in _fields(model):
            value = field.pre_save(obj, True)
            if hasattr(value, "resolve_expression"):  # the compiler's business
                raise TypeError(f"{model.__name__}.{field.name}: an expression, not a value")
            params[field.attname] = field.get_db_prep_save(value, connection)
        if along is None:
            statement = _statement(model, using, skip_conflict)
        else:
            statement = _statement_along(model, using, skip_conflict, along)
            params.update(along.params)
        row = pgstatement.one(connection, statement, params)
    if row is None:
        return False
    setattr(obj, model._meta.pk.attname, row[0])
    obj._state.db = using
    obj._state.adding = False
    post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False,
                   using=using)
    if along is not None:
        along.value = row[1]
    return True
