"""The audit trail (events, decisions) is append-only in the database itself, on SQLite and
PostgreSQL: no queryset, raw SQL or cascade changes or removes it (runtime/audit.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.urls import reverse

from approvals.models import Decision, ReviewRequest
from orchestration.runtime.audit import audit_unlocked
from orchestration.runtime.errors import AuditTrailProtected
from orchestration.runtime.events import publish
from orchestration.runtime.models import Event, Run, Thread


@pytest.fixture
def history(db: None) -> dict[str, Any]:
    """A thread with a run, an event, a decided review and the person who decided."""
    user = User.objects.create_user("dora", password="pw")
    thread = Thread.objects.create(thread_id="audited", graph_name="expense", title="Audited")
    run = Run.objects.create(thread=thread, kind=Run.Kind.START, status=Run.Status.WAITING)
    event = publish("run_queued", run=run, actor=user, reason="start")
    review = ReviewRequest.objects.create(
        thread=thread, run=run, interrupt_id="i1", node="review",
        status=ReviewRequest.Status.DECIDED,
    )
    decision = Decision.objects.create(review=review, decided_by=user, action="approve",
                                       comment="looks right")
    return {"user": user, "thread": thread, "run": run, "event": event, "review": review,
            "decision": decision}


@contextmanager
def refused() -> Iterator[None]:
    """The database refuses the statement. The savepoint keeps the test's transaction usable
    on PostgreSQL, where a failed statement aborts the whole transaction."""
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        yield


def test_a_decision_comment_cannot_be_rewritten_by_a_queryset_update(history):
    with refused():
        Decision.objects.filter(pk=history["decision"].pk).update(comment="rewritten")
    assert Decision.objects.get().comment == "looks right"


def test_a_decision_cannot_be_deleted_by_a_queryset_delete(history):
    with refused():
        Decision.objects.all().delete()
    assert Decision.objects.count() == 1


def test_an_event_cannot_be_changed_by_a_queryset_update(history):
    with refused():
        Event.objects.filter(pk=history["event"].pk).update(reason="nothing happened")
    assert Event.objects.get().reason == "start"


def test_an_event_cannot_be_deleted_by_a_queryset_delete(history):
    with refused():
        Event.objects.all().delete()
    assert Event.objects.count() == 1


@pytest.mark.parametrize("sql", [
    "UPDATE approvals_decision SET comment = 'rewritten'",
    "UPDATE approvals_decision SET decided_by_id = NULL",
    "DELETE FROM approvals_decision",
    "UPDATE orchestration_event SET kind = 'run_succeeded'",
    "DELETE FROM orchestration_event",
])
def test_raw_sql_cannot_change_or_delete_audit_rows(history, sql):
    with refused(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert (Decision.objects.get().comment, Event.objects.get().kind) == (
        "looks right", "run_queued"
    )


def test_the_run_a_decision_caused_is_attached_once_and_never_changed(history):
    decision = history["decision"]
    first = Run.objects.create(thread=history["thread"], kind=Run.Kind.RESUME,
                               status=Run.Status.SUCCEEDED)
    Decision.objects.filter(pk=decision.pk).update(resumed_run=first)
    other = Run.objects.create(thread=history["thread"], kind=Run.Kind.FORK,
                               status=Run.Status.SUCCEEDED)
    with refused():
        Decision.objects.filter(pk=decision.pk).update(resumed_run=other)
    with refused():
        Decision.objects.filter(pk=decision.pk).update(resumed_run=None)
    assert Decision.objects.get().resumed_run_id == first.pk


def test_deleting_a_thread_with_history_is_refused_and_keeps_its_audit_rows(history):
    with pytest.raises(AuditTrailProtected, match="thread audited cannot be deleted") as caught:
        history["thread"].delete()
    assert caught.value.thread_id == "audited"
    with pytest.raises(ProtectedError):
        Thread.objects.all().delete()
    assert (Thread.objects.count(), Event.objects.count(), Decision.objects.count()) == (1, 1, 1)


def test_deleting_a_review_or_run_that_audit_rows_name_is_refused(history):
    with pytest.raises(ProtectedError):
        history["review"].delete()
    with pytest.raises(ProtectedError):
        history["run"].delete()
    assert Decision.objects.filter(review=history["review"]).exists()


def test_deleting_a_person_who_decided_is_refused(history):
    with pytest.raises(ProtectedError):
        history["user"].delete()
    assert Decision.objects.get().decided_by == history["user"]


def test_a_thread_without_history_can_still_be_deleted(db):
    Thread.objects.create(thread_id="empty", graph_name="expense").delete()
    assert not Thread.objects.exists()


def test_the_lock_is_back_once_an_unlocked_block_ends(history):
    with audit_unlocked():
        Event.objects.filter(pk=history["event"].pk).update(reason="corrected by flush")
    with refused():
        Event.objects.all().delete()
    assert Event.objects.get().reason == "corrected by flush"


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_audit_tables_and_leaves_them_locked(history):
    call_command("flush", interactive=False, verbosity=0)
    assert not Event.objects.exists()
    assert not Decision.objects.exists()
    thread = Thread.objects.create(thread_id="after-flush", graph_name="expense")
    publish("run_queued", thread=thread)
    with refused():
        Event.objects.all().delete()


def test_admin_delete_page_shows_the_audit_rows_that_protect_the_thread(history, admin_client):
    url = reverse("admin:orchestration_thread_delete", args=[history["thread"].pk])
    page = admin_client.get(url).content.decode()
    assert "protected related objects" in page
    assert "run_queued #" in page  # the event that protects it
    assert "audit trail (events and decisions) is append-only" in page
    admin_client.post(url, {"post": "yes"})
    assert Thread.objects.filter(pk=history["thread"].pk).exists()


def test_a_long_threads_admin_pages_name_a_few_rows_and_count_the_rest(history, admin_client):
    """A long-lived thread's change page drew an inline row per run (10,000: 15 MB, 9 s) and
    its delete page collected and listed everything it holds (12 s, 9 MB). They show the
    newest runs with a link to all, and the first audit rows that protect it with a count."""
    thread = history["thread"]
    Run.objects.filter(thread=thread).update(status=Run.Status.SUCCEEDED)
    Run.objects.bulk_create(Run(thread=thread, kind=Run.Kind.RESUME,
                                status=Run.Status.SUCCEEDED) for _ in range(30))
    for _ in range(29):
        publish("run_progress", thread=thread)
    change = admin_client.get(reverse("admin:orchestration_thread_change", args=[thread.pk]))
    page = change.content.decode()
    assert len(re.findall(r'href="/admin/orchestration/run/\d+/change/"', page)) == 20
    assert f'/admin/orchestration/run/?thread__id__exact={thread.pk}">All runs' in page
    every = admin_client.get(reverse("admin:orchestration_run_changelist"),
                             {"thread__id__exact": thread.pk})
    assert every.context["cl"].result_count == 31

    delete = admin_client.get(reverse("admin:orchestration_thread_delete", args=[thread.pk]))
    text = delete.content.decode()
    assert "protected related objects" in text
    assert text.count("Event: <a") == 20
    assert "... and 10 more events" in text
    admin_client.post(reverse("admin:orchestration_thread_delete", args=[thread.pk]),
                      {"post": "yes"})
    assert Thread.objects.filter(pk=thread.pk).exists()
