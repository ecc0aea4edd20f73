"""Threads: list and search, the checkpoint tree, checkpoint states and diffs, forks and
re-answered reviews (each a new branch; the original branch never changes)."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
import shown
from django.urls import reverse

from approvals.actions import DecisionInput, do_decide, do_redecide
from approvals.models import ReviewRequest
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Checkpoint, Run
from orchestration.savers import DjangoCheckpointSaver


def head_values(thread):
    return DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread.thread_id)).checkpoint.values


def history(thread):
    return DjangoCheckpointSaver().list(CheckpointConfig(thread.thread_id))


def test_thread_list_searches_title_and_thread_id(client_as, make_thread):
    make_thread(title="Quarterly budget", thread_id="abc-1")
    make_thread(title="Hiring plan", thread_id="xyz-2")
    client = client_as("viewer")
    assert shown.thread_ids(client.get(reverse("threads"), {"q": "budget"})) == ["abc-1"]
    assert shown.thread_ids(client.get(reverse("threads"), {"q": "xyz"})) == ["xyz-2"]


def test_thread_list_filters_by_status(client_as, make_thread):
    make_thread(status="done")
    failed = make_thread(status="failed")
    response = client_as("viewer").get(reverse("threads"), {"status": "failed"})
    assert shown.thread_ids(response) == [failed.thread_id]


def test_thread_page_draws_every_checkpoint_of_a_short_thread_in_the_tree(start_paused,
                                                                          client_as):
    review = start_paused()
    page = client_as("viewer").get(reverse("thread", args=[review.thread.thread_id]))
    html = page.content.decode()
    count = Checkpoint.objects.filter(thread=review.thread).count()
    assert '<ol class="tree" id="tree-rows"' in html
    assert 'class="fold"' not in html  # nothing to fold in a short thread
    assert html.count('data-checkpoint="') == count >= 2
    assert "HEAD" in html and "waiting" in html
    assert "step 1 · loop · draft" in html


def test_clicking_a_checkpoint_returns_its_state_and_diff_against_its_parent(
    start_paused, client_as
):
    review = start_paused()
    first, second = history(review.thread)[:2]
    response = client_as("viewer").get(
        reverse("checkpoint", args=[review.thread.thread_id, second.checkpoint.id]),
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert "<html" not in html
    notes = re.search(r'<tr class="change-(\w+)">\s*<th scope="row"><code>notes</code>.*?</tr>',
                      html, re.S)
    assert notes.group(1) == "appended"
    appended = re.search(r'appended:</span><pre class="json"[^>]*>(.*?)</pre>', notes.group(0),
                         re.S)
    assert json.loads(unescape(appended.group(1))) == ["drafted"]
    assert "Changes since its parent" in html


def test_checkpoint_can_be_compared_with_any_other_checkpoint(start_paused, client_as):
    review = start_paused()
    first, *_, last = history(review.thread)
    response = client_as("viewer").get(
        reverse("checkpoint", args=[review.thread.thread_id, first.checkpoint.id]),
        {"against": last.checkpoint.id}, headers={"HX-Request": "true"},
    )
    assert f'<option value="{last.checkpoint.id}" selected>' in response.content.decode()
    assert "side-by-side" in response.content.decode()


def test_fork_with_edited_state_starts_a_new_branch(start_paused, client_as,
                                                    django_capture_on_commit_callbacks):
    review = start_paused()
    thread = review.thread
    first = history(thread)[0]
    before = {t.checkpoint.id for t in history(thread)}
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = client_as("ops").post(
            reverse("checkpoint-fork", args=[thread.thread_id, first.checkpoint.id]),
            {"field__title": "Forked title", "field__amount": "12.5",
             "field__notes": "[]", "field__outcome": "", "field__reviewer": "",
             "field__tags": "{}", "reason": "try another title"},
        )
    assert response.status_code == 303
    fork_run = Run.objects.get(thread=thread, kind=Run.Kind.FORK)
    assert fork_run.reason == "try another title"
    assert fork_run.from_checkpoint_id == first.checkpoint.id
    after = history(thread)
    new = [t for t in after if t.checkpoint.id not in before]
    assert new and all(t.checkpoint.id > first.checkpoint.id for t in new)
    assert head_values(thread)["title"] == "Forked title"
    # the old branch is still there, unchanged
    assert before <= {t.checkpoint.id for t in after}
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.SUPERSEDED


def test_fork_with_an_edited_topic_list_holds_exactly_the_edited_list(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    """The form shows the whole list; the person's edit replaces it (an Overwrite), it is not
    appended through the field's reducer (which gave ["drafted", "drafted", "added by ops"])."""
    review = start_paused()
    thread = review.thread
    drafted = next(t for t in history(thread) if t.checkpoint.values["notes"] == ["drafted"])
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = client_as("ops").post(
            reverse("checkpoint-fork", args=[thread.thread_id, drafted.checkpoint.id]),
            {"field__title": "Spring report", "field__amount": "12.5",
             "field__notes": '["drafted", "added by ops"]', "field__outcome": "",
             "field__reviewer": "", "field__tags": '{"team": "ops"}',
             "reason": "note what ops added"},
        )
    assert response.status_code == 303
    head = DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread.thread_id))
    assert head.checkpoint.next == ("review",)  # the branch paused at the review again
    assert dict(head.checkpoint.values) == {
        "title": "Spring report", "amount": 12.5, "notes": ["drafted", "added by ops"],
        "outcome": "", "reviewer": "", "tags": {"team": "ops"},
    }
    assert drafted.checkpoint.values["notes"] == ["drafted"]  # the original is unchanged


