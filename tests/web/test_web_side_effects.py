"""Branches and side effects: "decide differently" needs the fork permission, the fork and
re-decision forms say which nodes run again and which of them act outside Stepwise, and the
demo payout replayed on a branch does not pay twice (its ledger is keyed by `task_key()`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import shown
from django.urls import reverse

from approvals.actions import DecisionInput, do_decide
from approvals.models import ReviewRequest
from demo.models import Payout
from demo.workflows.expense import Expense
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Run
from orchestration.savers import DjangoCheckpointSaver


@pytest.fixture
def paid_expense(make_user: Any, django_capture_on_commit_callbacks: Any) -> ReviewRequest:
    """An expense reviewed, approved and paid out (run in-process)."""
    expense = Expense(expense_id=7, employee="Eve", vendor="Hotel", amount=Decimal("250.00"),
                      description="two nights")
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        runs.start_thread("expense", expense, user=None, title="hotel")
    review = ReviewRequest.objects.get(status=ReviewRequest.Status.PENDING)
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        do_decide(make_user("admin"), review, DecisionInput("approve"))
    review.refresh_from_db()
    return review


def head(review: ReviewRequest) -> Any:
    tup = DjangoCheckpointSaver().get_tuple(CheckpointConfig(review.thread.thread_id))
    return tup.checkpoint.values


def test_paying_an_expense_records_one_payout(paid_expense: ReviewRequest) -> None:
    payout = Payout.objects.get()
    assert head(paid_expense)["payout_ref"] == payout.reference == "PAY-000007-25000"


def test_a_reviewer_without_the_fork_permission_cannot_decide_differently(
    paid_expense: ReviewRequest, client_as: Any,
) -> None:
    client = client_as("reviewer")
    url = reverse("review-redecide", args=[paid_expense.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"action": "approve"}).status_code == 403
    assert not Run.objects.filter(kind=Run.Kind.FORK).exists()
    page = client.get(reverse("review", args=[paid_expense.pk])).content.decode()
    assert url not in page  # no "Decide differently" button they could not use


def test_decide_differently_form_flags_the_payout_that_runs_again(
    paid_expense: ReviewRequest, client_as: Any,
) -> None:
    response = client_as("admin").get(reverse("review-redecide", args=[paid_expense.pk]))
    assert response.status_code == 200
    preview = shown.rerun_nodes(response)
    assert list(preview) == ["review", "payout"]
    assert [name for name, (ran, acts) in preview.items() if ran and acts] == ["payout"]
    assert 'data-side-effects="payout"' in response.content.decode()


def test_fork_form_flags_side_effects_it_may_reach(
    paid_expense: ReviewRequest, client_as: Any,
) -> None:
    first = DjangoCheckpointSaver().list(CheckpointConfig(paid_expense.thread.thread_id))[0]
    response = client_as("ops").get(
        reverse("checkpoint-fork", args=[paid_expense.thread.thread_id, first.checkpoint.id])
    )
    by_name = shown.rerun_nodes(response)
    assert by_name["payout"] == (True, True)  # ran before, has side effects
    assert by_name["auto_approve"][0] is False  # reachable, never ran here
    assert by_name["check_policy"][1] is False


def test_deciding_differently_replays_the_payout_without_paying_twice(
    paid_expense: ReviewRequest, client_as: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    original = head(paid_expense)["payout_ref"]
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = client_as("admin").post(
            reverse("review-redecide", args=[paid_expense.pk]),
            {"action": "approve", "comment": "approved again on a branch"},
        )
    assert response.status_code == 303
    again = ReviewRequest.objects.get(reanswer_of=paid_expense)
    assert again.decision.resumed_run.status == Run.Status.SUCCEEDED
    values = head(paid_expense)
    assert values["comment"] == "approved again on a branch"  # the branch ran to the end...
    assert values["payout_ref"] == original
    assert Payout.objects.count() == 1  # ...and the ledger recognised the replayed payout


def test_deciding_differently_with_another_amount_is_refused_by_the_ledger(
    paid_expense: ReviewRequest, client_as: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    """The replayed payout has the original's key: the ledger refuses another amount under it
    (before, it answered with the first payout and the branch ended "done" at 200.00 with the
    250.00 payout's reference; found by hand). The run fails where ops see it; nothing is paid."""
    admin = client_as("admin")
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            reverse("review-redecide", args=[paid_expense.pk]),
            {"action": "edit", "value__amount": "200", "comment": "corrected"},
        )
    assert response.status_code == 303
    again = ReviewRequest.objects.get(reanswer_of=paid_expense)
    run = again.decision.resumed_run
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "already paid 250.00 EUR" in run.error and "refuses 200.00 EUR" in run.error
    assert list(Payout.objects.values_list("amount", flat=True)) == [Decimal("250.00")]
    # the page the reviewer lands on says so: it said "New decision recorded" and no more
    page = admin.get(response["Location"]).content.decode()
    shown_run = page[page.index('id="decision-run"'):]
    assert "Failed" in shown_run.split("</dd>")[0]
    assert "already paid 250.00 EUR" in shown_run.split("</dd>")[0]


