"""Seed a big installation and time the pages: threads with 1,000 and 10,000 checkpoints
(with a few branches), 10,000 pending reviews, and 100,000 finished threads with 200,000
finished runs and task rows behind them (`--history`).

Run it on a scratch database, never on real data:

    SQLITE_PATH=/tmp/measure.sqlite3 DEBUG=1 python manage.py migrate
    SQLITE_PATH=/tmp/measure.sqlite3 DEBUG=1 python manage.py measure_pages

Seeding happens once (the rows are recognised by their "measure-" prefix); each page is then
requested `--repeat` times through Django's test client, and the median time, the number
of SQL queries, the response size and the CPU time of this process (the Django side; less
sensitive than the wall time to what else runs on the machine) are printed. "live update" is
what one viewer receives for one superstep: the page's state (its `#tree-state` form) is sent
back as the browser does, after one new checkpoint. PostgreSQL: the same with
`DATABASE_URL=postgres://...` instead of SQLITE_PATH.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.models import ReviewRequest
from approvals.selectors import inbox_cursor
from orchestration import END, StateGraph
from orchestration.checkpoint import CheckpointConfig
from orchestration.reducers import topic
from orchestration.runtime.models import Checkpoint, Event, Run, Thread

BIG_THREAD = "measure-big-thread"
HUGE_THREAD = "measure-huge-thread"
HUGE = 10_000
REVIEW_THREADS = 1_000
REVIEWS_PER_THREAD = 10
HISTORY = 100_000
LONG_LIVED = "measure-long-lived"


@dataclass
class Counter:
    count: int = 0
    log: Annotated[list[str], topic] = field(default_factory=list)
    note: str = ""


def tick(state: Counter) -> dict[str, Any]:
    return {"count": state.count + 1, "log": [f"tick {state.count + 1}"]}


def loop_graph(limit: int) -> Any:
    g = StateGraph(Counter).add_node("tick", tick).set_entry_point("tick")
    g.add_conditional_edges("tick", lambda s: END if s.count >= limit else "tick")
    return g.compile()


class Command(BaseCommand):
    help = ("Seed threads of 1,000 and 10,000 checkpoints, 10,000 pending reviews and "
            "100,000 finished threads, then time pages.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--checkpoints", type=int, default=1_000)
        parser.add_argument("--reviews", type=int, default=REVIEW_THREADS * REVIEWS_PER_THREAD)
        parser.add_argument("--repeat", type=int, default=5)
        parser.add_argument(
            "--history", type=int, default=HISTORY,
            help="finished threads, each with two finished runs and their task rows, that a "
                 "long-lived installation has behind it (default %(default)s)")

    def handle(self, *args: Any, checkpoints: int, reviews: int, repeat: int, history: int,
               **opts: Any) -> None:
        admin = self.admin_user()
        self.seed_thread(BIG_THREAD, checkpoints)
        self.seed_thread(HUGE_THREAD, HUGE)
        self.seed_reviews(reviews)
        self.seed_history(history)
        self.seed_long_lived(admin)
        client = Client(HTTP_HOST="localhost")
        client.force_login(admin)
        from approvals.api.tokens import issue_token

        self.token = issue_token(admin, "measure_pages")[1]
        thread = Thread.objects.get(thread_id=BIG_THREAD)
        some = Checkpoint.objects.filter(thread=thread).order_by("checkpoint_id")
        first, middle = some.first(), some[checkpoints // 2]
        review = ReviewRequest.objects.filter(status="pending").order_by("pk").first()
        middle_url = reverse("checkpoint", args=[BIG_THREAD, middle.checkpoint_id])
        inbox = reverse("inbox")
        # where "Next" leads after 150 pages: a cursor, not an OFFSET of 7,450 rows
        deep_row = ReviewRequest.objects.filter(status__in=ReviewRequest.OPEN).order_by(
            "created_at", "pk")[149 * 50 - 1]
        deep = {"after": inbox_cursor("n", deep_row)}
        self.stdout.write(f"{'page':44} {'median ms':>10} {'max ms':>8} {'queries':>8} {'KB':>7} "
                          f"{'cpu ms':>7}")
        for label, url, params in [
            ("inbox (first page)", inbox, {}),
            ("inbox (page 150, keyset cursor)", inbox, deep),
            ("inbox, graph filter", inbox, {"graph": "measure"}),
            ("inbox, mine", inbox, {"assignee": "mine"}),
            ("review page", reverse("review", args=[review.pk]), {}),
            ("threads list", reverse("threads"), {}),
            ("threads search", reverse("threads"), {"q": "measure-r-99"}),
            # more matches than the search index answers for, and too short for it: scans
            ("threads search, a text every thread holds", reverse("threads"), {"q": "measure"}),
            ("threads search, two characters", reverse("threads"), {"q": "r-"}),
        ]:
            self.measure(client, label, url, params, repeat)
        for name, n in ((BIG_THREAD, checkpoints), (HUGE_THREAD, HUGE)):
            self.measure_thread(client, name, n, repeat)
        for label, url, params in [
            ("checkpoint partial", middle_url, {}),
            ("checkpoint partial vs first", middle_url, {"against": first.checkpoint_id}),
            ("compare-with choices (step search)",
             reverse("checkpoint-compare", args=[BIG_THREAD, middle.checkpoint_id]), {"q": "12"}),
            ("ops console", reverse("ops"), {}),
            ("ops console, succeeded tab", reverse("ops"), {"status": "succeeded"}),
        ]:
            self.measure(client, label, url, params, repeat, htmx="partial" in label
                         or "choices" in label)

        for label, params in [("API: threads, newest first", {}),
                              ("API: threads of one graph", {"graph": "measure-old"}),
                              ("API: threads of one status", {"status": "failed"})]:
            self.measure(client, label, "/api/v1/threads", params, repeat,
                         headers={"Authorization": f"Bearer {self.token}"})
        self.measure_sweep(repeat)
        long_lived = Thread.objects.filter(thread_id=LONG_LIVED).first()
        if long_lived is not None:
            review = ReviewRequest.objects.filter(thread=long_lived).order_by("-pk").first()
            for label, url in [
                ("long-lived thread page (5,000 reviews)", reverse("thread", args=[LONG_LIVED])),
                ("  one of its reviews", reverse("review", args=[review.pk])),
                ("  admin: its change page (10,000 runs)",
                 reverse("admin:orchestration_thread_change", args=[long_lived.pk])),
                ("  admin: its (refused) delete page",
                 reverse("admin:orchestration_thread_delete", args=[long_lived.pk])),
            ]:
                self.measure(client, label, url, {}, repeat)

    def measure_sweep(self, repeat: int) -> None:
        """One pass of the stall sweeper's reads (`resume_stalled --watch`, every few
        seconds): expired leases, lost queued runs, the task rows in a worker's hands."""
        from orchestration.runtime.leases import expired_runs, orphan_grace_seconds, orphaned_runs
        from orchestration.runtime.lost_tasks import lost_rows

        timings, queries = [], 0
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                expired_runs(older_than=0)
                orphaned_runs(grace=orphan_grace_seconds())
                lost_rows()
                timings.append((time.perf_counter() - started) * 1000)
            queries = len(ctx.captured_queries)
        label = "stall sweeper pass (its reads)"
        self.stdout.write(f"{label:44} {statistics.median(timings):10.1f} "
                          f"{max(timings):8.1f} {queries:8d}")

    def measure_thread(self, client: Client, name: str, n: int, repeat: int) -> None:
        url = reverse("thread", args=[name])
        page = self.measure(client, f"thread page ({n} checkpoints)", url, {}, repeat)
        state = tree_state(page)
        self.measure_panel(client, name, n, repeat)
        thread = Thread.objects.get(thread_id=name)
        head = thread.head_checkpoint_id
        self.measure(client, f"  fork form at the head ({n})",
                     reverse("checkpoint-fork", args=[name, head]), {}, repeat)
        self.measure(client, f"  API: the checkpoint tree ({n})",
                     f"/api/v1/threads/{name}/checkpoints", {}, repeat,
                     headers={"Authorization": f"Bearer {self.token}"})
        fold = re.search(r'\?unfold=([0-9a-f.]+)"', page)
        if fold:
            self.measure(client, f"  unfold a stretch ({n})", reverse("thread-tree", args=[name]),
                         {**state, "unfold": fold.group(1)}, repeat, htmx=True)
        # one superstep per request, as a viewer's page sees them
        saver_graph, config = self.thread_graph(name)
        timings, sizes, cpu, queries = [], [], [], 0
        for _ in range(repeat):
            saver_graph.update_state(config, {"note": f"step {time.perf_counter()}"})
            with CaptureQueriesContext(connection) as ctx:
                started, cpu_started = time.perf_counter(), time.process_time()
                response = client.get(reverse("thread-live", args=[name]), state,
                                      headers={"HX-Request": "true"})
                timings.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
            body = response.content.decode()
            if response.status_code != 200 or 'beforeend:#tree-rows' not in body:
                raise SystemExit(f"live update of {name} did not append: {body[:300]}")
            queries = len(ctx.captured_queries)
            sizes.append(len(response.content))
            state = tree_state(body)
        self.stdout.write(
            f"{f'  live update, one superstep ({n})':44} {statistics.median(timings):10.1f} "
            f"{max(timings):8.1f} {queries:8d} {max(sizes) / 1024:7.1f} "
            f"{statistics.median(cpu):7.1f}"
        )

    def measure_panel(self, client: Client, name: str, n: int, repeat: int) -> None:
        """The panel a long thread's page loads after its tree: the selected checkpoint (the
        head) and its parent read by the saver, whose `log` holds one item per superstep,
        and their changes drawn."""
        thread = Thread.objects.get(thread_id=name)
        url = reverse("checkpoint", args=[name, thread.head_checkpoint_id])
        self.measure(client, f"  selected checkpoint's panel ({n})", url, {}, repeat, htmx=True)

    def thread_graph(self, name: str) -> tuple[Any, CheckpointConfig]:
        from orchestration.runtime.savers import DjangoCheckpointSaver

        return loop_graph(1).with_checkpoint_saver(DjangoCheckpointSaver()), CheckpointConfig(name)

    def admin_user(self) -> User:
        user, _ = User.objects.get_or_create(username="measure-admin")
        if not (user.is_staff and user.is_superuser):  # the Django admin's pages too
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        user.groups.add(Group.objects.get(name="admin"))
        return user

    def seed_thread(self, name: str, n: int) -> None:
        if Thread.objects.filter(thread_id=name).exists():
            return
        from orchestration.runtime.savers import DjangoCheckpointSaver

        started = time.perf_counter()
        Thread.objects.create(thread_id=name, graph_name="measure", title=f"Measure: {n}")
        saver = DjangoCheckpointSaver()
        branches = 3
        # the input checkpoint, one per tick, one per branch: n in all
        graph = loop_graph(n - branches - 1).with_checkpoint_saver(saver)
        config = CheckpointConfig(name)
        graph.invoke(Counter(), config, recursion_limit=n + 10)
        # a few branches: each fork writes a "fork" copy and an update
        history = saver.list(config)
        for i in range(branches):
            at = history[(i + 1) * len(history) // (branches + 1)]
            graph.update_state(config.with_checkpoint_id(at.checkpoint.id), {"note": f"b{i}"})
        self.stdout.write(
            f"seeded {Checkpoint.objects.filter(thread__thread_id=name).count()} "
            f"checkpoints in {time.perf_counter() - started:.1f} s"
        )

    @transaction.atomic
    def seed_history(self, n: int) -> None:
        """`n` finished threads of months past, two finished runs each and a task row per run,
        as the queue leaves them: what every list, count and sweep must not read in full."""
        if n <= 0 or Thread.objects.filter(thread_id="measure-old-0").exists():
            return
        import uuid

        from django.utils import timezone
        from django_tasks_db.models import DBTaskResult

        started = time.perf_counter()
        statuses = [Thread.Status.DONE] * 9 + [Thread.Status.FAILED]
        threads = Thread.objects.bulk_create(
            (Thread(thread_id=f"measure-old-{i}", graph_name="measure-old",
                    title=f"Finished {i}", status=statuses[i % 10]) for i in range(n)),
            batch_size=2_000)
        Run.objects.bulk_create(
            (Run(thread=t, kind=kind, status=Run.Status.SUCCEEDED)
             for t in threads for kind in (Run.Kind.START, Run.Kind.RESUME)),
            batch_size=2_000)
        now = timezone.now()
        DBTaskResult.objects.bulk_create(
            (DBTaskResult(id=uuid.uuid4(), status="SUCCESSFUL",
                          task_path="orchestration.runtime.tasks.execute_run",
                          args_kwargs={"args": [i], "kwargs": {}}, queue_name="default",
                          backend_name="default", priority=0, run_after=now, enqueued_at=now,
                          started_at=now, finished_at=now, worker_ids=["measure:1"])
             for i in range(2 * n)),
            batch_size=2_000)
        self.stdout.write(f"seeded {n} finished threads, {2 * n} runs and task rows in "
                          f"{time.perf_counter() - started:.1f} s")

    @transaction.atomic
    def seed_long_lived(self, admin_user: User) -> None:
        """A thread reviewed in a loop for months: 10,000 runs, 5,000 decided reviews and
        100,000 events."""
        from approvals.models import Decision

        if Thread.objects.filter(thread_id=LONG_LIVED).exists():
            return

        thread = Thread.objects.create(thread_id=LONG_LIVED, graph_name="measure",
                                       title="Measure: a long-lived review loop")
        runs = Run.objects.bulk_create(
            (Run(thread=thread, kind=Run.Kind.RESUME if i else Run.Kind.START,
                 status=Run.Status.SUCCEEDED) for i in range(10_000)), batch_size=2_000)
        reviews = ReviewRequest.objects.bulk_create(
            (ReviewRequest(thread=thread, run=runs[2 * k], interrupt_id=f"x{k}", node="review",
                           title=f"Cycle {k}", status=ReviewRequest.Status.DECIDED,
                           payload={"kind": "review", "data": {"k": k},
                                    "actions": ["approve", "reject"]})
             for k in range(5_000)), batch_size=2_000)
        Decision.objects.bulk_create(
            (Decision(review=review, action="approve", decided_by=admin_user,
                      resumed_run=runs[2 * k + 1]) for k, review in enumerate(reviews)),
            batch_size=2_000)
        Event.objects.bulk_create(
            (Event(thread=thread, run=runs[i // 10],
                   kind="run_started" if i % 10 == 0 else "run_progress", data={"step": i})
             for i in range(100_000)), batch_size=5_000)

    @transaction.atomic
    def seed_reviews(self, n: int) -> None:
        if ReviewRequest.objects.filter(thread__thread_id__startswith="measure-r-").exists():
            return
        per = REVIEWS_PER_THREAD
        threads = Thread.objects.bulk_create(
            Thread(thread_id=f"measure-r-{i}", graph_name="measure", title=f"Measure {i}",
                   status=Thread.Status.WAITING)
            for i in range((n + per - 1) // per)
        )
        run_list = Run.objects.bulk_create(
            Run(thread=t, kind=Run.Kind.START, status=Run.Status.WAITING) for t in threads
        )
        ReviewRequest.objects.bulk_create(
            (
                ReviewRequest(
                    thread=run.thread, run=run, interrupt_id=f"i{k}", node="review",
                    title=f"Approve item {k} of {run.thread.title}",
                    payload={"kind": "review", "title": f"Approve item {k}", "data": {"k": k},
                             "actions": ["approve", "reject"]},
                    assignee="reviewer" if k % 2 else "",
                )
                for run in run_list for k in range(per)
            ),
            batch_size=1_000,
        )
        self.stdout.write(f"seeded {n} pending reviews in {len(threads)} threads")

    def measure(self, client: Client, label: str, url: str, params: dict[str, Any],
                repeat: int, htmx: bool = False, headers: dict[str, str] | None = None) -> str:
        timings, cpu = [], []
        queries = 0
        size = 0
        headers = {**(headers or {}), **({"HX-Request": "true"} if htmx else {})}
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as ctx:
                started, cpu_started = time.perf_counter(), time.process_time()
                response = client.get(url, params, headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{label}: HTTP {response.status_code} for {url}")
            queries = len(ctx.captured_queries)
            size = len(response.content)
        self.stdout.write(
            f"{label:44} {statistics.median(timings):10.1f} {max(timings):8.1f} "
            f"{queries:8d} {size / 1024:7.1f} {statistics.median(cpu):7.1f}"
        )
        return response.content.decode()


def tree_state(html: str) -> dict[str, Any]:
    """The `#tree-state` form of a page or live update, as the browser would send it."""
    form = re.search(r'<form id="tree-state".*?</form>', html, re.S)
    if form is None:
        raise SystemExit("no #tree-state in the response")
    state: dict[str, Any] = {}
    for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0)):
        if name == "open":
            state.setdefault("open", []).append(value)
        else:
            state[name] = value
    return state