def test_fork_with_invalid_json_is_refused_with_a_field_error(start_paused, client_as):
    review = start_paused()
    first = history(review.thread)[0]
    response = client_as("ops").post(
        reverse("checkpoint-fork", args=[review.thread.thread_id, first.checkpoint.id]),
        {"field__tags": "{not json", "reason": "x"},
    )
    assert response.status_code == 400
    assert "Not valid JSON" in response.content.decode()
    assert not Run.objects.filter(kind=Run.Kind.FORK).exists()


def test_fork_without_a_reason_is_refused(start_paused, client_as):
    review = start_paused()
    first = history(review.thread)[0]
    response = client_as("ops").post(
        reverse("checkpoint-fork", args=[review.thread.thread_id, first.checkpoint.id]), {}
    )
    assert response.status_code == 400
    assert not Run.objects.filter(kind=Run.Kind.FORK).exists()


def test_deciding_differently_answers_on_a_new_branch_and_keeps_the_original(
    start_paused, make_user, django_capture_on_commit_callbacks
):
    review = start_paused()
    thread = review.thread
    reviewer = make_user("reviewer")
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        do_decide(reviewer, review, DecisionInput("approve"))
    original = {t.checkpoint.id: dict(t.checkpoint.values) for t in history(thread)}
    review.refresh_from_db()
    assert head_values(thread)["outcome"] == "approve"
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        decision = do_redecide(reviewer, review, DecisionInput("reject", comment="on reflection"))
    assert head_values(thread)["outcome"] == "reject"
    assert decision.review.reanswer_of == review
    decision.refresh_from_db()
    assert decision.resumed_run.kind == Run.Kind.RESUME
    after = {t.checkpoint.id: dict(t.checkpoint.values) for t in history(thread)}
    assert {cid: after[cid] for cid in original} == original
    review.refresh_from_db()
    assert review.decision.action == "approve"


def test_fork_with_a_value_the_graph_refuses_is_refused_on_the_form(start_paused, client_as):
    review = start_paused()
    first = history(review.thread)[0]
    response = client_as("ops").post(
        reverse("checkpoint-fork", args=[review.thread.thread_id, first.checkpoint.id]),
        {"field__title": "ok", "field__amount": "12.5", "field__notes": "[]",
         "field__outcome": "", "field__reviewer": "",
         "field__tags": '["a merge field needs an object"]', "reason": "try"},
    )
    assert response.status_code == 400
    assert "Not a valid dict[str, str] for field &#x27;tags&#x27;" in response.content.decode()
    assert not Run.objects.filter(kind=Run.Kind.FORK).exists()


