"""Fixtures for the saver conformance suite: every saver, driven through sync or async calls."""

from __future__ import annotations

from typing import Any

import pytest
from checkpoint_helpers import SAVERS, AsyncOps, SyncOps, Writer, make_saver

from orchestration.checkpoint import BaseCheckpointSaver


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests running on the Django saver get a real (transactional) test database."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and str(callspec.params.get("saver")).startswith("django"):
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
