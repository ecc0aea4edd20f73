"""Node input schemas (LangGraph's "multiple schemas"): a node reads only the schema its first
parameter is typed with (or `add_node(..., input_schema=)`), and fields only such schemas
declare are private state: nodes write and read them, checkpoints keep them, the caller
neither gives nor gets them back."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from pydantic import BaseModel

from orchestration import (
    END,
    START,
    GraphValidationError,
    InvalidUpdateError,
    StateGraph,
    interrupt,
)
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig
from orchestration.types import Command

seen: list[tuple[str, list[str]]] = []


class Public(TypedDict):
    topic: str
    answer: str


class Scratch(TypedDict):
    draft: str
    notes: Annotated[list[str], operator.add]


def research(state: Public) -> dict[str, object]:
    seen.append(("research", sorted(state)))
    return {"draft": f"about {state['topic']}", "notes": ["researched"]}


def write(state: Scratch) -> dict[str, object]:
    seen.append(("write", sorted(state)))
    return {"answer": state["draft"].upper(), "notes": ["written"]}


def pipeline(saver: BaseCheckpointSaver | None = None):
    builder = StateGraph(Public)
    builder.add_node(research)
    builder.add_node(write)
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", END)
    return builder.compile(checkpointer=saver)


def test_private_fields_pass_between_nodes_and_stay_out_of_the_result(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    seen.clear()
    graph = pipeline(saver)
    assert graph.invoke({"topic": "owls"}, config) == {"topic": "owls", "answer": "ABOUT OWLS"}
    # each node read its own schema only: no private field for the state-typed node
    assert seen == [("research", ["topic"]), ("write", ["draft", "notes"])]
    # the checkpoint keeps them (a resume or a fork needs them), as LangGraph's channels do
    values = graph.get_state(config).values
    assert values["draft"] == "about owls"
    assert values["notes"] == ["researched", "written"]


def test_a_private_field_survives_a_pause_and_a_resume(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    def ask(state: Scratch) -> dict[str, object]:
        ok = interrupt(f"publish {state['draft']!r}?")
        return {"answer": state["draft"] if ok else "withheld"}

    builder = StateGraph(Public)
    builder.add_node(research)
    builder.add_node("ask", ask)
    builder.add_edge(START, "research")
    builder.add_edge("research", "ask")
    graph = builder.compile(checkpointer=saver)
    paused = graph.invoke({"topic": "bats"}, config)
    assert paused["__interrupt__"][0].value == "publish 'about bats'?"
    assert "draft" not in paused
    assert graph.invoke(Command(resume=True), config) == {"topic": "bats", "answer": "about bats"}


def test_the_caller_cannot_give_a_private_field(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    refused = r"\['draft'\].*private state.*\['answer', 'topic'\]"
    with pytest.raises(InvalidUpdateError, match=refused):
        pipeline(saver).invoke({"topic": "owls", "draft": "sneaky"}, config)
    assert saver.get_tuple(config) is None  # nothing written


def test_an_operator_may_set_a_private_field_and_fork_from_it(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    graph = pipeline(saver)
    graph.invoke({"topic": "owls"}, config)
    before_write = next(s for s in graph.get_state_history(config) if s.next == ("write",))
    fork = graph.update_state(before_write.config, {"draft": "edited"}, as_node="research")
    assert graph.invoke(None, fork) == {"topic": "owls", "answer": "EDITED"}


def test_input_schema_keyword_narrows_what_a_node_reads() -> None:
    class Topic(TypedDict):
        topic: str

    def count(state):  # untyped: the keyword says what it reads
        return {"answer": ",".join(sorted(state))}

    graph = (
        StateGraph(Public).add_node("count", count, input_schema=Topic)
        .add_edge(START, "count").compile()
    )
    assert graph.invoke({"topic": "t", "answer": "a"}) == {"topic": "t", "answer": "topic"}


class Ticket(BaseModel):
    title: str
    priority: int = 0


class Triage(TypedDict):
    title: str
    score: int


def score(state: Ticket) -> dict[str, object]:
    return {"score": len(state.title)}


def prioritise(state: Triage) -> dict[str, object]:
    return {"priority": 1 if state["score"] > 3 else 0}


# (Schemas are module-level: annotations name them, and a class local to a function does not
# resolve from the function's globals, so LangGraph and Stepwise both read the state then.)
def test_a_pydantic_state_with_private_typed_dict_fields() -> None:
    builder = StateGraph(Ticket)
    builder.add_node(score)
    builder.add_node(prioritise)
    builder.add_edge(START, "score")
    builder.add_edge("score", "prioritise")
    result = builder.compile().invoke({"title": "broken login"})
    assert result == Ticket(title="broken login", priority=1)


class Reversed(TypedDict):
    notes: Annotated[list[str], lambda a, b: b + a]


def other(state: Reversed) -> dict[str, object]:
    return {}


def test_two_schemas_giving_one_field_different_reducers_is_refused() -> None:
    builder = StateGraph(Public).add_node(research).add_node(write).add_node(other)
    builder.add_edge(START, "research")
    with pytest.raises(GraphValidationError, match="'notes' has reducer"):
        builder.compile()


class Plain:  # annotations, but neither TypedDict, dataclass nor pydantic
    topic: str


def node(state: Plain) -> dict[str, object]:
    return {"answer": ",".join(sorted(state))}  # type: ignore[call-overload]


def test_an_annotation_that_is_no_schema_reads_the_state() -> None:
    graph = StateGraph(Public).add_node(node).add_edge(START, "node").compile()
    assert graph.invoke({"topic": "t"}) == {"topic": "t", "answer": "topic"}
