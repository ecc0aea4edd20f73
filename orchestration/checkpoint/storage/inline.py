"""Field versions kept in their checkpoint's own row (`vals`), in one format for every saver
that keeps them (the engine's SQLite saver, the Django saver on SQLite).

`vals` = serde bytes of `[[field, kind code, base, data]...]`: every version in it was created
by that checkpoint, so its version is the checkpoint's id. Kind codes: 0 full, 1 append (data =
the appended items, base = the version appended to), 2 a small scalar kept decoded (data = the
value itself, `VALUE`). The kind codes are also what the engine's `blobs` table stores.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from orchestration.checkpoint import serde
from orchestration.checkpoint.storage.records import APPEND, FULL, SCALARS, VALUE, Blob, Pair
from orchestration.errors import SerializationError

KIND_CODE = {FULL: 0, APPEND: 1, VALUE: 2}
KIND_NAME = {0: FULL, 1: APPEND}
VALUE_CODE = KIND_CODE[VALUE]


def pack_inline(blobs: Sequence[Blob]) -> bytes:
    """`vals` for `blobs` (each created by the checkpoint whose row keeps them)."""
    return serde.dumps(
        [
            [b.field, VALUE_CODE, None, b.value] if b.kind == VALUE
            else [b.field, KIND_CODE[b.kind], b.base, b.data]
            for b in blobs
        ],
        where="checkpoint row values",
    )


def unpack_inline(
    checkpoint_id: str,
    vals: bytes | None,
    found: dict[Pair, Blob] | None = None,
    scalars: dict[Pair, Any] | None = None,
    fields: Collection[str] | None = None,
) -> dict[Pair, Blob]:
    """The field versions kept in a checkpoint's row, added to `found` when given. With
    `scalars`, the scalars kept decoded (`VALUE`) go there, as the values themselves, instead
    of into `found` as blobs: a listing reads one per checkpoint, and needs only the value.
    With `fields`, only those fields' versions (a read of an append chain's bases goes through
    thousands of rows for one field). Anything malformed raises `SerializationError` naming
    the checkpoint."""
    if found is None:
        found = {}
    if vals is None:
        return found
    try:
        for field, kind, base, data in serde.loads(vals):  # any buffer: no copy
            if type(field) is not str or (fields is not None and field not in fields):
                continue
            if kind == VALUE_CODE:
                if type(data) not in SCALARS:
                    raise TypeError(f"field {field!r} is kept in the row but is not a scalar")
                if scalars is not None:
                    scalars[(field, checkpoint_id)] = data
                    continue
                found[(field, checkpoint_id)] = Blob(field, checkpoint_id, VALUE, None, b"", data)
            elif type(data) is bytes and (base is None or type(base) is str):
                found[(field, checkpoint_id)] = Blob(
                    field, checkpoint_id, KIND_NAME[kind], base, data
                )
        return found
    except (TypeError, ValueError, KeyError) as error:
        raise SerializationError(
            f"checkpoint {checkpoint_id!r} has malformed inline values ({error})"
        ) from None
