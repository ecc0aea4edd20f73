"""Edit a paused subgraph's state, then answer (how-to "View and update state in subgraphs"):
`get_state(config).tasks[0].state` is the subgraph's config, `get_state` of it reads the child;
`update_state` on the child's config changes what the child continues with, and the resume
continues the child from there (its finished step does not run again)."""

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    city: str
    out: str


RUNS = []


def prepare(state: State):
    RUNS.append("prepare")
    return {"city": state["city"].upper()}


def weather(state: State):
    ok = interrupt("confirm city?")
    return {"out": f"weather in {state['city']} ({ok})"}


def router(state: State):
    return {}


def main(checkpointer):
    RUNS.clear()
    child = StateGraph(State)
    child.add_node(prepare)
    child.add_node(weather)
    child.add_edge(START, "prepare")
    child.add_edge("prepare", "weather")
    builder = StateGraph(State)
    builder.add_node(router)
    builder.add_node("weather_graph", child.compile())
    builder.add_edge(START, "router")
    builder.add_edge("router", "weather_graph")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "sub-edit"}}
    graph.invoke({"city": "sf", "out": ""}, config)
    task = graph.get_state(config).tasks[0]
    seen = [("child via task.state", graph.get_state(task.state).values)]
    paused = graph.get_state(config, subgraphs=True).tasks[0].state
    graph.update_state(paused.config, {"city": "la"})
    edited = graph.get_state(config, subgraphs=True).tasks[0].state
    seen.append(("child after the edit", (edited.values, edited.next)))
    seen.append(("resumed", graph.invoke(Command(resume="yes"), config)))
    seen.append(("prepare ran", len(RUNS)))
    return seen
