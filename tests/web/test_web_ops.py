"""The ops console: runs by status, single and bulk actions, each with a recorded reason."""

from __future__ import annotations

import re
from datetime import timedelta

import shown
from django.urls import reverse
from django.utils import timezone

from approvals.actions import DecisionInput, do_decide
from approvals.models import ReviewRequest
from orchestration import Command
from orchestration.runtime import runs
from orchestration.runtime.models import Event, Run, Thread


def test_console_lists_failed_runs_with_their_traceback(client_as, make_run):
    make_run(status="failed", error="ValueError: boom", traceback="Traceback...\nValueError: boom")
    page = client_as("ops").get(reverse("ops")).content.decode()
    assert "ValueError: boom" in page
    assert "Traceback..." in page


def test_a_node_error_holding_a_nul_fails_the_run_once_and_is_shown(
        client_as, make_user, django_capture_on_commit_callbacks):
    """PostgreSQL stores no NUL in text or jsonb: a failure whose message held one (a node's
    error quoting an upload) was refused as it was recorded, so the run stalled and failed
    the same way on every automatic resume. It fails once, the NUL written as `\\x00`."""
    from web_graphs import Question

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("web_failing", Question(asked="scan.pdf"), user=make_user("ops"))
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and run.thread.status == Thread.Status.FAILED
    assert run.error == "ValueError: the upload of scan.pdf starts with \\x00\x01, not %PDF"
    assert "starts with \\x00\x01" in run.traceback and "\x00" not in run.traceback
    page = client_as("ops").get(reverse("ops"), {"status": "failed"}).content.decode()
    assert "starts with \\x00" in page


def test_console_shows_how_long_a_run_has_been_stalled(client_as, make_run):
    now = timezone.now()
    make_run(status="running", lease_expires_at=now - timedelta(minutes=5),
             heartbeat_at=now - timedelta(minutes=6, seconds=3))
    page = client_as("ops").get(reverse("ops"), {"status": "stalled"}).content.decode()
    assert "stuck for 6 min" in page


def test_console_filters_runs_by_status(client_as, make_run):
    failed = make_run(status="failed")
    make_run(status="waiting")
    response = client_as("ops").get(reverse("ops"), {"status": "failed"})
    assert shown.run_pks(response) == [failed.pk]


def test_bulk_preview_counts_the_runs_the_action_applies_to_and_changes_nothing(
    client_as, make_run
):
    failed = [make_run(status="failed"), make_run(status="failed")]
    waiting = make_run(status="waiting")
    response = client_as("ops").post(
        reverse("ops-bulk"), {"action": "retry", "runs": [r.pk for r in [*failed, waiting]]}
    )
    page = response.content.decode()
    assert "Retry 2 of 3 runs?" in page
    assert page.count('<input type="hidden" name="runs"') == 2
    assert f"run {waiting.pk} is waiting" in page
    assert Run.objects.filter(kind=Run.Kind.RETRY).count() == 0


def test_bulk_preview_offers_the_fix_that_applies_to_the_runs_it_skips(client_as, make_run):
    """Resume picked for failed runs (the console's first option, in a trial): the preview
    says to retry them, and offers the retry of those runs, one click away."""
    failed = [make_run(status="failed"), make_run(status="failed")]
    stalled, waiting = make_run(status="stalled"), make_run(status="waiting")
    client = client_as("ops")
    chosen = [r.pk for r in [*failed, stalled, waiting]]
    page = client.post(reverse("ops-bulk"), {"action": "resume", "runs": chosen}).content.decode()
    assert "Resume 1 of 4 runs?" in page
    assert f"run {failed[0].pk} is failed, not stalled: nothing to resume; retry it instead" in page
    assert "Retry 2 skipped runs instead" in page
    offered = page.split('class="instead"')[1].split("</form>")[0]
    assert sorted(int(pk) for pk in shown.hidden_values(offered, "runs")) == sorted(
        r.pk for r in failed)
    # that button is a preview of the retry, which then needs its reason like any other
    retry = client.post(reverse("ops-bulk"), {"action": "retry",
                                              "runs": [r.pk for r in failed]}).content.decode()
    assert "Retry 2 of 2 runs?" in retry
    assert Run.objects.filter(kind=Run.Kind.RETRY).count() == 0
    # and the other way round: retry picked for a stalled run offers its resume
    back = client.post(reverse("ops-bulk"), {"action": "retry",
                                             "runs": [stalled.pk]}).content.decode()
    assert f"run {stalled.pk} is stalled; only failed runs can be retried; resume it instead" \
        in back
    assert "Resume 1 skipped run instead" in back


