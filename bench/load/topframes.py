"""Summarise a py-spy raw (collapsed) profile: where a process spends its samples.

    python -m bench.load.topframes PROFILE.txt [N]

Prints the share of samples whose stack passes through each of a few known layers (ORM
compilation, templates, sessions, channel layer, ...) and the N hottest own-code frames.
`bench.load --py-spy` records with `--gil` (only the thread running Python code); stacks whose
innermost frame is a known wait are left out too, for profiles recorded without it.
"""

from __future__ import annotations

import sys
from collections import Counter

LAYERS = {
    "ORM SQL compilation": ("django/db/models/sql/compiler.py",),
    "database driver (execute/fetch)": ("psycopg/cursor.py", "sqlite3/base.py:execute"),
    "templates": ("django/template/",),
    "sessions": ("django/contrib/sessions/",),
    "auth (user lookup)": ("django/contrib/auth/",),
    # asgiref's SyncToAsync frames sit under every request's stack: only the layer itself
    "channel layer publish": ("channels_redis/", "channels/layers.py"),
    "thread hops (asgiref, innermost)": (),
    "checkpoint saver": ("orchestration/runtime/savers.py",),
    "engine": ("orchestration/pregel",),
    "msgpack/serde": ("orchestration/checkpoint/serde",),
    "pool": ("psycopg_pool/",),
}
# a stack whose innermost frame is one of these is a thread waiting, not using CPU
IDLE_LEAVES = ("Condition.wait", "Event.wait", "Queue.get", "_worker (concurrent/futures",
               "select (", "poll (", "Connection.wait (psycopg", "notifies", "sleep (",
               "run_forever", "_run_once", "epoll", "accept (",
               # uvicorn's supervisor pipe (a blocking read) and asyncio's idle loop
               "Connection._recv (multiprocessing", "Runner.run (asyncio")


def main() -> None:
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
    total = 0
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        if any(m in frames[-1] for m in IDLE_LEAVES):
            layers["(waiting: not counted below)"] += 0
            continue
        total += n
        for layer, marks in LAYERS.items():
            if any(m in stack for m in marks):
                layers[layer] += n
        if "(asgiref/" in frames[-1]:
            layers["thread hops (asgiref, innermost)"] += n
        leaves[frames[-1]] += n
        for frame in reversed(frames):
            if "(approvals/" in frame or "(orchestration/" in frame or "(config/" in frame:
                ours[frame] += n
                break
    print(f"{total} samples (waiting stacks left out)")
    for layer, n in layers.most_common():
        print(f"  {100 * n / total:5.1f}%  {layer}")
    print("innermost own-code frame:")
    for frame, n in ours.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("innermost frames:")
    for frame, n in leaves.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
