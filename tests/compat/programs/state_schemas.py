"""State schemas (concepts "Graph API": state as a dataclass, a TypedDict with reducers, or a
pydantic model), each node reading attributes and returning partial updates."""

import operator
from dataclasses import dataclass, field
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel


@dataclass
class Order:
    item: str
    quantity: int = 1
    events: Annotated[list, operator.add] = field(default_factory=list)


def price(state: Order):
    return {"events": [f"priced {state.quantity} x {state.item}"]}


def ship(state: Order):
    return {"events": ["shipped"], "quantity": state.quantity}


class Ticket(BaseModel):
    title: str
    priority: int = 3
    notes: Annotated[list, operator.add] = []


def triage(state: Ticket):
    return {"priority": 1 if "outage" in state.title else state.priority, "notes": ["triaged"]}


def main(checkpointer):
    seen = []
    builder = StateGraph(Order)
    builder.add_node(price)
    builder.add_node(ship)
    builder.add_edge(START, "price")
    builder.add_edge("price", "ship")
    builder.add_edge("ship", END)
    orders = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "order"}}
    seen.append(("dataclass", orders.invoke({"item": "tea", "quantity": 2}, config)))
    seen.append(("dataclass snapshot", orders.get_state(config)))

    builder = StateGraph(Ticket)
    builder.add_node(triage)
    builder.add_edge(START, "triage")
    tickets = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "ticket"}}
    seen.append(("pydantic", tickets.invoke({"title": "database outage"}, config)))
    seen.append(("pydantic stream", list(tickets.stream(
        {"title": "typo"}, {"configurable": {"thread_id": "t2"}}, stream_mode="values"
    ))))
    return seen
