"""A throwaway PostgreSQL cluster: `initdb` in a temp dir, `pg_ctl` on a spare port. Never the
machine's own server: the soak restarts this one."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgBinariesMissing", "ThrowawayPostgres", "find_pg_bin"]


class PgBinariesMissing(RuntimeError):
    pass


def find_pg_bin() -> Path:
    """The directory holding initdb and pg_ctl: $PG_BIN, the newest /usr/lib/postgresql/<v>/bin,
    or `pg_config --bindir`."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parent.name
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version,
                                           reverse=True)]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise PgBinariesMissing(
        "no PostgreSQL server binaries (initdb, pg_ctl) found in $PG_BIN, "
        "/usr/lib/postgresql/*/bin or pg_config --bindir; install postgresql"
    )


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    def __init__(self, max_connections: int = 200) -> None:
        self.bin = find_pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="stepwise-soak-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = spare_port()
        self.max_connections = max_connections
        self._created = False
        # initdb refuses to run as root: run the cluster as the postgres system user then
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.dir.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/stepwise_soak"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        if not self.data.exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync")
        # fsync off: the cluster only has to survive its own crash (immediate stop), not the
        # machine's, and an immediate stop loses nothing the OS was given. synchronous_commit
        # stays on: off, a commit returns before its WAL is written at all, and the crash
        # restart throws away transactions the server had already confirmed (seen: a thread
        # answered 201 Created that did not exist after the restart)
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={self.max_connections} -c fsync=off "
                   "-c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")
        if not self._created:
            self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "postgres", "stepwise_soak")
            self._created = True

    def restart(self) -> None:
        """Like a crash: immediate stop (no checkpoint; recovery replays the WAL), then start.
        (fsync is off: that only matters if the machine itself crashes.)"""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")
        self.start()

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
