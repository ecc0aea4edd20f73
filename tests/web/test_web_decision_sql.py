"""The fixed statements of a decision and of queueing a run read and write what the ORM
statements they replace did: the same run locked, the same latest run, the same rows after a
run is queued (run, paused runs, thread, event), the same reviews closed by a decision."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.actions import _close_for_decision
from approvals.models import ReviewRequest
from orchestration.runtime import runqueue, runs
from orchestration.runtime.models import Event, Run, Thread


def _fields(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields
            if f.attname not in skip}


def test_lock_active_run_reads_what_select_for_update_reads(make_thread, make_run):
    thread = make_thread()
    make_run(thread, status=Run.Status.WAITING)
    make_run(thread, status=Run.Status.SUCCEEDED)
    assert runqueue.lock_active_run(thread) is None
    active = make_run(thread, status=Run.Status.STALLED, input=b"\x81\xa1a\x01",
                      lease_expires_at=timezone.now(), worker="w:1", attempts=2)
    make_run(make_thread(), status=Run.Status.QUEUED)  # another thread's
    expected = (Run.objects.select_for_update().filter(thread=thread, status__in=Run.ACTIVE)
                .order_by("-pk").first())
    with CaptureQueriesContext(connection) as ctx:
        got = runqueue.lock_active_run(thread)
    assert got is not None and got.pk == active.pk
    assert _fields(got) == _fields(expected)
    assert bytes(got.input) == b"\x81\xa1a\x01" and got.created_at.tzinfo is not None
    assert ctx.captured_queries[0]["sql"].endswith(
        " FOR UPDATE" if connection.features.has_select_for_update else "LIMIT 1")


def test_latest_run_id_is_the_latest_run_by_creation_then_id(make_thread, make_run):
    thread = make_thread()
    assert runqueue.latest_run_id(thread) is None
    at = timezone.now()
    first, second = make_run(thread), make_run(thread)
    Run.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=at)  # a tie: by id
    older = make_run(thread)
    Run.objects.filter(pk=older.pk).update(created_at=at - dt.timedelta(seconds=5))
    assert runqueue.latest_run_id(thread) == runs._latest_run(thread).pk == second.pk


def _queue(thread: Thread, user: Any, previous: Run | None, *, orm: bool,
           new_thread: bool = False) -> Run:
    run = Run(thread=thread, kind=Run.Kind.RESUME, input=b"\x80", requested_by=user,
              reason="Approve review #1", previous=previous)
    insert = runqueue._insert_run_orm if orm else runqueue.insert_run
    insert(run, thread, new_thread=new_thread, actor=user, reason="Approve review #1",
           data={"kind": "resume"})
    return run


@pytest.mark.parametrize("new_thread", [False, True])
def test_insert_run_writes_the_rows_the_orm_statements_write(
    make_thread, make_run, make_user, new_thread
):
    user = make_user("reviewer")
    results = []
    for orm in (True, False):
        thread = make_thread(status=Thread.Status.RUNNING if new_thread else
                             Thread.Status.WAITING)
        before = thread.updated_at
        paused = None if new_thread else make_run(thread, status=Run.Status.WAITING)
        done = None if new_thread else make_run(thread, status=Run.Status.SUCCEEDED)
        run = _queue(thread, user, paused, orm=orm, new_thread=new_thread)
        stored = Run.objects.get(pk=run.pk)
        thread.refresh_from_db()
        events = list(Event.objects.filter(thread=thread).values_list(
            "kind", "run_id", "actor_id", "reason", "data"))
        assert _fields(run) == _fields(stored)  # the instance is the row as stored
        assert not run._state.adding and run._state.db == "default"
        assert stored.created_at <= timezone.now()
        results.append({
            "run": _fields(stored, ("id", "thread_id", "previous_id", "created_at")),
            "previous": stored.previous_id == (paused.pk if paused else None),
            "paused": [Run.objects.get(pk=r.pk).status for r in (paused, done) if r],
            "thread": (thread.status, thread.updated_at > before if not new_thread else None),
            "events": [(k, r == run.pk, a, why, d) for k, r, a, why, d in events],
        })
    assert results[0] == results[1]
    assert results[1]["previous"] is True
    if not new_thread:
        assert results[1]["paused"] == [Run.Status.ANSWERED, Run.Status.SUCCEEDED]
        assert results[1]["thread"] == (Thread.Status.RUNNING, True)


def test_insert_run_is_refused_by_the_one_active_run_constraint(make_thread, make_run,
                                                                   make_user):
    from django.db import IntegrityError, transaction

    thread = make_thread()
    make_run(thread, status=Run.Status.QUEUED)
    # (the constraint by name on PostgreSQL, by table on SQLite: what runs._one_active_run reads)
    with pytest.raises(IntegrityError, match="run_one_active_per_thread|orchestration_run"), \
            transaction.atomic():
        _queue(thread, make_user("reviewer"), None, orm=False)
    assert Run.objects.filter(thread=thread).count() == 1
    assert not Event.objects.filter(thread=thread, kind="run_queued").exists()


@pytest.mark.parametrize("override", [False, True])
def test_close_for_decision_closes_the_reviews_the_orm_update_closes(
    make_review, make_user, override
):
    me, other = make_user("reviewer"), make_user("reviewer")
    if override:
        me.user_permissions.add(Permission.objects.get(codename="override_claim"))
        me = type(me).objects.get(pk=me.pk)  # a fresh permission cache
    cases = [
        {"status": ReviewRequest.Status.PENDING},
        {"status": ReviewRequest.Status.CLAIMED, "claimed_by": me},
        {"status": ReviewRequest.Status.CLAIMED, "claimed_by": other},
        {"status": ReviewRequest.Status.DECIDED},
        {"status": ReviewRequest.Status.SUPERSEDED},
    ]
    from django.db.models import Q

    claimable = Q() if override else Q(claimed_by__isnull=True) | Q(claimed_by=me)
    for fields in cases:
        review = make_review(**fields)
        would = ReviewRequest.objects.filter(
            claimable, pk=review.pk, status__in=ReviewRequest.OPEN).exists()
        before = timezone.now()
        assert _close_for_decision(me, review) is would, fields
        review.refresh_from_db()
        if would:
            assert review.status == ReviewRequest.Status.DECIDED
            assert review.closed_at >= before
        else:
            assert review.status == fields["status"] and review.closed_at is None
    assert ReviewRequest.objects.filter(status=ReviewRequest.Status.DECIDED).count() == (
        1 + (3 if override else 2))


def _start(thread_id: str, user: Any, *, orm: bool) -> Run:
    thread = Thread(thread_id=thread_id, graph_name="web_review", title="Q3",
                    status=Thread.Status.RUNNING, started_by=user)
    run = Run(thread=thread, kind=Run.Kind.START, input=b"\x81", requested_by=user, reason="")
    if orm:  # what start_thread did before, on every database
        thread.save(force_insert=True)
        run.thread = thread
        runqueue._insert_run_orm(run, thread, new_thread=True, actor=user, reason="",
                                 data={"kind": Run.Kind.START})
    else:
        runqueue.insert_thread_and_run(thread, run, actor=user, reason="",
                                       data={"kind": Run.Kind.START})
    return run


def test_insert_thread_and_run_writes_the_rows_the_orm_statements_write(make_user):
    user = make_user("ops")
    results = []
    for orm in (True, False):
        run = _start(f"start-{orm}", user, orm=orm)
        thread = Thread.objects.get(pk=run.thread_id)
        assert run.thread is not None and run.thread.pk == thread.pk
        assert _fields(run) == _fields(Run.objects.get(pk=run.pk))
        assert _fields(run.thread) == _fields(thread)
        assert not run._state.adding and not run.thread._state.adding
        results.append({
            "thread": _fields(thread, ("id", "thread_id", "created_at", "updated_at")),
            "run": _fields(Run.objects.get(pk=run.pk), ("id", "thread_id", "created_at")),
            "events": list(Event.objects.filter(thread=thread).values_list(
                "kind", "actor_id", "reason", "data")),
            "runs": Run.objects.filter(thread=thread).count(),
        })
    assert results[0] == results[1]
    assert results[1]["events"] == [("run_queued", user.pk, "", {"kind": "start"})]


def test_start_with_a_taken_thread_id_is_refused_and_writes_nothing(make_user, make_thread):
    from orchestration.runtime.errors import ThreadExists

    make_thread(thread_id="taken")
    runs_before, events_before = Run.objects.count(), Event.objects.count()
    with pytest.raises(ThreadExists):
        runs.start_thread("web_review", {"title": "Q3", "amount": 3}, user=make_user("ops"),
                          thread_id="taken")
    assert (Run.objects.count(), Event.objects.count()) == (runs_before, events_before)


def test_record_decided_writes_the_rows_and_sends_the_signals_the_orm_save_does(
    make_review, make_user
):
    from django.db.models.signals import post_save, pre_save

    from approvals.decided import record_decided
    from approvals.models import Decision
    from orchestration.runtime.events import publish

    user = make_user("reviewer")
    seen: list[tuple[str, int | None, bool]] = []

    def before(sender, instance, **kwargs):
        seen.append(("pre", instance.pk, instance._state.adding))

    def after(sender, instance, created, **kwargs):
        seen.append(("post", instance.pk, created))

    pre_save.connect(before, sender=Decision)
    post_save.connect(after, sender=Decision)
    results = []
    try:
        for orm in (True, False):
            review = make_review()
            decision = Decision(review=review, decided_by=user, action="edit", comment="ok",
                                values={"amount": 2.5, "note": None})
            data = {"review": review.pk, "action": "edit"}
            if orm:  # what do_decide did before, on every database
                decision.resumed_run = review.run
                decision.save(force_insert=True)
                publish("review_decided", thread=review.thread, run=review.run, actor=user,
                        reason="ok", data=data)
            else:
                record_decided(user, review, decision, review.run, reason="ok", data=data)
            stored = Decision.objects.get(review=review)
            assert _fields(decision) == _fields(stored) and not decision._state.adding
            results.append({
                "decision": _fields(stored, ("id", "review_id", "resumed_run_id",
                                             "decided_at")),
                "run": stored.resumed_run_id == review.run.pk,
                "events": list(Event.objects.filter(thread=review.thread).values_list(
                    "kind", "run_id", "actor_id", "reason", "data")),
                "signals": seen[-2:] == [("pre", None, True), ("post", stored.pk, True)],
            })
            results[-1]["events"] = [(k, r == review.run.pk, a, why, {**d, "review": True})
                                     for k, r, a, why, d in results[-1]["events"]
                                     if d.get("review") == review.pk]
    finally:
        pre_save.disconnect(before, sender=Decision)
        post_save.disconnect(after, sender=Decision)
    assert results[0] == results[1]
    assert results[1]["run"] and results[1]["signals"]
    assert results[1]["events"] == [("review_decided", True, user.pk, "ok",
                                     {"review": True, "action": "edit"})]
