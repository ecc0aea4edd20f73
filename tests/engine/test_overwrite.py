"""Overwrite: an update that sets its field and bypasses the reducer, wherever an update is
given (node results, Command(update=...), input, update_state), for every schema kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

import pytest
from pydantic import BaseModel

from orchestration import (
    END,
    START,
    Command,
    InvalidUpdateError,
    Overwrite,
    StateGraph,
    interrupt,
)
from orchestration.reducers import merge, topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    tags: Annotated[dict[str, str], merge] = field(default_factory=dict)
    title: str = ""


class LogDict(TypedDict, total=False):
    log: Annotated[list[str], topic]
    tags: Annotated[dict[str, str], merge]
    title: str


class LogModel(BaseModel):
    log: Annotated[list[str], topic] = []
    tags: Annotated[dict[str, str], merge] = {}
    title: str = ""


SCHEMAS = [Log, LogDict, LogModel]


def values_of(state: Any) -> dict[str, Any]:
    if isinstance(state, dict):
        return dict(state)
    return {name: getattr(state, name) for name in ("log", "tags", "title")}


def chain(schema: Any, *nodes: tuple[str, Any], saver: Any = None) -> Any:
    graph = StateGraph(schema)
    previous = START
    for name, fn in nodes:
        graph.add_node(name, fn).add_edge(previous, name)
        previous = name
    return graph.add_edge(previous, END).compile(checkpointer=saver)


def fan_out(first: Any, second: Any, saver: Any = None) -> Any:
    """`a` and `b` run in one superstep, in that task order."""
    graph = StateGraph(Log).add_node("a", first).add_node("b", second)
    graph.add_edge(START, "a").add_edge(START, "b")
    return graph.add_edge("a", END).add_edge("b", END).compile(checkpointer=saver)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_a_node_can_trim_a_topic_list_with_overwrite(schema, saver, config) -> None:
    compiled = chain(
        schema,
        ("fill", lambda s: {"log": ["a", "b", "c"]}),
        ("trim", lambda s: {"log": Overwrite(values_of(s)["log"][-1:])}),
        saver=saver,
    )
    assert values_of(compiled.invoke({}, config))["log"] == ["c"]
    assert saver.get_tuple(config).checkpoint.values["log"] == ["c"]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_overwrite_replaces_a_merged_dict_and_a_plain_field(schema) -> None:
    compiled = chain(
        schema,
        ("fill", lambda s: {"tags": {"a": "1", "b": "2"}, "title": "draft"}),
        ("reset", lambda s: {"tags": Overwrite({"c": "3"}), "title": Overwrite("final")}),
    )
    result = values_of(compiled.invoke({}))
    assert (result["tags"], result["title"]) == ({"c": "3"}, "final")


def test_checkpoints_store_the_plain_value_not_the_wrapper(saver, config) -> None:
    compiled = chain(Log, ("reset", lambda s: {"log": Overwrite(["x"])}), saver=saver)
    compiled.invoke({"log": ["input"]}, config)
    stored = saver.get_tuple(config).checkpoint.values["log"]
    assert stored == ["x"] and type(stored) is list
    assert compiled.get_state(config).values.log == ["x"]


def jump(state: Log) -> Command[Literal["done"]]:
    return Command(update={"log": Overwrite([])}, goto="done")


def test_command_update_can_overwrite(saver, config) -> None:
    graph = StateGraph(Log).add_node("fill", lambda s: {"log": ["a", "b"]})
    graph.add_node("jump", jump)
    graph.add_node("done", lambda s: {"log": ["done"]})
    graph.add_edge(START, "fill").add_edge("fill", "jump").add_edge("done", END)
    assert graph.compile(checkpointer=saver).invoke({}, config).log == ["done"]


def test_update_state_applies_the_reducer_unless_the_value_is_an_overwrite(saver, config) -> None:
    compiled = chain(Log, ("note", lambda s: {"log": ["n"]}), saver=saver)
    compiled.invoke({}, config)
    after_note = compiled.get_state(config).config
    appended = compiled.update_state(after_note, {"log": ["n", "added by ops"]})
    assert compiled.get_state(appended).values.log == ["n", "n", "added by ops"]
    replaced = compiled.update_state(after_note, {"log": Overwrite(["n", "added by ops"])})
    assert compiled.get_state(replaced).values.log == ["n", "added by ops"]


@pytest.mark.parametrize("schema", [LogDict, LogModel], ids=lambda s: s.__name__)
def test_update_state_overwrites_with_typeddict_and_pydantic_schemas(schema, saver, config):
    compiled = chain(schema, ("note", lambda s: {"log": ["n"]}), saver=saver)
    compiled.invoke({}, config)
    written = compiled.update_state(config, {"log": Overwrite(["only"])}, as_node="note")
    assert values_of(compiled.get_state(written).values)["log"] == ["only"]


def test_input_can_overwrite_a_finished_threads_list(saver, config) -> None:
    compiled = chain(Log, ("note", lambda s: {"log": ["n"]}), saver=saver)
    compiled.invoke({"log": ["first"]}, config)
    assert compiled.invoke({"log": Overwrite(["again"])}, config).log == ["again", "n"]


def test_two_overwrites_of_one_field_in_a_step_name_the_field_and_both_nodes() -> None:
    compiled = fan_out(lambda s: {"log": Overwrite(["a"])}, lambda s: {"log": Overwrite(["b"])})
    with pytest.raises(InvalidUpdateError, match=r"'a' and 'b' both wrote Overwrite.*'log'"):
        compiled.invoke({})


@pytest.mark.parametrize("overwrite_first", [True, False])
def test_an_overwrite_wins_over_plain_updates_of_the_same_step(overwrite_first) -> None:
    """LangGraph's rule: plain updates of the field in that step are dropped, in any order."""
    overwrite = lambda s: {"log": Overwrite(["kept"])}  # noqa: E731
    plain = lambda s: {"log": ["dropped"]}  # noqa: E731
    first, second = (overwrite, plain) if overwrite_first else (plain, overwrite)
    assert fan_out(first, second).invoke({"log": ["before"]}).log == ["kept"]


