"""The compatibility suite: each LangGraph program on LangGraph (the reference) and on
Stepwise with only its imports changed, on the memory, SQLite and Django savers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

STEPWISE_SAVERS = ("memory", "sqlite", "django")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Programs on the Django saver get a real (transactional: nodes run in threads) test
    database."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("saver") == "django":
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(params=STEPWISE_SAVERS)
def saver(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    kind = request.param
    if kind == "memory":
        from orchestration.checkpoint import InMemorySaver

        return InMemorySaver()
    if kind == "sqlite":
        from orchestration.checkpoint import SqliteSaver

        saver = SqliteSaver(tmp_path / "compat.db")
        request.addfinalizer(saver.close)
        return saver
    from asgiref.sync import sync_to_async
    from django.db import connections

    from orchestration.savers import DjangoCheckpointSaver

    request.addfinalizer(lambda: asyncio.run(sync_to_async(connections.close_all)()))
    return DjangoCheckpointSaver()
