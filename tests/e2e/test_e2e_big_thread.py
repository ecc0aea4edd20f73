"""A long thread in a real browser: the tree is folded, a folded stretch unfolds, and the
selected checkpoint stays selected while live updates append new checkpoints."""

from __future__ import annotations

import threading

from e2e_helpers import screenshot, wait_for

from approvals.management.commands.measure_pages import Counter, loop_graph
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime.events import publish
from orchestration.runtime.models import Checkpoint, Thread
from orchestration.runtime.savers import DjangoCheckpointSaver

CHECKPOINTS = 1_000


def long_thread(thread_id: str) -> tuple[Thread, object, CheckpointConfig]:
    thread = Thread.objects.create(thread_id=thread_id, graph_name="measure",
                                   title=f"A long thread ({CHECKPOINTS} checkpoints)")
    graph = loop_graph(CHECKPOINTS - 1).with_checkpoint_saver(DjangoCheckpointSaver())
    config = CheckpointConfig(thread_id)
    graph.invoke(Counter(), config, recursion_limit=CHECKPOINTS + 10)
    return thread, graph, config


def announce(thread: Thread, message: str) -> None:
    """What a worker does after a superstep. From another thread: Playwright's event loop runs
    in this one, and the channel layer's sync wrapper refuses to run beside it."""
    worker = threading.Thread(target=publish, args=("run_progress",),
                              kwargs={"thread": thread, "data": {"message": message}})
    worker.start()
    worker.join()


def step_of(page, checkpoint: str) -> str:
    return page.inner_text(f"#cp-{checkpoint} a.cp").split(" · ")[0]  # "step 995"


def wait_for_panel(page, checkpoint: str) -> None:
    page.wait_for_selector(f'#checkpoint-detail p.meta:has-text("{step_of(page, checkpoint)} ·")')


def rows(page) -> list[str]:
    return page.eval_on_selector_all(
        "#tree-rows a.cp", "links => links.map(a => a.getAttribute('data-checkpoint'))")


def test_selection_survives_live_updates_and_a_folded_stretch_unfolds(login, live_url):
    thread, graph, config = long_thread("e2e-long")
    page = login("vera", "viewer")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    page.wait_for_selector("#live-status")
    shown = rows(page)
    assert len(shown) < 60  # of 1,000
    assert page.locator("#tree-rows li.fold").count() >= 1
    screenshot(page, "tree-long")

    # pick a checkpoint that is not the head: its state shows, its row is selected
    picked = shown[-5]
    page.click(f"#cp-{picked} a.cp")
    wait_for_panel(page, picked)
    assert "selected" in page.get_attribute(f"#cp-{picked}", "class")

    # two supersteps land while the page is open: each appends its row, live
    for n in range(2):
        before = Checkpoint.objects.filter(thread=thread).count()
        graph.update_state(config, {"note": f"live {n}"})
        new = (Checkpoint.objects.filter(thread=thread).order_by("-checkpoint_id")
               .values_list("checkpoint_id", flat=True).first())
        assert Checkpoint.objects.filter(thread=thread).count() == before + 1
        announce(thread, f"superstep {n}")
        page.wait_for_selector(f"#cp-{new}", timeout=30_000)
    assert "selected" in page.get_attribute(f"#cp-{picked}", "class")
    assert page.locator("#tree-rows li.selected").count() == 1
    assert page.input_value("#tree-state input[name=checkpoint]") == picked
    assert f"step {CHECKPOINTS + 1}" in page.inner_text("#tree-rows")

    # a folded stretch opens in place, without reloading the page
    fold = page.locator("#tree-rows li.fold a.unfold").last
    before = len(rows(page))
    fold.click()
    wait_for(lambda: len(rows(page)) > before, "the unfolded rows to appear")
    assert len(rows(page)) == before + 50
    assert "selected" in page.get_attribute(f"#cp-{picked}", "class")
    # a checkpoint from inside the stretch opens, with its fork button for those allowed
    inner = rows(page)[2]
    page.click(f"#cp-{inner} a.cp")
    wait_for_panel(page, inner)
    screenshot(page, "tree-long-unfolded")


