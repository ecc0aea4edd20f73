"""Serialization of state values: msgpack with tagged extension types and an allow-list.

No pickle: a stored value can only ever come back as built-in data, one of the standard
value types below, or a type that was explicitly `register`ed (by name, looked up in this
module's registry only; nothing is ever imported by name, except LangChain's chat message
classes from a fixed list). So a tampered row cannot make `loads` construct anything else.

Round-trips exactly: JSON values, tuples (stay tuples), sets, frozensets, bytes (a bytearray
comes back as bytes), integers of any size, `datetime` (naive, fixed offset or `ZoneInfo`),
`date`, `time`, `timedelta`, `Decimal`, `UUID`, and registered `Enum`s, dataclasses and
pydantic models.

The hot path is msgpack's C packer: plain data never calls back into Python. Only values of
the extension types do, and the slow walk that locates an unserializable value (for the
error message) runs only after packing has already failed.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgpack

from orchestration.errors import SerializationError

__all__ = ["SerializationError", "dumps", "is_registered", "loads", "register"]

# Extension type codes. They are part of the storage format: never renumber them.
_TUPLE = 1
_SET = 2
_FROZENSET = 3
_DATETIME = 4
_DATE = 5
_TIME = 6
_TIMEDELTA = 7
_DECIMAL = 8
_UUID = 9
_ENUM = 10
_DATACLASS = 11
_PYDANTIC = 12
_BIGINT = 13
_MESSAGE = 14  # a chat message (`orchestration.messages.Message`): a dict read as an object

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


class _Unserializable(TypeError):
    """Raised inside msgpack's `default` hook; turned into a SerializationError with a path."""


# --- registry -----------------------------------------------------------------------------

_lock = threading.Lock()
_by_name: dict[str, type] = {}
_name_of: dict[type, str] = {}


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_pydantic_model(cls: type) -> bool:
    # Duck-typed so that importing this module never imports pydantic.
    return isinstance(cls, type) and hasattr(cls, "model_fields") and hasattr(
        cls, "model_construct"
    )


def register(*types: type) -> type | None:
    """Allow dataclasses, pydantic models and Enum classes to be stored and loaded back.

    A type is known by `module:qualname`; registering another class under the same name
    replaces the earlier one. Returns the first type, so it also works as a class decorator.
    """
    for cls in types:
        if not isinstance(cls, type):
            raise TypeError(f"register() takes classes, got {cls!r}")
        if issubclass(cls, enum.Enum):
            encoder: Callable[[Any], msgpack.ExtType] = _encode_enum
        elif dataclasses.is_dataclass(cls):
            encoder = _encode_dataclass
        elif _is_pydantic_model(cls):
            encoder = _encode_pydantic
        else:
            raise TypeError(
                f"cannot register {cls.__qualname__}: only dataclasses, pydantic models and "
                "Enum classes can be registered for checkpoint storage"
            )
        name = _type_name(cls)
        with _lock:
            previous = _by_name.get(name)
            if previous is not None and previous is not cls:
                _name_of.pop(previous, None)
                _ENCODERS.pop(previous, None)
            _by_name[name] = cls
            _name_of[cls] = name
            _ENCODERS[cls] = encoder
    return types[0] if types else None


def register_message_class(cls: type[dict[str, Any]]) -> None:
    """Store `cls` (a dict subclass: `orchestration.messages.Message`) as its items, loaded
    back as `cls`. Kept apart from `register`: it is a dict, not a dataclass or model."""
    global _message_class
    _message_class = cls
    _ENCODERS[cls] = _encode_message


_message_class: type[dict[str, Any]] | None = None


def _encode_message(value: dict[str, Any]) -> msgpack.ExtType:
    return _ext(_MESSAGE, dict(value))


def _decode_message(payload: bytes) -> Any:
    items = _unpack(payload)
    return items if _message_class is None else _message_class(items)


def is_registered(cls: type) -> bool:
    return cls in _name_of


# LangChain's chat message classes (pydantic models) are stored as registered models without
# being registered first: LangGraph chat programs keep them in state. Only these names, from
# these modules, are ever imported on load (when a stored value names one); nothing else is.
_LANGCHAIN_MESSAGES = frozenset(
    f"langchain_core.messages.{module}:{kind}{chunk}"
    for module, kind in (("ai", "AIMessage"), ("chat", "ChatMessage"),
                         ("function", "FunctionMessage"), ("human", "HumanMessage"),
                         ("system", "SystemMessage"), ("tool", "ToolMessage"))
    for chunk in ("", "Chunk")
) | {"langchain_core.messages.modifier:RemoveMessage"}


