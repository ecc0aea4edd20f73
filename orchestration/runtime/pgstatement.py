"""Fixed statements on PostgreSQL, sent straight to libpq: typed parameters, prepared once per
connection, no cursor.

The hot statements of the checkpoint saver (`checkpoint_sql`) and of a task worker (its task
claim, run claim, run end and task success) have fixed text. Through Django's cursor each call
still went through psycopg's per-call work: the `%(name)s` placeholders converted, a dumper
looked up for every parameter by its Python type, the prepared-statement cache keyed by text
and types, a cursor made and closed; about a quarter of a worker's CPU per run execution by a
py-spy profile of `bench.worker_cpu`. A `PgStatement` does that work once: `$n` placeholders,
one PostgreSQL type per parameter name (so one prepared statement serves every call, where
psycopg would pick int2/int4/int8 by value, and NULL has no type), binary parameters, dumpers
and result loaders looked up once per connection.

Behind a transaction-mode pooler that cannot carry prepared statements (PgBouncer before
1.21), set `STEPWISE_PREPARED_STATEMENTS = False`: the statements are then sent with their
parameters each time (`PQsendQueryParams`), still typed and binary.
"""

from __future__ import annotations

import functools
import re
import select
import struct
import time
import weakref
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["PgStatement", "fixed_statement", "one", "row"]


