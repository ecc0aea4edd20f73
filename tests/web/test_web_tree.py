"""The checkpoint tree layout: links in, lanes, folds and per-row drawings out (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from approvals.tree import (
    LANE_WIDTH,
    RECENT,
    UNFOLD_CHUNK,
    Fold,
    Link,
    TreeRow,
    display_rows,
    extend,
    pinned_rows,
    place,
    stretch_folds,
    unfold_span,
)

T = datetime(2026, 1, 1, tzinfo=UTC)


def cid(i: int) -> str:
    return f"{i:06d}"


def chain(n: int, start: int = 0, parent: str | None = None) -> list[Link]:
    links = []
    for i in range(start, start + n):
        links.append(Link(cid(i), parent, i))
        parent = cid(i)
    return links


def lanes(p):
    return dict(zip(p.ids, p.lane, strict=True))


def test_a_straight_history_stays_in_one_lane():
    p = place(chain(3))
    assert lanes(p) == {cid(0): 0, cid(1): 0, cid(2): 0}
    assert p.lanes == 1


def test_rows_are_placed_in_id_order():
    p = place([Link("c", "b"), Link("a", None), Link("b", "a")])
    assert p.ids == ("a", "b", "c")
    assert p.parent == (-1, 0, 1)


def test_second_child_of_a_checkpoint_opens_a_new_lane():
    p = place([Link("a", None), Link("b", "a"), Link("c", "b"), Link("d", "a")])
    assert lanes(p) == {"a": 0, "b": 0, "c": 0, "d": 1}
    assert p.lanes == 2


def test_each_fork_of_one_branch_gets_its_own_lane():
    p = place([Link("a", None), Link("b", "a"), Link("c", "a"), Link("d", "a"), Link("e", "c")])
    assert lanes(p) == {"a": 0, "b": 0, "c": 1, "d": 2, "e": 1}


def test_a_fork_below_an_ended_branch_takes_its_lane_back():
    # a -> b -> c -> d (lane 0); b forks x (lane 1, ends); later d forks y: lane 1 again
    links = [Link("a", None), Link("b", "a"), Link("c", "b"), Link("d", "c"), Link("e", "d"),
             Link("x", "b")]
    links += [Link("y", "d"), Link("z", "e")]
    p = place(sorted(links, key=lambda link: link.id))
    assert lanes(p)["x"] == 1  # b's fork
    assert lanes(p)["y"] == 2  # d's fork is made before x ended (x sorts after d): lane 2
    # twenty forks from successive steps of one run, each ending before the next starts
    trunk = chain(60)
    forks = [Link(f"{cid(3 * k + 2)}f", cid(3 * k), 0) for k in range(20)]
    p = place(trunk + forks)
    assert p.lanes == 2 and {lanes(p)[f.id] for f in forks} == {1}


def test_a_lane_is_never_drawn_twice_in_the_same_place():
    """Whatever the tree, the strokes of one lane never overlap: a line between a parent's
    row and its child's (from the parent's center down) and the dots. Random trees, with
    forks from old and recent checkpoints and the odd root."""
    import random

    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(1, 80)
        links = [Link(cid(0), None, 0)]
        for i in range(1, n):
            if rng.random() < 0.03:
                links.append(Link(cid(i), None, i))
                continue
            recent = rng.random() < 0.7
            parent = i - 1 if recent else rng.randrange(i)
            links.append(Link(cid(i), cid(parent), i))
        p = place(links)
        strokes: dict[int, list[tuple[int, int]]] = {}
        for j in range(len(p)):
            strokes.setdefault(p.lane[j], []).append((2 * j, 2 * j))  # its dot
            up = p.parent[j]
            if up >= 0:
                strokes[p.lane[j]].append((2 * up + 1, 2 * j - 1))  # the line above its dot
        for lane, spans in strokes.items():
            spans.sort()
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
                assert end < start, f"lane {lane} drawn twice at {start / 2} in {links}"


def test_a_fork_takes_the_leftmost_free_lane_however_many_lanes_there_are():
    """The layout finds free lanes in a tree of lanes (`_DrawnTo`); it must pick what a scan
    of every lane picks. Random trees up to 400 rows, many forks from old steps."""
    import random

    def by_scan(links):
        rows = sorted(links, key=lambda link: link.id)
        index = {link.id: i for i, link in enumerate(rows)}
        lane, drawn_to, children = [], [], [0] * len(rows)
        for i, link in enumerate(rows):
            up = index.get(link.parent_id, -1) if link.parent_id else -1
            if up < 0:
                chosen = len(drawn_to)
            elif children[up] == 0 and drawn_to[lane[up]] == up:
                chosen = lane[up]
            else:
                chosen = next((k for k, last in enumerate(drawn_to) if last < up),
                              len(drawn_to))
            if chosen == len(drawn_to):
                drawn_to.append(i)
            drawn_to[chosen] = i
            lane.append(chosen)
            children[up] += up >= 0
        return tuple(lane)

    rng = random.Random(5)
    for _ in range(150):
        n = rng.randint(1, 400)
        links = [Link(cid(0), None, 0)]
        for i in range(1, n):
            old = rng.random() < 0.4
            links.append(Link(cid(i), cid(rng.randrange(i) if old else i - 1), i))
        p = place(links)
        assert p.lane == by_scan(links)
        assert p.lanes == max(p.lane) + 1


def test_a_row_whose_parent_is_missing_starts_its_own_lane():
    p = place([Link("a", None), Link("b", "zzz-gone")])
    assert lanes(p) == {"a": 0, "b": 1}
    rows = display_rows(p)
    assert all(not r.segments for r in rows)


def test_a_branch_curves_out_below_its_parent_and_runs_down_its_lane():
    p = place([Link("a", None), Link("b", "a"), Link("c", "b"), Link("d", "a")])
    rows = display_rows(p)
    kinds = [sorted((s.kind, s.lane) for s in r.segments) for r in rows]
    assert kinds[0] == [("branch", 1), ("down", 0)]
    assert kinds[1] == [("down", 0), ("through", 1), ("up", 0)]
    assert kinds[2] == [("through", 1), ("up", 0)]
    assert kinds[3] == [("up", 1)]
    branch = next(s for s in rows[0].segments if s.kind == "branch")
    assert "C" in branch.path and branch.is_branch
    assert rows[3].xs[0] - rows[0].xs[0] == LANE_WIDTH


def test_label_names_step_source_node_time_and_actor():
    row = TreeRow("a", None, 3, "update", "review", T, "alice")
    assert row.label == "step 3 · update · review · 2026-01-01 00:00:00 · by alice"


def test_a_long_straight_thread_folds_all_but_its_start_and_its_newest_rows():
    p = place(chain(1_000))
    folds = stretch_folds(p, pinned_rows(p))
    assert folds == [Fold(1, 1_000 - RECENT - 1)]
    rows = display_rows(p, folds)
    assert len(rows) == 1 + 1 + RECENT
    fold_row = rows[1]
    # the lane runs on through the folded row: in from above, out below
    assert sorted(s.kind for s in fold_row.segments) == ["down", "up"]


def test_head_selected_pending_and_branch_points_stay_visible():
    links = chain(500)
    links.append(Link("fork-a", cid(100), 100))  # sorts after the digits: a newer row
    p = place(links)
    keep = {cid(250), cid(300)}
    folds = stretch_folds(p, pinned_rows(p, keep=keep))
    hidden = {i for f in folds for i in range(f.start, f.end + 1)}
    for must in (cid(0), cid(100), cid(250), cid(300), "fork-a", cid(499)):
        assert p.index[must] not in hidden, must
    # the fork's edge leaves the branch point and runs down its lane through the folds
    rows = display_rows(p, folds)
    fork_row = next(r for r in rows if p.ids[r.start] == "fork-a")
    assert [s.kind for s in fork_row.segments] == ["up"]
    assert all(any(s.kind == "through" and s.lane == 1 for s in r.segments)
               for r in rows if r.is_fold and r.start > p.index[cid(100)])


def test_the_page_draws_a_bounded_number_of_rows_however_long_the_thread():
    for n in (1_000, 10_000):
        links = chain(n)
        links += [Link(f"fork-{k}", cid(k * n // 4), k) for k in (1, 2, 3)]
        p = place(links)
        rows = display_rows(p, stretch_folds(p, pinned_rows(p)))
        assert len(rows) < 60, n


def test_thousands_of_branch_points_still_draw_a_bounded_page():
    links = chain(3_000)
    links += [Link(f"fork-{k:05d}", cid(k), k) for k in range(0, 3_000, 2)]
    p = place(links)
    rows = display_rows(p, stretch_folds(p, pinned_rows(p)))
    assert len(rows) < 200


def test_opening_a_span_shows_its_rows_and_unfolding_reveals_the_newest_chunk():
    p = place(chain(1_000))
    (fold,) = stretch_folds(p, pinned_rows(p))
    start, end = unfold_span(fold)
    assert (start, end) == (fold.end - UNFOLD_CHUNK + 1, fold.end)
    folds = stretch_folds(p, pinned_rows(p), [(start, end)])
    assert folds == [Fold(fold.start, start - 1)]
    rows = display_rows(p, folds)
    assert len(rows) == 1 + 1 + UNFOLD_CHUNK + RECENT
    assert p.span(p.span_key(start, end)) == (start, end)
    assert p.span("nope..nope") is None


def test_a_short_stretch_is_not_folded():
    p = place(chain(RECENT + 3))
    assert stretch_folds(p, pinned_rows(p)) == []


def test_any_run_of_rows_folds_into_one_row_with_a_dot_per_lane():
    """The mechanism is not only for straight stretches (a subgraph's rows fold the same)."""
    p = place([Link("a", None), Link("b", "a"), Link("c", "a"), Link("d", "b"), Link("e", "c")])
    rows = display_rows(p, [Fold(1, 3, kind="subgraph")])
    assert [(r.start, r.end) for r in rows] == [(0, 0), (1, 3), (4, 4)]
    assert rows[1].lanes == (0, 1)
    assert rows[1].fold.kind == "subgraph"
    assert sorted((s.kind, s.lane) for s in rows[2].segments) == [("up", 1)]


def test_extending_a_placement_places_new_rows_as_placing_them_all_would():
    """A live update grows the kept layout by the rows stored since (`placements`): for any
    tree and any point to split it at, extending gives what placing every row gives."""
    import random

    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 60)
        links = [Link(cid(0), None, 0)]
        for i in range(1, n):  # a parent stored before its child, sometimes missing (pruned)
            parent = cid(rng.randrange(i)) if rng.random() < 0.95 else cid(10_000 + i)
            links.append(Link(cid(i), parent, i))
        cut = rng.randint(0, n)
        grown = extend(place(links[:cut]), links[cut:])
        assert grown == place(links)
        assert grown is not None and grown.index == place(links).index


def test_extending_with_a_row_that_sorts_before_the_last_asks_for_a_full_layout():
    kept = place(chain(5))
    assert extend(kept, [Link("000002x", cid(2), 3)]) is None  # between 000002 and 000003
    assert extend(kept, []) is kept
