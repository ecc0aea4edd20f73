"""`orchestration.savers.DjangoCheckpointSaver` and `DjangoStore`, the public names of the
Django saver and store.

The saver lives in the runtime package (`orchestration.runtime.savers`) because it needs Django
settings; this module resolves the name on first use, so importing it needs no Django."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestration.runtime.savers import DjangoCheckpointSaver
    from orchestration.runtime.store import DjangoStore

__all__ = ["DjangoCheckpointSaver", "DjangoStore"]


def __getattr__(name: str) -> Any:
    if name == "DjangoCheckpointSaver":
        from orchestration.runtime.savers import DjangoCheckpointSaver

        return DjangoCheckpointSaver
    if name == "DjangoStore":
        from orchestration.runtime.store import DjangoStore

        return DjangoStore
    raise AttributeError(f"module 'orchestration.savers' has no attribute {name!r}")
