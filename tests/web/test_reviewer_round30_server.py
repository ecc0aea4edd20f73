"""Server-side faults of the round-30 reviewer trial: the text of a release refused on a decided
review, the decided notice a claim form swaps in, and the pages and texts fixed with them."""

from __future__ import annotations

from django.contrib.messages import get_messages
from django.urls import reverse

from approvals.actions import DecisionInput, do_claim, do_decide
from approvals.models import ReviewRequest


def test_release_of_a_review_decided_meanwhile_says_nothing_about_runs(
    make_review, make_user, client_as
):
    rita = make_user("reviewer", username="rita")
    review = make_review()
    do_claim(rita, review)
    do_decide(make_user("admin", username="ada"), review, DecisionInput("approve"))
    client = client_as(user=rita)
    response = client.post(reverse("review-unclaim", args=[review.pk]))
    said = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "already decided by ada at " in said
    assert "(approve). Your release was not applied" in said
    assert "run" not in said  # a release resumes no run


def test_a_claim_form_on_a_review_decided_meanwhile_swaps_in_the_decided_notice(
    make_review, make_user, client_as
):
    review = make_review()
    do_decide(make_user("reviewer", username="ada"), review, DecisionInput("approve"))
    response = client_as("reviewer").post(
        reverse("review-claim", args=[review.pk]),
        HTTP_HX_REQUEST="true", HTTP_HX_TARGET="claim-box")
    page = response.content.decode()
    # the claim box's form swaps the decision area instead: it has no claim box any more
    assert response["HX-Retarget"] == response["HX-Reselect"] == "#decide-area"
    assert 'id="decide-area" data-open=""' in page
    assert "already decided by ada at " in page
    assert "(approve). Your claim was not applied" in page
    assert 'id="claim-box"' not in page
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.DECIDED


# ---- E: Next leads to the next review still in the list when it is followed

def test_next_followed_after_the_next_review_was_decided_skips_it(
    make_review, make_user, client_as
):
    a, b, c = make_review(), make_review(), make_review()
    client = client_as("reviewer")
    page = client.get(reverse("review", args=[a.pk])).content.decode()
    assert f'hx-get="/reviews/{a.pk}/?go=next"' in page  # resolved when followed
    do_decide(make_user("reviewer", username="ada"), b, DecisionInput("approve"))  # meanwhile
    followed = client.get(reverse("review", args=[a.pk]) + "?go=next", HTTP_HX_REQUEST="true")
    assert followed.status_code == 200
    assert f'data-review="{c.pk}"' in followed.content.decode()
    assert followed["HX-Push-Url"] == f"/reviews/{c.pk}/"
    # without JavaScript the same address redirects to it
    plain = client.get(reverse("review", args=[a.pk]) + "?go=next")
    assert plain.status_code == 302 and plain["Location"] == f"/reviews/{c.pk}/"


def test_next_followed_keeps_the_list_filter_and_ends_at_the_inbox(make_review, client_as):
    a, b = make_review(), make_review()
    client = client_as("reviewer")
    url = reverse("review", args=[a.pk]) + "?graph=web_review&go=next"
    assert client.get(url)["Location"] == f"/reviews/{b.pk}/?graph=web_review"
    last = client.get(reverse("review", args=[b.pk]) + "?go=next", HTTP_HX_REQUEST="true")
    assert last["HX-Redirect"] == "/"


# ---- G: texts

def test_ops_cancel_confirmation_looks_destructive_and_its_way_back_is_not_called_cancel(
    client_as, make_run
):
    waiting = make_run(status="waiting")
    page = client_as("ops").post(
        reverse("ops-bulk"), {"action": "cancel", "runs": [waiting.pk]}).content.decode()
    assert 'class="primary danger">Cancel 1 run</button>' in page
    assert ">Keep the run</a>" in page and ">Cancel</a>" not in page
    assert 'class="badge will-destroy">will cancel' in page


def test_bulk_reject_preview_does_not_say_the_approve_path_follows(
    make_user, client_as, django_capture_on_commit_callbacks
):
    from decimal import Decimal

    from demo.workflows.expense import Expense
    from orchestration.runtime import runs

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("expense", Expense(expense_id=9, employee="Bo", vendor="Air",
                                                   amount=Decimal("500")), user=make_user("ops"))
    review = ReviewRequest.objects.get(thread=run.thread)
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        page = client_as("reviewer").post(reverse("reviews-bulk"), {
            "action": "reject", "reviews": [review.pk]}).content.decode()
    row = page.split(f"#{review.pk}</span>", 1)[1].split("</tr>", 1)[0]
    assert "next may run" not in row
    assert "the graph routes a reject on its own" in row


def test_an_empty_thread_says_it_has_no_checkpoints_yet(make_thread, client_as):
    thread = make_thread()
    page = client_as("reviewer").get(reverse("thread", args=[thread.thread_id])).content.decode()
    assert "(none yet)" in page
    assert "(0, 1 branch)" not in page


def test_a_thread_whose_latest_run_is_queued_does_not_say_running(
    make_thread, make_run, client_as
):
    """Seen while a worker was frozen: "Status Running" beside "latest run Queued"."""
    thread = make_thread(status="running")
    make_run(thread=thread, status="queued")
    page = client_as("reviewer").get(reverse("thread", args=[thread.thread_id])).content.decode()
    status = page.split('id="thread-status">', 1)[1].split("<", 1)[0]
    assert status.startswith("Queued")


def test_every_needs_attention_row_says_why_it_is_listed(client_as, make_run):
    """A queued run no task will pick up was listed with an empty Problem cell."""
    from datetime import timedelta

    from django.utils import timezone

    from orchestration.runtime.models import Run

    lost = make_run(status="queued")  # no task, and queued longer than the grace period
    Run.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=1))
    page = client_as("ops").get(reverse("ops")).content.decode()
    assert f'href="/ops/runs/{lost.pk}/"' in page, "the lost queued run is listed"
    row = page.split(f'href="/ops/runs/{lost.pk}/"', 1)[1].split("</tr>", 1)[0]
    problem = row.split('data-label="Problem">', 1)[1].split("</td>", 1)[0]
    assert "no worker will pick it up" in problem
