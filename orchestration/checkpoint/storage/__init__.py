"""The storage core every saver shares: how a checkpoint becomes rows and blobs, and back.

A checkpoint is one small record (ids, step, source, next, field versions, serialized
`internal` and metadata) plus one blob per (field, version) for the fields this checkpoint
changed. A list field that only grew since the parent's version (a `topic`) is stored as
the appended items alone (`kind="append"`, `base` = the parent's version), so storage grows
with what changed, not with the size of the state. Reading walks append chains back to a
full blob. A saver may keep small new versions in the checkpoint's own row (`inline_max`).

Appends are detected on serialized bytes: msgpack encodes a list as a header followed by its
items' encodings, so "new extends old" is a byte-prefix check, and the cache of recently
written values holds immutable bytes that nodes cannot mutate behind our back.

Everything here is pure (no I/O); savers supply storage and a `fetch` callback for blobs.
One module per job:

- `records`: the records savers store and read (`CheckpointRecord`, `Blob`, ...);
- `cache`: `ValueCache`, recently written or read values and versions;
- `packing`: msgpack arrays as bytes (headers, appends, joins);
- `encode`: a checkpoint into records and blobs (`encode_checkpoint`, `encode_writes`);
- `read`: records and blobs back into tuples (`read_tuples`, `resolve_values`);
- `inline`: the format of field versions kept in their checkpoint's row (`vals`);
- `gcpause`: no cyclic garbage collection while a listing builds its objects;
- `trusted`: building the port's frozen dataclasses without their constructors, guarded.
"""

from orchestration.checkpoint.storage.cache import ValueCache
from orchestration.checkpoint.storage.encode import (
    encode_checkpoint,
    encode_metadata_writes,
    encode_writes,
    explain_unpackable,
    remember_put,
)
from orchestration.checkpoint.storage.read import (
    Fetch,
    decoded_row,
    read_rows,
    read_tuples,
    remember_read,
    resolve_values,
)
from orchestration.checkpoint.storage.records import (
    APPEND,
    FULL,
    VALUE,
    Blob,
    CheckpointRecord,
    EncodedPut,
    Pair,
    ReadRow,
    WriteRecord,
    record_pairs,
)
from orchestration.checkpoint.storage.trusted import trusted_config

__all__ = [
    "APPEND",
    "FULL",
    "VALUE",
    "Blob",
    "CheckpointRecord",
    "EncodedPut",
    "Fetch",
    "Pair",
    "ReadRow",
    "ValueCache",
    "WriteRecord",
    "encode_checkpoint",
    "encode_metadata_writes",
    "encode_writes",
    "explain_unpackable",
    "decoded_row",
    "read_rows",
    "read_tuples",
    "record_pairs",
    "remember_put",
    "remember_read",
    "resolve_values",
    "trusted_config",
]
