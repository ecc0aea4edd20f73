"""A support agent: a scripted stand-in for a model (deterministic, no network, no weights)
streams its text token by token, proposes tool calls, and each tool call with side effects
(a refund, an email) pauses for a reviewer, who approves it, edits its arguments, or rejects
it with a reason that goes back to the model. Tool calls run in a subgraph ("tools"). The
agent remembers facts per customer in the store, across threads.

Why scripted: the demo and its tests must give the same answer every time, and replays (a
resume, a fork) must see the same "model" output, exactly as a recorded model call would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from orchestration import END, StateGraph, get_stream_writer, interrupt
from orchestration.reducers import topic
from orchestration.store import BaseStore

# Read-only tools run at once; the others act on the world and wait for a reviewer.
TOOLS: dict[str, dict[str, Any]] = {
    "lookup_order": {"side_effects": False, "schema": {"order_id": {"type": "string"}}},
    "issue_refund": {
        "side_effects": True,
        "schema": {
            "order_id": {"type": "string", "title": "Order"},
            "amount": {"type": "number", "title": "Amount (EUR)", "minimum": 0,
                       "multipleOf": 0.01},
        },
        # how the review page shows the arguments (as the expense review shows its amount)
        "display": {"amount": {"title": "Amount", "format": "money", "x-currency": "EUR"}},
    },
    "send_email": {
        "side_effects": True,
        "schema": {
            "to": {"type": "string", "title": "To"},
            "subject": {"type": "string", "title": "Subject", "maxLength": 120},
        },
    },
}
ORDERS = {  # the "shop database" the lookup tool reads
    "A-1001": {"item": "Espresso machine", "amount": 249.0, "status": "delivered damaged"},
    "A-1002": {"item": "Coffee grinder", "amount": 89.0, "status": "in transit"},
}


@dataclass
class Ticket:
    customer: str = ""
    message: str = ""
    # the conversation: {"role": "user"|"assistant"|"tool", "content": ..., "tool": ...}
    messages: Annotated[list[dict[str, Any]], topic] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # what the store remembered
    proposed: dict[str, Any] = field(default_factory=dict)  # the tool call to run next
    # what the tools subgraph returns (the agent files it into `messages`): a subgraph's
    # final values come back through the parent's reducers, so it must not return the
    # whole `messages` topic, which would append the conversation to itself
    last_tool: dict[str, Any] = field(default_factory=dict)
    reply: str = ""


@dataclass
class TicketOpened:
    """What a caller gives to start (`input_schema`): the tool calls, their approvals and the
    reply are the graph's own, so nobody can start a thread with a refund already approved."""

    customer: str
    message: str


def memory_ns(customer: str) -> tuple[str, ...]:
    return ("customers", customer or "anonymous")


def recall(state: Ticket, store: BaseStore) -> dict[str, Any]:
    """Read what earlier threads learnt about the customer, then learn from this message
    (so a conversation that is still waiting for a review already informs the next one)."""
    ns = memory_ns(state.customer)
    facts = [str(i.value.get("fact", "")) for i in store.search(ns, limit=50)]
    if "email" in state.message.lower():
        store.put(ns, "contact", {"fact": "prefers email contact"})
    order = _order_id(state.message)
    if order:
        store.put(ns, f"order-{order}", {"fact": f"asked about order {order}"})
    return {"facts": facts, "messages": [{"role": "user", "content": state.message}]}


# --- the scripted "model" -------------------------------------------------------------------


def _order_id(text: str) -> str | None:
    found = re.search(r"\b([A-Z]-\d{4})\b", text)
    return found.group(1) if found else None


