"""The Runnable methods programs call on a compiled graph: batch and abatch (one config for
all inputs, or one each; return_exceptions), with_config, and the graph's name. A dict
state's values come back with their fields in the schema's order, however late each was
first written."""

import asyncio
import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    first: int
    log: Annotated[list, operator.add]
    later: str
    last: int


def step(state: State):
    if state["first"] < 0:
        raise ValueError("negative input")
    return {"last": state["first"] * 2, "later": "set", "log": [state["first"]]}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node(step)
    builder.add_edge(START, "step")
    graph = builder.compile(checkpointer=checkpointer, name="doubler")
    plain = builder.compile()
    seen = [("names", [graph.name, StateGraph(State).add_node(step).add_edge(START, "step")
                       .compile().name])]
    configs = [{"configurable": {"thread_id": f"b{n}"}} for n in range(3)]
    results = graph.batch([{"first": 1}, {"first": 2}, {"first": -1}], configs,
                          return_exceptions=True)
    seen.append(("batch", [r if isinstance(r, dict) else type(r).__name__ for r in results]))
    seen.append(("key order", [list(r) for r in results if isinstance(r, dict)]))
    try:
        plain.batch([{"first": 3}, {"first": -2}])
    except ValueError as error:
        seen.append(("batch raised", str(error)))
    seen.append(("abatch", asyncio.run(plain.abatch([{"first": 4}, {"first": 5}],
                                                   {"max_concurrency": 1}))))
    bound = graph.with_config({"configurable": {"thread_id": "bound"}})
    seen.append(("with_config", bound.invoke({"first": 7})))
    seen.append(("state", graph.get_state({"configurable": {"thread_id": "bound"}}).values))
    return seen
