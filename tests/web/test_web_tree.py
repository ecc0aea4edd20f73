"""The checkpoint tree layout: rows in, lanes and coordinates out (a pure function)."""

from __future__ import annotations

from datetime import UTC, datetime

from approvals.tree import LANE_WIDTH, ROW_HEIGHT, TreeRow, layout_tree

T = datetime(2026, 1, 1, tzinfo=UTC)


def row(id, parent=None, step=0, source="loop", node="", actor=""):
    return TreeRow(id=id, parent_id=parent, step=step, source=source, node=node, time=T,
                   actor=actor)


def lanes(layout):
    return {n.row.id: n.lane for n in layout.nodes}


def test_a_straight_history_stays_in_one_lane():
    layout = layout_tree([row("a"), row("b", "a", 1), row("c", "b", 2)])
    assert lanes(layout) == {"a": 0, "b": 0, "c": 0}
    assert layout.lanes == 1


def test_rows_are_placed_in_id_order_one_row_apart():
    layout = layout_tree([row("c", "b"), row("a"), row("b", "a")])
    assert [n.row.id for n in layout.nodes] == ["a", "b", "c"]
    first = layout.nodes[0].y
    assert [n.y for n in layout.nodes] == [first, first + ROW_HEIGHT, first + 2 * ROW_HEIGHT]


def test_second_child_of_a_checkpoint_opens_a_new_lane():
    layout = layout_tree([row("a"), row("b", "a"), row("c", "b"), row("d", "a", source="fork")])
    assert lanes(layout) == {"a": 0, "b": 0, "c": 0, "d": 1}
    assert layout.lanes == 2


def test_branch_edge_goes_from_parent_to_child_lane():
    layout = layout_tree([row("a"), row("b", "a"), row("c", "a")])
    edge = next(e for e in layout.edges if e.child_id == "c")
    assert edge.x2 - edge.x1 == LANE_WIDTH
    assert "C" in edge.path  # a curve into the branch lane


def test_each_fork_of_one_branch_gets_its_own_lane():
    layout = layout_tree([row("a"), row("b", "a"), row("c", "a"), row("d", "a"), row("e", "c")])
    assert lanes(layout) == {"a": 0, "b": 0, "c": 1, "d": 2, "e": 1}


def test_head_and_pending_checkpoints_are_marked():
    layout = layout_tree([row("a"), row("b", "a")], head_id="b", pending_ids={"a"})
    assert [(n.row.id, n.is_head, n.is_pending) for n in layout.nodes] == [
        ("a", False, True), ("b", True, False)
    ]


def test_label_names_step_source_node_time_and_actor():
    layout = layout_tree([row("a", step=3, source="update", node="review", actor="alice")])
    assert layout.nodes[0].label == "step 3 · update · review · 2026-01-01 00:00:00 · by alice"


def test_a_row_whose_parent_is_missing_starts_its_own_lane():
    layout = layout_tree([row("a"), row("b", "zzz-gone")])
    assert lanes(layout) == {"a": 0, "b": 1}
    assert layout.edges == ()


def test_labels_start_right_of_the_last_lane():
    layout = layout_tree([row("a"), row("b", "a"), row("c", "a")])
    assert layout.label_x > max(n.x for n in layout.nodes)
    assert layout.width > layout.label_x


def test_empty_tree_has_no_nodes():
    layout = layout_tree([])
    assert (layout.nodes, layout.edges) == ((), ())
