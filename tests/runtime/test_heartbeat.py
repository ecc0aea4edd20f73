"""The process's heartbeat thread (`leases.Beater`): a run's lease is renewed every third of
its length while the run is inside its `Heartbeat`, never after; a lost lease stops its beats
and is marked lost; leases of several runs beat side by side on the one thread."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from runtime_helpers import leased_run, wait_for

from orchestration.runtime.leases import Heartbeat, beater
from orchestration.runtime.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def beats(run: Run) -> object:
    return Run.objects.values_list("heartbeat_at", flat=True).get(pk=run.pk)


def test_a_lease_is_renewed_while_its_run_runs_and_never_after() -> None:
    run, lease = leased_run("hb-1")
    lease = replace(lease, seconds=0.3)  # a beat every 0.1 s
    with Heartbeat(lease):
        wait_for(lambda: beats(run) is not None, timeout=5, what="a first beat")
        first = beats(run)
        wait_for(lambda: beats(run) != first, timeout=5, what="a second beat")
    last = beats(run)
    time.sleep(0.4)
    assert beats(run) == last
    assert not lease.lost.is_set()
    assert beater().due == {}


def test_a_lost_lease_stops_beating_and_is_marked_lost() -> None:
    run, lease = leased_run("hb-2")
    lease = replace(lease, seconds=0.3)
    Run.objects.filter(pk=run.pk).update(lease_token="someone-else")
    with Heartbeat(lease):
        assert lease.lost.wait(5)
        wait_for(lambda: id(lease) not in beater().due, timeout=5, what="the beats to stop")


def test_leases_of_several_runs_beat_on_one_thread() -> None:
    runs = [leased_run(f"hb-many-{n}") for n in range(3)]
    leases = [replace(lease, seconds=0.3) for _, lease in runs]
    before = threading.active_count()
    hearts = [Heartbeat(lease) for lease in leases]
    for heart in hearts:
        heart.__enter__()
    try:
        assert threading.active_count() == before  # no thread per run
        for run, _ in runs:
            wait_for(lambda run=run: beats(run) is not None, timeout=5, what="a beat")
    finally:
        for heart in hearts:
            heart.__exit__(None, None, None)
    assert beater().due == {}
