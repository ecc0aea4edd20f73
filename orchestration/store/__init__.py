"""Memory across threads: a key-value store of dict values grouped by namespace (a tuple of
strings, e.g. `("customers", "c-42")`). Nodes reach it through a `store` parameter or
`get_store()`. Importing this needs no Django; the Django store is
`orchestration.savers.DjangoStore`."""

from orchestration.store.base import BaseStore, InvalidNamespaceError, Item, SearchItem
from orchestration.store.memory import InMemoryStore
from orchestration.store.sqlite import SqliteStore

__all__ = [
    "BaseStore", "InMemoryStore", "InvalidNamespaceError", "Item", "SearchItem", "SqliteStore",
]
