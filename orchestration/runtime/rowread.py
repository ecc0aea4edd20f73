"""A model instance from a row of a fixed statement, as the ORM's compiler would build it.

Fixed statements (the run queue, the task claim, the review pages' reads) skip compiling a
queryset on every call; their rows must still become the instances the ORM would return.
The values go through the converters the compiler applies to each column (the backend's,
then the field's own `from_db_value`: JSON decoded, SQLite's text timestamps made aware),
looked up once per model, table alias and database, then `Model.from_db`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

__all__ = ["columns", "instance"]


@functools.cache
def _converters(model: type[Model], alias: str, using: str) -> tuple[Any, ...]:
    """Per concrete field: (converters, column expression), as the ORM's compiler finds them."""
    connection = connections[using]
    out = []
    for field in model._meta.concrete_fields:
        col = field.get_col(alias)
        out.append((tuple(connection.ops.get_db_converters(col))
                    + tuple(col.get_db_converters(connection)), col))
    return tuple(out)


def columns(model: type[Model], using: str = DEFAULT_DB_ALIAS) -> str:
    """`model`'s columns, quoted for database `using`, in the order `instance` reads them."""
    quote = connections[using].ops.quote_name
    return ", ".join(quote(field.column) for field in model._meta.concrete_fields)


def instance(model: type[Model], values: Sequence[Any], *, alias: str | None = None,
             using: str = DEFAULT_DB_ALIAS) -> Model:
    """`model`'s instance from `values`, one per concrete field in the model's order, read on
    database `using` (`alias`: the table's alias in the statement, default its name)."""
    connection = connections[using]
    converted = []
    for value, (converters, col) in zip(
            values, _converters(model, alias or model._meta.db_table, using), strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(using, None, converted)