def _langchain_message(cls: type) -> bool:
    """Register `cls` if it is one of LangChain's message classes; whether it was."""
    if _type_name(cls) not in _LANGCHAIN_MESSAGES or not _is_pydantic_model(cls):
        return False
    register(cls)
    return True


def _load_langchain_message(name: str) -> type | None:
    if name not in _LANGCHAIN_MESSAGES:
        return None
    import importlib

    module, _, qualname = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        return None  # LangChain is not installed here: refused below, as any unknown name
    return cls if _langchain_message(cls) else None


def _registered(name: Any, kind: str, check: Callable[[type], bool]) -> type:
    cls = _by_name.get(name) if isinstance(name, str) else None
    if cls is None and isinstance(name, str):
        cls = _load_langchain_message(name)
    if cls is None or not check(cls):
        raise SerializationError(
            f"stored value names {kind} {name!r}, which is not registered for checkpoint "
            "storage; refusing to construct it. If the type is legitimate, call "
            "orchestration.checkpoint.serde.register(TheType) before loading."
        )
    return cls


# --- encoding -----------------------------------------------------------------------------


# Packers are reused (creating one allocates its buffer); a pool rather than one per thread
# because packing an extension value packs its payload re-entrantly.
_packers: list[msgpack.Packer] = []


def _pack(value: Any) -> bytes:
    try:
        packer = _packers.pop()
    except IndexError:
        packer = msgpack.Packer(default=_default, use_bin_type=True, strict_types=True)
    data = packer.pack(value)  # on error the packer is dropped, never reused half-filled
    _packers.append(packer)
    return data


def _ext(code: int, payload: Any) -> msgpack.ExtType:
    return msgpack.ExtType(code, _pack(payload))


def _encode_tz(tz: tzinfo | None, moment: datetime | None) -> Any:
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        return ["z", tz.key]
    offset = tz.utcoffset(moment)
    if offset is None:
        return None
    seconds = offset.days * 86400 + offset.seconds
    micros = offset.microseconds
    name = tz.tzname(moment) if isinstance(tz, timezone) and tz is not UTC else None
    return ["o", seconds, micros, name]


_UTC_RAW = ["o", 0, 0, None]


def _datetime_fields(value: datetime) -> list[Any]:
    # Checkpoint timestamps are UTC: skip the general time zone encoding for them.
    tz = value.tzinfo
    return [
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond, value.fold,
        _UTC_RAW if tz is UTC else None if tz is None else _encode_tz(tz, value),
    ]


def _encode_datetime(value: datetime) -> msgpack.ExtType:
    return _ext(_DATETIME, _datetime_fields(value))


def _ext_header(code: int, size: int) -> bytes:
    fixed = _FIXEXT.get(size)
    if fixed is not None:
        return bytes((fixed, code))
    if size < 1 << 8:
        return bytes((0xC7, size, code))
    if size < 1 << 16:
        return b"\xc8" + size.to_bytes(2) + bytes((code,))
    return b"\xc9" + size.to_bytes(4) + bytes((code,))


_FIXEXT = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}


def _pack_datetime(value: datetime) -> bytes:
    """Exactly what packing `value` through `_default` writes, without building an ExtType
    (every checkpoint's ts goes through here)."""
    if value.tzinfo is UTC and value.microsecond >= 1 << 16:
        return _pack_utc(value)
    payload = _pack(_datetime_fields(value))
    return _ext_header(_DATETIME, len(payload)) + payload


# A checkpoint's ts (UTC, microseconds >= 2**16: 93% of them) packed as the general path
# packs it, from pieces: the ext header and the fields down to the minute (the same for
# every checkpoint of that minute, kept for the last minute seen), then second, microsecond
# (a uint32, 0xCE) and fold, then the UTC zone. ~5.4k instructions a ts instead of ~14k.
_SECOND_MICRO_FOLD = struct.Struct(">BBIB")
_UTC_PACKED = b"\x94\xa1o\x00\x00\xc0"  # _UTC_RAW packed
_TAIL_SIZE = _SECOND_MICRO_FOLD.size + len(_UTC_PACKED)
_utc_minute: tuple[tuple[int, int, int, int, int], bytes] = ((0, 0, 0, 0, 0), b"")