def test_the_console_picks_the_action_that_fits_most_of_the_listed_runs(client_as, make_run):
    make_run(status="failed")
    make_run(status="failed")
    make_run(status="stalled")
    client = client_as("ops")
    attention = client.get(reverse("ops")).content.decode()
    assert '<option value="retry" selected>' in attention
    stalled = client.get(reverse("ops"), {"status": "stalled"}).content.decode()
    assert '<option value="resume" selected>' in stalled


def test_picking_the_console_action_reads_nothing_per_listed_run(client_as, make_run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    long_ago = timezone.now() - timedelta(hours=1)  # queued runs old enough to look lost
    client = client_as("ops")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            client.get(reverse("ops"), {"status": "queued"})
        return len(ctx.captured_queries)

    Run.objects.filter(pk=make_run(status="queued").pk).update(created_at=long_ago)
    few = queries()
    for _ in range(5):
        Run.objects.filter(pk=make_run(status="queued").pk).update(created_at=long_ago)
    assert queries() == few


def test_bulk_retry_with_reason_retries_each_and_records_who_and_why(
    make_user, make_run, client_as
):
    ops_user = make_user("ops", username="olga")
    failed = [make_run(status="failed"), make_run(status="failed")]
    client = client_as(user=ops_user)
    client.post(reverse("ops-bulk"), {"action": "retry", "runs": [r.pk for r in failed],
                                      "confirm": "on", "reason": "flaky payment API"})
    retries = Run.objects.filter(kind=Run.Kind.RETRY)
    assert sorted(r.previous_id for r in retries) == sorted(r.pk for r in failed)
    assert {(r.requested_by.username, r.reason) for r in retries} == {("olga", "flaky payment API")}
    events = Event.objects.filter(kind="run_queued", actor=ops_user, reason="flaky payment API")
    assert events.count() == 2


def test_bulk_action_without_a_reason_is_refused(client_as, make_run):
    failed = make_run(status="failed")
    response = client_as("ops").post(
        reverse("ops-bulk"), {"action": "retry", "runs": [failed.pk], "confirm": "on"}
    )
    assert response.status_code == 400
    assert Run.objects.filter(kind=Run.Kind.RETRY).count() == 0


def test_bulk_cancel_skips_runs_it_does_not_apply_to(client_as, make_run):
    waiting, done = make_run(status="waiting"), make_run(status="succeeded")
    response = client_as("ops").post(
        reverse("ops-bulk"),
        {"action": "cancel", "runs": [waiting.pk, done.pk], "confirm": "on", "reason": "dup"},
        follow=True,
    )
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.status, done.status) == ("cancelled", "succeeded")
    assert "1 of 2 run(s) done" in response.content.decode()


def test_resume_of_a_stalled_run_requires_a_reason(client_as, make_run):
    run = make_run(status="stalled")
    client_as("ops").post(reverse("run-action", args=[run.pk, "resume"]), {"reason": ""})
    assert not Event.objects.filter(kind="run_requeued").exists()


def test_resume_of_a_stalled_run_is_recorded_with_the_reason(make_user, client_as, make_run,
                                                             django_capture_on_commit_callbacks):
    user = make_user("ops", username="sam")
    run = make_run(status="stalled")
    with django_capture_on_commit_callbacks():
        client_as(user=user).post(reverse("run-action", args=[run.pk, "resume"]),
                                  {"reason": "worker box rebooted"})
    event = Event.objects.get(kind="run_requeued")
    assert (event.actor, event.reason, event.run_id) == (user, "worker box rebooted", run.pk)


def test_cancel_closes_the_threads_open_reviews(client_as, make_review):
    review = make_review()
    client_as("ops").post(reverse("run-action", args=[review.run.pk, "cancel"]),
                          {"reason": "customer withdrew"})
    review.refresh_from_db()
    assert review.status == "cancelled"


# ---------------------------------------------------------------- statuses that tell the truth


def _decide(user, review, django_capture_on_commit_callbacks):
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        do_decide(user, review, DecisionInput(action="approve"))


def test_a_paused_run_whose_review_was_answered_says_answered_and_counts_match_open_reviews(
    start_paused, make_user, client_as, django_capture_on_commit_callbacks
):
    paused = [start_paused() for _ in range(4)]
    _decide(make_user("reviewer"), paused[0], django_capture_on_commit_callbacks)
    response = client_as("ops").get(reverse("ops"))
    counts = shown.tab_counts(response)
    open_reviews = ReviewRequest.objects.filter(status__in=ReviewRequest.OPEN).count()
    assert (counts["waiting"], open_reviews) == (3, 3)
    assert counts["answered"] == 1
    assert Run.objects.get(pk=paused[0].run_id).status == Run.Status.ANSWERED
    assert "3 runs waiting for review, with 3 open reviews" in response.content.decode()


