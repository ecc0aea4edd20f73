"""Engine-side checks of what the LangGraph user trial found missing (each behaviour is also
compared with LangGraph by a program of tests/compat): the errors for bad input, and what
must hold without LangChain installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import TypedDict

from orchestration import START, StateGraph
from orchestration.checkpoint.base import BaseCheckpointSaver

ROOT = Path(__file__).resolve().parents[2]


class Counter(TypedDict):
    n: int


def _graph(saver: Any = None) -> Any:
    builder = StateGraph(Counter)
    builder.add_node("inc", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "inc")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2", True])
def test_a_bad_max_concurrency_is_refused_before_the_run(saver, config, limit) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        _graph(saver).invoke({"n": 0}, {"configurable": {"thread_id": config.thread_id},
                                        "max_concurrency": limit})
    assert saver.list(config) == []


def test_importing_the_engine_loads_no_langchain() -> None:
    """`Command` becomes a LangChain ToolOutputMixin lazily: importing langchain_core up
    front would cost every graph half a second."""
    code = "import sys, orchestration; sys.exit(1 if 'langchain_core' in sys.modules else 0)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_list_of_every_thread_on_a_saver_that_cannot_says_what_to_do() -> None:
    class OneThread(BaseCheckpointSaver):
        get_tuple = put = put_writes = delete_thread = None  # type: ignore[assignment]

        def list(self, config, limit=None, *, before=None, filter=None):  # type: ignore[override]
            return self.list_all(limit, before=before, filter=filter)

    with pytest.raises(NotImplementedError, match="naming one thread"):
        OneThread().list(None)


def test_secrets_in_configurable_stay_out_of_checkpoint_metadata(saver, config) -> None:
    given = {"configurable": {"thread_id": config.thread_id, "user": "ann", "api_key": "s3",
                              "auth_token": "t", "limits": {"a": 1}}}
    _graph(saver).invoke({"n": 0}, given)
    extra = saver.list(config)[-1].metadata.extra
    assert extra["user"] == "ann"
    assert not {"api_key", "auth_token", "limits", "thread_id"} & set(extra)
