"""The pure state diff: added / removed / changed per field, list appends as appends."""

from __future__ import annotations

import json
from decimal import Decimal

from approvals.diff import diff_states, to_jsonable


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