def test_needs_attention_holds_only_runs_ops_can_act_on(
    start_paused, make_user, make_run, client_as, django_capture_on_commit_callbacks
):
    finished = start_paused()
    _decide(make_user("reviewer"), finished, django_capture_on_commit_callbacks)
    finished.thread.refresh_from_db()
    assert finished.thread.status == Thread.Status.DONE
    start_paused()  # waiting: the inbox's business
    now = timezone.now()
    failed = make_run(status="failed")
    retried = make_run(status="failed")
    make_run(thread=retried.thread, kind=Run.Kind.RETRY, status="succeeded", previous=retried)
    stalled = make_run(status="stalled")
    expired = make_run(status="running", lease_expires_at=now - timedelta(minutes=1))
    make_run(status="running", lease_expires_at=now + timedelta(minutes=1))  # healthy
    response = client_as("ops").get(reverse("ops"))
    assert set(shown.run_pks(response)) == {failed.pk, stalled.pk, expired.pk}
    assert shown.tab_counts(response)["attention"] == 3


def test_resuming_or_forking_a_paused_thread_marks_its_paused_run_answered(
    start_paused, make_user, django_capture_on_commit_callbacks
):
    resumed, forked = start_paused(), start_paused()
    with django_capture_on_commit_callbacks():
        runs.resume_thread(resumed.thread, Command(resume={resumed.interrupt_id: "ok"}),
                           user=None, reason="answer")
        runs.fork_thread(forked.thread, forked.checkpoint_id, None, user=None, reason="branch")
    statuses = [Run.objects.get(pk=r.run_id).status for r in (resumed, forked)]
    assert statuses == [Run.Status.ANSWERED, Run.Status.ANSWERED]

def test_ops_can_resume_a_queued_run_that_lost_its_task(client_as, make_run, settings):
    from django_tasks_db.models import DBTaskResult

    settings.STEPWISE_ORPHAN_GRACE_SECONDS = 0
    lost = make_run(status="queued", kind="resume")  # queued, and no task row for it
    fresh = make_run(status="queued", kind="resume")
    Run.objects.filter(pk=fresh.pk).update(created_at=timezone.now() + timedelta(hours=1))
    client = client_as("ops")
    attention = set(shown.run_pks(client.get(reverse("ops"))))
    assert lost.pk in attention and fresh.pk not in attention
    assert shown.run_actions(client.get(reverse("run", args=[lost.pk]))) == [
        "resume", "retry", "cancel"]
    assert shown.run_actions(client.get(reverse("run", args=[fresh.pk]))) == ["cancel"]

    response = client.post(reverse("run-action", args=[lost.pk, "resume"]),
                           {"reason": "its task was lost"})
    assert response.status_code == 303
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["args"] == [lost.pk]
    assert Event.objects.get(run=lost, kind="run_requeued").reason == "its task was lost"
    # it has a waiting task now: nothing more to resume
    assert shown.run_actions(client.get(reverse("run", args=[lost.pk]))) == ["cancel"]


