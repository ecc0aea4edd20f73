"""State schemas: what fields a graph's state has, their reducers and defaults, and how plain
field dicts (what checkpoints store) turn into the schema's instances and back."""

from __future__ import annotations

import copy
import dataclasses
import enum
import importlib
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Required

from orchestration.errors import InvalidUpdateError
from orchestration.managed import ManagedValue, managed_kind
from orchestration.reducers import last_value

Reducer = Callable[[Any, Any], Any]
SchemaKind = Literal["dataclass", "typeddict", "pydantic"]

_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    reducer: Reducer
    # Produces a fresh default each call; `None` when the field has none (required).
    default: Callable[[], Any] | None
    annotation: Any


def _is_pydantic_model(cls: Any) -> bool:
    return isinstance(cls, type) and hasattr(cls, "model_fields") and hasattr(
        cls, "model_construct"
    )


def _is_typeddict(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, dict) and hasattr(cls, "__total__")


def _strip_qualifiers(annotation: Any) -> Any:
    while typing.get_origin(annotation) in (Required, NotRequired):
        annotation = typing.get_args(annotation)[0]
    return annotation


def _reducer_of(annotation: Any) -> Reducer:
    annotation = _strip_qualifiers(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            if callable(meta) and not isinstance(meta, type):
                return typing.cast(Reducer, meta)
    return last_value


def _base_type(annotation: Any) -> Any:
    annotation = _strip_qualifiers(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return typing.get_origin(annotation) or annotation


def _empty_factory(annotation: Any) -> Callable[[], Any] | None:
    """A TypedDict field with a reducer starts from its type's empty value (list(), dict(), 0)."""
    base = _base_type(annotation)
    if isinstance(base, type):
        try:
            base()
        except Exception:
            return None
        return typing.cast(Callable[[], Any], base)
    return None


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


class Schema:
    """Introspects a dataclass, TypedDict or pydantic model once, at `StateGraph(schema)`."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.kind: SchemaKind
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception as error:
            raise TypeError(
                f"cannot read the annotations of state schema {cls!r}: {error}"
            ) from error
        if dataclasses.is_dataclass(cls) and isinstance(cls, type):
            self.kind = "dataclass"
            specs = [self._dataclass_field(f, hints[f.name]) for f in dataclasses.fields(cls)]
        elif _is_pydantic_model(cls):
            self.kind = "pydantic"
            specs = [
                self._pydantic_field(name, info, hints.get(name))
                for name, info in cls.model_fields.items()
            ]
        elif _is_typeddict(cls):
            self.kind = "typeddict"
            specs = [self._typeddict_field(name, hint) for name, hint in hints.items()]
        else:
            raise TypeError(
                f"StateGraph needs a @dataclass, a TypedDict or a pydantic BaseModel as its state "
                f"schema, got {cls!r}"
            )
        # Managed values (`RemainingSteps`, `IsLastStep`): filled in for each step's nodes
        # and routers (`with_managed`), never stored, given or returned.
        self.managed: dict[str, type[ManagedValue]] = {
            name: kind for name, hint in hints.items()
            if (kind := managed_kind(_strip_qualifiers(hint))) is not None
        }
        if self.managed:
            specs = [s for s in specs if s.name not in self.managed]
            self._check_managed_defaults(cls)
        self.fields: dict[str, FieldSpec] = {s.name: s for s in specs}
        bad = [name for name in self.fields if name.startswith("__")]
        if bad:
            raise TypeError(
                f"state fields may not start with '__' (reserved for the engine): {bad}"
            )
        self.reducers: dict[str, Reducer] = {s.name: s.reducer for s in specs}
        # Fields a write simply replaces: an update touching only these needs no reducer call.
        self.plain_fields = frozenset(s.name for s in specs if s.reducer is last_value)
        # Fields only nodes' own input schemas declare (`with_private`): state the nodes pass
        # each other that the graph's caller neither gives nor gets back.
        self.private: frozenset[str] = frozenset()

    def _check_managed_defaults(self, cls: Any) -> None:
        """A dataclass or pydantic state is built without its managed fields: they need a
        default (a TypedDict needs none)."""
        if self.kind == "dataclass":
            required = [f.name for f in dataclasses.fields(cls) if f.name in self.managed
                        and f.default is _MISSING and f.default_factory is _MISSING]
        elif self.kind == "pydantic":
            required = [n for n in self.managed if cls.model_fields[n].is_required()]
        else:
            return
        if required:
            raise TypeError(
                f"managed field(s) {required} of {cls.__name__} need a default (e.g. "
                f"`{required[0]}: RemainingSteps = 25`): the engine sets them for each step"
            )

    def with_managed(self, state: Any, remaining: int) -> Any:
        """`state` as a step's nodes and routers read it: with the managed values for a call
        that may run `remaining` more supersteps."""
        values = {name: kind.get(remaining) for name, kind in self.managed.items()}
        if self.kind == "typeddict":
            return {**state, **values}
        if self.kind == "pydantic":
            return state.model_copy(update=values)
        return dataclasses.replace(state, **values)

    def with_private(self, node_schemas: Iterable[Schema]) -> tuple[Schema, list[str]]:
        """This schema plus the fields that nodes' input schemas declare and it lacks, as
        LangGraph adds a channel for each (how-to "Pass private state between nodes"); and
        the problems found: a field both declare with different reducers."""
        extra: dict[str, FieldSpec] = {}
        problems: list[str] = []
        for other in node_schemas:
            for name, spec in other.fields.items():
                known = self.fields.get(name) or extra.get(name)
                if known is None:
                    extra[name] = spec
                elif spec.reducer is not last_value and spec.reducer is not known.reducer:
                    problems.append(
                        f"field {name!r} has reducer {spec.reducer!r} in {other.cls.__name__} "
                        f"but {known.reducer!r} in the graph; declare it with one reducer"
                    )
        if not extra:
            return self, problems
        extended = copy.copy(self)
        extended.fields = {**self.fields, **extra}
        extended.reducers = {**self.reducers, **{n: s.reducer for n, s in extra.items()}}
        extended.plain_fields = self.plain_fields | {
            n for n, s in extra.items() if s.reducer is last_value
        }
        extended.private = frozenset(extra)
        return extended, problems

    def read(self, values: Mapping[str, Any]) -> Any:
        """What a node whose input schema this is receives: only this schema's fields."""
        picked = {name: values[name] for name in self.fields if name in values}
        return picked if self.kind == "typeddict" else self.instance(picked)

    @staticmethod
    def _typeddict_field(name: str, hint: Any) -> FieldSpec:
        reducer = _reducer_of(hint)
        default = None if reducer is last_value else _empty_factory(hint)
        return FieldSpec(name, reducer, default, hint)

    @staticmethod
    def _dataclass_field(f: dataclasses.Field[Any], hint: Any) -> FieldSpec:
        default: Callable[[], Any] | None = None
        if f.default is not _MISSING:
            default = _constant(f.default)
        elif f.default_factory is not _MISSING:
            default = typing.cast(Callable[[], Any], f.default_factory)
        return FieldSpec(f.name, _reducer_of(hint), default, hint)

    @staticmethod
    def _pydantic_field(name: str, info: Any, hint: Any) -> FieldSpec:
        reducer: Reducer = last_value
        for meta in info.metadata:
            if callable(meta) and not isinstance(meta, type):
                reducer = meta
                break
        if hint is not None and reducer is last_value:
            reducer = _reducer_of(hint)
        default = (
            None if info.is_required() else (lambda: info.get_default(call_default_factory=True))
        )
        return FieldSpec(name, reducer, default, hint if hint is not None else info.annotation)

    # -- values <-> instances ---------------------------------------------------------------

    def in_order(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` with its fields in the schema's order, as LangGraph lists a dict state's
        channels (a field first written late would otherwise print last). Called only when a
        step adds a field, so most steps keep their dict as it is."""
        return {name: values[name] for name in self.fields if name in values}

    def initial_values(self) -> dict[str, Any]:
        return {name: s.default() for name, s in self.fields.items() if s.default is not None}

    def instance(self, values: Mapping[str, Any]) -> Any:
        """The schema instance nodes receive and `invoke` returns (a dict for a TypedDict)."""
        if self.kind == "typeddict":
            return dict(values)
        if self.private:  # a model holds only its own fields
            values = {k: v for k, v in values.items() if k not in self.private}
        missing = [
            n for n, s in self.fields.items()
            if s.default is None and n not in values and n not in self.private
        ]
        if missing:
            raise InvalidUpdateError(
                f"state field(s) {missing} of {self.cls.__name__} have no default and no value "
                "yet: give them in the graph's input"
            )
        if self.kind == "pydantic":
            return self.cls.model_construct(**values)
        return self.cls(**values)

    def state_from(
        self, values: dict[str, Any], writers: Mapping[str, Sequence[str]], step: int
    ) -> tuple[dict[str, Any], Any]:
        """Freshly written `values` -> (values to store, the instance nodes will see).

        A pydantic schema validates them here, at the boundary, running its validators and
        coercions (stored values are the coerced ones); a value it refuses raises
        `InvalidUpdateError` naming the field, who wrote it and what was wrong. Dataclass and
        TypedDict schemas are not validated (they have no validators to run)."""
        if self.kind != "pydantic" or not writers:
            return values, dict(values) if self.kind == "typeddict" else self.instance(values)
        self.instance(values)  # the clear message for required fields nobody gave
        own = {k: v for k, v in values.items() if k not in self.private}
        try:
            model = self.cls.model_validate(own)
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            raise self._refused(error, writers, step) from error
        validated = {name: getattr(model, name) for name in own}
        return {**values, **validated}, model

    def _refused(
        self, error: ValueError, writers: Mapping[str, Sequence[str]], step: int
    ) -> InvalidUpdateError:
        problems: list[str] = []
        culprits: dict[str, None] = {}
        details = error.errors() if hasattr(error, "errors") else [{"loc": (), "msg": str(error)}]
        for detail in details:
            loc = tuple(detail.get("loc", ()))
            name = str(loc[0]) if loc else ""
            who = list(writers.get(name, ()))
            culprits.update(dict.fromkeys(who))
            where = ".".join(map(str, loc)) or self.cls.__name__
            by = f" written by {who}" if who else ""
            got = f" (got {detail['input']!r:.60})" if "input" in detail and loc else ""
            problems.append(f"field {where!r}{by}: {detail.get('msg', '')}{got}")
        refused = InvalidUpdateError(
            f"{self.cls.__name__} refused the state in step {step}: {'; '.join(problems)}. "
            "Return values of the field's type from the node (or the input)."
        )
        # Read by the loop: these nodes' writes are not kept, so a resume runs them again.
        refused.writers = tuple(culprits)  # type: ignore[attr-defined]
        return refused

    def is_instance(self, value: Any) -> bool:
        return self.kind != "typeddict" and isinstance(value, self.cls)

    def input_updates(self, value: Any) -> dict[str, Any]:
        """The fields an `invoke` input sets. A schema instance sets the fields that differ
        from their defaults, so the schema's default instance is an empty input."""
        if value is None:
            return {}
        if self.is_instance(value):
            updates: dict[str, Any] = {}
            for name, spec in self.fields.items():
                if name in self.private:
                    continue
                current = getattr(value, name)
                if spec.default is None or current != spec.default():
                    updates[name] = current
            return updates
        return self.check_update("input", value)

    def check_update(self, node: str, update: Any) -> dict[str, Any]:
        if self.private and node == "input" and isinstance(update, Mapping):
            hidden = sorted(self.private.intersection(update))
            if hidden:
                raise InvalidUpdateError(
                    f"the input has key(s) {hidden}, which only nodes' input schemas declare "
                    f"(private state, not a field of {self.cls.__name__}); pass only the "
                    f"state's fields {sorted(set(self.fields) - self.private)}"
                )
        # A plain dict of known fields is the usual update: one C-level subset test (the ABC
        # isinstance check and a Python loop cost more than the rest of this call).
        if type(update) is dict and update.keys() <= self.fields.keys():
            return dict(update)
        if not isinstance(update, Mapping):
            if self.is_instance(update):
                return self._instance_update(update)
            who = "the input was" if node == "input" else f"node {node!r} returned"
            raise InvalidUpdateError(
                f"{who} {update!r:.80} (type {type(update).__name__}); expected a dict of the "
                f"{self.cls.__name__} fields it changes (e.g. {{{next(iter(self.fields), 'x')!r}:"
                " ...}), None, or a Command"
            )
        if self.managed and not self.managed.keys().isdisjoint(update):
            if node == "input":
                raise InvalidUpdateError(
                    f"the input has {sorted(self.managed.keys() & update.keys())}, which the "
                    "engine sets at each step (a managed value such as RemainingSteps); "
                    "leave it out"
                )
            # A node returning the state it got: LangGraph ignores a write to a managed value.
            update = {k: v for k, v in update.items() if k not in self.managed}
            if update.keys() <= self.fields.keys():
                return dict(update)
        for key in update:
            if key not in self.fields:
                if node == "input":
                    raise InvalidUpdateError(
                        f"the input has key {key!r}, which is not a field of "
                        f"{self.cls.__name__} (fields: {sorted(self.fields)}); pass only the "
                        "state's fields"
                    )
                raise InvalidUpdateError(
                    f"node {node!r} returned key {key!r}, which is not a field of "
                    f"{self.cls.__name__} (fields: {sorted(self.fields)}); return only the "
                    "state's fields, or add the field to the schema"
                )
        return dict(update)

    def _instance_update(self, value: Any) -> dict[str, Any]:
        """A node returning the state itself (LangGraph accepts it): every field it holds,
        except a None whose default is None (a pydantic model: the fields that were set)."""
        names: Iterable[str] = [n for n in self.fields if n not in self.private]
        if self.kind == "pydantic":
            names = [n for n in names if n in value.model_fields_set]
        update: dict[str, Any] = {}
        for name in names:
            current = getattr(value, name)
            spec = self.fields[name]
            if current is None and (spec.default is None or spec.default() is None):
                continue
            update[name] = current
        return update

    def instance_values(self, value: Any) -> dict[str, Any]:
        """Every field an instance of this schema holds (as `_instance_update`)."""
        return self._instance_update(value)

    def current_or_empty(self, values: Mapping[str, Any], key: str) -> Any:
        if key in values:
            return values[key]
        spec = self.fields[key]
        return spec.default() if spec.default is not None else None

    # -- serializer registration -------------------------------------------------------------

    def user_types(self) -> list[type]:
        """The schema class and the dataclass / pydantic / Enum types its annotations mention."""
        found: list[type] = []
        _collect_types(self.cls, found)
        return found


def _collect_types(annotation: Any, found: list[type]) -> None:
    origin = typing.get_origin(annotation)
    if origin is not None:
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            args = args[:1]
        for arg in args:
            _collect_types(arg, found)
        return
    if not isinstance(annotation, type) or annotation in found:
        return
    if issubclass(annotation, enum.Enum):
        found.append(annotation)
    elif dataclasses.is_dataclass(annotation) or _is_pydantic_model(annotation) or _is_typeddict(
        annotation
    ):
        if not _is_typeddict(annotation):
            found.append(annotation)
        try:
            hints = typing.get_type_hints(annotation, include_extras=True)
        except Exception:  # a hint we cannot resolve just means nothing more to register
            return
        for hint in hints.values():
            _collect_types(hint, found)


def register_with_serializer(types: Iterable[type]) -> None:
    """Tell the checkpoint serializer these types may be stored and loaded back."""
    try:
        serde = importlib.import_module("orchestration.checkpoint.serde")
    except ModuleNotFoundError as error:
        if error.name != "orchestration.checkpoint.serde":
            raise
        return
    types = list(types)
    if types:
        serde.register(*types)


def input_schema_of(state: Schema, cls: Any, what: str = "input_schema") -> Schema | None:
    """`StateGraph(State, input_schema=Input)`: the fields a caller may give at the start
    (`what="output_schema"`: the fields `invoke` returns). `None` when none is declared (or
    it is the state itself): every field."""
    if cls is None or cls is state.cls:
        return None
    given = Schema(cls)
    unknown = sorted(set(given.fields) - set(state.fields))
    if unknown:
        raise TypeError(
            f"{what} {cls.__name__} declares {unknown}, which are not fields of the state "
            f"{state.cls.__name__} (fields: {sorted(state.fields)}); add them to the state, or "
            f"drop them from the {what.replace('_', ' ')}"
        )
    return given


def start_updates(state: Schema, given: Schema | None, value: Any) -> dict[str, Any]:
    """The fields a plain `invoke(input)` sets. With an input schema, only its fields may be
    given: LangGraph drops other keys silently, Stepwise refuses them, so a caller can never
    set an internal field (a decision, an override) and a typo is not lost unnoticed."""
    if given is None:
        return state.input_updates(value)
    if value is not None and given.is_instance(value) and not state.is_instance(value):
        updates = given.instance_values(value)
    else:
        updates = state.input_updates(value)
    refused = sorted(set(updates) - set(given.fields))
    if refused:
        raise InvalidUpdateError(
            f"the input has key(s) {refused}, which the graph's input_schema "
            f"{given.cls.__name__} does not declare; a caller may give only "
            f"{sorted(given.fields)}. Send only those fields: the others are set by the graph's "
            "nodes (an operator may still change them with update_state() or a fork)."
        )
    return updates
