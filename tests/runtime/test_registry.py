"""The graph registry: names from settings.STEPWISE_GRAPHS, clear errors, a boot-time check."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.runtime.checks import check_graphs
from orchestration.runtime.registry import UnknownGraph, get_graph


def test_registered_graph_is_returned_compiled() -> None:
    graph = get_graph("expense")
    assert hasattr(graph, "with_checkpoint_saver")


def test_registered_factory_is_called_once_per_process(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {"built": "demo.workflows.expense:build"}
    assert get_graph("built") is get_graph("built")


def test_unknown_graph_name_raises_unknown_graph_listing_known_names(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {"expense": "demo.workflows.expense:graph"}
    with pytest.raises(UnknownGraph, match=r"no graph named 'nope'.*known: expense"):
        get_graph("nope")


def test_check_is_clean_for_the_configured_graphs() -> None:
    assert check_graphs() == []


def test_check_reports_unimportable_and_malformed_entries(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {
        "missing": "demo.workflows.does_not_exist:graph",
        "malformed": "demo.workflows.expense",
        "not_a_graph": "demo.workflows.expense:AUTO_APPROVE_LIMIT",
    }
    messages = {m.obj: m.msg for m in check_graphs()}
    assert set(messages) == {
        "STEPWISE_GRAPHS['missing']", "STEPWISE_GRAPHS['malformed']",
        "STEPWISE_GRAPHS['not_a_graph']",
    }
    assert "No module named" in messages["STEPWISE_GRAPHS['missing']"]
    assert "module:attribute" in messages["STEPWISE_GRAPHS['malformed']"]
    assert "not a compiled graph" in messages["STEPWISE_GRAPHS['not_a_graph']"]


def test_an_entrypoint_workflow_is_refused_with_what_to_register(
    settings: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    (tmp_path / "functional_flow.py").write_text(
        "from orchestration.func import entrypoint\n\n"
        "@entrypoint()\n"
        "def flow(n):\n"
        "    return n\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.STEPWISE_GRAPHS = {"functional": "functional_flow:flow"}
    messages = {m.obj: m.msg for m in check_graphs()}
    assert "@entrypoint workflow" in messages["STEPWISE_GRAPHS['functional']"]
    assert "StateGraph" in messages["STEPWISE_GRAPHS['functional']"]
