"""`rowwrite.insert` inserts as `QuerySet.create` does: the same row, the same instance
afterwards, the same signals in the same order; with `skip_conflict` a row the unique
constraint refuses is left out. And opening a review by it behaves as `get_or_create`'s
creation did (a conflicting open review is updated, not duplicated)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.actions import _create_review, do_open_reviews
from approvals.models import ReviewRequest
from orchestration.runtime import rowwrite
from orchestration.runtime.models import Event, Run, Thread
from orchestration.types import Interrupt

pytestmark = pytest.mark.django_db

# set by the database or the moment of the insert, not by the caller
VOLATILE = {"id", "created_at"}


@pytest.fixture
def run() -> Run:
    thread = Thread.objects.create(thread_id="rowwrite", graph_name="expense", title="Rw")
    return Run.objects.create(thread=thread, kind=Run.Kind.START, status=Run.Status.RUNNING)


@pytest.fixture
def sent() -> Iterator[list[tuple[Any, ...]]]:
    """Every pre_save/post_save sent for events and reviews: (signal, sender, kwargs but the
    instance, the instance's field values then, its state then)."""
    log: list[tuple[Any, ...]] = []

    def receiver(signal: Any, sender: Any, instance: Any, **kwargs: Any) -> None:
        name = "pre_save" if signal is pre_save else "post_save"
        log.append((name, sender, kwargs, _values(instance), instance._state.adding,
                    instance._state.db))

    for signal in (pre_save, post_save):
        for model in (Event, ReviewRequest):
            signal.connect(receiver, sender=model, dispatch_uid=f"rowwrite-{model.__name__}")
    try:
        yield log
    finally:
        for signal in (pre_save, post_save):
            for model in (Event, ReviewRequest):
                signal.disconnect(sender=model, dispatch_uid=f"rowwrite-{model.__name__}")


def _values(obj: Any) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields
            if f.attname not in VOLATILE}


def _row(model: Any, pk: int) -> dict[str, Any]:
    return {k: v for k, v in model_to_dict(model.objects.get(pk=pk)).items() if k not in VOLATILE}


def _review_fields(run: Run, interrupt_id: str, **over: Any) -> dict[str, Any]:
    return {"thread": run.thread, "run": run, "interrupt_id": interrupt_id, "node": "review",
            "checkpoint_id": "cp-1", "kind": "review", "title": "Approve?",
            "payload": {"title": "Approve?", "amount": 12, "tags": ["a", "ü"]},
            "assignee": "reviewer", "status": "pending",
            "due_at": timezone.now() + dt.timedelta(hours=1), **over}


def _compare(model: Any, make: dict[str, Any], sent: list[tuple[Any, ...]]) -> None:
    """The ORM's create and rowwrite.insert of the same values: rows, instances, signals."""
    orm = model.objects.create(**make)
    orm_signals, orm_row = list(sent), _row(model, orm.pk)
    sent.clear()
    if model is ReviewRequest:  # one open review per interrupt: close the ORM's first
        ReviewRequest.objects.filter(pk=orm.pk).update(status="cancelled")
    fixed = model(**make)
    assert rowwrite.insert(fixed) is True
    assert _row(model, fixed.pk) == orm_row
    assert _values(fixed) == _values(orm)
    stored = model.objects.get(pk=fixed.pk)
    assert fixed.created_at == stored.created_at  # auto_now_add stamped the instance
    assert fixed.pk > orm.pk
    assert (fixed._state.adding, fixed._state.db) == (orm._state.adding, orm._state.db)
    assert len(sent) == len(orm_signals) == 2
    assert sent == orm_signals


def test_an_event_is_inserted_as_create_inserts_it(run: Run, sent: list[Any]) -> None:
    # on PostgreSQL by the fixed statement (elsewhere `save` itself)
    assert rowwrite._supported(Event, "default") == (connection.vendor == "postgresql")
    user = get_user_model().objects.create(username="rowwrite-actor")
    for make in ({"kind": "run_paused", "thread": run.thread, "run": run, "actor": user,
                  "reason": "why", "data": {"next": ["review"], "n": 1.5, "x": None}},
                 {"kind": "review_requested", "thread": None, "run": None, "actor": None,
                  "reason": "", "data": {}}):
        sent.clear()
        _compare(Event, make, sent)


