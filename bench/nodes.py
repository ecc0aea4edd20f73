"""The node and router logic shared by both engines, so each side runs exactly the same work.

States are TypedDicts on both sides, so nodes receive and return plain dicts. What differs
between the engines (Send, END, interrupt, reducers) is passed in by each adapter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

LINEAR_NODES = 50
FANOUT_WIDTH = 10
FANOUT_ROUNDS = 20
# Tasks one fan-out run executes: per round, one dispatch, WIDTH workers and one join.
FANOUT_TASKS = FANOUT_ROUNDS * (FANOUT_WIDTH + 2)
APPEND_STEPS = 300
APPEND_BYTES = 1024

State = dict[str, Any]


def linear_input() -> State:
    return {"counter": 0, "note": "start"}


def linear_step(state: State) -> State:
    # A small update: one int and a short string, like a typical bookkeeping node.
    return {"counter": state["counter"] + 1, "note": "step"}


def linear_node_names() -> list[str]:
    return [f"n{i:02d}" for i in range(LINEAR_NODES)]


def fanout_input() -> State:
    return {"round": 0, "results": [], "joins": 0}


def dispatch(state: State) -> State:
    return {"round": state["round"] + 1}


def worker(arg: State) -> State:
    return {"results": [arg["round"] * 100 + arg["i"]]}


def join(state: State) -> State:
    return {"joins": state["joins"] + 1}


def make_fan_out(send: Callable[[str, Any], Any]) -> Callable[[State], list[Any]]:
    def fan_out(state: State) -> list[Any]:
        return [send("worker", {"round": state["round"], "i": i}) for i in range(FANOUT_WIDTH)]

    return fan_out


def make_after_join(end: str) -> Callable[[State], str]:
    def after_join(state: State) -> str:
        return "dispatch" if state["round"] < FANOUT_ROUNDS else end

    return after_join


def append_payloads(seed: int = 7) -> list[str]:
    """One distinct 1 KB string per superstep. 64-symbol text compresses to ~75%, like real
    text; no side compresses today, so this only matters if one starts to."""
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return ["".join(rng.choices(alphabet, k=APPEND_BYTES)) for _ in range(APPEND_STEPS)]


def append_input() -> State:
    return {"items": [], "n": 0}


def make_append(payloads: list[str]) -> Callable[[State], State]:
    def append(state: State) -> State:
        return {"items": [payloads[state["n"]]], "n": state["n"] + 1}

    return append


def make_after_append(end: str) -> Callable[[State], str]:
    def after_append(state: State) -> str:
        return "append" if state["n"] < APPEND_STEPS else end

    return after_append


def ask_input() -> State:
    return {"question": "Approve the expense?", "answer": ""}


def make_ask(interrupt: Callable[[Any], Any]) -> Callable[[State], State]:
    def ask(state: State) -> State:
        answer = interrupt({"question": state["question"]})
        return {"answer": answer}

    return ask
