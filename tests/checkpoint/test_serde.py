"""The serializer: exact round trips, an allow-list for loading, errors that say where."""

from __future__ import annotations

import enum
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import msgpack
import pydantic
import pytest

from orchestration.checkpoint import serde
from orchestration.errors import SerializationError


class Mood(enum.StrEnum):
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int


class Model(pydantic.BaseModel):
    point: Point
    when: datetime


serde.register(Mood, Point, Model)


def _tampered(code: int, payload: object) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(payload)))


def test_registered_types_round_trip_with_their_own_class() -> None:
    value = {"m": Model(point=Point(1, 2), when=datetime(2025, 1, 1, tzinfo=UTC)), "e": Mood.OK}
    again = serde.loads(serde.dumps(value))
    assert again == value
    assert type(again["m"].point) is Point
    assert type(again["e"]) is Mood


def test_tuples_stay_tuples_and_lists_stay_lists() -> None:
    again = serde.loads(serde.dumps({"t": (1, [2, (3,)]), "l": [(4,)]}))
    assert again == {"t": (1, [2, (3,)]), "l": [(4,)]}
    assert type(again["t"]) is tuple and type(again["t"][1]) is list


def test_unregistered_dataclass_is_refused_when_dumping() -> None:
    @dataclass
    class Secret:
        value: str

    with pytest.raises(SerializationError, match=r"value\['k'\]\[1\] is .*Secret.*not registered"):
        serde.dumps({"k": [1, Secret("x")]})


def test_unserializable_value_error_names_the_path() -> None:
    with pytest.raises(SerializationError, match=r"state field 'f'\[0\]\.y is builtins.object"):
        serde.dumps([Point(1, object())], where="state field 'f'")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["os:system", "subprocess:Popen", "builtins:eval"])
def test_loading_a_type_that_is_not_registered_constructs_nothing(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tampered value started a process")

    monkeypatch.setattr(subprocess, "Popen", explode)
    payloads = {
        10: [name, ["touch", "/tmp/pwned"]],  # Enum
        11: [name, {"args": ["touch", "/tmp/pwned"]}],  # dataclass
        12: [name, {"args": ["touch", "/tmp/pwned"]}, []],  # pydantic model
    }
    for code, payload in payloads.items():
        with pytest.raises(SerializationError, match=f"{name}.*not registered.*refusing"):
            serde.loads(_tampered(code, payload))


def test_loading_an_unregistered_dataclass_by_its_real_name_is_refused() -> None:
    @dataclass
    class Unlisted:
        a: int

    name = f"{Unlisted.__module__}:{Unlisted.__qualname__}"
    with pytest.raises(SerializationError, match="not registered"):
        serde.loads(_tampered(11, [name, {"a": 1}]))


def test_a_registered_name_of_the_wrong_kind_is_refused() -> None:
    name = f"{Mood.__module__}:{Mood.__qualname__}"  # an Enum, stored as if a dataclass
    with pytest.raises(SerializationError, match="not registered"):
        serde.loads(_tampered(11, [name, {"x": 1}]))


def test_unknown_extension_type_is_refused() -> None:
    with pytest.raises(SerializationError, match="unknown extension type 42"):
        serde.loads(msgpack.packb(msgpack.ExtType(42, b"")))


def test_garbage_bytes_raise_serialization_error() -> None:
    with pytest.raises(SerializationError, match="not valid checkpoint data"):
        serde.loads(b"\xc1\x00")


def test_only_dataclasses_models_and_enums_can_be_registered() -> None:
    with pytest.raises(TypeError, match="only dataclasses, pydantic models and Enum"):
        serde.register(dict)


def test_serde_never_imports_pickle() -> None:
    source = open(serde.__file__).read()
    assert "pickle" not in source.replace("No pickle", "")


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 27, 12, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 0, 0, 999_999, tzinfo=UTC),
        datetime(1, 1, 1),
        datetime(2026, 1, 2, 3, 4, 5, 70_000),  # packs to a 16-byte payload (fixext 16)
        datetime(2025, 3, 30, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-3), "BRT")),
    ],
)
def test_a_datetime_packs_alone_exactly_as_inside_a_container(moment: datetime) -> None:
    alone = serde.dumps(moment)
    assert serde.dumps([moment]) == b"\x91" + alone
    assert serde.loads(alone) == moment and serde.loads(alone).tzinfo == moment.tzinfo


def test_utc_timestamps_pack_as_the_general_path_packs_them() -> None:
    """A checkpoint's ts (UTC, microseconds >= 2**16) is packed from pieces kept per minute:
    byte for byte what the general path (a datetime inside a container) writes, across
    minutes, hours, days and years, with fold set or not, and it loads back equal."""
    start = datetime(2026, 12, 31, 23, 58, 59, 65_536, tzinfo=UTC)
    moments = [start + timedelta(seconds=7 * i, microseconds=104_729 * i) for i in range(400)]
    moments += [
        datetime(1, 1, 1, 0, 0, 0, 65_536, tzinfo=UTC),
        datetime(127, 2, 3, 4, 5, 6, 999_999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 123_456, tzinfo=UTC, fold=1),
        datetime(2026, 3, 4, 5, 6, 7, 65_535, tzinfo=UTC),  # the general path's own case
    ]
    for moment in moments + moments[::-1]:  # a minute seen again after others
        alone = serde.dumps(moment)
        assert b"\x91" + alone == serde.dumps([moment]), moment
        back = serde.loads(alone)
        assert back == moment and back.tzinfo is UTC and back.fold == moment.fold
