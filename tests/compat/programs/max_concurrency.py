"""`config["max_concurrency"]` caps how many tasks of one superstep run at once: six `Send`
tasks with a limit of two never run more than two side by side, with `invoke` and with
`ainvoke`; without a limit they all run together."""

import asyncio
import operator
import threading
import time
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict


class State(TypedDict):
    done: Annotated[list, operator.add]


class Gauge:
    """The most tasks seen running at the same moment."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


def build(gauge, is_async=False):
    def work(i: int):
        with gauge:
            time.sleep(0.05)
        return {"done": [i]}

    async def awork(i: int):
        with gauge:
            await asyncio.sleep(0.05)
        return {"done": [i]}

    builder = StateGraph(State)
    builder.add_node("work", awork if is_async else work)
    builder.add_conditional_edges(START, lambda s: [Send("work", i) for i in range(6)])
    return builder.compile()


def main(checkpointer):
    seen = []
    limited = Gauge()
    result = build(limited).invoke({"done": []}, {"max_concurrency": 2})
    seen.append(("invoke: all done", sorted(result["done"])))
    seen.append(("invoke: most at once", limited.most))
    alimited = Gauge()
    result = asyncio.run(build(alimited, True).ainvoke({"done": []}, {"max_concurrency": 2}))
    seen.append(("ainvoke: all done", sorted(result["done"])))
    seen.append(("ainvoke: most at once", alimited.most))
    free = Gauge()
    build(free).invoke({"done": []})
    seen.append(("no limit: more than two at once", free.most > 2))
    return seen
