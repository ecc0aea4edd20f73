"""The functional API (`orchestration.func`): an entrypoint's finished tasks are not called
again when it resumes, after a pause or a failure, in this process or another one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestration import Command, RetryPolicy, interrupt
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig, SqliteSaver
from orchestration.func import entrypoint, task

calls: list[str] = []
broken = {"charge": True}


@task
def reserve(item: str) -> str:
    calls.append(f"reserve {item}")
    return f"reservation-{item}"


@task
def charge(reservation: str) -> str:
    calls.append(f"charge {reservation}")
    if broken["charge"]:
        raise ConnectionError("payment service down")
    return f"paid {reservation}"


@task
def confirm(reservation: str) -> str:
    answer = interrupt(f"confirm {reservation}?")  # asked inside a task
    calls.append(f"confirm {answer}")
    return f"{reservation}: {answer}"


def order_flow(saver: BaseCheckpointSaver) -> Any:
    @entrypoint(checkpointer=saver)
    def order(item: str) -> str:
        reservation = reserve(item).result()
        return charge(reservation).result()

    return order


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    broken["charge"] = True


def test_a_failed_entrypoint_resumes_in_another_process_without_redoing_tasks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.db"
    config = CheckpointConfig("order-1")
    first = SqliteSaver(str(path))
    with pytest.raises(ConnectionError):
        order_flow(first).invoke("lamp", config)
    first.close()
    assert calls == ["reserve lamp", "charge reservation-lamp"]
    broken["charge"] = False
    again = SqliteSaver(str(path))  # a new process would open the file like this
    try:
        assert order_flow(again).invoke(None, config) == "paid reservation-lamp"
    finally:
        again.close()
    # reserve ran once; only the failed charge ran again
    assert calls == ["reserve lamp", "charge reservation-lamp", "charge reservation-lamp"]


def test_an_interrupt_inside_a_task_pauses_the_entrypoint(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    @entrypoint(checkpointer=saver)
    def flow(item: str) -> str:
        reservation = reserve(item).result()
        return confirm(reservation).result()

    paused = flow.invoke("desk", config)
    assert [i.value for i in paused["__interrupt__"]] == ["confirm reservation-desk?"]
    assert flow.get_state(config).next == ("flow",)
    assert flow.invoke(Command(resume="yes"), config) == "reservation-desk: yes"
    assert calls == ["reserve desk", "confirm yes"]


def test_the_entrypoints_retry_keeps_finished_tasks() -> None:
    attempts = {"n": 0}

    @entrypoint(retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.001, jitter=False))
    def flow(item: str) -> str:
        reservation = reserve(item).result()
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError("flaky body")
        return reservation

    assert flow.invoke("chair") == "reservation-chair"
    assert calls == ["reserve chair"]  # the second attempt took the recorded result


def test_async_entrypoint_awaits_sync_and_async_tasks(saver: BaseCheckpointSaver) -> None:
    @task
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @entrypoint(checkpointer=saver)
    async def flow(n: int) -> list[Any]:
        return [await double(n), await reserve(str(n))]

    result = asyncio.run(flow.ainvoke(4, CheckpointConfig("async")))
    assert result == [8, "reservation-4"]


def test_an_async_task_from_a_sync_entrypoint_says_what_to_do() -> None:
    @task
    async def later(n: int) -> int:
        return n

    @entrypoint()
    def flow(n: int) -> int:
        return later(n).result()

    with pytest.raises(RuntimeError, match="call it from an async entrypoint"):
        flow.invoke(1)


def test_writer_and_config_reach_the_entrypoint(saver: BaseCheckpointSaver) -> None:
    @entrypoint(checkpointer=saver)
    def flow(n: int, *, writer: Any, config: Any) -> str:
        writer({"progress": n})
        return config["configurable"]["thread_id"]

    chunks = list(flow.stream(1, {"configurable": {"thread_id": "w"}},
                              stream_mode=["custom", "updates"]))
    assert chunks == [("custom", {"progress": 1}), ("updates", {"flow": "w"})]