def test_a_field_without_reducer_takes_one_write_per_step_overwrite_or_not() -> None:
    compiled = fan_out(lambda s: {"title": Overwrite("a")}, lambda s: {"title": "b"})
    with pytest.raises(InvalidUpdateError, match=r"'a' and 'b' both wrote 'title'"):
        compiled.invoke({})


def test_a_pydantic_schema_validates_the_overwritten_value() -> None:
    compiled = chain(LogModel, ("bad", lambda s: {"title": Overwrite(42)}))
    with pytest.raises(InvalidUpdateError, match=r"'title' written by \['bad'\]"):
        compiled.invoke({})


def test_an_overwrite_kept_as_a_pending_write_is_applied_on_resume(saver, config) -> None:
    """`a` finishes (its Overwrite is saved as a pending write) while `b` waits for an
    answer; the resumed step applies it without running `a` again."""
    runs: list[str] = []

    def a(state: Log) -> dict[str, Any]:
        runs.append("a")
        return {"log": Overwrite(["reset by a"])}

    def b(state: Log) -> dict[str, Any]:
        return {"title": interrupt("title?")}

    compiled = fan_out(a, b, saver=saver)
    compiled.invoke({"log": ["old"]}, config)
    latest = compiled.get_state(config)  # LangGraph 1.x's live view: `a`'s write shows
    assert (latest.next, latest.values.log) == (("b",), ["reset by a"])
    assert compiled.get_state(latest.config).next == ("a", "b")  # the record
    result = compiled.invoke(Command(resume="t"), config)
    assert (result.log, result.title, runs) == (["reset by a"], "t", ["a"])


def test_a_resume_commands_overwrite_is_held_until_the_step_commits(saver, config) -> None:
    graph = StateGraph(Log).add_node("ask", lambda s: {"title": interrupt("?")})
    compiled = graph.set_entry_point("ask").set_finish_point("ask").compile(checkpointer=saver)
    compiled.invoke({"log": ["a", "b"]}, config)
    result = compiled.invoke(Command(resume="t", update={"log": Overwrite(["b"])}), config)
    assert (result.log, result.title) == (["b"], "t")


async def test_overwrite_under_ainvoke_and_aupdate_state(saver, config) -> None:
    async def trim(state: Log) -> dict[str, Any]:
        return {"log": Overwrite(state.log[:1])}

    compiled = chain(Log, ("fill", lambda s: {"log": ["a", "b"]}), ("trim", trim), saver=saver)
    assert (await compiled.ainvoke({}, config)).log == ["a"]
    written = await compiled.aupdate_state(config, {"log": Overwrite(["z"])})
    assert (await compiled.aget_state(written)).values.log == ["z"]
