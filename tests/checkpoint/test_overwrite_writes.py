"""An `Overwrite` kept in pending writes (a paused superstep, a held resume update) is stored
and read back as an Overwrite by every saver, sync and async; checkpoints hold plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from orchestration import END, START, Command, Overwrite, StateGraph, interrupt
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig
from orchestration.reducers import topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    title: str = ""


def paused_beside_an_overwrite(saver: BaseCheckpointSaver, runs: list[str]) -> Any:
    """`reset` overwrites the log in the superstep where `ask` waits for an answer."""

    def reset(state: Log) -> dict[str, Any]:
        runs.append("reset")
        return {"log": Overwrite(["reset"])}

    graph = StateGraph(Log).add_node("reset", reset)
    graph.add_node("ask", lambda s: {"title": interrupt("title?")})
    graph.add_edge(START, "reset").add_edge(START, "ask")
    return graph.add_edge("reset", END).add_edge("ask", END).compile(checkpointer=saver)


def overwrites_in(tup: Any) -> list[Any]:
    return [w.value for w in tup.pending_writes if w.channel == "log"]


RESUME = Command(resume="t", update={"log": Overwrite(["held"])})


def test_an_overwrite_in_pending_writes_round_trips(saver: BaseCheckpointSaver) -> None:
    runs: list[str] = []
    compiled = paused_beside_an_overwrite(saver, runs)
    config = CheckpointConfig("overwrite-sync")
    compiled.invoke({"log": ["old"]}, config)
    assert overwrites_in(saver.get_tuple(config)) == [Overwrite(["reset"])]
    result = compiled.invoke(RESUME, config)
    # the held update applies first, then the step's own Overwrite wins
    assert (result.log, result.title, runs) == (["reset"], "t", ["reset"])
    head = saver.get_tuple(config).checkpoint.values
    assert head["log"] == ["reset"] and type(head["log"]) is list


async def test_an_overwrite_in_pending_writes_round_trips_async(
    saver: BaseCheckpointSaver,
) -> None:
    runs: list[str] = []
    compiled = paused_beside_an_overwrite(saver, runs)
    config = CheckpointConfig("overwrite-async")
    await compiled.ainvoke({"log": ["old"]}, config)
    assert overwrites_in(await saver.aget_tuple(config)) == [Overwrite(["reset"])]
    result = await compiled.ainvoke(RESUME, config)
    assert (result.log, result.title, runs) == (["reset"], "t", ["reset"])
    head = (await saver.aget_tuple(config)).checkpoint.values
    assert head["log"] == ["reset"] and type(head["log"]) is list
