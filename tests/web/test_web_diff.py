"""The pure state diff: added / removed / changed per field, list appends as appends."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from approvals.diff import INDENT_LEVELS, VALUE_BUDGET, clip, diff_states, pretty, to_jsonable


def kinds(old, new):
    return {c.field: c.kind for c in diff_states(old, new)}


def test_field_present_only_in_new_state_is_added():
    assert kinds({}, {"a": 1}) == {"a": "added"}


def test_field_missing_from_new_state_is_removed():
    assert kinds({"a": 1}, {}) == {"a": "removed"}


def test_different_scalar_is_changed_with_both_values():
    (change,) = diff_states({"a": 1}, {"a": 2})
    assert (change.kind, change.old, change.new) == ("changed", 1, 2)


def test_equal_field_is_unchanged():
    assert kinds({"a": [1, 2]}, {"a": [1, 2]}) == {"a": "unchanged"}


def test_list_that_grew_at_its_end_is_an_append_of_only_the_new_items():
    (change,) = diff_states({"notes": ["a", "b"]}, {"notes": ["a", "b", "c", "d"]})
    assert change.kind == "appended"
    assert change.appended == ("c", "d")


def test_list_changed_in_the_middle_is_a_change_not_an_append():
    assert kinds({"notes": ["a", "b"]}, {"notes": ["a", "x", "c"]}) == {"notes": "changed"}


def test_missing_old_state_reports_every_field_added():
    assert kinds(None, {"a": 1, "b": 2}) == {"a": "added", "b": "added"}


def test_int_replaced_by_equal_float_is_a_change():
    assert kinds({"a": 1}, {"a": 1.0}) == {"a": "changed"}


def test_values_render_as_json_compatible_data():
    assert to_jsonable({"amount": Decimal("1.50"), "tags": {"b", "a"}}) == {
        "amount": "1.50",
        "tags": ["a", "b"],
    }


def test_numbers_json_has_no_literal_for_render_as_text():
    class Ratio(float):
        pass

    rendered = to_jsonable([float("inf"), float("-inf"), float("nan"), Ratio("inf"), 2.5, 0.0])
    assert rendered == ["Infinity", "-Infinity", "NaN", "Infinity", 2.5, 0.0]
    json.dumps(rendered, allow_nan=False)  # strict JSON: raises on a number left as it was


def test_plain_json_and_its_subclasses_render_alike():
    # plain dicts and lists take a fast path; their subclasses and other keys the general one
    class Text(str):
        pass

    class Record(dict):
        pass

    value = {1: [True, None, 2.5, {"d": Decimal("2")}], "s": Text("x"), "r": Record(k=(1,))}
    rendered = to_jsonable(value)
    assert rendered == {"1": [True, None, 2.5, {"d": "2"}], "s": "x", "r": {"k": [1]}}
    assert type(rendered["s"]) is Text  # a str already: kept as it is, as before


def _cut(value, budget):
    """What `clip` must give: the whole pretty text, cut at `budget`, and its length."""
    text = pretty(value)
    return (text if len(text) <= budget else text[:budget] + "\n…"), len(text)


def _random_value(rnd: random.Random, depth: int = 0):
    roll = rnd.random()
    if depth > INDENT_LEVELS + 3 or roll < 0.35:
        return rnd.choice([None, True, 3, -2.5, 10**20, "x", "", 'é "q"\n', float("nan"), [], {}])
    if roll < 0.65:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 6))]
    return {f"{rnd.choice(['a', 'ç', 'k\"', ''])}{i}": _random_value(rnd, depth + 1)
            for i in range(rnd.randint(0, 5))}


@pytest.mark.parametrize("budget", [1, 40, 300, VALUE_BUDGET])
def test_a_clipped_value_is_its_pretty_text_cut_at_the_budget_with_the_whole_length(budget):
    """`clip` measures a long value without writing it and writes only what it shows: both
    must come out as if the whole text had been written (nested past the indented levels,
    empty containers, escapes and non-ASCII included)."""
    rnd = random.Random(budget)
    for _ in range(2_000):
        value = _random_value(rnd)
        shown = clip(value, budget)
        assert (shown.text, shown.total) == _cut(value, budget), value


def test_a_long_list_is_shown_up_to_the_budget_and_measured_whole():
    log = [f"step {i}" for i in range(7_500)]
    shown = clip({"log": log, "n": 7_500})
    assert (shown.text, shown.total) == _cut({"log": log, "n": 7_500}, VALUE_BUDGET)
    assert shown.clipped and shown.text.endswith("\n…")
    assert shown.total > 10 * VALUE_BUDGET