def _pack_utc(value: datetime) -> bytes:
    global _utc_minute
    minute = (value.year, value.month, value.day, value.hour, value.minute)
    known, head = _utc_minute
    if known != minute:
        payload = _pack([*minute, 0, 1 << 16, 0, _UTC_RAW])  # the general path's bytes
        head = _ext_header(_DATETIME, len(payload)) + payload[:-_TAIL_SIZE]
        _utc_minute = (minute, head)
    return head + _SECOND_MICRO_FOLD.pack(value.second, 0xCE, value.microsecond, value.fold) \
        + _UTC_PACKED


def _encode_time(value: time) -> msgpack.ExtType:
    return _ext(
        _TIME,
        [value.hour, value.minute, value.second, value.microsecond, value.fold,
         _encode_tz(value.tzinfo, None)],
    )


def _encode_int(value: int) -> msgpack.ExtType:
    # Only reached for ints msgpack cannot hold natively (beyond 64 bits) and int subclasses.
    if type(value) is not int:
        raise _Unserializable(type(value))
    return msgpack.ExtType(_BIGINT, str(value).encode())


def _encode_enum(value: enum.Enum) -> msgpack.ExtType:
    return _ext(_ENUM, [_name_of[type(value)], value.value])


def _encode_dataclass(value: Any) -> msgpack.ExtType:
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return _ext(_DATACLASS, [_name_of[type(value)], fields])


def _encode_pydantic(value: Any) -> msgpack.ExtType:
    fields = dict(value.__dict__)
    extra = getattr(value, "__pydantic_extra__", None)
    if extra:
        fields.update(extra)
    fields_set = sorted(value.__pydantic_fields_set__)
    return _ext(_PYDANTIC, [_name_of[type(value)], fields, fields_set])


_ENCODERS: dict[type, Callable[[Any], msgpack.ExtType]] = {
    tuple: lambda v: _ext(_TUPLE, list(v)),
    set: lambda v: _ext(_SET, list(v)),
    frozenset: lambda v: _ext(_FROZENSET, list(v)),
    datetime: _encode_datetime,
    date: lambda v: _ext(_DATE, [v.year, v.month, v.day]),
    time: _encode_time,
    timedelta: lambda v: _ext(_TIMEDELTA, [v.days, v.seconds, v.microseconds]),
    Decimal: lambda v: msgpack.ExtType(_DECIMAL, str(v).encode()),
    UUID: lambda v: msgpack.ExtType(_UUID, v.bytes),
    int: _encode_int,
}


def _default(value: Any) -> msgpack.ExtType:
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        if not _langchain_message(type(value)):
            raise _Unserializable(type(value))
        encoder = _ENCODERS[type(value)]
    return encoder(value)


def dumps(value: Any, *, where: str = "value", field: str | None = None) -> bytes:
    """Serialize `value`. `where` names it in errors (savers pass e.g. "state field 'items'");
    `field`, the state field it is the value of, becomes the error's `field` attribute."""
    try:
        if type(value) is datetime:
            return _pack_datetime(value)
        return _pack(value)
    except (_Unserializable, TypeError, ValueError, OverflowError) as error:
        raise _explain(value, where, error, field) from None


# --- explaining a failure -----------------------------------------------------------------

_LEAVES = (str, float, bool, type(None), bytes, bytearray, datetime, date, time, timedelta,
           Decimal, UUID)


