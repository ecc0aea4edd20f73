"""Semantic search for the stores, as LangGraph's `index={"embed": ..., "dims": ...}` gives it.

The caller brings the embedding: a function from a list of texts to a list of vectors, or an
object with LangChain's `embed_documents` / `embed_query`. An item is embedded on first search
after it was written (its vector is kept per (namespace, key, updated_at) in this store object,
so an edit is embedded again and a store opened in another process embeds what it reads), from
the text of the fields `index["fields"]` names (`"$"`: the whole value, LangGraph's default).
A search ranks the items that match its filter by the best cosine similarity of any of their
texts to the query; `score` says it. Nothing of it is stored in the database: vectors are as
cheap to remake as the embedding function makes them, and no schema change is needed.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Embed = Callable[[list[str]], list[list[float]]]


class SemanticIndex:
    def __init__(self, config: Mapping[str, Any]) -> None:
        embed = config.get("embed")
        if isinstance(embed, str) or embed is None:
            raise ValueError(
                f"index={{'embed': {embed!r}}}: give the embedding itself, a function from a list "
                "of texts to a list of vectors or an object with embed_documents/embed_query "
                "(a provider name such as 'openai:...' needs LangChain's init_embeddings, which "
                "Stepwise does not call for you)"
            )
        self._documents: Embed = getattr(embed, "embed_documents", embed)
        query = getattr(embed, "embed_query", None)
        self._query: Callable[[str], list[float]] = (
            query if query is not None else (lambda text: self._documents([text])[0])
        )
        self.dims = config.get("dims")
        self.fields: list[str] = list(config.get("fields") or ["$"])
        self._vectors: dict[tuple[str, str, Any], list[list[float]]] = {}
        self._lock = threading.Lock()

    def scores(self, query: str, items: Sequence[Any],
               fields_of: Callable[[Any], Sequence[str] | None]) -> list[float | None]:
        """Each item's similarity to `query` (None for an item put with `index=False` or with
        none of the indexed fields)."""
        wanted = self._check(self._query(query))
        missing: list[tuple[tuple[str, str, Any], list[str]]] = []
        for item in items:
            key = (".".join(item.namespace), item.key, item.updated_at)
            with self._lock:
                known = key in self._vectors
            if not known:
                own = fields_of(item)  # [] when put with index=False
                missing.append((key, texts(item.value, self.fields if own is None else own)))
        flat = [text for _, found in missing for text in found]
        vectors = [self._check(v) for v in self._documents(flat)] if flat else []
        with self._lock:
            at = 0
            for key, found in missing:
                self._vectors[key] = vectors[at:at + len(found)]
                at += len(found)
            per_item = [self._vectors[(".".join(i.namespace), i.key, i.updated_at)]
                        for i in items]
        return [max((cosine(wanted, v) for v in vs), default=None) for vs in per_item]

    def _check(self, vector: Sequence[float]) -> list[float]:
        if self.dims is not None and len(vector) != self.dims:
            raise ValueError(
                f"the embedding gave a vector of {len(vector)} numbers where index['dims'] says "
                f"{self.dims}: fix one of them"
            )
        return [float(x) for x in vector]


def texts(value: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """The texts to embed for `value`: each field path's value ("$" the whole value; "a.b"
    nested), a string as itself, anything else as JSON; absent paths give none."""
    found = []
    for path in fields:
        current: Any = value
        if path != "$":
            for part in path.split("."):
                if not isinstance(current, Mapping) or part not in current:
                    current = None
                    break
                current = current[part]
        if current is None:
            continue
        found.append(current if isinstance(current, str)
                     else json.dumps(current, sort_keys=True, default=str))
    return found


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norm if norm else 0.0