def test_a_thread_with_many_branches_shows_its_rows_labels_without_scrolling_sideways(
    login, live_url
):
    """Each fork opens a lane 22 px wide: with 40 forks the lanes drawn before each row's
    label were 900 px wide, and the tree showed a blank box until scrolled sideways; cut at
    12 lanes, the newest rows had no dot at all. From the 12th on, lanes are now drawn in one
    dashed column: the labels stay in view and every row shows its dot, whole."""
    thread = Thread.objects.create(thread_id="e2e-forks", graph_name="measure",
                                   title="A thread forked 40 times")
    graph = loop_graph(59).with_checkpoint_saver(DjangoCheckpointSaver())
    config = CheckpointConfig(thread.thread_id)
    graph.invoke(Counter(), config, recursion_limit=100)
    past = [s.config for s in graph.get_state_history(config)][5:45]
    for n, at in enumerate(past):
        graph.update_state(at, {"note": f"fork {n}"})
    page = login("vera", "viewer")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    page.wait_for_selector("#live-status")
    assert "41 branches" in page.inner_text("#tree-count")
    assert "30 branches share one column" in page.inner_text("#tree-panel .legend")
    box = page.locator(".tree-scroll").bounding_box()
    labels = page.locator("#tree-rows a.cp")
    assert labels.count() > 10
    for i in range(labels.count()):
        label = labels.nth(i).bounding_box()
        assert label is not None and box is not None
        assert box["x"] <= label["x"] < box["x"] + box["width"] * 0.6, (i, label, box)
    # every checkpoint row has its dot, whole, left of its label, at any window width
    for width in (1280, 1366, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        misses = page.eval_on_selector_all("#tree-rows li:not(.fold)", """rows => rows.filter(
          li => {
            const svg = li.querySelector('svg.lanes').getBoundingClientRect();
            const dot = li.querySelector('circle').getBoundingClientRect();
            const label = li.querySelector('a.cp').getBoundingClientRect();
            return !(dot.left >= svg.left && dot.right <= svg.right && dot.right < label.left);
        }).map(li => li.id)""")
        assert misses == [], (width, misses)
    assert page.locator("#tree-rows circle.bundled").count() > 10
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "tree-many-branches")
    newest = labels.nth(labels.count() - 1)
    checkpoint = newest.get_attribute("data-checkpoint")
    newest.click()
    wait_for_panel(page, checkpoint)


def test_enter_in_find_compares_with_that_step_in_place(login, live_url):
    thread = Thread.objects.create(thread_id="e2e-find", graph_name="measure", title="Find")
    graph = loop_graph(39).with_checkpoint_saver(DjangoCheckpointSaver())
    graph.invoke(Counter(), CheckpointConfig(thread.thread_id), recursion_limit=60)
    page = login("vera", "viewer")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    page.wait_for_selector("#checkpoint-detail form.compare")
    page.evaluate("window.stillThisPage = true")
    page.fill("#checkpoint-detail input[name=q]", "12")
    page.press("#checkpoint-detail input[name=q]", "Enter")
    page.wait_for_selector('#checkpoint-detail h3:has-text("Differences from step 12")')
    assert page.evaluate("window.stillThisPage === true")  # the panel changed, not the page
    picked = page.eval_on_selector("#against", "s => s.options[s.selectedIndex].text")
    assert picked.startswith("step 12 ·")
    assert page.input_value("#checkpoint-detail input[name=q]") == "12"
    screenshot(page, "find-compare")

    page.fill("#checkpoint-detail input[name=q]", "zzz")
    page.press("#checkpoint-detail input[name=q]", "Enter")
    page.wait_for_selector('#find-help:has-text("No checkpoint matches “zzz”")')
    assert "Differences from step 12" in page.inner_text("#checkpoint-detail h3")


def test_the_default_selection_moves_to_the_head_when_the_run_stops_and_a_pick_stays(
    login, live_url
):
    """As after "New run": the thread page is drawn before the worker's first checkpoint.
    Found by hand: the first live update marked a row selected while the panel kept saying
    "This thread has no checkpoint yet", and once the run waited for review the page still
    showed the step that happened to be the head at that first update."""
    thread = Thread.objects.create(thread_id="e2e-fresh", graph_name="measure",
                                   title="A thread still starting")
    page = login("vera", "viewer")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    page.wait_for_selector("#live-status")
    assert "no checkpoint yet" in page.inner_text("#checkpoint-detail")

    def superstep(note: str) -> str:
        graph.update_state(config, {"note": note})
        return Thread.objects.get(pk=thread.pk).head_checkpoint_id

    def selected() -> str:
        return page.get_attribute("#tree-rows li.selected", "id").removeprefix("cp-")

    # the first checkpoints: the head is selected and shown
    graph = loop_graph(4).with_checkpoint_saver(DjangoCheckpointSaver())
    config = CheckpointConfig(thread.thread_id)
    graph.invoke(Counter(), config)
    first = Thread.objects.get(pk=thread.pk).head_checkpoint_id
    announce(thread, "first supersteps")
    page.wait_for_selector(f"#cp-{first}", timeout=30_000)
    wait_for_panel(page, first)
    assert page.locator("#tree-rows li.selected").count() == 1 and selected() == first
    screenshot(page, "tree-fresh-thread")

    # while the run moves, rows are appended and what the page shows stays
    moving = superstep("moving")
    announce(thread, "a superstep")
    page.wait_for_selector(f"#cp-{moving}", timeout=30_000)
    assert selected() == first

    # the run stops (its status changes): the page's default selection moves to the head
    stopped = superstep("stopped")
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.WAITING)
    announce(thread, "waiting for review")
    wait_for(lambda: selected() == stopped, "the selection to move to the head")
    wait_for_panel(page, stopped)
    assert page.locator("#tree-rows li.selected").count() == 1

    # a checkpoint the viewer picks stays picked when the run stops again
    page.click(f"#cp-{moving} a.cp")
    wait_for_panel(page, moving)
    last = superstep("done")
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.DONE)
    announce(thread, "done")
    page.wait_for_selector(f"#cp-{last}", timeout=30_000)
    page.wait_for_selector("#thread-status:has-text('Done')", timeout=30_000)
    assert selected() == moving
    assert page.input_value("#tree-state input[name=checkpoint]") == moving
