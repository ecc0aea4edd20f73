"""Every way Stepwise differs from LangGraph ON PURPOSE, in one place.

The compatibility suite compares what a LangGraph program observes on LangGraph and on Stepwise
(imports swapped per IMPORTS). Everything is compared except what this module removes or
expects to differ; each entry says why. docs/langgraph.md lists the same differences for users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The import table (API.md, third round): LangGraph module -> Stepwise module. The suite
# rewrites only these import lines; the rest of a program's text runs unchanged.
IMPORTS = {
    "langgraph.graph": "orchestration",
    "langgraph.constants": "orchestration",
    "langgraph.types": "orchestration",
    "langgraph.config": "orchestration",
    "langgraph.errors": "orchestration",
    "langgraph.func": "orchestration.func",
    "langgraph.prebuilt": "orchestration.prebuilt",
    "langgraph.managed": "orchestration.managed",
    "langgraph.cache.base": "orchestration.cache",
    "langgraph.cache.memory": "orchestration.cache",
    "langgraph.cache.sqlite": "orchestration.cache",
    "langgraph.cache.redis": "orchestration.cache",
    "langgraph.graph.message": "orchestration.reducers",
    "langgraph.checkpoint.memory": "orchestration.checkpoint",
    "langgraph.checkpoint.sqlite": "orchestration.checkpoint",
    "langgraph.store.base": "orchestration.store",
    "langgraph.store.memory": "orchestration.store",
    "langgraph.store.sqlite": "orchestration.store",
    "langgraph.runtime": "orchestration",
    "langchain_core.runnables": "orchestration",
}

# LangChain modules a program keeps importing on Stepwise: their objects (chat messages) are
# stored and read back as themselves (`serde`'s LangChain message classes), and a chat model
# streams its tokens to `stream_mode="messages"` (`pregel/chat_stream.py`); a LangChain
# `@tool` runs in `ToolNode` and may return a `Command` (`types.adopt_tool_output`).
KEPT_IMPORTS = frozenset({"langchain_core.messages", "langchain_core.tools",
                          "langchain_core.language_models.fake_chat_models"})

# What is removed before comparing, and why (the functions below do it):
NORMALISED = {
    "checkpoint ids": "Stepwise's ids are its own (sortable hex); configs compare as '<config>'.",
    "interrupt ids": "derived from checkpoint ids; interrupts compare by value.",
    "one checkpoint fewer per run": (
        "each LangGraph run first writes a checkpoint of the state before the input "
        "(source 'input', next ('__start__',)), then one with the input applied (source "
        "'loop'); Stepwise writes only the latter (source 'input'). LangGraph's are dropped, "
        "sources 'input' and 'loop' compare as 'loop', and step numbers (shifted by one per "
        "run on LangGraph) are not compared."
    ),
    "message classes": (
        "LangGraph turns dict messages into LangChain objects; Stepwise keeps them as "
        "Message, the dict itself read as an object (m.content, m.type). "
        "Both compare as {'type', 'content'} (role 'user' = type 'human', 'assistant' = "
        "'ai'); ids generated for messages are random on both sides and not compared."
    ),
    "task ids, triggers, timestamps": "engine bookkeeping in tasks/debug chunks; not compared.",
    "order of parallel interrupts": (
        "`__interrupt__` lists the interrupts of parallel tasks in the order LangGraph's "
        "threads finished, which varies; both sides' lists compare sorted (harness.py)."
    ),
}



def _finished_sibling_runs_once(langgraph: Any) -> Any:
    """failure_resume's calls after the fix. When one of three parallel tasks fails, LangGraph
    shuts its thread pool down; a sibling that finished just then has its write dropped ("cannot
    schedule new futures after shutdown", about one run in ten on two busy cores), and the
    resume runs it again. Stepwise keeps every finished task's write, so only b runs again."""
    once = ["a", "b", "b", "c"]
    assert langgraph in (once, [*once, "c"]), langgraph
    return once


# Programs whose observations differ on purpose: (program, label) -> (LangGraph's, Stepwise's),
# or -> a function from LangGraph's observation to what Stepwise must observe.
EXPECTED: dict[tuple[str, str], Any] = {
    # LangGraph's outcome varies from run to run here (see the function); Stepwise's does not.
    ("failure_resume", "calls after"): _finished_sibling_runs_once,
    # LangGraph lets interrupt() pause a graph that has no saver, so the answer can never be
    # given and the review is silently lost; Stepwise raises at once (API.md, third round).
    ("hitl_without_saver", "invoke"): (
        {"ask": "approve?", "__interrupt__": [{"interrupt": "approve?"}]},
        {"raised": "RuntimeError"},
    ),
    # LangGraph drops input keys that are not state fields; Stepwise refuses them (a typo in
    # a field name would otherwise lose the value without a word).
    ("unknown_input_key", "invoke"): ({"topic": "cats"}, {"raised": "InvalidUpdateError"}),
    # With `StateGraph(State, input_schema=Input)` LangGraph drops, at the start, the keys
    # the input schema does not declare; Stepwise refuses them, naming the key and the fields
    # allowed: a caller who sets an internal field (a decision, an override) should hear it.
    ("input_schema", "internal key"): (
        {"title": "draft", "approved": False}, {"raised": "InvalidUpdateError"},
    ),
    # `values` chunks of a pydantic (or dataclass) state: LangGraph streams a dict of the
    # fields written so far (a field left at its default is missing); Stepwise streams the
    # model itself, as nodes and invoke see it, defaults included.
    ("state_schemas", "pydantic stream"): (
        [{"title": "typo", "notes": []}, {"title": "typo", "priority": 3, "notes": ["triaged"]}],
        [
            {"title": "typo", "priority": 3, "notes": []},
            {"title": "typo", "priority": 3, "notes": ["triaged"]},
        ],
    ),
}

_ROLES = {"user": "human", "assistant": "ai", "system": "system", "tool": "tool"}


def canonical_message(value: Any) -> dict[str, Any] | None:
    """A chat message of either kind as {'type', 'content'}, or None if not a message."""
    if isinstance(value, Mapping):
        if "role" in value and "content" in value:
            return {"type": _ROLES.get(value["role"], value["role"]), "content": value["content"]}
        return None
    if type(value).__module__.startswith("langchain_core.messages"):
        return {"type": value.type, "content": value.content}
    return None


def canonical_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    source = metadata["source"]
    return {"source": "loop" if source == "input" else source}


def is_langgraph_input_step(chunk: Any) -> bool:
    """LangGraph's checkpoint of the state before a run's input, which Stepwise does not
    write (a checkpoint chunk or a StateSnapshot): the only one whose next is START."""
    next_nodes = chunk["next"] if isinstance(chunk, Mapping) else chunk.next
    return tuple(next_nodes) == ("__start__",)


def expected(program: str, label: str, langgraph: Any) -> tuple[Any, Any]:
    """(what LangGraph must observe, what Stepwise must observe): the pair EXPECTED declares,
    else LangGraph's observation for both."""
    declared = EXPECTED.get((program, label), (langgraph, langgraph))
    if callable(declared):
        return langgraph, declared(langgraph)
    return declared