def test_a_review_is_inserted_as_create_inserts_it(run: Run, sent: list[Any]) -> None:
    _compare(ReviewRequest, _review_fields(run, "i-1"), sent)
    # empty and null values (another interrupt: one open review per interrupt)
    sent.clear()
    _compare(ReviewRequest, _review_fields(run, "i-2", due_at=None, title="", payload={}), sent)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's ON CONFLICT")
def test_a_review_the_constraint_refuses_is_left_out(run: Run, sent: list[Any]) -> None:
    first = ReviewRequest.objects.create(**_review_fields(run, "i-1"))
    sent.clear()
    again = ReviewRequest(**_review_fields(run, "i-1", title="again"))
    assert rowwrite.insert(again, skip_conflict=True) is False
    assert again.pk is None and again._state.adding
    assert [s[0] for s in sent] == ["pre_save"]  # as a save whose INSERT failed
    assert list(ReviewRequest.objects.filter(thread=run.thread).values_list("pk", "title")) == [
        (first.pk, "Approve?")]
    # a closed review does not count: the new one goes in
    ReviewRequest.objects.filter(pk=first.pk).update(status="decided")
    assert rowwrite.insert(again, skip_conflict=True) is True
    assert ReviewRequest.objects.get(pk=again.pk).title == "again"


def test_opening_a_review_reuses_an_open_row_another_transaction_opened(run: Run) -> None:
    """`_create_review` when the interrupt is open already though the locking read did not
    see it (another transaction committed it since): the open row is updated as
    `update_or_create` updates it, not duplicated."""
    other = ReviewRequest.objects.create(**_review_fields(run, "i-1", title="theirs"))
    fields = {"run": run, "node": "review", "checkpoint_id": "cp-2", "kind": "review",
              "title": "ours", "payload": {"title": "ours"}, "assignee": ""}
    review, created = _create_review(run.thread, run, "i-1", fields,
                                     {**fields, "status": "pending", "due_at": None})
    assert (review.pk, created) == (other.pk, False)
    stored = ReviewRequest.objects.get(pk=other.pk)
    assert (stored.title, stored.checkpoint_id) == ("ours", "cp-2")
    assert ReviewRequest.objects.filter(thread=run.thread).count() == 1
    assert not Event.objects.filter(kind="review_requested").exists()  # nothing opened


def test_opening_a_review_writes_it_and_its_event(run: Run) -> None:
    with CaptureQueriesContext(connection) as ctx:
        (review,) = do_open_reviews(
            run, [Interrupt(value={"kind": "review", "title": "T"}, id="i-9", node="review")])
    stored = ReviewRequest.objects.get(pk=review.pk)
    assert (stored.interrupt_id, stored.title, stored.status) == ("i-9", "T", "pending")
    event = Event.objects.filter(kind="review_requested").get()
    assert (event.data, event.thread_id, event.run_id, event.actor_id, event.reason) == (
        {"review": review.pk}, run.thread_id, run.pk, None, "")
    assert event.created_at >= stored.created_at
    if connection.vendor == "postgresql":  # no savepoint; the review and its event: one INSERT
        sql = [q["sql"] for q in ctx.captured_queries]
        assert not [q for q in sql if "SAVEPOINT" in q]
        inserts = [q for q in sql if q.startswith(("INSERT", "WITH"))]
        assert len(inserts) == 1 and "orchestration_event" in inserts[0], sql


def test_a_review_opened_again_records_no_second_event(run: Run) -> None:
    """Re-sent pause (the same interrupt still open): the row is reused, no event; on
    PostgreSQL the event rides on the insert the conflict leaves out."""
    asked = [Interrupt(value={"kind": "review", "title": "T"}, id="i-9", node="review")]
    (first,) = do_open_reviews(run, asked)
    (again,) = do_open_reviews(run, asked)
    assert again.pk == first.pk
    assert Event.objects.filter(kind="review_requested").count() == 1
    other = ReviewRequest.objects.create(**_review_fields(run, "i-1", title="theirs"))
    fields = {"run": run, "node": "review", "checkpoint_id": "cp-2", "kind": "review",
              "title": "ours", "payload": {"title": "ours"}, "assignee": ""}
    review, created = _create_review(run.thread, run, "i-1", fields,
                                     {**fields, "status": "pending", "due_at": None})
    assert (review.pk, created) == (other.pk, False)
    assert Event.objects.filter(kind="review_requested").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's fixed statements")
