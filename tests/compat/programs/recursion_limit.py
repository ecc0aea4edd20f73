"""`recursion_limit` (how-to "Control the recursion limit"): where a loop is stopped, on new
input, on a resume and inside a subgraph, and how the thread continues with a higher limit."""

from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    n: int


def inc(state: State):
    return {"n": state["n"] + 1}


def counter(stop_at, checkpointer=None, **compile_args):
    builder = StateGraph(State)
    builder.add_node("first", lambda state: {"n": 0})
    builder.add_node("inc", inc)
    builder.add_edge(START, "first")
    builder.add_edge("first", "inc")
    builder.add_conditional_edges("inc", lambda state: END if state["n"] >= stop_at else "inc")
    return builder.compile(checkpointer=checkpointer, **compile_args)


def outcome(graph, input, config):
    try:
        return graph.invoke(input, config)["n"]
    except GraphRecursionError as error:
        return f"stopped ({isinstance(error, RecursionError)})"


def main(checkpointer):
    seen = []
    for limit in (2, 3, 4, 6):
        for stop_at in (1, 2, 3, 4):
            config = {
                "configurable": {"thread_id": f"new-{limit}-{stop_at}"},
                "recursion_limit": limit,
            }
            seen.append(
                (
                    f"new input, limit {limit}, {stop_at} steps",
                    outcome(counter(stop_at, checkpointer), {"n": 0}, config),
                )
            )

    graph = counter(10, checkpointer)
    config = {"configurable": {"thread_id": "loop"}, "recursion_limit": 5}
    seen.append(("stopped", outcome(graph, {"n": 0}, config)))
    state = graph.get_state(config)
    seen.append(("where it stopped", (state.values, state.next)))
    seen.append(("resumed, limit 3", outcome(graph, None, {**config, "recursion_limit": 3})))
    seen.append(("resumed, limit 4", outcome(graph, None, {**config, "recursion_limit": 4})))
    seen.append(("resumed, limit 20", outcome(graph, None, {**config, "recursion_limit": 20})))

    paused = counter(3, checkpointer, interrupt_before=["first"])
    for limit in (1, 2, 3):
        config = {"configurable": {"thread_id": f"paused-{limit}"}}
        paused.invoke({"n": 0}, config)
        seen.append(
            (
                f"resume of 4 steps, limit {limit}",
                outcome(paused, None, {**config, "recursion_limit": limit}),
            )
        )

    parent = StateGraph(State)
    parent.add_node("child", counter(4))
    parent.add_edge(START, "child")
    parent = parent.compile()
    for limit in (4, 5, 6, 7):
        seen.append(
            (f"subgraph, limit {limit}", outcome(parent, {"n": 0}, {"recursion_limit": limit}))
        )
    return seen