def test_redecide_page_records_the_new_answer_as_a_new_review(
    start_paused, make_user, client_as, django_capture_on_commit_callbacks
):
    review = start_paused()
    user = make_user("admin")  # decides reviews and forks threads
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        do_decide(user, review, DecisionInput("approve"))
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = client_as(user=user).post(
            reverse("review-redecide", args=[review.pk]),
            {"action": "reject", "comment": "second thoughts"},
        )
    again = ReviewRequest.objects.get(reanswer_of=review)
    assert response.status_code == 303
    assert response.url == reverse("review", args=[again.pk])
    assert again.decision.comment == "second thoughts"
    assert head_values(review.thread)["outcome"] == "reject"
    # the original's page names the re-answer, its action and who decided it
    page = client_as(user=user).get(reverse("review", args=[review.pk])).content.decode()
    assert (f'Re-answered in <a href="/reviews/{again.pk}/">review #{again.pk}</a>: '
            f"Reject by {user.username}") in page


def test_reanswers_reads_what_select_related_reads(make_review, make_user,
                                                  django_assert_num_queries):
    """selectors.reanswers (a fixed statement) builds what `review.reanswers.select_related(
    "decision__decided_by")` builds, for a re-answer decided and one not (yet) decided."""
    from approvals.models import Decision
    from approvals.selectors import reanswers

    original = make_review(status="decided")
    decider = make_user("reviewer")
    decided = make_review(thread=original.thread, reanswer_of=original, status="decided")
    Decision.objects.create(review=decided, decided_by=decider, action="reject", comment="no")
    open_one = make_review(thread=original.thread, reanswer_of=original)
    make_review(thread=original.thread)  # not a re-answer

    def fields(obj):
        return [getattr(obj, f.attname) for f in obj._meta.concrete_fields]

    expected = sorted(original.reanswers.select_related("decision__decided_by").all(),
                      key=lambda r: r.pk)
    got = reanswers(original.pk)
    assert [fields(r) for r in got] == [fields(r) for r in expected]
    assert [r.pk for r in got] == [decided.pk, open_one.pk]
    assert fields(got[0].decision) == fields(expected[0].decision)
    assert fields(got[0].decision.decided_by) == fields(decider)
    with django_assert_num_queries(0), pytest.raises(
            ReviewRequest.decision.RelatedObjectDoesNotExist):
        got[1].decision  # noqa: B018 - cached as absent, as select_related caches it


def test_decision_with_reanswers_reads_the_decision_and_its_reanswers(
        make_review, make_user, django_assert_num_queries):
    """selectors.decision_with_reanswers is review_decision and reanswers together; a decision
    nobody re-answered is one statement, and a re-answer added later shows at once."""
    from approvals.models import Decision
    from approvals.selectors import decision_with_reanswers, reanswers, review_decision

    def fields(obj):
        return [getattr(obj, f.attname) for f in obj._meta.concrete_fields]

    assert decision_with_reanswers(make_review().pk) == (None, [])
    original = make_review(status="decided")
    decider = make_user("reviewer")
    Decision.objects.create(review=original, decided_by=decider, action="approve")
    with django_assert_num_queries(1):
        decision, again = decision_with_reanswers(original.pk)
    assert fields(decision) == fields(review_decision(original.pk)) and again == []
    assert fields(decision.decided_by) == fields(decider)
    make_review(thread=original.thread)  # not a re-answer
    first = make_review(thread=original.thread, reanswer_of=original, status="decided")
    Decision.objects.create(review=first, decided_by=decider, action="reject")
    second = make_review(thread=original.thread, reanswer_of=original)
    decision, again = decision_with_reanswers(original.pk)
    assert [r.pk for r in again] == [first.pk, second.pk]
    assert [fields(r) for r in again] == [fields(r) for r in reanswers(original.pk)]
    assert fields(again[0].decision.decided_by) == fields(decider)


def test_do_fork_refuses_a_value_of_the_wrong_type_whoever_calls_it(start_paused, make_user):
    """The type check lives in the action, not only in the form and the API: a list for a
    `dict[str, str]` field is refused (an Overwrite skips the merge reducer that used to)."""
    import pytest

    from approvals.actions import ReviewError, do_fork

    review = start_paused()
    first = history(review.thread)[0]
    with pytest.raises(ReviewError, match="tags"):
        do_fork(make_user("ops"), review.thread, first.checkpoint.id, {"tags": ["x"]}, "try")
    assert not Run.objects.filter(kind="fork").exists()
