"""`do_open_reviews` against the ORM code it replaced (one `update_or_create` per interrupt in
savepoints, then the supersede UPDATE, restated below): on the same starting rows and the same
interrupts both leave the same reviews (every field but ids and creation times), the same
events in the same order, and the same tasks queued (e-mails, webhook deliveries)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from approvals.actions import do_open_reviews, paused_checkpoint_id, review_due_at, review_payload
from approvals.api.models import WebhookEndpoint
from approvals.models import ReviewRequest
from orchestration.runtime.events import publish
from orchestration.runtime.models import Event, Run, Thread
from orchestration.types import Interrupt

pytestmark = pytest.mark.django_db


def reference_open_reviews(run: Run, interrupts: Sequence[Interrupt]) -> list[ReviewRequest]:
    """The code `do_open_reviews` had before it read the open reviews at once."""
    thread = Thread.objects.get(pk=run.thread_id)
    checkpoint_id = paused_checkpoint_id(thread)
    reviews: list[ReviewRequest] = []
    with transaction.atomic():
        for intr in interrupts:
            kind, payload = review_payload(intr.value, intr.node)
            fields = {
                "run": run, "node": intr.node, "checkpoint_id": checkpoint_id, "kind": kind,
                "title": str(payload.get("title") or "")[:300], "payload": payload,
                "assignee": str(payload.get("assignee") or "")[:150],
            }
            review, created = ReviewRequest.objects.update_or_create(
                thread=thread, interrupt_id=intr.id, status__in=ReviewRequest.OPEN,
                defaults=fields,
                create_defaults={**fields, "status": ReviewRequest.Status.PENDING,
                                 "due_at": review_due_at(payload, thread.graph_name)},
            )
            reviews.append(review)
            if created:
                publish("review_requested", thread=thread, run=run, data={"review": review.pk})
        asked = [i.id for i in interrupts]
        ReviewRequest.objects.filter(thread=thread, status__in=ReviewRequest.OPEN).exclude(
            interrupt_id__in=asked
        ).update(status=ReviewRequest.Status.SUPERSEDED, closed_at=timezone.now())
    return reviews


IGNORED = {"id", "thread", "run", "created_at", "closed_at", "due_at", "claimed_at"}


def snapshot(thread: Thread, returned: list[ReviewRequest]) -> dict[str, Any]:
    def row(review: ReviewRequest) -> dict[str, Any]:
        values = {f.attname: getattr(review, f.attname) for f in ReviewRequest._meta.concrete_fields
                  if f.name not in IGNORED}
        values["closed"] = review.closed_at is not None
        values["claimed"] = review.claimed_at is not None
        values["due"] = review.due_at is not None
        return values

    rows = list(ReviewRequest.objects.filter(thread=thread).order_by("pk"))
    ids = {r.pk: n for n, r in enumerate(rows)}
    return {
        "rows": [row(r) for r in rows],
        "returned": [(ids[r.pk], row(r)) for r in returned],
        "events": [(e.kind, ids.get((e.data or {}).get("review"))) for e in
                   Event.objects.filter(thread=thread).order_by("pk")],
    }


SCENARIOS: dict[str, tuple[list[tuple[str, str]], list[Interrupt]]] = {
    # (interrupt id, status) of the reviews there before; the interrupts of the pause
    "first pause, two interrupts": ([], [
        Interrupt("a", {"kind": "review", "title": "A", "assignee": "reviewer"}, "n1"),
        Interrupt("b", "a plain value", "n2")]),
    "re-delivered pause": ([("a", "pending")], [
        Interrupt("a", {"kind": "review", "title": "A again", "due_in": 60}, "n1")]),
    "claimed one kept, one new, one superseded": ([("a", "claimed"), ("b", "pending"),
                                                   ("c", "decided")], [
        Interrupt("a", {"kind": "review", "title": "A"}, "n1"),
        Interrupt("d", {"kind": "review", "title": "D", "due_in": 5}, "n1")]),
    "nothing asked any more": ([("a", "pending")], []),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_rows_and_events_as_update_or_create(
        scenario: str, make_run: Callable[..., Run], make_user: Callable[..., Any],
        django_capture_on_commit_callbacks: Any) -> None:
    before, interrupts = SCENARIOS[scenario]
    claimer = make_user("reviewer", username="claimer", email="claimer@example.com")
    WebhookEndpoint.objects.create(url="https://hooks.example.com/x", secret="s" * 32,
                                   event_types=["review.requested"])
    results = []
    for implementation in (reference_open_reviews, do_open_reviews):
        run = make_run()
        for interrupt_id, status in before:
            ReviewRequest.objects.create(
                thread=run.thread, run=run, interrupt_id=interrupt_id, node="old",
                title=f"old {interrupt_id}", payload={"kind": "review"}, status=status,
                claimed_by=claimer if status == "claimed" else None,
                claimed_at=timezone.now() if status == "claimed" else None)
        tasks_before = set(DBTaskResult.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            returned = implementation(run, interrupts)
        result = snapshot(run.thread, returned)
        result["tasks"] = sorted(DBTaskResult.objects.exclude(pk__in=tasks_before)
                                 .values_list("task_path", flat=True))
        results.append(result)
    assert results[0] == results[1]
    if scenario == "first pause, two interrupts":  # an e-mail, and a delivery per review
        assert results[1]["tasks"] == sorted(
            ["approvals.notify.email_review_requested"]
            + ["approvals.api.webhooks.deliver_webhook"] * 2), results[1]["tasks"]


def test_the_fixed_reads_build_what_the_orm_reads(make_run: Callable[..., Run]) -> None:
    """`_thread` and `_lock_open_reviews` (statements fixed once) against
    `Thread.objects.get` and the `select_for_update()` queryset they replace: the same rows
    in the same order, every field equal and of the same type."""
    from approvals.actions import _lock_open_reviews, _thread

    run = make_run()
    for interrupt_id, status in (("a", "pending"), ("b", "decided"), ("c", "claimed")):
        ReviewRequest.objects.create(thread=run.thread, run=run, interrupt_id=interrupt_id,
                                     payload={"kind": "review", "n": [1, None]}, status=status,
                                     due_at=timezone.now())
    make_run()  # another thread's run, with nothing open

    def same(ours: Any, orm: Any) -> None:
        assert type(ours) is type(orm) and ours.pk == orm.pk
        for field in type(orm)._meta.concrete_fields:
            a, b = getattr(ours, field.attname), getattr(orm, field.attname)
            assert (a, type(a)) == (b, type(b)), field.name

    same(_thread(run.thread_id), Thread.objects.get(pk=run.thread_id))
    with pytest.raises(Thread.DoesNotExist):
        _thread(run.thread_id + 1000)
    with transaction.atomic():
        ours = _lock_open_reviews(run.thread)
        orm = list(ReviewRequest.objects.select_for_update()
                   .filter(thread=run.thread, status__in=ReviewRequest.OPEN).order_by("pk"))
    assert [r.interrupt_id for r in ours] == ["a", "c"]
    for a, b in zip(ours, orm, strict=True):
        same(a, b)


def test_a_payload_with_numbers_json_cannot_hold_still_opens_its_review(
        make_run: Callable[..., Run]) -> None:
    """A graph asked for a review whose data held an infinite amount (`float()` of a huge
    Decimal) and NaN: the JSON column refused the payload and the run failed on a CHECK
    constraint (SQLite) or a jsonb syntax error (PostgreSQL), with no review for anyone.
    They are shown as text instead, and a deadline no date can hold means no deadline."""
    run = make_run()
    value = {"kind": "review", "title": "Huge", "due_in": 1e12,
             "data": {"amount": float("inf"), "low": float("-inf"), "ratio": float("nan"),
                      "fine": 1.5}}
    with transaction.atomic():
        (review,) = do_open_reviews(run, [Interrupt("a", value, "review")])
    review.refresh_from_db()
    assert review.payload["data"] == {"amount": "Infinity", "low": "-Infinity", "ratio": "NaN",
                                      "fine": 1.5}
    assert review.due_at is None
    assert review_due_at({"due_in": float("nan")}, run.thread.graph_name) is None
    assert review_due_at({"due_in": 60}, run.thread.graph_name) is not None


def test_a_nul_character_from_a_graph_is_shown_as_a_replacement_character(
        make_run: Callable[..., Run]) -> None:
    """A graph's data may carry a NUL from outside (an e-mail, a tool's output). PostgreSQL
    stores none in text or jsonb: the review was never opened and the run failed ("invalid
    byte sequence for encoding UTF8: 0x00"). It opens, the NUL shown as U+FFFD."""
    run = make_run()
    value = {"kind": "review", "title": "From\x00mail", "data": {"body": ["a\x00b"], "k\x00": 1}}
    with transaction.atomic():
        reviews = do_open_reviews(run, [Interrupt("a", value, "review"),
                                        Interrupt("b", "plain\x00value", "ask")])
    for review in reviews:
        review.refresh_from_db()
    assert reviews[0].title == "From\ufffdmail"
    assert reviews[0].payload["data"] == {"body": ["a\ufffdb"], "k\ufffd": 1}
    assert reviews[1].payload["data"] == "plain\ufffdvalue"