@pytest.mark.django_db(transaction=True)
def test_a_review_inside_a_subgraph_flags_what_runs_after_it_there(client: Any) -> None:
    """The support agent's refund is reviewed at `tools|review`; approving it runs `run` in
    the `tools` subgraph next (the refund itself). Before, the page looked up
    `tools` in the outer graph and flagged nothing (found by hand)."""
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from approvals.consequences import consequence

    call_command("seed_demo", stdout=StringIO())
    review = ReviewRequest.objects.get(thread__thread_id="demo-support-1")
    steps = consequence(review)
    assert steps is not None and steps.node == "tools|review"
    assert [(n.name, n.side_effects) for n in steps.next_nodes] == [("tools|run", True)]
    assert not steps.may_end
    client.force_login(get_user_model().objects.get(username="rita"))
    page = client.get(reverse("review", args=[review.pk])).content.decode()
    assert "<code>tools|run</code> <span class=\"badge side-effect\"" in page


def _fork_before_review(review: ReviewRequest, client: Any, fields: dict[str, str],
                        capture: Any) -> Run:
    """Fork the paid expense at the checkpoint that asked for its review, with `fields`
    edited (the fork form), and approve the branch's review."""
    saver = DjangoCheckpointSaver()
    asked = next(t for t in saver.list(CheckpointConfig(review.thread.thread_id))
                 if t.checkpoint.next == ("review",))
    url = reverse("checkpoint-fork", args=[review.thread.thread_id, asked.checkpoint.id])
    with runs.run_inline(), capture(execute=True):
        response = client.post(url, {**fields, "reason": "a branch with an edit"})
    assert response.status_code == 303, response.content.decode()[:2000]
    branch_review = ReviewRequest.objects.get(status=ReviewRequest.Status.PENDING)
    with runs.run_inline(), capture(execute=True):
        decision = do_decide(client_as_user(client), branch_review, DecisionInput("approve"))
    run = decision.resumed_run
    run.refresh_from_db()
    return run


def client_as_user(client: Any) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def test_a_fork_with_an_unrelated_edit_replays_the_payout_without_paying_twice(
    paid_expense: ReviewRequest, client_as: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    """A reviewer trial: a fork with only the description edited paid the expense a second
    time (an edit wrote one more checkpoint, and the payout ran under a new key), while the
    fork page said a replayed payout is recognised by the ledger."""
    run = _fork_before_review(paid_expense, client_as("admin"),
                              {"field__description": "two nights, receipt attached"},
                              django_capture_on_commit_callbacks)
    assert run.status == Run.Status.SUCCEEDED
    assert head(paid_expense)["description"] == "two nights, receipt attached"
    assert head(paid_expense)["payout_ref"] == "PAY-000007-25000"
    assert Payout.objects.count() == 1


def test_a_fork_with_another_amount_is_refused_by_the_ledger_not_paid_again(
    paid_expense: ReviewRequest, client_as: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    run = _fork_before_review(paid_expense, client_as("admin"), {"field__amount": "260.00"},
                              django_capture_on_commit_callbacks)
    assert run.status == Run.Status.FAILED
    assert "already paid 250.00 EUR" in run.error and "refuses 260.00 EUR" in run.error
    assert list(Payout.objects.values_list("amount", flat=True)) == [Decimal("250.00")]
