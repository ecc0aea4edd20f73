"""Big threads and big inboxes: the thread page folds old stretches (a bounded number of rows
however long the thread), unfolds on demand, a live update for a superstep sends only the new
row, the selection survives live updates; the inbox pages by cursor. Query counts must not
grow with rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import shown
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.management.commands.measure_pages import Counter, loop_graph, tree_state
from approvals.models import ReviewRequest
from approvals.tree import RECENT, UNFOLD_CHUNK
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime.models import Checkpoint, Thread
from orchestration.runtime.savers import DjangoCheckpointSaver

ROW = re.compile(r'hx-target="#checkpoint-detail" data-checkpoint="([0-9a-f]+)"')


def run_thread(thread_id: str, n: int) -> tuple[Thread, object, CheckpointConfig]:
    """A real thread of `n` checkpoints written by the Django saver, one per superstep."""
    thread = Thread.objects.create(thread_id=thread_id, graph_name="measure", title=thread_id)
    graph = loop_graph(n - 1).with_checkpoint_saver(DjangoCheckpointSaver())
    config = CheckpointConfig(thread_id)
    graph.invoke(Counter(), config, recursion_limit=n + 10)
    assert Checkpoint.objects.filter(thread=thread).count() == n
    thread.refresh_from_db()
    return thread, graph, config


def bulk_thread(thread_id: str, n: int, forks: tuple[int, ...] = ()) -> Thread:
    """A long straight thread written as rows (10,000 supersteps would take the test a
    minute), with a fork child at each index in `forks`. Only the tree reads these rows."""
    thread = Thread.objects.create(thread_id=thread_id, graph_name="measure", title=thread_id)
    now = timezone.now()
    base = 50_000_000 + Thread.objects.count() * 100_000
    rows = [Checkpoint(pk=base + i, thread=thread, checkpoint_id=f"{i:016x}a", step=i,
                       source="loop", created_at=now, parent_id=base + i - 1 if i else None)
            for i in range(n)]
    rows += [Checkpoint(pk=base + n + k, thread=thread, checkpoint_id=f"{n + k:016x}f",
                        step=i + 1, source="fork", created_at=now, parent_id=base + i)
             for k, i in enumerate(forks)]
    Checkpoint.objects.bulk_create(rows, batch_size=2_000)
    return thread


def page_of(client, thread, **params):
    return client.get(reverse("thread", args=[thread.thread_id]), params)


def test_a_10000_checkpoint_thread_lists_a_bounded_number_of_rows(client_as):
    thread = bulk_thread("huge", 10_000, forks=(2_500, 5_000, 7_500))
    response = page_of(client_as("viewer"), thread)
    html = response.content.decode()
    assert response.status_code == 200
    shown = ROW.findall(html)
    assert len(shown) == len(set(shown)), [c for c in shown if shown.count(c) > 1]
    assert RECENT < len(shown) < 60
    assert html.count('class="fold"') >= 4
    assert "(10003, 4 branches" in html
    assert len(response.content) < 100_000
    # the three forks and the newest rows are among the shown ones
    forks = sorted(cid for cid in shown if cid.endswith("f"))
    assert forks == [f"{10_000 + k:016x}f" for k in range(3)]
    assert f"{9_999:016x}a" in shown


@pytest.mark.parametrize("sizes", [(60, 400), (600, 3_000)])
def test_the_thread_page_query_count_does_not_grow_with_checkpoints(client_as, sizes):
    """Below and above LAZY_PANEL_FROM (where the checkpoint panel is loaded after the page)."""
    from approvals.views import LAZY_PANEL_FROM

    small_n, big_n = sizes
    assert (small_n < LAZY_PANEL_FROM) == (big_n < LAZY_PANEL_FROM)
    client = client_as("viewer")
    small = bulk_thread("small", small_n)
    big = bulk_thread("big", big_n, forks=(10, big_n - 100))
    counts = []
    for thread in (small, big):
        page_of(client, thread)  # warm caches (permissions, content types)
        with CaptureQueriesContext(connection) as ctx:
            assert page_of(client, thread).status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_a_live_update_for_one_superstep_renders_only_the_new_node(client_as):
    thread, graph, config = run_thread("live-one", 80)
    client = client_as("viewer")
    state = tree_state(page_of(client, thread).content.decode())
    before = set(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id",
                                                                      flat=True))
    graph.update_state(config, {"note": "one more superstep"})
    (new,) = set(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id",
                                                                      flat=True)) - before
    response = client.get(reverse("thread-live", args=[thread.thread_id]), state,
                          headers={"HX-Request": "true"})
    html = response.content.decode()
    appended = re.search(r'<ol hx-swap-oob="beforeend:#tree-rows">(.*?)</ol>', html, re.S)
    assert appended is not None, html[:500]
    assert ROW.findall(appended.group(1)) == [new]
    # besides it, only the row it continues (now with a child, no longer HEAD) is redrawn
    assert ROW.findall(html) == [state["last"], new]
    assert 'id="tree-panel"' not in html and 'id="thread-history"' not in html
    assert len(response.content) <= 5_000
    assert tree_state(html)["last"] == new


def test_a_live_update_after_a_fork_redraws_the_tree_and_keeps_the_selection(client_as):
    thread, graph, config = run_thread("live-fork", 80)
    client = client_as("viewer")
    old = Checkpoint.objects.filter(thread=thread).order_by("checkpoint_id")[10].checkpoint_id
    page = page_of(client, thread, checkpoint=old).content.decode()
    assert re.findall(r'<li id="cp-([0-9a-f]+)" class="[^"]*\bselected\b', page) == [old]
    state = tree_state(page)
    assert state["checkpoint"] == old
    graph.update_state(config.with_checkpoint_id(old), {"note": "a branch"})  # a new lane
    html = client.get(reverse("thread-live", args=[thread.thread_id]), state,
                      headers={"HX-Request": "true"}).content.decode()
    assert 'id="tree-panel"' in html  # the layout changed: drawn again
    selected = re.findall(r'<li id="cp-([0-9a-f]+)" class="[^"]*\bselected\b', html)
    assert selected == [old]
    assert tree_state(html)["checkpoint"] == old


def test_the_selected_checkpoint_stays_selected_across_an_appending_update(client_as):
    thread, graph, config = run_thread("live-sel", 60)
    client = client_as("viewer")
    head = thread.head_checkpoint_id
    state = tree_state(page_of(client, thread, checkpoint=head).content.decode())
    graph.update_state(config, {"note": "next"})
    html = client.get(reverse("thread-live", args=[thread.thread_id]), state,
                      headers={"HX-Request": "true"}).content.decode()
    # the previous head is redrawn (it lost its HEAD mark) and is still the selected row
    redrawn = re.search(rf'<li id="cp-{head}" class="([^"]*)" hx-swap-oob="true"', html)
    assert redrawn is not None and "selected" in redrawn.group(1).split()
    assert "head" not in redrawn.group(1).split()


def test_unfolding_returns_the_stretch(client_as):
    thread = bulk_thread("unfold", 500)
    client = client_as("viewer")
    page = page_of(client, thread).content.decode()
    key = re.search(r'\?unfold=([0-9a-f]+\.\.[0-9a-f]+)"', page).group(1)
    first, last = key.split("..")
    response = client.get(reverse("thread-tree", args=[thread.thread_id]),
                          {**tree_state(page), "unfold": key}, headers={"HX-Request": "true"})
    html = response.content.decode()
    revealed = ROW.findall(html)
    ids = sorted(Checkpoint.objects.filter(thread=thread, checkpoint_id__gte=first,
                                           checkpoint_id__lte=last)
                 .values_list("checkpoint_id", flat=True))
    assert revealed == ids[-UNFOLD_CHUNK:]  # the newest part of the stretch, in order
    assert html.count('class="fold"') == 1  # the rest stays folded, one click further
    assert f'name="open" value="{revealed[0]}..{revealed[-1]}"' in html
    # a plain link (no htmx) opens the same rows on the thread page
    plain = client.get(reverse("thread-tree", args=[thread.thread_id]), {"unfold": key})
    assert plain.status_code == 302
    reopened = ROW.findall(client.get(plain.url).content.decode())
    assert set(revealed) <= set(reopened)


def test_unfolding_a_fold_that_no_longer_exists_says_so(client_as):
    thread = bulk_thread("gone", 100)
    response = client_as("viewer").get(reverse("thread-tree", args=[thread.thread_id]),
                                       {"unfold": "nope..nope"}, headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "reload the page" in response.content.decode()


def test_a_checkpoint_inside_a_folded_stretch_can_be_opened_and_forked(client_as):
    thread, _graph, _config = run_thread("fold-fork", 120)
    client = client_as("ops")
    page = page_of(client, thread).content.decode()
    hidden = (Checkpoint.objects.filter(thread=thread).order_by("checkpoint_id")[20]
              .checkpoint_id)
    assert hidden not in ROW.findall(page)
    detail = client.get(reverse("checkpoint", args=[thread.thread_id, hidden]),
                        headers={"HX-Request": "true"}).content.decode()
    assert "Fork from here" in detail
    fork_page = client.get(reverse("checkpoint-fork", args=[thread.thread_id, hidden]))
    assert fork_page.status_code == 200
    # linked to directly, the page selects it and shows it although its stretch is folded
    assert hidden in ROW.findall(page_of(client, thread, checkpoint=hidden).content.decode())


def test_a_thread_forked_400_times_draws_a_page_under_100_kb(client_as):
    """Forks made late from older and older steps need a lane each; from the 12th on they are
    drawn in one column, and a stroke is drawn once however many lanes share it (each row
    repeated every bundled lane's line: 400 branches made the page 124 KB before the bundle,
    65 KB with it, 26 KB once each stroke was drawn once)."""
    thread = bulk_thread("forked-400", 500, forks=tuple(range(10, 490))[:400])
    page = page_of(client_as("viewer"), thread).content.decode()
    assert "401 branches" in page
    assert len(page.encode()) < 100_000
    for row in re.findall(r"<li id=\"cp-.*?</li>", page):
        paths = re.findall(r"<path [^>]*/>", row)
        assert len(paths) == len(set(paths)), row
    widths = {int(w) for w in re.findall(r'<svg class="lanes" width="(\d+)"', page)}
    assert widths == {16 * 2 + 11 * 22}  # twelve lanes drawn, the rest in the twelfth


def test_compare_with_is_loaded_on_demand_and_bounded(client_as):
    thread, _graph, _config = run_thread("compare", 150)
    client = client_as("viewer")
    page = page_of(client, thread).content.decode()
    assert page.count("<option") <= 3  # no list of every checkpoint on the page
    head = thread.head_checkpoint_id
    url = reverse("checkpoint-compare", args=[thread.thread_id, head])
    default = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 2 <= default.count("<option") <= 26
    by_step = client.get(url, {"q": "12"}, headers={"HX-Request": "true"}).content.decode()
    assert "step 12 ·" in by_step and "step 13 ·" not in by_step
    none = client.get(url, {"q": "zzz"}, headers={"HX-Request": "true"}).content.decode()
    assert "no checkpoint matches" in none


def test_enter_in_find_compares_with_the_newest_match(client_as):
    thread, _graph, _config = run_thread("find", 40)
    client = client_as("viewer")
    head = thread.head_checkpoint_id
    step_12 = Checkpoint.objects.get(thread=thread, step=12).checkpoint_id
    url = reverse("checkpoint", args=[thread.thread_id, head])
    panel = client.get(url, {"against": "", "q": " 12 "},
                       headers={"HX-Request": "true"}).content.decode()
    assert "Differences from step 12" in panel
    assert f'<option value="{step_12}" selected>' in panel and 'value="12"' in panel
    # an option picked from the list stays picked when it matches too (ids start with "1")
    step_30 = Checkpoint.objects.get(thread=thread, step=30).checkpoint_id
    picked = client.get(url, {"against": step_30, "q": step_30[:6]},
                        headers={"HX-Request": "true"}).content.decode()
    assert "Differences from step 30" in picked
    # nothing matches: said so, the comparison stays as it was
    missed = client.get(url, {"against": "", "q": "zzz"},
                        headers={"HX-Request": "true"}).content.decode()
    assert "No checkpoint matches “zzz”" in missed and "Changes since its parent" in missed
    # without JavaScript the form is sent to the same URL: the page comes back comparing
    page = client.get(url, {"against": "", "q": "12"})
    assert page.status_code == 302 and f"against={step_12}" in page["Location"]


# ---------------------------------------------------------------- inbox


def walk_inbox(client, **params) -> tuple[list[int], int]:
    seen: list[int] = []
    pages = 0
    query = dict(params)
    while True:
        response = client.get(reverse("inbox"), query)
        seen += shown.inbox_pks(response)
        pages += 1
        query = shown.next_page_query(response)
        if not query:
            return seen, pages


def test_inbox_pages_by_cursor_visit_every_open_review_once_overdue_first(client_as,
                                                                          make_review):
    reviews = [make_review() for _ in range(120)]
    late = [reviews[70], reviews[5]]
    for r in late:
        ReviewRequest.objects.filter(pk=r.pk).update(due_at=timezone.now() - timedelta(hours=1))
    make_review(status="decided")
    seen, pages = walk_inbox(client_as("viewer"))
    expected = [reviews[5].pk, reviews[70].pk] + [r.pk for r in reviews if r not in late]
    assert seen == expected
    assert pages == 3


def test_inbox_query_count_does_not_grow_with_reviews(client_as, make_review):
    client = client_as("viewer")
    counts = []
    for n in (5, 140):
        while ReviewRequest.objects.count() < n:
            make_review()
        client.get(reverse("inbox"))
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(reverse("inbox"))
        counts.append(len(ctx.captured_queries))
        next_query = shown.next_page_query(response)
        if next_query:
            with CaptureQueriesContext(connection) as ctx:
                client.get(reverse("inbox"), next_query)
            counts.append(len(ctx.captured_queries))
    # first pages alike; a later page skips the overdue section's query once past it
    assert counts[0] == counts[1] and counts[2] <= counts[1], counts


@pytest.mark.parametrize("cursor", ["garbage", "x.1.2.3", "n.99999999999999999999.0.1"])
def test_a_bad_inbox_cursor_shows_the_first_page_and_says_why(client_as, make_review, cursor):
    review = make_review()
    response = client_as("viewer").get(reverse("inbox"), {"after": cursor})
    assert response.status_code == 200
    assert shown.inbox_pks(response) == [review.pk]
    assert "is not an inbox position" in response.content.decode()


def test_a_fold_drawn_before_live_updates_still_unfolds(client_as):
    """Live updates move the newest rows along, so the server's folds drift from the ones
    the page drew; unfolding goes by the span the page shows (found by the e2e test)."""
    thread, graph, config = run_thread("drift", 120)
    client = client_as("viewer")
    page = page_of(client, thread).content.decode()
    key = re.search(r'\?unfold=([0-9a-f]+\.\.[0-9a-f]+)"', page).group(1)
    for n in range(3):
        graph.update_state(config, {"note": f"later {n}"})
    response = client.get(reverse("thread-tree", args=[thread.thread_id]),
                          {**tree_state(page), "unfold": key}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    first, last = key.split("..")
    revealed = ROW.findall(response.content.decode())
    assert revealed[-1] == last and len(revealed) == UNFOLD_CHUNK
    assert all(first <= cid <= last for cid in revealed)


def test_a_hand_made_span_opening_the_whole_thread_still_draws_a_bounded_page(client_as):
    thread = bulk_thread("handmade", 2_000)
    ids = list(Checkpoint.objects.filter(thread=thread).order_by("checkpoint_id")
               .values_list("checkpoint_id", flat=True))
    html = page_of(client_as("viewer"), thread, open=f"{ids[0]}..{ids[-1]}").content.decode()
    assert len(ROW.findall(html)) <= RECENT + UNFOLD_CHUNK + 10


def test_a_long_thread_draws_its_tree_first_and_loads_the_selected_checkpoint_after(client_as):
    """From LAZY_PANEL_FROM checkpoints on, the page does not read the (long) state: the panel
    is fetched by the page once the tree is shown; a URL naming a checkpoint still gets it
    inline (no JavaScript needed)."""
    from approvals.views import LAZY_PANEL_FROM

    thread, _graph, _config = run_thread("lazy", LAZY_PANEL_FROM + 5)
    client = client_as("ops")
    page = page_of(client, thread).content.decode()
    head = thread.head_checkpoint_id
    assert f'hx-get="/threads/{thread.thread_id}/checkpoints/{head}/"' in page
    assert 'hx-trigger="load"' in page
    assert 'name="against"' not in page  # the panel's compare box: not read, not drawn
    panel = client.get(
        reverse("checkpoint", args=[thread.thread_id, head]), headers={"HX-Request": "true"}
    ).content.decode()
    assert head in panel and 'name="against"' in panel
    inline = client.get(reverse("thread", args=[thread.thread_id]), {"checkpoint": head})
    assert 'hx-trigger="load"' not in inline.content.decode()
    assert 'name="against"' in inline.content.decode()


def test_a_checkpoint_and_the_one_it_is_compared_with_read_together_as_apart(db):
    """The panel and the review page read a checkpoint and its parent (or the checkpoint
    picked to compare with) in one read, which decodes what they share once: the tuples are
    those of two reads apart, pending writes included, each with lists of its own."""
    from approvals import selectors

    thread, _graph, config = run_thread("pair", 40)
    saver = DjangoCheckpointSaver()
    head = thread.head_checkpoint_id
    saver.put_writes(CheckpointConfig("pair", head), [("note", "held")], "task-1")
    asked, parent = selectors.get_checkpoint_pair(thread, None)
    alone = selectors.get_checkpoint(thread, head)
    assert alone is not None and alone.parent_config is not None
    # the one read itself, not its fallback to two reads apart
    both = DjangoCheckpointSaver().get_tuples(
        config, [head, alone.parent_config.checkpoint_id, "0" * 32]
    )
    assert sorted(both) == sorted([head, alone.parent_config.checkpoint_id])
    assert asked is not None
    assert parent is not None and parent.checkpoint.id == alone.parent_config.checkpoint_id
    for together, apart in ((asked, alone),
                            (parent, selectors.get_checkpoint(thread, parent.checkpoint.id))):
        assert apart is not None
        assert together.checkpoint.values == apart.checkpoint.values
        assert together.metadata == apart.metadata
        assert together.config == apart.config and together.parent_config == apart.parent_config
        assert together.pending_writes == apart.pending_writes
    assert [w.value for w in asked.pending_writes] == ["held"]
    asked.checkpoint.values["log"].append("mine")
    assert parent.checkpoint.values["log"] == alone.checkpoint.values["log"][:-1]
    first = Checkpoint.objects.filter(thread=thread).order_by("checkpoint_id").first()
    assert first is not None
    _, other = selectors.get_checkpoint_pair(thread, head, first.checkpoint_id)
    assert other is not None and other.checkpoint.id == first.checkpoint_id
    assert selectors.get_checkpoint_pair(thread, head, "0" * 32)[1] is None
    assert selectors.get_checkpoint_pair(thread, "0" * 32) == (None, None)


def test_the_kept_tree_layout_grows_with_new_rows_and_is_laid_out_again_after_any_other_change(db):
    """Each process keeps a thread's layout and places only the rows stored since. Whatever
    happened to the thread, the layout is the one placing every row gives; rows only added
    (a superstep, a fork, a subgraph's) are read alone, anything else lays it out again."""
    from approvals import placements
    from approvals.selectors import tree_links
    from approvals.tree import place

    placements.forget()
    thread = bulk_thread("kept-layout", 200)
    base = Checkpoint.objects.filter(thread=thread).order_by("pk")
    first, last = base.first(), base.last()
    assert first is not None and last is not None

    def layout_reads_only_new_rows() -> bool:
        with CaptureQueriesContext(connection) as ctx:
            kept = placements.placement_of(thread)
        assert kept == place(tree_links(thread))
        # the full layout reads every row of the thread's own namespace (`tree_links`)
        return not any('"checkpoint_ns" =' in q["sql"] for q in ctx.captured_queries)

    assert not layout_reads_only_new_rows()  # the first request lays it out
    assert layout_reads_only_new_rows()  # nothing changed: the kept one
    now = timezone.now()
    pk = last.pk + 1
    add = [  # a superstep, a fork from the first row, a subgraph's checkpoint
        Checkpoint(pk=pk, thread=thread, checkpoint_id="f" * 15 + "1", step=200, source="loop",
                   created_at=now, parent=last),
        Checkpoint(pk=pk + 1, thread=thread, checkpoint_id="f" * 15 + "2", step=1,
                   source="fork", created_at=now, parent=first),
        Checkpoint(pk=pk + 2, thread=thread, checkpoint_id="f" * 15 + "3", step=0,
                   source="input", created_at=now, checkpoint_ns="sub:1"),
    ]
    for row in add:
        Checkpoint.objects.bulk_create([row])
        assert layout_reads_only_new_rows()
    Checkpoint.objects.filter(pk=pk + 1).delete()  # a row removed: laid out again
    assert not layout_reads_only_new_rows()
    Checkpoint.objects.filter(pk=pk + 2).delete()  # the newest row gone, its pk used again
    Checkpoint.objects.bulk_create([Checkpoint(
        pk=pk + 2, thread=thread, checkpoint_id="f" * 15 + "4", step=201, source="loop",
        created_at=now, parent_id=pk,
    )])
    assert not layout_reads_only_new_rows()
    assert layout_reads_only_new_rows()


COUNT = re.compile(r'<span id="tree-count"[^>]*>\((\d+), (\d+) branch(?:es)?(?:, (\d+) folded)?\)')


def folded_in(html: str) -> int:
    found = COUNT.search(html)
    assert found is not None, html[:300]
    return int(found.group(3) or 0)


def test_the_count_above_the_tree_keeps_the_folded_checkpoints_across_updates(client_as):
    """A live update and an unfold send a few rows, and the count above the tree with them:
    it counted only the folds among those rows ("(81, 1 branch)" after a live update, the
    remaining part of one fold after an unfold), not the page's."""
    thread, graph, config = run_thread("count-live", 80)
    client = client_as("viewer")
    page = page_of(client, thread).content.decode()
    assert folded_in(page) > 0
    graph.update_state(config, {"note": "one more superstep"})
    html = client.get(reverse("thread-live", args=[thread.thread_id]), tree_state(page),
                      headers={"HX-Request": "true"}).content.decode()
    assert 'beforeend:#tree-rows' in html  # an appending update
    assert folded_in(html) == folded_in(page_of(client, thread).content.decode()) > 0
    long = bulk_thread("count-unfold", 500)
    page = page_of(client, long).content.decode()
    key = re.search(r'\?unfold=([0-9a-f]+\.\.[0-9a-f]+)"', page).group(1)
    html = client.get(reverse("thread-tree", args=[long.thread_id]),
                      {**tree_state(page), "unfold": key},
                      headers={"HX-Request": "true"}).content.decode()
    opened = [("open", value) for value in re.findall(r'name="open" value="([^"]+)"', html)]
    reloaded = client.get(reverse("thread", args=[long.thread_id]), opened).content.decode()
    assert folded_in(html) == folded_in(page) - UNFOLD_CHUNK == folded_in(reloaded)


def test_a_thread_with_thousands_of_reviews_lists_the_open_ones_and_the_latest(
        client_as, make_run):
    """A long-lived thread (a review per cycle) listed every review it ever had: 5,000 made
    a 750 KB page drawn in 600 ms, and again at every live update."""
    from approvals.selectors import RECENT_REVIEWS

    run = make_run()
    thread = run.thread
    old = ReviewRequest.objects.bulk_create(
        ReviewRequest(thread=thread, run=run, interrupt_id=f"x{k}", node="review",
                      title=f"Closed {k}", status=ReviewRequest.Status.CANCELLED,
                      payload={"kind": "review", "data": {}})
        for k in range(RECENT_REVIEWS + 7))
    waiting = ReviewRequest.objects.create(thread=thread, run=run, interrupt_id="open",
                                           node="review", title="Still open",
                                           payload={"kind": "review", "data": {}})
    ReviewRequest.objects.filter(pk=waiting.pk).update(
        created_at=timezone.now() - timedelta(days=1))  # the oldest: still listed
    page = client_as("admin").get(reverse("thread", args=[thread.thread_id]))
    section = re.search(r'<section id="thread-reviews".*?</section>', page.content.decode(),
                        re.S)[0]
    listed = [int(pk) for pk in re.findall(r'href="/reviews/(\d+)/"', section)]
    assert listed == [waiting.pk, *[r.pk for r in old[7:]]]
    assert "7 earlier closed reviews not listed" in section