def test_ops_console_reads_the_task_queue_once(client_as, make_run):
    """Rows and tab counts share one `attention_pks()`: the orphan check (queued runs, then the
    task table) runs once per page, not once per use."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_run(status="queued", kind="resume")
    client = client_as("ops")
    with CaptureQueriesContext(connection) as seen:
        assert client.get(reverse("ops")).status_code == 200
    queued_reads = [q["sql"] for q in seen.captured_queries
                    if "orchestration_run" in q["sql"] and "queued" in q["sql"]
                    and "created_at\" <" in q["sql"]]
    assert len(queued_reads) == 1, queued_reads


def test_queued_runs_need_attention_while_no_worker_beats(client_as, make_run, settings):
    # QA: bin/demo's only worker was killed; its runs' tasks still waited in the queue (not
    # orphans), so the ops console listed nothing while nothing moved
    from orchestration.runtime.models import WorkerProcess

    settings.STEPWISE_ORPHAN_GRACE_SECONDS = 30
    waiting = make_run(status="queued", kind="resume")
    runs._send_to_worker(waiting.pk)  # its task waits in the queue
    Run.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    new = make_run(status="queued", kind="resume")
    runs._send_to_worker(new.pk)
    client = client_as("ops")
    assert shown.run_pks(client.get(reverse("ops"))) == [waiting.pk]

    now = timezone.now()
    WorkerProcess.objects.create(worker_id="w1", hostname="h", pid=1, started_at=now,
                                 last_seen_at=now)
    assert not shown.run_pks(client.get(reverse("ops")))


def test_tab_counts_stop_at_the_cap_and_say_so(client_as, make_thread, monkeypatch):
    from approvals import selectors

    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    thread = make_thread()
    Run.objects.bulk_create(Run(thread=thread, kind="start", status="succeeded")
                            for _ in range(5))
    Run.objects.bulk_create(Run(thread=thread, kind="start", status="cancelled")
                            for _ in range(3))
    client = client_as("ops")
    response = client.get(reverse("ops"))
    assert shown.tab_counts(response)["cancelled"] == 3  # at the cap: exact
    assert "succeeded" not in shown.tab_counts(response)
    assert 'Succeeded <span class="count">3+</span>' in response.content.decode()
    listed = client.get(reverse("ops"), {"status": "succeeded"})
    assert len(shown.run_pks(listed)) == 5  # the tab itself lists them all


def test_the_console_reads_runs_from_indexes_however_many_have_finished(
        client_as, make_thread, make_run):
    """The tab counts and the "needs attention" rows are read from each status's index:
    over a table of 300,000 finished runs, testing every run cost the console 220 ms a page
    and its "succeeded" tab 900 ms (sorting them all by a per-run subquery). No statement of
    a page may read the run table from end to end. PostgreSQL is asked with sequential
    scans off (it would rightly read a test's small table): a read no index can serve stays
    a sequential scan."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    thread = make_thread()
    Run.objects.bulk_create(Run(thread=thread, kind="start", status="succeeded")
                            for _ in range(2_000))
    make_run(status="failed", error="boom")
    make_run(status="stalled")
    client = client_as("ops")
    for status in ("attention", "succeeded", "failed", "stalled", "queued"):
        with CaptureQueriesContext(connection) as seen:
            assert client.get(reverse("ops"), {"status": status}).status_code == 200
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL enable_seqscan = off")
            for query in seen.captured_queries:
                sql = query["sql"]
                if "orchestration_run" not in sql or not sql.lstrip().startswith("SELECT"):
                    continue
                if connection.vendor == "sqlite":
                    cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
                    plan = [str(row[-1]) for row in cursor.fetchall()]
                    full = [p for p in plan if p.startswith("SCAN orchestration_run")
                            and "INDEX" not in p]
                else:
                    cursor.execute(f"EXPLAIN {sql}")
                    plan = [row[0] for row in cursor.fetchall()]
                    full = [p for p in plan if "Seq Scan on orchestration_run" in p]
                assert not full, (status, sql, plan)


def test_runs_no_action_applies_to_get_no_checkbox_and_a_page_of_them_no_action_form(
        client_as, make_run):
    """The "Succeeded" tab offered a bulk action (starting at "Resume") for runs that every
    action refuses."""
    done = make_run(status="succeeded")
    waiting = make_run(status="waiting")
    client = client_as("ops")
    succeeded = client.get(reverse("ops"), {"status": "succeeded"}).content.decode()
    assert f'href="/ops/runs/{done.pk}/"' in succeeded  # listed
    assert 'name="runs"' not in succeeded and "With the selected runs" not in succeeded
    page = client.get(reverse("ops"), {"status": "waiting"}).content.decode()
    assert f'name="runs" value="{waiting.pk}"' in page and "With the selected runs" in page
    # only cancel applies to a waiting run, and it is never preselected: nothing is
    assert '<option value="" selected disabled>Choose an action…</option>' in page
    assert not re.search(r'<option value="\w+" selected>', page)


def test_a_bulk_confirmation_without_a_reason_shows_its_preview_again(client_as, make_run):
    """Found in an ops trial: a blank reason gave a page headed "Nothing selected" that
    dropped the selection."""
    failed = [make_run(status="failed"), make_run(status="failed")]
    response = client_as("ops").post(
        reverse("ops-bulk"),
        {"action": "retry", "runs": [r.pk for r in failed], "confirm": "on", "reason": "  "},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Retry 2 of 2 runs?" in page and "Nothing selected" not in page
    assert page.count('<input type="hidden" name="runs"') == 2
    assert 'id="reason-error"' in page and "needs a reason" in page
    assert Run.objects.filter(kind=Run.Kind.RETRY).count() == 0
