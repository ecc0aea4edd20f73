"""`StateGraph(State, input_schema=Input)`: the fields a caller may give at the start. The
engine refuses any other key (LangGraph drops it silently; see tests/compat/differences.py),
so state the graph's nodes own cannot be set by whoever starts a run."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NotRequired, TypedDict

import pytest

from orchestration import END, Command, InvalidUpdateError, StateGraph
from orchestration.checkpoint import CheckpointConfig, InMemoryCheckpointSaver


@dataclass
class Claim:
    employee: str = ""
    amount: int = 0
    approved: bool = False  # the graph's own decision


@dataclass
class ClaimInput:
    employee: str
    amount: int = 10


def decide(state: Claim) -> dict[str, object]:
    return {"approved": state.approved or state.amount <= 50}


def claims(saver: InMemoryCheckpointSaver | None = None):
    return (
        StateGraph(Claim, input_schema=ClaimInput)
        .add_node("decide", decide)
        .set_entry_point("decide")
        .add_edge("decide", END)
        .compile(checkpointer=saver)
    )


def test_a_caller_gives_the_input_fields_and_the_graph_runs():
    final = claims().invoke({"employee": "Ann", "amount": 500})
    assert final == Claim(employee="Ann", amount=500, approved=False)


def test_a_key_outside_the_input_schema_is_refused_before_anything_is_written():
    saver = InMemoryCheckpointSaver()
    with pytest.raises(InvalidUpdateError) as refused:
        claims(saver).invoke({"employee": "Ann", "amount": 500, "approved": True},
                             CheckpointConfig("t1"))
    message = str(refused.value)
    assert "['approved']" in message and "ClaimInput" in message
    assert "['amount', 'employee']" in message  # what may be given
    assert saver.get_tuple(CheckpointConfig("t1")) is None


def test_a_state_instance_setting_an_internal_field_is_refused_too():
    with pytest.raises(InvalidUpdateError, match="approved"):
        claims().invoke(Claim(employee="Ann", amount=500, approved=True))
    # the same instance with only input fields set is an ordinary input
    assert claims().invoke(Claim(employee="Ann", amount=5)).approved is True


def test_an_input_schema_instance_gives_its_fields_and_their_defaults():
    final = claims().invoke(ClaimInput(employee="Bo"))
    assert (final.employee, final.amount, final.approved) == ("Bo", 10, True)


def test_the_compiled_graph_exposes_its_input_schema():
    assert claims().input_schema is ClaimInput
    plain = StateGraph(Claim).add_node("decide", decide).set_entry_point("decide").compile()
    assert plain.input_schema is Claim
    assert plain.invoke({"approved": True, "amount": 900}).approved is True  # no input schema


def test_the_older_input_keyword_is_an_alias_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="input_schema"):
        builder = StateGraph(Claim, input=ClaimInput)
    graph = builder.add_node("decide", decide).set_entry_point("decide").compile()
    assert graph.input_schema is ClaimInput
    with pytest.raises(InvalidUpdateError):
        graph.invoke({"employee": "Ann", "approved": True})


def test_an_input_field_the_state_lacks_is_refused_when_the_graph_is_built():
    @dataclass
    class Wider:
        employee: str
        colour: str = ""

    with pytest.raises(TypeError, match=r"\['colour'\].*not fields of the state Claim"):
        StateGraph(Claim, input_schema=Wider)


def test_a_typeddict_input_schema():
    class Article(TypedDict):
        title: str
        checked: NotRequired[bool]

    class Draft(TypedDict):
        title: str

    graph = (StateGraph(Article, input_schema=Draft)
             .add_node("check", lambda s: {"checked": True})
             .set_entry_point("check").compile())
    assert graph.invoke({"title": "T"}) == {"title": "T", "checked": True}
    with pytest.raises(InvalidUpdateError, match="checked"):
        graph.invoke({"title": "T", "checked": True})


def test_operators_still_change_internal_fields_with_update_state_and_commands():
    """Only the start input is limited: update_state and Command(update=...) are the
    operator's tools (a fork with an override), as in LangGraph."""
    saver = InMemoryCheckpointSaver()
    graph = claims(saver)
    config = CheckpointConfig("ops")
    graph.invoke({"employee": "Ann", "amount": 500}, config)
    graph.update_state(config, {"approved": True}, as_node="decide")
    assert graph.get_state(config).values.approved is True
    final = graph.invoke(Command(update={"approved": True, "amount": 1}, goto="decide"),
                         CheckpointConfig("cmd"))
    assert final.approved is True


def test_a_subgraph_gets_only_its_input_fields_from_the_parent():
    seen: list[object] = []

    def child_node(state: Claim) -> dict[str, object]:
        seen.append(state.approved)
        return {}

    child = (StateGraph(Claim, input_schema=ClaimInput)
             .add_node("look", child_node).set_entry_point("look").compile())
    parent = (StateGraph(Claim).add_node("sub", child).set_entry_point("sub").compile())
    parent.invoke({"employee": "Ann", "approved": True})
    assert seen == [False]  # the parent's `approved` is not an input of the child


def test_the_expense_demo_refuses_a_compliance_override_from_the_caller():
    from demo.workflows.expense import ExpenseClaim, build

    graph = build()
    assert graph.input_schema is ExpenseClaim
    with pytest.raises(InvalidUpdateError, match="compliance_override"):
        graph.invoke({"employee": "Eve", "vendor": "Shady Supplies Ltd",
                      "amount": Decimal("75.00"), "compliance_override": True})
