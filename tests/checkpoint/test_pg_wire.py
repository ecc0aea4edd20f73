"""The PostgreSQL saver's own encoding of array parameters (`pgstatement.pg_array`)
matches psycopg's binary dumper byte for byte."""

from __future__ import annotations

import pytest
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.postgres import types

from orchestration.runtime.pgstatement import pg_array


@pytest.mark.parametrize(
    ("type_name", "items"),
    [
        ("text", ["counter", "héllo wörld", ""]),
        ("text", []),
        ("text", ["x", None]),
        ("bytea", [b"\x00\x01\xff", b"", memoryview(b"ab")]),
        ("int4", [0, 1, -5, 2**31 - 1, -(2**31)]),
    ],
)
def test_array_parameter_is_what_psycopg_sends(type_name: str, items: list[object]) -> None:
    info = types[type_name]
    transformer = Transformer()
    transformer.set_dumper_types([info.array_oid], pq.Format.BINARY)
    (expected,) = transformer.dump_sequence([items], [PyFormat.BINARY])
    assert pg_array(items, info.oid) == bytes(expected)
