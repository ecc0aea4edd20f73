"""`BaseStore`: the store's public API, its checks and its async twins, written once. An
implementation stores rows: a namespace (its labels joined by "."), a key, the value as safe
serde bytes (no pickle, the checkpoints' format) and two timestamps."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from orchestration.checkpoint import serde
from orchestration.store.semantic import SemanticIndex

_T = TypeVar("_T")
SEP = "."  # joins a namespace's labels in storage; labels may not contain it (as LangGraph)


@dataclass(frozen=True, slots=True)
class Item:
    """One stored value."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def dict(self) -> dict[str, Any]:
        return {
            "namespace": list(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SearchItem(Item):
    """An item `search` found: LangGraph's `SearchItem`, with `score` (None: no semantic
    query ranked it)."""

    score: float | None = None

    def dict(self) -> dict[str, Any]:
        return {**Item.dict(self), "score": self.score}


# (namespace joined, key, serde bytes of the value, created_at, updated_at), in insertion order
Row = tuple[str, str, bytes, datetime, datetime]


class InvalidNamespaceError(ValueError):
    """A store namespace that is not a tuple of non-empty labels (LangGraph's name; a
    `ValueError`, as before)."""


def check_namespace(namespace: Any, what: str = "namespace") -> str:
    """The namespace joined for storage; a clear error for anything but a tuple of labels."""
    if isinstance(namespace, str) or not isinstance(namespace, Sequence):
        raise InvalidNamespaceError(
            f"{what} must be a tuple of strings such as ('customers', 'c-42'), got {namespace!r}"
        )
    for label in namespace:
        if not isinstance(label, str) or not label or SEP in label:
            raise InvalidNamespaceError(
                f"{what} {tuple(namespace)!r}: every label must be a non-empty string without "
                f"{SEP!r}, got {label!r}"
            )
    return SEP.join(namespace)


def split_namespace(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(SEP)) if joined else ()


def under(joined_ns: str, prefix: str) -> bool:
    return not prefix or joined_ns == prefix or joined_ns.startswith(prefix + SEP)


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """Every namespace strictly under `prefix` sorts between these two (SQL range scans)."""
    return prefix + SEP, prefix + chr(ord(SEP) + 1)


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"store key must be a non-empty string, got {key!r}")
    return key


def _check_value(value: Any) -> bytes:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"store value must be a dict, got {type(value).__name__}; wrap it: {{'value': ...}}"
        )
    return serde.dumps(dict(value), where="store value")


def now() -> datetime:
    return datetime.now(UTC)