def _children(value: Any) -> Iterator[tuple[str, Any]] | None:
    kind = type(value)
    if kind is dict or (kind is _message_class and kind is not None):
        return (item for key, child in value.items()
                for item in ((f"<key {key!r}>", key), (f"[{key!r}]", child)))
    if kind in (list, tuple):
        return ((f"[{i}]", child) for i, child in enumerate(value))
    if kind in (set, frozenset):
        return (("<set item>", child) for child in value)
    if kind in _name_of:
        if issubclass(kind, enum.Enum):
            return iter([(".value", value.value)])
        if dataclasses.is_dataclass(kind):
            return ((f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
        return ((f".{name}", child) for name, child in value.__dict__.items())
    return None


def _find_bad(value: Any, path: str, seen: set[int]) -> tuple[str, str] | None:
    kind = type(value)
    if kind is int or kind in _LEAVES:
        return None
    children = _children(value)
    if children is None:
        return path, _describe_type(kind)
    if id(value) in seen:
        return path, "a reference cycle (the value contains itself)"
    seen.add(id(value))
    for step, child in children:
        found = _find_bad(child, path + step, seen)
        if found is not None:
            return found
    seen.discard(id(value))
    return None


def _describe_type(kind: type) -> str:
    qualified = f"{kind.__module__}.{kind.__qualname__}"
    if dataclasses.is_dataclass(kind) or _is_pydantic_model(kind) or issubclass(kind, enum.Enum):
        return (f"{qualified}, which is not registered (call "
                f"orchestration.checkpoint.serde.register({kind.__qualname__}))")
    return f"{qualified}, which cannot be stored in a checkpoint"


def _explain(
    value: Any, where: str, error: Exception, field: str | None
) -> SerializationError:
    found = _find_bad(value, where, set())
    if found is None:
        return SerializationError(f"cannot serialize {where}: {error}", field=field)
    path, what = found
    return SerializationError(
        f"cannot serialize {where}: {path} is {what}. Store JSON-like data, dates, Decimal, "
        "UUID, bytes, sets, tuples, or registered dataclasses / pydantic models / Enums.",
        field=field,
    )


# --- decoding -----------------------------------------------------------------------------


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def _decode_tz(raw: Any) -> tzinfo | None:
    if raw is None:
        return None
    if raw[0] == "z":
        return ZoneInfo(raw[1])
    _, seconds, micros, name = raw
    offset = timedelta(seconds=seconds, microseconds=micros)
    if not offset and name is None:
        return UTC
    return timezone(offset) if name is None else timezone(offset, name)


def _decode_dataclass(payload: bytes) -> Any:
    name, fields = _unpack(payload)
    cls = _registered(name, "dataclass", dataclasses.is_dataclass)
    declared = dataclasses.fields(cls)
    if len(declared) == len(fields) and all(f.name in fields for f in declared):
        # Rebuild without calling __init__/__post_init__: the stored fields are the state.
        obj = object.__new__(cls)
        for f in declared:
            object.__setattr__(obj, f.name, fields[f.name])
        return obj
    # The class changed since the value was stored: let its defaults fill the gaps.
    init = {f.name: fields[f.name] for f in declared if f.init and f.name in fields}
    return cls(**init)


def _decode_pydantic(payload: bytes) -> Any:
    name, fields, fields_set = _unpack(payload)
    cls = _registered(name, "pydantic model", _is_pydantic_model)
    return cls.model_construct(_fields_set=set(fields_set), **fields)


def _decode_enum(payload: bytes) -> Any:
    name, value = _unpack(payload)
    cls = _registered(name, "Enum", lambda c: issubclass(c, enum.Enum))
    return cls(value)


def _decode_datetime(payload: bytes) -> datetime:
    y, mo, d, h, mi, s, us, fold, tz = _unpack(payload)
    # Every checkpoint's ts is UTC: skip building an offset to find that out.
    zone = UTC if tz == _UTC_RAW else _decode_tz(tz)
    return datetime(y, mo, d, h, mi, s, us, tzinfo=zone, fold=fold)


def _decode_time(payload: bytes) -> time:
    h, mi, s, us, fold, tz = _unpack(payload)
    return time(h, mi, s, us, tzinfo=_decode_tz(tz), fold=fold)


_DECODERS: dict[int, Callable[[bytes], Any]] = {
    _TUPLE: lambda p: tuple(_unpack(p)),
    _SET: lambda p: set(_unpack(p)),
    _FROZENSET: lambda p: frozenset(_unpack(p)),
    _DATETIME: _decode_datetime,
    _DATE: lambda p: date(*_unpack(p)),
    _TIME: _decode_time,
    _TIMEDELTA: lambda p: timedelta(*_unpack(p)),
    _DECIMAL: lambda p: Decimal(p.decode()),
    _UUID: lambda p: UUID(bytes=bytes(p)),
    _ENUM: _decode_enum,
    _DATACLASS: _decode_dataclass,
    _PYDANTIC: _decode_pydantic,
    _BIGINT: lambda p: int(p.decode()),
    _MESSAGE: lambda p: _decode_message(p),
}


def _ext_hook(code: int, payload: bytes) -> Any:
    decoder = _DECODERS.get(code)
    if decoder is None:
        raise SerializationError(f"stored value uses unknown extension type {code}")
    return decoder(payload)


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Deserialize bytes made by `dumps`. Only built-in and registered types are constructed."""
    try:
        # msgpack called here rather than through `_unpack`: one frame less on every read of
        # a value, row or pending write (a history makes hundreds).
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except SerializationError:
        raise
    except Exception as error:  # msgpack's own errors, or a malformed payload
        raise SerializationError(
            f"stored value is not valid checkpoint data ({type(error).__name__}: {error})"
        ) from None