@pytest.mark.parametrize("status,thread_status,head", [
    ("succeeded", "done", "cp-9"), ("failed", "failed", ""),
])
def test_ending_a_run_in_one_statement_writes_what_the_two_did(
        status: str, thread_status: str, head: str) -> None:
    """`runend.end_run`'s one statement against the ORM's statements it replaces: the same
    run, thread and event rows, the same `run.input`; a lost lease changes nothing."""
    from orchestration.runtime.leases import Lease
    from orchestration.runtime.runend import _end_run_orm, end_run

    def setup(name: str) -> tuple[Run, Lease]:
        thread = Thread.objects.create(thread_id=name, graph_name="expense", title=name,
                                       status="running", head_checkpoint_id="cp-1")
        run = Run.objects.create(thread=thread, kind=Run.Kind.START, status="running",
                                 lease_token=f"tok-{name}", input=b"\x81\xa1k\xa1v")
        run.thread = thread
        return run, Lease(run_id=run.pk, token=f"tok-{name}", seconds=30)

    now = timezone.now()
    fields = {"status": status, "finished_at": now, "lease_token": "",
              "lease_expires_at": None, "error": "E: boom" if status == "failed" else "",
              "traceback": "tb" if status == "failed" else ""}
    thread_fields: dict[str, Any] = {"status": thread_status, "updated_at": now}
    if head:
        thread_fields["head_checkpoint_id"] = head
    data = {"x": [1, "ü"]}
    two, two_lease = setup("two")
    one, one_lease = setup("one")
    with transaction.atomic():
        assert _end_run_orm(two, two_lease, fields, thread_fields, f"run_{status}",
                            fields["error"], data, want_input=True)
    with transaction.atomic():
        assert end_run(one, one_lease, fields, thread_fields, f"run_{status}", fields["error"],
                       data, want_input=True)
    assert one.input == two.input == b"\x81\xa1k\xa1v"

    def rows(run: Run) -> tuple[Any, ...]:
        skip = {"id", "thread", "lease_token", "thread_id"}
        r = {k: v for k, v in model_to_dict(Run.objects.get(pk=run.pk)).items() if k not in skip}
        t = {k: v for k, v in model_to_dict(Thread.objects.get(pk=run.thread_id)).items()
             if k not in {"id", "thread_id", "title"}}
        e = [(x.kind, x.reason, x.data, x.actor_id, x.run_id == run.pk)
             for x in Event.objects.filter(thread_id=run.thread_id).order_by("id")]
        return r, t, e

    assert rows(one) == rows(two)
    assert rows(one)[1]["status"] == thread_status
    # the event's time: the run's end in the one statement; the ORM stamps its insert's time
    # (`auto_now_add`), a moment after the run's end it was given
    [one_at] = Event.objects.filter(thread_id=one.thread_id).values_list("created_at", flat=True)
    [two_at] = Event.objects.filter(thread_id=two.thread_id).values_list("created_at", flat=True)
    assert one_at == now <= two_at
    # the lease is gone: nothing changes, no event
    lost, lost_lease = setup("lost")
    before = rows(lost)
    with transaction.atomic():
        assert not end_run(lost, Lease(run_id=lost.pk, token="other", seconds=30), fields,
                           thread_fields, f"run_{status}", "", data, want_input=True)
    assert rows(lost) == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's fixed statements")
def test_what_a_run_end_read_along_serves_its_transaction_only(run: Run) -> None:
    """`runend.read_along`: the webhooks' "any endpoint active?" comes back with the run's
    end, for that transaction; outside it (after `forget_reads`, or in another block) the
    caller reads for itself (None)."""
    from approvals.api.models import WebhookEndpoint
    from approvals.api.webhooks import ANY_ACTIVE
    from orchestration.runtime.leases import Lease
    from orchestration.runtime.runend import end_run, forget_reads, read_with_run_end

    Run.objects.filter(pk=run.pk).update(lease_token="tok")
    now = timezone.now()
    fields = {"status": "succeeded", "finished_at": now, "lease_token": "",
              "lease_expires_at": None, "error": "", "traceback": ""}
    assert read_with_run_end(ANY_ACTIVE) is None
    with transaction.atomic():
        assert end_run(run, Lease(run_id=run.pk, token="tok", seconds=30), fields,
                       {"status": "done", "updated_at": now}, "run_succeeded", "", {},
                       want_input=False)
        assert read_with_run_end(ANY_ACTIVE) is False
        WebhookEndpoint.objects.create(url="https://hooks.example.com/x", secret="s" * 32,
                                       event_types=["run.succeeded"])
        assert read_with_run_end(ANY_ACTIVE) is False  # as of the run end's statement
        forget_reads()
        assert read_with_run_end(ANY_ACTIVE) is None