class BaseStore(ABC):
    """put/get/delete/search/list_namespaces and their `a`-prefixed twins."""

    # -- what an implementation provides -------------------------------------------------

    @abstractmethod
    def _read(self, ns: str, key: str) -> Row | None: ...

    @abstractmethod
    def _write(self, ns: str, key: str, data: bytes, at: datetime) -> None:
        """Insert, or replace the value and `updated_at` of an existing row."""

    @abstractmethod
    def _remove(self, ns: str, key: str) -> None: ...

    @abstractmethod
    def _rows_under(self, prefix: str) -> Iterable[Row]:
        """Rows whose namespace is `prefix` or below it ("" = all), in insertion order."""

    @abstractmethod
    def _all_namespaces(self) -> Iterable[str]: ...

    # -- the API ---------------------------------------------------------------------------

    def put(
        self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any],
        index: Any = None,
    ) -> None:
        """Store `value` (a dict) under (namespace, key), replacing what was there; `None`
        deletes it, as in LangGraph. `index`, with a semantic index configured: `False` keeps
        the item out of it, a list of field paths embeds those instead of the index's."""
        ns = check_namespace(namespace)
        if not ns:
            raise InvalidNamespaceError(
                "store namespace must have at least one label, e.g. ('memories',)"
            )
        if value is None:
            self._remove(ns, _check_key(key))
            return
        self._write(ns, _check_key(key), _check_value(value), now())
        if index is not None and getattr(self, "_semantic", None) is not None:
            self._item_fields[(ns, key)] = [] if index is False else list(index)

    def get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        row = self._read(check_namespace(namespace), _check_key(key))
        return None if row is None else _item(row)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        self._remove(check_namespace(namespace), _check_key(key))

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> builtins.list[SearchItem]:
        """Items in `namespace_prefix` or below it whose values match `filter`, in insertion
        order; `offset` skips, `limit` caps. As LangGraph's: each top-level key of `filter`
        is compared with the item's (a missing key reads as None); a dict compares the keys
        it names, a list item by item, and `{"$gt": 5}` (`$eq`, `$ne`, `$gt`, `$gte`, `$lt`,
        `$lte`) compares numbers, or strings with strings. A bool equals only a bool (JSON's
        equality, as PostgreSQL's jsonb)."""
        prefix = check_namespace(namespace_prefix, "namespace_prefix")
        semantic: SemanticIndex | None = getattr(self, "_semantic", None)
        if query is not None and semantic is None:
            raise ValueError(
                f"search(query={query!r}) needs an embedding index for semantic search, and "
                f"{type(self).__name__} has none configured (Stepwise stores no embeddings). "
                "Search without query=, narrowing with filter={'field': value} on the values."
            )
        if filter is not None and not isinstance(filter, Mapping):
            raise ValueError(f"filter must be a dict of value keys to values, got {filter!r}")
        if filter:
            _check_operators(filter)
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must not be negative (got {limit}, {offset})")
        if query is not None and semantic is not None:
            return self._ranked(semantic, prefix, query, filter, limit, offset)
        found: list[SearchItem] = []
        skipped = 0
        for row in self._rows_under(prefix):
            if len(found) >= limit:
                break
            item = _item(row, SearchItem)
            if filter and not all(_matches(item.value.get(k), v) for k, v in filter.items()):
                continue
            if skipped < offset:
                skipped += 1
                continue
            found.append(item)
        return found

    def _use_index(self, index: Mapping[str, Any] | None) -> None:
        """`index={"embed": ..., "dims": ..., "fields": [...]}` (LangGraph's): semantic
        search with `search(query=...)` (orchestration.store.semantic)."""
        self._semantic = SemanticIndex(index) if index else None
        self._item_fields: dict[tuple[str, str], list[str]] = {}

    def _ranked(
        self, semantic: SemanticIndex, prefix: str, query: str,
        filter: Mapping[str, Any] | None, limit: int, offset: int,
    ) -> builtins.list[SearchItem]:
        """The items matching `filter`, most similar to `query` first (items kept out of
        the index last, unscored), `offset` and `limit` applied to that order."""
        items = [item for item in (_item(row, SearchItem) for row in self._rows_under(prefix))
                 if not filter or all(_matches(item.value.get(k), v) for k, v in filter.items())]
        own = self._item_fields

        def fields_of(item: Item) -> list[str] | None:
            return own.get((SEP.join(item.namespace), item.key))

        scores = semantic.scores(query, items, fields_of)
        ranked = sorted(zip(scores, range(len(items)), items, strict=True),
                        key=lambda t: (t[0] is None, -(t[0] or 0.0), t[1]))
        return [dataclasses.replace(item, score=score)
                for score, _, item in ranked[offset:offset + limit]]

    def list_namespaces(
        self,
        prefix: tuple[str, ...] | None = None,
        *,
        suffix: tuple[str, ...] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[tuple[str, ...]]:
        """The namespaces holding items (cut to `max_depth` labels), sorted."""
        start = split_namespace(check_namespace(prefix or (), "prefix"))
        end = split_namespace(check_namespace(suffix or (), "suffix"))
        found: set[tuple[str, ...]] = set()
        for joined in self._all_namespaces():
            labels = split_namespace(joined)
            if labels[: len(start)] != start:
                continue
            if end and labels[len(labels) - len(end):] != end:
                continue
            found.add(labels[:max_depth] if max_depth is not None else labels)
        return sorted(found)[offset: offset + limit]

    # -- async twins: the sync implementation, off the event loop ---------------------------

    async def _offload(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def aput(
        self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any], index: Any = None
    ) -> None:
        await self._offload(self.put, namespace, key, value, index)

    async def aget(self, namespace: tuple[str, ...], key: str) -> Item | None:
        return await self._offload(self.get, namespace, key)

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        await self._offload(self.delete, namespace, key)

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> builtins.list[Item]:
        return await self._offload(
            self.search, namespace_prefix, query=query, filter=filter, limit=limit, offset=offset
        )

    async def alist_namespaces(
        self,
        prefix: tuple[str, ...] | None = None,
        *,
        suffix: tuple[str, ...] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[tuple[str, ...]]:
        return await self._offload(
            self.list_namespaces, prefix, suffix=suffix, max_depth=max_depth, limit=limit,
            offset=offset,
        )


def _item[I: Item](row: Row, kind: type[I] = Item) -> I:  # type: ignore[assignment]
    ns, key, data, created, updated = row
    value = serde.loads(data)
    return kind(split_namespace(ns), key, value, created, updated)


_OPERATORS = {
    "$eq": lambda a, b: _same(a, b),
    "$ne": lambda a, b: not _same(a, b),
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
}


def _check_operators(wanted: Any) -> None:
    """Refuse an operator the search does not know, before any item is read."""
    if isinstance(wanted, Mapping):
        for key, value in wanted.items():
            if isinstance(key, str) and key.startswith("$") and key not in _OPERATORS:
                raise ValueError(f"unsupported filter operator {key!r}; use one of "
                                 f"{', '.join(_OPERATORS)}")
            _check_operators(value)


def _matches(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in wanted):
            return all(_compare(actual, op, value) for op, value in wanted.items())
        return isinstance(actual, Mapping) and all(
            _matches(actual.get(k), v) for k, v in wanted.items()
        )
    if isinstance(wanted, list | tuple):
        return (isinstance(actual, list | tuple) and len(actual) == len(wanted)
                and all(_matches(a, w) for a, w in zip(actual, wanted, strict=True)))
    return _same(actual, wanted)


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if op in ("$eq", "$ne"):
        return bool(_OPERATORS[op](actual, wanted))
    numbers = (int, float, Decimal)
    both_numbers = (isinstance(actual, numbers) and isinstance(wanted, numbers)
                    and type(actual) is not bool and type(wanted) is not bool)
    if both_numbers or (isinstance(actual, str) and isinstance(wanted, str)):
        return bool(_OPERATORS[op](actual, wanted))
    return False  # an order between a number and a string, or a missing value: no match


def _same(actual: Any, wanted: Any) -> bool:
    # as checkpoint filters compare: a bool matches only a bool (JSON's equality)
    if type(actual) is bool or type(wanted) is bool:
        return type(actual) is type(wanted) and actual == wanted
    try:
        return bool(actual == wanted)
    except Exception:
        return False
