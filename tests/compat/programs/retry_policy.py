"""Retries (how-to "Add retry policies"): RetryPolicy's own fields, several policies on one
node (the first whose retry_on takes the error decides), and the default retry_on, which
retries a flaky service but not a bug. Also add_node's destinations= and metadata=, and a
returned config merged with `|` as a dict."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, RetryPolicy
from typing_extensions import TypedDict

attempts: dict[str, int] = {}


class ServiceDown(Exception):
    pass


class State(TypedDict):
    log: Annotated[list, operator.add]


def count(name: str) -> int:
    attempts[name] = attempts.get(name, 0) + 1
    return attempts[name]


def flaky(state: State):
    if count("flaky") < 3:
        raise ServiceDown("try again")
    return {"log": ["flaky ok"]}


def slow_disk(state: State):
    if count("slow_disk") < 2:
        raise TimeoutError("disk busy")
    return {"log": ["disk ok"]}


def route(state: State):  # no annotation: destinations= says where it may go
    return Command(goto="done", update={"log": ["routed"]})


def done(state: State):
    return {"log": ["done"]}


def buggy(state: State):
    count("buggy")
    raise ValueError("a bug, not a hiccup")


FAST = {"initial_interval": 0.001, "backoff_factor": 3.0, "max_interval": 0.01, "jitter": False}


def main(checkpointer):
    attempts.clear()
    builder = StateGraph(State)
    builder.add_node(flaky, retry_policy=RetryPolicy(max_attempts=3, **FAST))
    builder.add_node(slow_disk, retry_policy=[RetryPolicy(retry_on=KeyError, **FAST),
                                              RetryPolicy(retry_on=(TimeoutError,), **FAST)])
    builder.add_node(route, destinations=("done",), metadata={"team": "ops"})
    builder.add_node(done)
    builder.add_edge(START, "flaky")
    builder.add_edge("flaky", "slow_disk")
    builder.add_edge("slow_disk", "route")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "retries"}}
    seen = [("result", graph.invoke({"log": []}, config))]
    seen.append(("attempts", dict(sorted(attempts.items()))))
    merged = graph.get_state(config).config | {"recursion_limit": 5}
    seen.append(("merged config keys", sorted(merged)))

    strict = StateGraph(State)
    strict.add_node(buggy, retry_policy=RetryPolicy(**FAST))  # default retry_on
    strict.add_edge(START, "buggy")
    try:
        strict.compile(checkpointer=checkpointer).invoke(
            {"log": []}, {"configurable": {"thread_id": "bug"}})
    except ValueError as error:
        seen.append(("raised", str(error)))
    seen.append(("buggy attempts", attempts["buggy"]))
    return seen
