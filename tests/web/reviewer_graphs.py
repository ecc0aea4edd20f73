"""Graphs for the reviewer tests: an agent written for Agent Inbox that asks about two tool
calls at once (a list of HumanInterrupts) and keeps the responses it got."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestration import END, StateGraph, interrupt


@dataclass
class Calls:
    responses: list[Any] = field(default_factory=list)


def ask_both(state: Calls) -> dict[str, Any]:
    requests = [
        {"action_request": {"action": "create_ticket", "args": {"title": "Printer", "priority": 2}},
         "config": {"allow_ignore": True, "allow_respond": False, "allow_edit": True,
                    "allow_accept": True},
         "description": "Open a ticket?"},
        {"action_request": {"action": "notify", "args": {"channel": "#ops"}},
         "config": {"allow_ignore": True, "allow_respond": True, "allow_edit": False,
                    "allow_accept": False},
         "description": "Tell ops?"},
    ]
    return {"responses": interrupt(requests)}


agent_list_graph = StateGraph(Calls).add_node("ask_both", ask_both).set_entry_point(
    "ask_both").add_edge("ask_both", END).compile()
