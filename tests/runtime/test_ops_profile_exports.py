"""Thread exports are readable by their owner only: 0600 files, 0700 for a directory created.

Found in an ops trial: `export_thread -o FILE` and `prune_threads --export-dir DIR` wrote
full-state exports (every checkpoint, personal data and all) with mode 0644 in a 0755
directory, readable by every account on the machine, while the SQLite files are 0600.
"""

from __future__ import annotations

import os
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from runtime_helpers import finished_thread

pytestmark = pytest.mark.django_db(transaction=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> object:
    old = os.umask(0o022)  # what a login shell has: new files 0644 unless asked otherwise
    yield
    os.umask(old)


def test_export_thread_writes_its_file_0600_even_over_an_existing_one(
    tmp_path: Path, usual_umask: object,
) -> None:
    thread = finished_thread(tmp_path)
    target = tmp_path / "export.json"
    call_command("export_thread", thread.thread_id, "-o", str(target), stderr=StringIO())
    assert mode(target) == 0o600
    assert thread.thread_id in target.read_text()
    older = tmp_path / "older.json"
    older.write_text("an export from before")
    older.chmod(0o644)
    call_command("export_thread", thread.thread_id, "-o", str(older), stderr=StringIO())
    assert mode(older) == 0o600 and thread.thread_id in older.read_text()


def test_prune_threads_exports_into_a_0700_directory_of_0600_files(
    tmp_path: Path, usual_umask: object,
) -> None:
    thread = finished_thread(tmp_path)
    exports = tmp_path / "exports" / "2026"
    call_command("prune_threads", "--older-than-days", "30", "--export-dir", str(exports),
                 stdout=StringIO())
    files = list(exports.iterdir())
    assert [f.name for f in files] == [f"{thread.thread_id}.json"]
    assert mode(exports) == 0o700
    assert mode(files[0]) == 0o600
    # a directory that exists keeps the mode its owner gave it; the files are still 0600
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    other = finished_thread(tmp_path)
    call_command("prune_threads", "--older-than-days", "30", "--export-dir", str(shared),
                 stdout=StringIO())
    assert mode(shared) == 0o750
    assert [mode(f) for f in shared.iterdir()] == [0o600]
    assert (shared / f"{other.thread_id}.json").exists()
