"""msgpack arrays as bytes: a packed list is a header followed by its items' encodings, so
"new extends old" is a byte-prefix check and a list is joined from pieces without decoding."""

from __future__ import annotations

import struct

# An append blob starts with the number of items it adds.
COUNT = struct.Struct(">I")
EMPTY_MAP = b"\x80"  # a packed empty dict: most checkpoints have no engine bookkeeping


def split_array(data: bytes) -> tuple[int, int] | None:
    """(item count, header length) if `data` is a packed list, else None."""
    if not data:
        return None
    first = data[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F, 1
    if first == 0xDC:
        return int.from_bytes(data[1:3]), 3
    if first == 0xDD:
        return int.from_bytes(data[1:5]), 5
    return None


def array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2)
    return b"\xdd" + count.to_bytes(4)


def appended(old: bytes, new: bytes) -> tuple[int, bytes] | None:
    """If `new` is the list `old` with items appended: (number added, their packed bytes)."""
    old_shape, new_shape = split_array(old), split_array(new)
    if old_shape is None or new_shape is None:
        return None
    (old_count, old_header), (new_count, new_header) = old_shape, new_shape
    old_body_len = len(old) - old_header
    if new_count <= old_count or len(new) - new_header <= old_body_len:
        return None
    if new[new_header : new_header + old_body_len] != old[old_header:]:
        return None
    return new_count - old_count, new[new_header + old_body_len :]