def script(state: Ticket, messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """What the model says next and the tool call it proposes ({} when it is done). A pure
    function of the conversation so far: replaying a step gives the same output."""
    results = [m for m in messages if m.get("role") == "tool"]
    order = _order_id(state.message)
    wants_refund = "refund" in state.message.lower()
    greeting = ""
    if not results:
        if any("email" in fact for fact in state.facts):
            greeting = "Welcome back! I remember you prefer email. "
        if order is None:
            return greeting + "Could you tell me your order number (like A-1001)?", {}
        return (
            greeting + f"Let me look up order {order} for you.",
            {"name": "lookup_order", "args": {"order_id": order}},
        )
    last = results[-1]
    if last.get("tool") == "lookup_order":
        found = last.get("result") or {}
        if not found:
            return f"I could not find order {order}. Please check the number.", {}
        if wants_refund and "damaged" in str(found.get("status")):
            return (
                f"Your {found['item']} arrived damaged. I will refund {found['amount']:.2f} EUR.",
                {"name": "issue_refund", "args": {"order_id": order, "amount": found["amount"]}},
            )
        return f"Your {found['item']} is {found['status']}.", {}
    if last.get("tool") == "issue_refund":
        if last.get("rejected"):
            return (
                "I am sorry, I cannot issue that refund: " + str(last["rejected"])
                + ". A colleague will contact you.",
                {},
            )
        amount = last["args"]["amount"]
        return (
            f"Done: {amount:.2f} EUR are on their way back to you. I will confirm by email.",
            {"name": "send_email", "args": {
                "to": f"{state.customer}@example.com", "subject": f"Refund of {amount:.2f} EUR",
            }},
        )
    if last.get("tool") == "send_email":
        if last.get("rejected"):
            return "I will not send an email then. Anything else I can do?", {}
        return "The confirmation email is sent. Have a good day!", {}
    return "Is there anything else I can help with?", {}


def agent(state: Ticket) -> dict[str, Any]:
    arrived = [state.last_tool] if state.last_tool else []
    text, call = script(state, [*state.messages, *arrived])
    write = get_stream_writer()
    for token in re.findall(r"\S+\s*", text):  # streamed as a model streams its tokens
        write(token)
    if call:
        write({"tool_call": call["name"], "args": call["args"]})
    return {"messages": [*arrived, {"role": "assistant", "content": text}], "proposed": call,
            "last_tool": {}, "reply": text}


def after_agent(state: Ticket) -> str:
    return "tools" if state.proposed else "remember"


# --- the tools subgraph: review a side-effecting call, then run it ------------------------


@dataclass
class ToolCall:
    proposed: dict[str, Any] = field(default_factory=dict)
    customer: str = ""
    last_tool: dict[str, Any] = field(default_factory=dict)


def review_call(state: ToolCall) -> dict[str, Any]:
    call = state.proposed
    spec = TOOLS.get(call.get("name", ""))
    if spec is None or not spec["side_effects"]:
        return {}
    answer = interrupt({
        "kind": "review",
        "title": f"Allow {call['name']} for {state.customer}?",
        "description": (
            "The support agent wants to call a tool that acts outside the system. Approve it, "
            "edit its arguments, or reject it: your reason goes back to the agent."
        ),
        "data": dict(call["args"]),
        "data_schema": {"type": "object", "properties": {
            name: {**field_spec, **spec.get("display", {}).get(name, {})}
            for name, field_spec in spec["schema"].items()
        }},
        "actions": ["approve", "edit", "reject"],
        "schema": {"type": "object", "properties": spec["schema"],
                   "required": list(spec["schema"])},
        "assignee": "reviewer",
    })
    action = answer.get("action")
    if action == "reject":
        reason = str(answer.get("comment") or answer.get("text") or "no reason given")
        return {"proposed": {**call, "rejected": reason}}
    if action == "edit":
        args = {k: v for k, v in dict(answer.get("values") or {}).items() if k in spec["schema"]}
        return {"proposed": {**call, "args": {**call["args"], **args},
                             "edited_by": answer.get("reviewer", "")}}
    return {"proposed": {**call, "approved_by": answer.get("reviewer", "")}}


def run_tool(state: ToolCall, store: BaseStore) -> dict[str, Any]:
    call = state.proposed
    name, args = call.get("name", ""), dict(call.get("args") or {})
    message: dict[str, Any] = {"role": "tool", "tool": name, "args": args}
    if call.get("rejected"):
        message["rejected"] = call["rejected"]
    elif name == "lookup_order":
        message["result"] = ORDERS.get(str(args.get("order_id")), {})
    elif name == "issue_refund":
        # the side effect: recorded once per (customer, order) in the store
        store.put(("refunds", state.customer or "anonymous"), str(args.get("order_id")),
                  {"amount": args.get("amount"), "approved_by": call.get("approved_by", ""),
                   "edited_by": call.get("edited_by", "")})
        message["result"] = {"refunded": args.get("amount")}
    elif name == "send_email":
        message["result"] = {"sent_to": args.get("to")}
    return {"last_tool": message}


def build_tools() -> Any:
    return (
        StateGraph(ToolCall)
        .add_node("review", review_call)
        .add_node("run", run_tool, side_effects=True)  # refunds, e-mails
        .set_entry_point("review")
        .add_edge("review", "run")
        .add_edge("run", END)
        .compile()
    )


def remember(state: Ticket, store: BaseStore) -> dict[str, Any]:
    """How the conversation ended, for the customer's next one."""
    refunds = [m for m in state.messages if m.get("tool") == "issue_refund"]
    if refunds:
        last = refunds[-1]
        fact = (
            f"refund for {last['args'].get('order_id')} was refused: {last['rejected']}"
            if last.get("rejected")
            else f"was refunded {last['args'].get('amount')} EUR for {last['args'].get('order_id')}"
        )
        store.put(memory_ns(state.customer), "last-refund", {"fact": fact})
    return {"proposed": {}}


def build() -> Any:
    builder = StateGraph(Ticket, input_schema=TicketOpened)
    builder.add_node("recall", recall)
    builder.add_node("agent", agent)
    builder.add_node("tools", build_tools())
    builder.add_node("remember", remember)
    builder.set_entry_point("recall")
    builder.add_edge("recall", "agent")
    builder.add_conditional_edges("agent", after_agent, ["tools", "remember"])
    builder.add_edge("tools", "agent")
    builder.add_edge("remember", END)
    return builder.compile()


graph = build()
