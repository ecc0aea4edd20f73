"""Fixtures for the saver conformance suite: every saver, driven through sync or async calls."""

from __future__ import annotations

from typing import Any

import pytest
from checkpoint_helpers import (
    SAVERS,
    STORES,
    AsyncOps,
    AsyncStoreOps,
    StoreOps,
    SyncOps,
    Writer,
    make_saver,
    make_store,
)

from orchestration.checkpoint import BaseCheckpointSaver


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests running on the Django saver get a real (transactional) test database."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(
            str(callspec.params.get(key)).startswith("django") for key in ("saver", "store_kind")
        ):
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(params=SAVERS)
def saver(request: pytest.FixtureRequest, tmp_path: Any) -> BaseCheckpointSaver:
    return make_saver(request.param, request, tmp_path)


@pytest.fixture(params=["sync", "async"])
def ops(request: pytest.FixtureRequest, saver: BaseCheckpointSaver) -> SyncOps:
    return SyncOps(saver) if request.param == "sync" else AsyncOps(saver)


@pytest.fixture
def writer(ops: SyncOps) -> Writer:
    return Writer(ops)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def store_ops(request: pytest.FixtureRequest, store_kind: str, tmp_path: Any) -> StoreOps:
    store = make_store(store_kind, request, tmp_path)
    return StoreOps(store) if request.param == "sync" else AsyncStoreOps(store)
