"""Command, routing, the run's config and errors (how-tos "Use the graph API", "Add memory":
per-user values in `configurable`)."""

import operator
from typing import Annotated, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.errors import GraphRecursionError
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict


class State(TypedDict):
    value: int
    path: Annotated[list, operator.add]
    user: str


def start(state: State) -> Command[Literal["small", "big"]]:
    goto = "big" if state["value"] > 10 else "small"
    return Command(update={"path": ["start"]}, goto=goto)


def small(state: State, config: RunnableConfig):
    # No outgoing edge: the path ends here, as LangGraph does.
    return {"path": ["small"], "user": config["configurable"].get("user_id", "?")}


def big(state: State):
    return {"path": ["big"], "user": get_config()["configurable"]["user_id"]}


def fragile(state: State):
    if state["value"] < 0:
        raise KeyError("negative values are not supported")
    return {"path": ["fragile"]}


def route(state: State) -> Literal["again", "__end__"]:
    return "again" if state["value"] < 100 else "__end__"


def again(state: State):
    return {"value": state["value"] + 1, "path": ["again"]}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node(start)
    builder.add_node(small)
    builder.add_node(big)
    builder.add_edge(START, "start")
    graph = builder.compile(checkpointer=checkpointer)
    seen = []
    for n, value in enumerate((3, 30)):
        config = {"configurable": {"thread_id": f"cmd-{n}", "user_id": f"user-{n}"}}
        seen.append((f"value {value}", graph.invoke({"value": value, "path": []}, config)))

    builder = StateGraph(State)
    builder.add_node(fragile)
    builder.add_edge(START, "fragile")
    failing = builder.compile(checkpointer=checkpointer)
    try:
        failing.invoke({"value": -1}, {"configurable": {"thread_id": "fragile"}})
    except KeyError as error:  # the node's own exception, as raised
        seen.append(("caught", (type(error).__name__, error.args)))
    seen.append(("failed step kept", failing.get_state({"configurable": {"thread_id": "fragile"}})))

    builder = StateGraph(State)
    builder.add_node(again)
    builder.add_edge(START, "again")
    builder.add_conditional_edges("again", route)
    looping = builder.compile()
    try:
        looping.invoke({"value": 0, "path": []}, {"recursion_limit": 5})
    except GraphRecursionError as error:
        seen.append(("recursion", type(error).__name__))
    seen.append(("enough steps", looping.invoke({"value": 95, "path": []})["value"]))
    return seen
