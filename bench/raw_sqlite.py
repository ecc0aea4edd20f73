"""The floor under any SQLite saver: one plain INSERT + COMMIT of a checkpoint-sized row,
with the pragmas both savers run with (WAL, synchronous=NORMAL)."""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from pathlib import Path

INSERTS_PER_SAMPLE = 100


def open_wal(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def disk_bytes(path: Path) -> int:
    """Main file + WAL after folding the WAL back into the file (what stays on disk). A
    checkpoint that another connection's read holds back reports itself busy and leaves the
    WAL as it was: taken as the size, the store then seemed to shrink by the WAL once the next
    measurement's checkpoint went through (a negative "best sample" in the storage rows). So
    it is tried again until it goes through."""
    conn = sqlite3.connect(path)
    try:
        for _ in range(200):
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"{path}: the WAL could not be checkpointed for 2 s (a reader "
                               "held it); the stored size would count it")
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


class RawInsertRunner:
    """µs per INSERT + COMMIT of a row shaped like a checkpoint: thread, id, parent, blob."""

    def __init__(self, path: Path, payload_bytes: int) -> None:
        self.conn = open_wal(path)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints (thread_id TEXT, checkpoint_id TEXT, "
            "parent_id TEXT, data BLOB, PRIMARY KEY (thread_id, checkpoint_id))"
        )
        self.conn.commit()
        self.payload = os.urandom(payload_bytes)
        self.ids = itertools.count()

    def run(self) -> float:
        conn, payload = self.conn, self.payload
        thread = f"t{next(self.ids)}"
        parent = None
        start = time.perf_counter_ns()
        for i in range(INSERTS_PER_SAMPLE):
            checkpoint_id = f"{i:024d}"
            conn.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
                (thread, checkpoint_id, parent, payload),
            )
            conn.commit()
            parent = checkpoint_id
        return (time.perf_counter_ns() - start) / INSERTS_PER_SAMPLE / 1_000

    def close(self) -> None:
        self.conn.close()
