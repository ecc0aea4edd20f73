"""Retention: `prune_threads` forgets old finished threads' checkpoints, keeps their history,
and never touches a thread with an open review or an active run; `export_thread` first."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from runtime_helpers import finished_thread

from approvals.models import ReviewRequest
from orchestration.checkpoint import CheckpointConfig
from orchestration.checkpoint.storage.inline import unpack_inline
from orchestration.runtime.models import Checkpoint, Event, FieldVersion, Run, Thread
from orchestration.runtime.retention import prune_threads
from orchestration.runtime.savers import DjangoCheckpointSaver

pytestmark = pytest.mark.django_db(transaction=True)


def test_prunes_old_finished_threads_and_keeps_their_history(tmp_path: Path) -> None:
    old = finished_thread(tmp_path)
    recent = finished_thread(tmp_path, days_ago=1)
    events_before = Event.objects.filter(thread=old).count()
    checkpoints = Checkpoint.objects.filter(thread=old).count()
    assert checkpoints > 0
    out = StringIO()
    call_command("prune_threads", "--older-than-days", "30", stdout=out)
    assert f"pruned 1 thread(s): {checkpoints} checkpoints" in out.getvalue()
    assert "bytes of state" in out.getvalue()
    assert not Checkpoint.objects.filter(thread=old).exists()
    assert not FieldVersion.objects.filter(thread=old).exists()
    old.refresh_from_db()
    assert old.head_checkpoint_id == "" and old.status == "done"
    assert Run.objects.filter(thread=old).count() == 1
    pruned = Event.objects.get(thread=old, kind="thread_pruned")
    assert pruned.data["checkpoints"] == checkpoints and pruned.data["bytes"] > 0
    assert Event.objects.filter(thread=old).count() == events_before + 1
    assert Checkpoint.objects.filter(thread=recent).exists()  # too young
    # pruning again finds nothing left to free
    assert prune_threads(older_than=timedelta(days=30)).threads == []


def test_never_touches_open_reviews_active_or_waiting_runs(tmp_path: Path) -> None:
    with_review = finished_thread(tmp_path)
    ReviewRequest.objects.create(thread=with_review, interrupt_id="i1", payload={})
    with_active = finished_thread(tmp_path)
    Thread.objects.filter(pk=with_active.pk).update(status="failed")
    Run.objects.create(thread=with_active, kind="retry", status=Run.Status.STALLED)
    with_waiting = finished_thread(tmp_path)
    Run.objects.filter(thread=with_waiting).update(status=Run.Status.WAITING)
    not_finished = finished_thread(tmp_path)
    Thread.objects.filter(pk=not_finished.pk).update(status="waiting")
    report = prune_threads(older_than=timedelta(days=30))
    assert report.threads == []
    for thread in (with_review, with_active, with_waiting, not_finished):
        assert Checkpoint.objects.filter(thread=thread).exists()


def test_dry_run_reports_and_changes_nothing(tmp_path: Path) -> None:
    old = finished_thread(tmp_path)
    report = prune_threads(older_than=timedelta(days=30), dry_run=True)
    assert report.threads == [old.thread_id] and report.checkpoints > 0
    assert "would prune 1 thread(s)" in report.summary()
    assert Checkpoint.objects.filter(thread=old).count() == report.checkpoints


def test_prune_counts_and_frees_the_field_versions_kept_in_checkpoint_rows(
    tmp_path: Path,
) -> None:
    old = finished_thread(tmp_path)
    rows = Checkpoint.objects.filter(thread=old).exclude(vals=None)
    kept = sum(len(unpack_inline(cid, bytes(vals)))
               for cid, vals in rows.values_list("checkpoint_id", "vals"))
    assert kept > 0  # the graph's small values stay in the checkpoints' rows
    stored = FieldVersion.objects.filter(thread=old).count() + kept
    report = prune_threads(older_than=timedelta(days=30))
    assert report.threads == [old.thread_id] and report.field_versions == stored
    assert not Checkpoint.objects.filter(thread=old).exists()
    assert not FieldVersion.objects.filter(thread=old).exists()


def test_export_then_prune_keeps_the_state_in_the_file(tmp_path: Path) -> None:
    old = finished_thread(tmp_path)
    saved = DjangoCheckpointSaver().list(CheckpointConfig(old.thread_id))
    kept = {c.checkpoint.id: c.checkpoint.values for c in saved}
    exports = tmp_path / "exports"
    out = StringIO()
    call_command("prune_threads", "--older-than-days", "30", "--export-dir", str(exports),
                 stdout=out)
    data = json.loads((exports / f"{old.thread_id}.json").read_text())
    assert data["format"] == "stepwise-thread-export/1"
    assert data["thread"]["thread_id"] == old.thread_id
    assert {c["checkpoint_id"] for c in data["checkpoints"]} == set(kept)
    for checkpoint in data["checkpoints"]:
        values = kept[checkpoint["checkpoint_id"]]
        assert checkpoint["values"] == json.loads(json.dumps(dict(values)))
    assert any("slow" in c["values"]["done"] for c in data["checkpoints"])
    assert [r["status"] for r in data["runs"]] == ["succeeded"]
    assert "run_succeeded" in [e["kind"] for e in data["events"]]
    assert not Checkpoint.objects.filter(thread=old).exists()


def test_export_thread_command_and_its_errors(tmp_path: Path) -> None:
    old = finished_thread(tmp_path)
    out = StringIO()
    call_command("export_thread", old.thread_id, stdout=out)
    assert json.loads(out.getvalue())["thread"]["graph_name"] == "steps"
    with pytest.raises(CommandError, match="no thread 'nope'"):
        call_command("export_thread", "nope")


def test_prune_needs_an_age(settings: Any) -> None:
    settings.STEPWISE_PRUNE_AFTER_DAYS = None
    with pytest.raises(CommandError, match="--older-than-days N"):
        call_command("prune_threads")


def test_the_sweeper_prunes_when_asked(tmp_path: Path, settings: Any) -> None:
    old = finished_thread(tmp_path)
    settings.STEPWISE_PRUNE_AFTER_DAYS = 30
    out = StringIO()
    call_command("resume_stalled", "--auto", "--prune", stdout=out)
    assert "pruned 1 thread(s)" in out.getvalue()
    assert not Checkpoint.objects.filter(thread=old).exists()


def test_a_pruned_threads_page_says_it_was_pruned(tmp_path: Path, client: Any) -> None:
    """Found in an ops trial: it said "This thread has no checkpoint yet"."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.urls import reverse

    old = finished_thread(tmp_path)
    prune_threads(older_than=timedelta(days=30))
    from django.contrib.auth.models import Permission

    from approvals.roles import ensure_roles

    ensure_roles(Group, Permission)  # an earlier test's flush removed the migrations' groups
    user = get_user_model().objects.create_user("olga")
    user.groups.add(Group.objects.get(name="ops"))
    client.force_login(user)
    page = client.get(reverse("thread", args=[old.thread_id])).content.decode()
    assert "Retention pruned this thread's checkpoints" in page
    assert "no checkpoint yet" not in page
