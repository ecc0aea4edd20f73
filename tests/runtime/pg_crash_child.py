"""Child process of `test_pg_crash.py`, on a throwaway cluster (DATABASE_URL): a 40-node
chain written behind with synchronous_commit off; node `n{PAY}` has side effects; the node
after it SIGKILLs the write-behind connection's backend, so the postmaster crash-restarts the
cluster and replays the WAL: commits that were only in its WAL buffers are gone. Prints, as
JSON: how the run ended, what survived, and how resuming the thread on the restarted cluster
ended. Each node appends its number to the file named by argv[1]."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402 - after django.setup()
from django.db import connection, connections  # noqa: E402

from orchestration import END, StateGraph  # noqa: E402
from orchestration.checkpoint import CheckpointConfig  # noqa: E402
from orchestration.reducers import topic  # noqa: E402
from orchestration.runtime import models  # noqa: E402
from orchestration.runtime.leases import Lease  # noqa: E402
from orchestration.runtime.savers import DjangoCheckpointSaver  # noqa: E402
from orchestration.runtime.write_behind import close_writers, current_writer  # noqa: E402

NODES, PAY = 40, 20
LOG = sys.argv[1]


@dataclass
class Chain:
    done: Annotated[list[int], topic] = field(default_factory=list)


def _node(i: int) -> Any:
    def run(state: Chain) -> dict[str, Any]:
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{i}\n")
        if i == PAY + 1 and not os.path.exists(LOG + ".killed"):
            open(LOG + ".killed", "w").close()  # noqa: SIM115 - a marker, closed at once
            writer = current_writer(connection.alias)
            os.kill(writer._connection.info.backend_pid, signal.SIGKILL)  # type: ignore[union-attr]
            time.sleep(0.1)  # the postmaster notices and ends every session
        return {"done": [i]}

    return run


def _graph() -> Any:
    builder = StateGraph(Chain)
    for i in range(NODES):
        builder.add_node(f"n{i}", _node(i), side_effects=i == PAY)
        if i:
            builder.add_edge(f"n{i - 1}", f"n{i}")
    builder.set_entry_point("n0")
    builder.add_edge(f"n{NODES - 1}", END)
    return builder.compile()


def _saver(lease: Lease | None = None) -> DjangoCheckpointSaver:
    return DjangoCheckpointSaver(lease=lease, durability="async", synchronous_commit=False)


def _reconnect() -> None:
    connections.close_all()
    for _ in range(240):  # the crash restart: recovery, then connections are accepted
        try:
            connection.ensure_connection()
            return
        except Exception:  # noqa: BLE001 - "the database system is in recovery mode"
            connections.close_all()
            time.sleep(0.25)
    raise SystemExit("the cluster did not come back")


def main() -> None:
    call_command("migrate", verbosity=0)
    thread = models.Thread.objects.create(thread_id="crash")
    run = models.Run.objects.create(
        thread=thread, kind=models.Run.Kind.START, status=models.Run.Status.RUNNING,
        lease_token="token", attempts=1,
    )
    graph = _graph()
    config = CheckpointConfig("crash")
    outcome = "finished"
    lease = Lease(run_id=run.pk, token="token", seconds=3600.0)
    try:
        graph.with_checkpoint_saver(_saver(lease)).invoke(Chain(), config)
    except Exception as exc:  # noqa: BLE001 - the point: how the run ended is reported
        outcome = type(exc).__name__
    close_writers()
    _reconnect()
    history = DjangoCheckpointSaver().list(config)
    ids = {t.checkpoint.id for t in history}
    survived = {
        "outcome": outcome,
        "checkpoints": len(history),
        "linked": all(
            t.parent_config is None or t.parent_config.checkpoint_id in ids for t in history
        ),
        "nexts": [list(t.checkpoint.next) for t in history],
    }
    final = graph.with_checkpoint_saver(_saver()).invoke(None, config)
    survived["resumed"] = final.done
    close_writers()
    print(json.dumps(survived))


if __name__ == "__main__":
    main()
