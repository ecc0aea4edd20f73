"""The functional API (concepts "Functional API", how-to "Use the functional API"): tasks
called from an entrypoint, an interrupt between them, parallel tasks, `previous` and
`entrypoint.final`, a failed task retried on resume without calling the finished ones again,
a task's retry policy, async entrypoints and tasks, and the thread's state and history."""

import asyncio

from langgraph.func import entrypoint, task
from langgraph.graph import START, StateGraph
from langgraph.types import Command, RetryPolicy, interrupt
from typing_extensions import TypedDict

calls = []
flaky_state = {"failures": 0, "broken": True}


@task
def write_essay(topic: str) -> str:
    calls.append(("write_essay", topic))
    return f"An essay about {topic}"


@task
def score(essay: str) -> int:
    calls.append(("score", essay))
    return len(essay)


@task
def shaky(value: int) -> int:
    calls.append(("shaky", value))
    if flaky_state["broken"]:
        raise ConnectionError("service down")
    return value + 1


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
def retried(value: int) -> int:
    flaky_state["failures"] += 1
    if flaky_state["failures"] < 3:
        raise ConnectionError("try again")
    return value * 100


@task
async def shout(text: str) -> str:
    return text.upper()


class Count(TypedDict):
    x: int


def main(checkpointer):
    calls.clear()
    flaky_state.update(failures=0, broken=True)

    @entrypoint(checkpointer=checkpointer)
    def review(topic: str) -> dict:
        essay = write_essay(topic).result()
        scores = [f.result() for f in [score(essay), score(essay + "!")]]
        approved = interrupt({"essay": essay, "scores": scores})
        return {"essay": essay, "approved": approved}

    cfg = {"configurable": {"thread_id": "essay"}}
    seen = [("first", list(review.stream("cats", cfg, stream_mode="values")))]
    state = review.get_state(cfg)
    seen.append(("paused state", (state.values, state.next, [i.value for i in state.interrupts])))
    seen.append(("resumed", review.invoke(Command(resume=True), cfg)))
    seen.append(("task calls", sorted(calls)))
    state = review.get_state(cfg)
    seen.append(("final state", (state.values, state.next)))
    seen.append(("history", [(s.values, s.next) for s in review.get_state_history(cfg)]))
    seen.append(("newest", next(review.get_state_history(cfg)).values))
    # (parallel tasks' chunks come in the order they finish; these run one after the other)
    @entrypoint(checkpointer=checkpointer)
    def sequential(topic: str) -> dict:
        essay = write_essay(topic).result()
        return {"length": score(essay).result()}

    seen.append(("updates", list(sequential.stream("dogs", {"configurable": {"thread_id": "u"}},
                                                   stream_mode=["updates", "values"]))))

    @entrypoint(checkpointer=checkpointer)
    def tally(n: int, *, previous=None):
        total = (previous or 0) + n
        return entrypoint.final(value=f"total {total}", save=total)

    tcfg = {"configurable": {"thread_id": "tally"}}
    seen.append(("previous", [tally.invoke(1, tcfg), tally.invoke(2, tcfg), tally.invoke(3, tcfg)]))
    seen.append(("final values", tally.get_state(tcfg).values))

    @entrypoint(checkpointer=checkpointer)
    def pipeline(n: int) -> int:
        first = write_essay(str(n)).result()
        return shaky(len(first)).result()

    calls.clear()
    pcfg = {"configurable": {"thread_id": "fails"}}
    try:
        pipeline.invoke(7, pcfg)
    except ConnectionError as error:
        seen.append(("failed", str(error)))
    flaky_state["broken"] = False
    seen.append(("fixed", pipeline.invoke(None, pcfg)))
    seen.append(("calls with the failure", calls))

    @entrypoint(checkpointer=checkpointer)
    def patient(n: int) -> int:
        return retried(n).result()

    seen.append(("retried", patient.invoke(2, {"configurable": {"thread_id": "r"}})))
    seen.append(("attempts", flaky_state["failures"]))

    @entrypoint(checkpointer=checkpointer)
    async def loud(text: str, previous=None) -> str:
        said = await shout(text)
        return said if previous is None else f"{previous} {said}"

    async def run_async():
        acfg = {"configurable": {"thread_id": "loud"}}
        first = await loud.ainvoke("hi", acfg)
        chunks = [c async for c in loud.astream("there", acfg)]
        return first, chunks

    seen.append(("async", asyncio.run(run_async())))
    # a StateGraph invoked inside the entrypoint streams as its subgraph
    double = StateGraph(Count)
    double.add_node("double", lambda state: {"x": state["x"] * 2})
    double.add_edge(START, "double")
    doubler = double.compile()

    @entrypoint(checkpointer=checkpointer)
    def nested(n: int) -> int:
        return doubler.invoke({"x": len(write_essay(str(n)).result())})["x"]

    chunks = nested.stream(3, {"configurable": {"thread_id": "n"}}, subgraphs=True,
                           stream_mode=["updates", "values"])
    seen.append(("subgraphs", [(len(ns), mode, chunk) for ns, mode, chunk in chunks]))
    try:
        score("outside")
    except RuntimeError:
        seen.append(("outside a run", "RuntimeError"))
    return seen