class PgStatement:
    """One fixed statement in libpq's form: `$n` placeholders, the PostgreSQL type of each
    parameter from `types` (by name: `%(name)s` in `sql`), binary parameters. `send` puts it
    on the wire of a psycopg connection in autocommit and returns at once; `collect` waits
    for its one row. On the write-behind connection this is what lets the caller's thread
    send superstep N's put and compute superstep N+1 while the server executes and commits
    it: no second thread, hence no hand-off of the GIL between two threads (a writer thread
    could only send once the computing thread blocked, which serialized the two).

    `text_results`: `run` returns what Django's cursor would (text results, loaded by the
    connection's loaders: Django's for `jsonb` and `timestamptz`), for rows made into model
    instances; otherwise binary results (psycopg's binary loaders), cheaper to load.
    """

    _names = iter(range(1, 1_000_000))

    def __init__(self, sql: str, types: Mapping[str, str], *, text_results: bool = False) -> None:
        from psycopg.postgres import types as pg_types

        found: list[str] = []
        for key in re.findall(r"%\((\w+)\)s", sql):
            if key not in found:
                found.append(key)
        # Scalars first, arrays last: psycopg dumps the scalars (C code), `pg_array` the
        # arrays (psycopg's list dumper is Python, ~4x slower for the put's few items).
        scalars = [k for k in found if not types[k].endswith("[]")]
        arrays = [k for k in found if types[k].endswith("[]")]
        keys = scalars + arrays
        self.source = sql  # for psycopg's cursor (`row` inside a transaction not begun)
        self.sql = re.sub(
            r"%\((\w+)\)s", lambda match: f"${keys.index(match.group(1)) + 1}", sql
        ).encode()
        self.keys = tuple(keys)
        self.scalar_keys = tuple(scalars)
        self.arrays = tuple((key, pg_types[types[key].removesuffix("[]")].oid) for key in arrays)
        oids = []
        for key in keys:
            name = types[key]
            info = pg_types[name.removesuffix("[]")]
            oids.append(info.array_oid if name.endswith("[]") else info.oid)
        self.oids = tuple(oids)
        self.scalar_oids = self.oids[: len(scalars)]
        self.text_results = text_results
        self.name = f"stepwise_{next(self._names)}".encode()

    def send(self, raw: Any, params: dict[str, Any], *, binary: bool = False) -> None:
        """Send the statement with `params` on `raw` (psycopg, nothing pending); prepared on
        first use on this connection unless STEPWISE_PREPARED_STATEMENTS is off. Results
        come as text (`collect`) unless `binary` (`run`)."""
        pq = _psycopg().pq
        entry = self._entry(raw)
        values = entry.transformer.dump_sequence(
            [params.get(k) for k in self.scalar_keys], entry.dump_formats
        )
        if self.arrays:
            values = [*values, *(pg_array(params[k], oid) for k, oid in self.arrays)]
        pgconn = raw.pgconn
        result_format = pq.Format.BINARY if binary else pq.Format.TEXT
        if entry.prepared:
            pgconn.send_query_prepared(
                self.name, values, param_formats=entry.formats, result_format=result_format
            )
        else:
            pgconn.send_query_params(
                self.sql,
                values,
                param_types=self.oids,
                param_formats=entry.formats,
                result_format=result_format,
            )
        _flush(pgconn)

    def run(self, raw: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Send the statement and wait for its first row, loaded as psycopg's cursor would;
        None if it returned none."""
        self.send(raw, params, binary=not self.text_results)
        results = _results(raw)
        result = results[-1] if results else None
        if result is None or result.ntuples == 0:
            return None
        entry = self._entry(raw)
        loader = entry.loader
        # The statement's columns never change: their loaders are looked up once.
        loader.set_pgresult(result, set_loaders=not entry.loaders_set)
        entry.loaders_set = True
        found: tuple[Any, ...] = loader.load_row(0, tuple)
        loader.set_pgresult(None, set_loaders=False)  # the result is not kept alive
        return found

    def _entry(self, raw: Any) -> _Prepared:
        """This statement's state on connection `raw` (prepared there on first use)."""
        state = _connection_state(raw)
        entry = state.get(self.name)
        if entry is None:
            entry = _Prepared(raw, self.scalar_oids, len(self.keys))
            if entry.prepared:
                pgconn = raw.pgconn
                pgconn.send_prepare(self.name, self.sql, param_types=self.oids)
                _flush(pgconn)
                _results(raw)
            state[self.name] = entry
        return entry

    @staticmethod
    def collect(raw: Any) -> tuple[bytes | None, ...] | None:
        """The sent statement's first row (text values), None if it returned none; raises
        the server's error as psycopg's exception."""
        results = _results(raw)
        result = results[-1] if results else None
        if result is None or result.ntuples == 0:
            return None
        return tuple(result.get_value(0, i) for i in range(result.nfields))


class _Prepared:
    """A `PgStatement` on one connection: its parameter dumpers, its result loaders, and
    whether the server holds it prepared."""

    __slots__ = ("dump_formats", "formats", "loader", "loaders_set", "prepared", "transformer")

    def __init__(self, raw: Any, scalar_oids: tuple[int, ...], count: int) -> None:
        from psycopg import pq
        from psycopg.adapt import PyFormat, Transformer

        self.transformer = Transformer(raw)
        self.transformer.set_dumper_types(scalar_oids, pq.Format.BINARY)
        self.loader = Transformer(raw)
        self.loaders_set = False
        self.prepared = bool(getattr(settings, "STEPWISE_PREPARED_STATEMENTS", True))
        self.dump_formats = [PyFormat.BINARY] * len(scalar_oids)
        self.formats = [pq.Format.BINARY] * count


_STATEMENTS: dict[str, PgStatement] = {}


def fixed_statement(
    sql: str, types: Mapping[str, str], *, text_results: bool = False
) -> PgStatement:
    """The `PgStatement` of `sql` (one per text in the process)."""
    statement = _STATEMENTS.get(sql)
    if statement is None:
        statement = _STATEMENTS[sql] = PgStatement(sql, types, text_results=text_results)
    return statement


def one(
    connection: BaseDatabaseWrapper, statement: PgStatement, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """Run `statement` on Django's connection (in its transaction, if any); its first row,
    None if it returned none. Errors come as Django's (`wrap_database_errors`); logged in
    `connection.queries` as Django's cursor logs (DEBUG, `CaptureQueriesContext`)."""
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    if connection.queries_logged:
        return _logged(connection, statement, params)
    with connection.wrap_database_errors:
        return row(connection.connection, statement, params)


def _logged(
    connection: BaseDatabaseWrapper, statement: PgStatement, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    start = time.monotonic()
    try:
        with connection.wrap_database_errors:
            return row(connection.connection, statement, params)
    finally:
        duration = time.monotonic() - start
        connection.queries_log.append(
            {"sql": statement.source, "params": params, "time": f"{duration:.3f}"}
        )


def row(raw: Any, statement: PgStatement, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run `statement` on the psycopg connection `raw`; its first row (None if none).

    Only psycopg's cursor opens the transaction of a connection out of autocommit (Django's
    inside `atomic`, before its first statement there), so that one case sends psycopg's own
    BEGIN first, as its cursor would (or takes the cursor, with a psycopg that has no such
    command to ask for).
    """
    pq = _psycopg().pq
    status = raw.pgconn.transaction_status
    if status == pq.TransactionStatus.IDLE and not raw.autocommit:
        begin = getattr(raw, "_get_tx_start_command", None)
        if begin is None:
            return _cursor_row(raw, statement, params)
        raw.pgconn.send_query(begin())
        _flush(raw.pgconn)
        _results(raw)
        status = raw.pgconn.transaction_status
    if status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.IDLE):
        return statement.run(raw, params)
    return _cursor_row(raw, statement, params)  # an aborted transaction: psycopg's error


def _cursor_row(raw: Any, statement: PgStatement, params: dict[str, Any]) -> Any:
    """`row` through psycopg's cursor (prepared by psycopg)."""
    import psycopg

    prepare = getattr(settings, "STEPWISE_PREPARED_STATEMENTS", True)
    if prepare and raw.prepare_threshold is None:
        # Django opens its connections with prepare_threshold=None, which makes psycopg
        # ignore `prepare=True`: every read and write here was parsed and planned again.
        # A threshold no query reaches prepares only what asks for it (Django's own
        # client-side-bound cursors never prepare).
        raw.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(statement.source, params, prepare=True if prepare else None)
        return cursor.fetchone()


_PREPARE_ONLY_WHEN_ASKED = 2**31 - 1

_INT32 = struct.Struct("!i")
_INT4_ITEM = struct.Struct("!ii")  # an int4 element: its length (4), its value
_ARRAY_HEAD = struct.Struct("!iiIii")  # dimensions, has nulls, element oid, length, lower bound
_EMPTY_ARRAY = struct.Struct("!iiI")
_NULL_ITEM = _INT32.pack(-1)
_INT4_OID = 23


def pg_array(items: Sequence[Any], oid: int) -> bytes:
    """A one-dimensional array of `oid` elements (text: str, bytea: bytes, int4: int) in
    PostgreSQL's binary format. Text is UTF-8: Django opens every PostgreSQL connection with
    client_encoding UTF8."""
    if not items:
        return _EMPTY_ARRAY.pack(0, 0, oid)
    parts = [b""]
    nulls = 0
    for item in items:
        if item is None:
            parts.append(_NULL_ITEM)
            nulls = 1
        elif oid == _INT4_OID:
            parts.append(_INT4_ITEM.pack(4, item))
        else:
            data = item.encode() if type(item) is str else bytes(item)
            parts.append(_INT32.pack(len(data)))
            parts.append(data)
    parts[0] = _ARRAY_HEAD.pack(1, nulls, oid, len(items), 1)
    return b"".join(parts)


# Per connection (the private one, and Django's for reads and synchronous writes): its
# prepared statements, their parameter dumpers and result loaders.
_states: weakref.WeakKeyDictionary[Any, dict[bytes, _Prepared]] = weakref.WeakKeyDictionary()


def _connection_state(raw: Any) -> dict[bytes, _Prepared]:
    state = _states.get(raw)
    if state is None:
        state = _states[raw] = {}
        _forget_on_deallocate_all(raw, state)
    return state


def _forget_on_deallocate_all(raw: Any, state: dict[bytes, _Prepared]) -> None:
    """Empty `state` whenever psycopg deallocates every prepared statement of `raw`.

    psycopg sends `DEALLOCATE ALL` after a rollback (Django's, or a `ROLLBACK TO SAVEPOINT`
    through a cursor) once it has prepared anything itself on the connection: with
    STEPWISE_DB_PREPARED (Django's statements prepared by psycopg) that is every connection,
    and without it a connection where `_cursor_row` ran. That also drops the statements
    prepared here, and each later use failed ("prepared statement "stepwise_1" does not
    exist") for the connection's life: 2,382 review pages of 2,443 answered 500 under the load
    test. psycopg decides it in its manager's `clear()` (True: the DEALLOCATE ALL is queued)
    and sends it within the same call, before any code here can run on the connection, so
    forgetting at that moment re-prepares each statement on its next use.
    """
    manager = getattr(raw, "_prepared", None)
    clear = getattr(manager, "clear", None)
    if clear is None:  # a psycopg without this manager: nothing here to follow
        return

    def clear_and_forget() -> bool:
        flushed: bool = clear()
        if flushed:
            state.clear()
        return flushed

    manager.clear = clear_and_forget


@functools.cache
def _psycopg() -> ModuleType:
    """psycopg, with `pq` and `errors` loaded: imported on first use (a SQLite-only process
    never pays for it), then kept, because an `import` statement in these per-statement
    functions cost more than a microsecond per call (importlib's `_handle_fromlist`)."""
    import psycopg
    import psycopg.errors
    import psycopg.pq

    return psycopg


def _wait(fd: int, events: int) -> int:
    poller = select.poll()
    poller.register(fd, events)
    found = poller.poll()  # releases the GIL
    return found[0][1] if found else 0


def _flush(pgconn: Any) -> None:
    """Push what libpq buffered to the socket (the connection is non-blocking)."""
    while pgconn.flush() != 0:
        if _wait(pgconn.socket, select.POLLOUT | select.POLLIN) & select.POLLIN:
            pgconn.consume_input()


def _results(raw: Any) -> list[Any]:
    """Every result of the statement sent last on `raw`, waiting for them; raises the first
    error the server sent."""
    psycopg = _psycopg()
    pq = psycopg.pq
    pgconn = raw.pgconn
    results = []
    while True:
        while pgconn.is_busy():
            _wait(pgconn.socket, select.POLLIN)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        results.append(result)
    for result in results:
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
    return results
