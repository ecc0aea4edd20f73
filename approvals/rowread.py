"""Model instances from a fixed statement: one row and the rows it joins, built as the ORM's
`select_related` builds them, without compiling a queryset on every request.

Compiling `ReviewRequest.objects.select_related("thread", "run", "claimed_by").get(pk=...)`
cost about 1.5 CPU-ms, several times what reading the row costs, and every review page and
decision starts with it (approvals.access). Here the statement's text is made once per
process from the models' own fields, and the values go through the converters the ORM
would apply (JSON, SQLite's text timestamps, ...: `orchestration.runtime.rowread`), so the
instances are the ORM's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model

from orchestration.runtime.rowread import instance


@dataclass(frozen=True, slots=True)
class Join:
    """`model`'s row, joined under `alias` through `field` (a foreign key, or a reverse
    one-to-one's name) of the instance joined as `via` (default: the main model's, the first
    join; `field` None for the main model itself)."""

    model: type[Model]
    alias: str
    field: str | None = None
    via: str = ""


def select(joins: Sequence[Join]) -> str:
    """The columns of every joined model, in order (quoted names from the models only)."""
    q = connection.ops.quote_name
    return ", ".join(f"{j.alias}.{q(f.column)}" for j in joins
                     for f in j.model._meta.concrete_fields)


def build(joins: Sequence[Join], row: Sequence[Any]) -> Model:
    """The main model's instance from `row` (laid out by `select(joins)`), with each joined
    instance cached on the one it was joined through, or None where the outer join found no
    row (as select_related; nothing is cached on a parent that is itself None)."""
    built: dict[str, Model | None] = {}
    at = 0
    for join in joins:
        width = len(join.model._meta.concrete_fields)
        values, at = row[at:at + width], at + width
        if not built:
            built[join.alias] = instance(join.model, values, alias=join.alias)
            continue
        parent = built[join.via or joins[0].alias]
        pk_index = [f.primary_key for f in join.model._meta.concrete_fields].index(True)
        related = instance(join.model, values, alias=join.alias) if values[pk_index] is not None \
            else None
        built[join.alias] = related
        if parent is not None:
            field = parent._meta.get_field(join.field)  # type: ignore[arg-type]
            field.set_cached_value(parent, related)  # type: ignore[union-attr]
    main = built[joins[0].alias]
    assert main is not None
    return main


@functools.cache
def _field_converters(model: type[Model], name: str, vendor: str) -> tuple[Any, Any]:
    col = model._meta.get_field(name).get_col(model._meta.db_table)  # type: ignore[union-attr]
    return (tuple(connection.ops.get_db_converters(col)) + tuple(col.get_db_converters(
        connection)), col)


def field_converter(model: type[Model], name: str) -> Callable[[Any], Any]:
    """A function turning a value of `model`'s field `name`, as read from this database, into
    what the ORM makes of it (a timestamp aware on SQLite, ...). Looked up once per column of a
    statement's rows, not once per value: the lookup (the connection, through its
    thread-local proxy) cost more than converting."""
    conn = connections[DEFAULT_DB_ALIAS]  # this thread's, as `connection` proxies it
    converters, col = _field_converters(model, name, conn.vendor)

    def convert(value: Any) -> Any:
        for step in converters:
            value = step(value, col, conn)
        return value

    return convert


def field_value(model: type[Model], name: str, value: Any) -> Any:
    """`value` of `model`'s field `name` as read from this database, converted as the ORM
    converts it."""
    return field_converter(model, name)(value)
