"""Small graphs the web tests run for real (registered in STEPWISE_GRAPHS by conftest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired, Required, TypedDict

from orchestration import END, START, StateGraph, add_messages, interrupt
from orchestration.managed import RemainingSteps
from orchestration.prebuilt import ToolNode, tools_condition
from orchestration.reducers import merge, topic

REVIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "title": "Title", "maxLength": 40, "minLength": 1},
        "amount": {"type": "number", "title": "Amount", "minimum": 0},
        "copies": {"type": "integer", "minimum": 1, "maximum": 10},
        "priority": {"enum": ["low", "high"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["title", "amount"],
}


@dataclass
class Doc:
    title: str = ""
    amount: float = 0.0
    notes: Annotated[list[str], topic] = field(default_factory=list)
    outcome: str = ""
    reviewer: str = ""
    tags: Annotated[dict[str, str], merge] = field(default_factory=dict)


def draft(state: Doc) -> dict[str, Any]:
    return {"notes": ["drafted"]}


def review(state: Doc) -> dict[str, Any]:
    answer = interrupt({
        "kind": "review",
        "title": f"Approve {state.title}",
        "description": "Check the title and the amount.",
        "data": {"title": state.title, "amount": state.amount, "copies": 1, "priority": "low",
                 "urgent": False},
        "actions": ["approve", "reject", "edit", "respond"],
        "schema": REVIEW_SCHEMA,
    })
    update: dict[str, Any] = {"outcome": answer["action"], "reviewer": answer["reviewer"],
                              "notes": [f"reviewed: {answer['action']}"]}
    if answer["action"] == "edit":
        update.update({k: v for k, v in answer["values"].items() if k in ("title", "amount")})
    return update


def publish(state: Doc) -> dict[str, Any]:
    return {"notes": ["published"]}


def _build() -> Any:
    g = StateGraph(Doc)
    g.add_node("draft", draft).add_node("review", review).add_node("publish", publish)
    g.set_entry_point("draft").add_edge("draft", "review").add_edge("review", "publish")
    g.add_edge("publish", END)
    return g.compile()


graph = _build()


@dataclass
class Question:
    asked: str = ""
    reply: str = ""


def ask(state: Question) -> dict[str, Any]:
    return {"reply": interrupt(f"What about {state.asked}?")}


question_graph = StateGraph(Question).add_node("ask", ask).set_entry_point("ask").add_edge(
    "ask", END
).compile()


# --- a graph with a subgraph that streams its text and asks for a review inside ------------


@dataclass
class Ticket:
    subject: str = ""
    draft: str = ""
    outcome: str = ""


def write_draft(state: Ticket) -> dict[str, Any]:
    from orchestration import get_stream_writer

    write = get_stream_writer()
    words = ["Dear", "customer,", "your", f"{state.subject}", "is", "fixed."]
    for word in words:
        write(word + " ")
    write({"tool": "lookup", "args": {"subject": state.subject}})
    return {"draft": " ".join(words)}


def vet(state: Ticket) -> dict[str, Any]:
    answer = interrupt({"kind": "review", "title": f"Send the reply about {state.subject}?",
                        "data": {"draft": state.draft}, "actions": ["approve", "reject"]})
    return {"outcome": answer["action"]}


def _build_ticket() -> Any:
    child = (
        StateGraph(Ticket).add_node("write", write_draft).add_node("review", vet)
        .set_entry_point("write").add_edge("write", "review").add_edge("review", END).compile()
    )
    return (
        StateGraph(Ticket).add_node("reply", child).set_entry_point("reply")
        .add_edge("reply", END).compile()
    )


subgraph_graph = _build_ticket()


# --- fan-outs: checks side by side before a review; branches that go different ways -------


@dataclass
class Article:
    body: str = ""
    findings: Annotated[list[str], topic] = field(default_factory=list)
    verdict: str = ""


def _finding(name: str) -> Any:
    def check(state: Article) -> dict[str, Any]:
        return {"findings": [f"{name}: {'typo' if 'teh' in state.body else 'ok'}"]}

    check.__name__ = name
    return check


def vet_article(state: Article) -> dict[str, Any]:
    answer = interrupt({"kind": "review", "title": "Publish the article?",
                        "data": {"body": state.body}, "actions": ["approve", "reject"]})
    return {"verdict": answer["action"]}


def _build_fan_in() -> Any:
    g = StateGraph(Article).add_node("prepare", lambda s: {}).add_node("review", vet_article)
    g.set_entry_point("prepare")
    for name in ("spelling", "legal", "seo"):
        g.add_node(name, _finding(name)).add_edge("prepare", name)
    return g.add_edge(["spelling", "legal", "seo"], "review").add_edge("review", END).compile()


def _build_split() -> Any:
    g = StateGraph(Article).add_node("split", lambda s: {}).set_entry_point("split")
    for first, then in (("a", "after_a"), ("b", "after_b")):
        g.add_node(first, _finding(first)).add_node(then, _finding(then))
        g.add_edge("split", first).add_edge(first, then).add_edge(then, END)
    return g.compile()


fan_in_graph = _build_fan_in()
split_graph = _build_split()


def read_upload(state: Question) -> dict[str, Any]:
    # An error quoting data from outside, NUL byte and all (`str`, not `repr`, of the bytes).
    raise ValueError(f"the upload of {state.asked} starts with \x00\x01, not %PDF")


failing_graph = StateGraph(Question).add_node("read", read_upload).set_entry_point("read") \
    .add_edge("read", END).compile()


# A tool-calling agent (orchestration.prebuilt) with a step budget (a managed value): the model
# asks for a refund, the refund tool waits for a person, the model then answers.
class AgentState(TypedDict):
    messages: Annotated[list[Any], add_messages]
    remaining_steps: RemainingSteps
    notes: Annotated[list[str], topic]  # starts empty: not asked for at the start


def refund(order: str, amount: int) -> str:
    """Refund an order once a person agrees."""
    answer = interrupt({"question": f"Refund {amount} on {order}?"})
    return f"refunded {amount}" if answer.get("text") == "yes" else "refund refused"


def agent_model(state: AgentState) -> dict[str, Any]:
    last = state["messages"][-1]
    if last.type == "tool":
        return {"messages": [{"role": "assistant",
                              "content": f"{last.content} ({state['remaining_steps']} left)"}]}
    call = {"name": "refund", "args": {"order": "A-7", "amount": "40"}, "id": "call-1"}
    return {"messages": [{"role": "assistant", "content": "", "tool_calls": [call]}]}


def _build_agent() -> Any:
    builder = StateGraph(AgentState).add_node("model", agent_model)
    builder.add_node(ToolNode([refund]))
    builder.add_edge(START, "model").add_conditional_edges("model", tools_condition)
    return builder.add_edge("tools", "model").compile()


agent_graph = _build_agent()


# A LangGraph-style partial state: keys are optional (`total=False`) unless `Required`, and
# a total class may mark some `NotRequired`.
class PartialTicket(TypedDict, total=False):
    subject: Required[str]
    priority: int
    steps: int


class Note(TypedDict):
    text: str
    tag: NotRequired[str]


def _count(state: PartialTicket) -> dict[str, Any]:
    return {"steps": state.get("steps", 0) + 1}


partial_graph = StateGraph(PartialTicket).add_node("count", _count).set_entry_point("count") \
    .add_edge("count", END).compile()
note_graph = StateGraph(Note).add_node("keep", lambda state: {}).set_entry_point("keep") \
    .add_edge("keep", END).compile()
