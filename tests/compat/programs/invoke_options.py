"""invoke's LangGraph options (reference "Pregel.invoke"): `output_keys` picks the fields
returned (a name: its value alone; an unknown one is a ValueError), a `stream_mode` other
than "values" returns the stream's chunks as a list; `stream(output_keys=...)` narrows the
`values` and `updates` chunks (a step or task that touched none of the keys streams no values
and a None update), with interrupts and resumes; `get_state` of a thread that never ran
is empty (how LangGraph code asks whether a thread started); a graph's JSON Schemas."""

import operator
from typing import Annotated, Literal

from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    items: Annotated[list, operator.add]
    n: int


def fan(state: State) -> Command[Literal["work"]]:
    return Command(update={"n": 1}, goto=[Send("work", {"items": [i], "n": 0}) for i in range(3)])


def work(state: State):
    return {"items": [state["items"][0] * 10]}


def check(state: State):
    return {"n": 2 if interrupt("ok?") else 0}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node("fan", fan)
    builder.add_node("work", work)
    builder.add_edge(START, "fan")
    graph = builder.compile(checkpointer=checkpointer)

    def thread(name):
        return {"configurable": {"thread_id": name}}

    seen = [("started?", bool(graph.get_state(thread("a")).values))]
    seen.append(("empty next", graph.get_state(thread("a")).next))
    seen.append(("goto sends", graph.invoke({"items": [], "n": 0}, thread("a"))))
    seen.append(("started now?", bool(graph.get_state(thread("a")).values)))
    seen.append(("keys", graph.invoke({"items": [], "n": 0}, thread("b"), output_keys=["n"])))
    seen.append(("one key", graph.invoke({"items": [], "n": 0}, thread("c"), output_keys="n")))
    try:
        graph.invoke({"items": [], "n": 0}, thread("d"), output_keys=["n", "nope"])
    except ValueError:
        seen.append(("unknown key", "ValueError"))
    seen.append(("nothing run", graph.get_state(thread("d")).values))
    seen.append(("input schema", sorted(graph.get_input_jsonschema()["properties"])))
    seen.append(("output schema", sorted(graph.get_output_jsonschema()["properties"])))

    # stream_mode on invoke: the chunks as a list (a chain, so their order is fixed)
    chain = StateGraph(State)
    chain.add_node("first", lambda state: {"n": 1})
    chain.add_node("check", check)
    chain.add_edge(START, "first")
    chain.add_edge("first", "check")
    asks = chain.compile(checkpointer=checkpointer)
    seen.append(("updates", asks.invoke({"items": [], "n": 0}, thread("e"),
                                        stream_mode="updates")))
    seen.append(("resumed values", asks.invoke(Command(resume=True), thread("e"),
                                               stream_mode=["values", "updates"])))
    seen.append(("paused keys", asks.invoke({"items": ["x"], "n": 0}, thread("f"),
                                            output_keys=["items"])))

    cases = [("values", ["n"]), ("values", "items"), ("updates", ["n"]), ("updates", "n"),
             (["values", "updates"], ["items"])]
    for i, (mode, keys) in enumerate(cases):
        config = thread(f"s{i}")
        seen.append((f"stream {mode} {keys}", list(asks.stream(
            {"items": ["y"]}, config, stream_mode=mode, output_keys=keys))))
        seen.append((f"resume {mode} {keys}", list(asks.stream(
            Command(resume=True), config, stream_mode=mode, output_keys=keys))))
    seen.append(("invoke updates keys", asks.invoke(
        {"items": ["z"], "n": 0}, thread("s9"), stream_mode="updates", output_keys="n")))
    try:
        list(asks.stream({"items": []}, thread("s10"), output_keys=["nope"]))
    except ValueError:
        seen.append(("stream unknown key", "ValueError"))
    return seen
