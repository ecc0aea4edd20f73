"""Graphs, threads, checkpoints and forks through the API."""

from __future__ import annotations

import pytest
from api_helpers import ApiClient, answer_then_fork

from approvals.api.models import IdempotencyRecord
from approvals.models import ReviewRequest
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Run, Thread
from orchestration.runtime.savers import DjangoCheckpointSaver


def history(thread):
    return DjangoCheckpointSaver().list(CheckpointConfig(thread.thread_id))


@pytest.fixture
def ops(make_user) -> ApiClient:
    return ApiClient(make_user("ops"))


def test_graphs_list_each_graph_with_the_json_schema_of_its_input(ops):
    items = {g["name"]: g for g in ops.get("/graphs").json()["items"]}
    schema = items["web_review"]["input_schema"]
    assert schema["properties"]["amount"]["type"] == "number"
    assert schema["additionalProperties"] is False


def test_start_thread_queues_its_first_run(ops):
    response = ops.post("/threads", {"graph": "web_review", "title": "Q3 report",
                                     "input": {"title": "Q3", "amount": 7}, "thread_id": "q3"})
    assert response.status_code == 201
    body = response.json()
    assert body["thread_id"] == "q3"
    assert body["run"]["status"] == "queued" and body["run"]["kind"] == "start"
    assert Thread.objects.get(thread_id="q3").title == "Q3 report"


def test_start_thread_with_input_outside_the_schema_is_422_naming_each_field(ops):
    response = ops.post("/threads", {"graph": "web_review",
                                     "input": {"amount": "lots", "colour": "red"}})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert "input.amount" in errors and "input.colour" in errors  # the unknown field, named
    assert not Thread.objects.exists()


def test_start_thread_of_an_unknown_graph_is_422(ops):
    response = ops.post("/threads", {"graph": "nope", "input": {}})
    assert response.status_code == 422
    assert "graph" in response.json()["errors"]


def test_start_thread_with_an_existing_thread_id_is_409(ops, make_thread):
    make_thread(thread_id="taken")
    response = ops.post("/threads", {"graph": "web_review", "input": {}, "thread_id": "taken"})
    assert response.status_code == 409
    assert Run.objects.count() == 0


def test_same_idempotency_key_returns_the_first_response_and_creates_nothing(ops):
    body = {"graph": "web_review", "input": {"title": "once"}}
    first = ops.post("/threads", body, **{"Idempotency-Key": "order-17"})
    again = ops.post("/threads", body, **{"Idempotency-Key": "order-17"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Thread.objects.count() == 1 and Run.objects.count() == 1


def test_idempotency_key_is_per_user(ops, make_user):
    body = {"graph": "web_review", "input": {}}
    ops.post("/threads", body, **{"Idempotency-Key": "k"})
    ApiClient(make_user("admin")).post("/threads", body, **{"Idempotency-Key": "k"})
    assert Thread.objects.count() == 2


def test_idempotency_key_reused_for_another_request_is_409(ops):
    ops.post("/threads", {"graph": "web_review", "input": {}}, **{"Idempotency-Key": "k"})
    response = ops.post("/threads", {"graph": "web_review", "input": {"title": "other"}},
                        **{"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert Thread.objects.count() == 1


def test_a_refused_request_stores_no_idempotency_record(ops):
    ops.post("/threads", {"graph": "nope", "input": {}}, **{"Idempotency-Key": "k"})
    assert not IdempotencyRecord.objects.exists()


def test_thread_detail_has_head_state_next_nodes_and_open_reviews(ops, start_paused):
    review = start_paused()
    body = ops.get(f"/threads/{review.thread.thread_id}").json()
    assert body["status"] == "waiting"
    assert body["values"]["title"] == "Spring report"
    assert body["next"] == ["review"]
    assert body["head"] == review.checkpoint_id
    assert body["open_reviews"] == [review.pk]


def test_checkpoints_list_the_whole_tree_oldest_first(ops, start_paused):
    review = start_paused()
    items = ops.get(f"/threads/{review.thread.thread_id}/checkpoints").json()["items"]
    assert [c["step"] for c in items] == sorted(c["step"] for c in items)
    assert items[0]["parent_id"] is None
    assert items[-1]["id"] == review.checkpoint_id
    assert items[-1]["parent_id"] == items[-2]["id"]
    one = ops.get(f"/threads/{review.thread.thread_id}/checkpoints/{items[0]['id']}").json()
    assert one["id"] == items[0]["id"] and "values" in one


def test_the_checkpoint_list_shows_each_checkpoint_as_its_own_endpoint_does(
    ops, make_user, start_paused, django_capture_on_commit_callbacks
):
    """The list reads only the columns it shows; each item must still be what the
    checkpoint's own endpoint says, actor included: the reviewer of a decision (from the
    checkpoint's metadata) and the user who forked (who wrote it)."""
    review = start_paused()
    thread_id = review.thread.thread_id
    answer_then_fork(review, ApiClient(make_user("reviewer", username="rhea")), ops,
                     django_capture_on_commit_callbacks)
    items = ops.get(f"/threads/{thread_id}/checkpoints").json()["items"]
    actors = {item["actor"] for item in items}
    assert len(items) > 4 and "rhea" in actors and any(a.startswith("ops") for a in actors)
    for item in items:
        one = ops.get(f"/threads/{thread_id}/checkpoints/{item['id']}").json()
        assert {k: v for k, v in one.items() if k != "values"} == item


def test_unknown_thread_and_checkpoint_are_404(ops, start_paused):
    review = start_paused()
    assert ops.get("/threads/nope").status_code == 404
    assert ops.get(f"/threads/{review.thread.thread_id}/checkpoints/nope").status_code == 404


def test_fork_with_values_queues_a_fork_run_and_supersedes_open_reviews(ops, start_paused):
    review = start_paused()
    response = ops.post(
        f"/threads/{review.thread.thread_id}/checkpoints/{review.checkpoint_id}/fork",
        {"values": {"title": "Renamed"}, "reason": "wrong title"},
    )
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["run"]["id"])
    assert run.kind == "fork" and run.from_checkpoint_id == review.checkpoint_id
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.SUPERSEDED


def test_fork_without_a_reason_is_422_and_starts_nothing(ops, start_paused):
    review = start_paused()
    response = ops.post(
        f"/threads/{review.thread.thread_id}/checkpoints/{review.checkpoint_id}/fork",
        {"values": {"title": "x"}, "reason": "  "},
    )
    assert response.status_code == 422 and "reason" in response.json()["errors"]
    assert not Run.objects.filter(kind="fork").exists()


def test_fork_values_the_graph_refuses_are_422(ops, start_paused):
    review = start_paused()
    response = ops.post(
        f"/threads/{review.thread.thread_id}/checkpoints/{review.checkpoint_id}/fork",
        {"values": {"no_such_field": 1}, "reason": "try"},
    )
    assert response.status_code == 422 and "values.no_such_field" in response.json()["errors"]
    assert not Run.objects.filter(kind="fork").exists()


def test_fork_values_of_the_wrong_type_are_422_on_their_field(ops, start_paused):
    review = start_paused()
    response = ops.post(
        f"/threads/{review.thread.thread_id}/checkpoints/{review.checkpoint_id}/fork",
        {"values": {"amount": "lots", "notes": "not a list"}, "reason": "try"},
    )
    assert response.status_code == 422
    assert {"values.amount", "values.notes"} <= set(response.json()["errors"])
    assert not Run.objects.filter(kind="fork").exists()


def test_fork_values_replace_a_topic_list_exactly(
    ops, start_paused, django_capture_on_commit_callbacks
):
    """An API fork's values are Overwrites: an edited list is held as sent, not appended."""
    review = start_paused()
    thread = review.thread
    drafted = next(t for t in history(thread) if t.checkpoint.values["notes"] == ["drafted"])
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = ops.post(
            f"/threads/{thread.thread_id}/checkpoints/{drafted.checkpoint.id}/fork",
            {"values": {"notes": ["drafted", "added by ops"]}, "reason": "note what ops added"},
        )
    assert response.status_code == 201, response.content
    head = DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread.thread_id))
    assert head.checkpoint.values["notes"] == ["drafted", "added by ops"]


def test_thread_list_pages_with_a_cursor_without_repeats(ops, make_thread):
    for _ in range(5):
        make_thread()
    seen, cursor = [], None
    while True:
        page = ops.get("/threads?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [t["thread_id"] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))


def test_thread_list_filters_by_status(ops, make_thread):
    make_thread(status="done")
    make_thread(status="waiting")
    items = ops.get("/threads?status=done").json()["items"]
    assert [t["status"] for t in items] == ["done"]
    assert ops.get("/threads?status=bogus").status_code == 422


def test_thread_list_searches_ids_and_titles_and_pages_the_matches(ops, make_thread):
    for n in range(3):
        make_thread(thread_id=f"order-a-100{n}", title=f"Order A-100{n}")
    make_thread(thread_id="other", title="Berlin workshop")
    found = ops.get("/threads?q=ORDER%20a-10&limit=2").json()
    assert [t["thread_id"] for t in found["items"]] == ["order-a-1002", "order-a-1001"]
    rest = ops.get(f"/threads?q=ORDER%20a-10&limit=2&cursor={found['next']}").json()
    assert [t["thread_id"] for t in rest["items"]] == ["order-a-1000"] and rest["next"] is None
    assert [t["thread_id"] for t in ops.get("/threads?q=berlin").json()["items"]] == ["other"]
    assert ops.get("/threads?q=zzzz").json()["items"] == []
    assert ops.get("/threads?q=" + "x" * 301).status_code == 422


def test_a_partial_typeddict_state_is_started_with_the_keys_it_requires_only(ops):
    """`total=False` and `NotRequired` keys may be left out; a `Required` one may not. Found
    by hand: a `TypedDict(total=False)` state refused every input missing a key."""
    started = ops.post("/threads", {"graph": "web_partial", "input": {"subject": "Printer"}})
    assert started.status_code == 201, started.content
    missing = ops.post("/threads", {"graph": "web_partial", "input": {"priority": 2}})
    assert missing.status_code == 422
    assert list(missing.json()["errors"]) == ["input.subject"]
    wrong = ops.post("/threads", {"graph": "web_partial",
                                  "input": {"subject": "Printer", "priority": "high"}})
    assert list(wrong.json()["errors"]) == ["input.priority"]
    note = ops.post("/threads", {"graph": "web_note", "input": {"text": "hello"}})
    assert note.status_code == 201, note.content
    assert ops.post("/threads", {"graph": "web_note", "input": {"tag": "x"}}).status_code == 422
    schemas = {g["name"]: g["input_schema"] for g in ops.get("/graphs").json()["items"]}
    assert schemas["web_partial"]["required"] == ["subject"]
    assert schemas["web_note"]["required"] == ["text"]


# -- a graph's input_schema: only the caller's fields, the required ones enforced ----------

CLAIM = {"employee": "Eve", "vendor": "Shady Supplies Ltd", "amount": "75.00",
         "description": "USB cables"}


def test_expense_input_schema_lists_the_claim_fields_only(ops):
    items = {g["name"]: g for g in ops.get("/graphs").json()["items"]}
    schema = items["expense"]["input_schema"]
    assert set(schema["properties"]) == {"employee", "vendor", "amount", "description",
                                         "currency", "expense_id"}
    assert set(schema["required"]) == {"employee", "vendor", "amount"}


@pytest.mark.parametrize("internal", [
    {"compliance_override": True},
    {"decision": "approved", "reviewer": "ceo", "payout_ref": "PAY-FAKE"},
])
def test_a_caller_setting_internal_state_is_refused_and_nothing_runs(ops, internal):
    from demo.models import Payout

    with runs.run_inline():
        response = ops.post("/threads", {"graph": "expense", "thread_id": "bypass",
                                         "input": {**CLAIM, **internal}})
    assert response.status_code == 422, response.content
    body = response.json()
    assert {f"input.{k}" for k in internal} <= set(body["errors"])
    assert "employee" in body["errors"][f"input.{next(iter(internal))}"][0]  # what is allowed
    assert not Thread.objects.exists() and not Run.objects.exists()
    assert not Payout.objects.exists()


def test_a_missing_required_input_field_is_refused(ops):
    response = ops.post("/threads", {"graph": "expense", "input": {"employee": "Ann"}})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"input.vendor", "input.amount"}
    assert errors["input.vendor"] == ["'vendor' is required; give a value."]
    assert not Thread.objects.exists()


def test_the_claim_alone_starts_the_expense(ops):
    response = ops.post("/threads", {"graph": "expense", "input": {**CLAIM, "amount": "250.00"}})
    assert response.status_code == 201, response.content


def test_start_thread_refuses_internal_fields_from_python_callers_too(db):
    with pytest.raises(runs.InvalidRunInput, match="compliance_override"):
        runs.start_thread("expense", {**CLAIM, "compliance_override": True}, user=None)
    assert not Thread.objects.exists()


@pytest.mark.parametrize(("amount", "says"), [
    ("1E+9999", "no more than 12 digits"),
    ("12.345", "no more than 2 decimal places"),
    (12345678901, "no more than 10 digits before the decimal point"),
])
def test_an_expense_amount_the_ledger_cannot_hold_is_refused_where_it_comes_in(
        ops, amount, says):
    """Seen in a user trial: "1E+9999" was taken, and the run failed at the review ("CHECK
    constraint failed"), whose payload had no JSON number for it."""
    with runs.run_inline():
        response = ops.post("/threads", {"graph": "expense",
                                         "input": {**CLAIM, "amount": amount}})
    assert response.status_code == 422, response.content
    assert says in response.json()["errors"]["input.amount"][0]
    assert not Thread.objects.exists() and not Run.objects.exists()


def test_a_fork_is_held_to_the_constraints_declared_on_the_state(
        ops, start_paused, django_capture_on_commit_callbacks):
    """`Annotated[Decimal, Field(max_digits=12, decimal_places=2)]` on the state: a fork's
    edit is checked against it, as the graph's input is (it was checked as a bare Decimal,
    so a fork stored "1E+9999" and its run failed at the review)."""
    from decimal import Decimal

    review = start_paused("expense", {**CLAIM, "vendor": "Rail Co", "amount": Decimal("250.00")})
    url = f"/threads/{review.thread.thread_id}/checkpoints/{review.checkpoint_id}/fork"
    for amount, says in (("1E+9999", "no more than 12 digits"),
                         ("12.345", "no more than 2 decimal places")):
        response = ops.post(url, {"values": {"amount": amount}, "reason": "trial"})
        assert response.status_code == 422, response.content
        assert says in response.json()["errors"]["values.amount"][0]
    assert not Run.objects.filter(kind="fork").exists()
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = ops.post(url, {"values": {"amount": "77.10"}, "reason": "receipt says so"})
    assert response.status_code == 201, response.content
    assert Run.objects.get(pk=response.json()["run"]["id"]).status == "succeeded"
    latest = history(review.thread)[-1].checkpoint.values
    # under the limit; stored as the state declares it (a Decimal, not the JSON text)
    assert latest["amount"] == Decimal("77.10") and latest["decision"] == "approved"


# -- a thread started without a title is titled from its input -----------------------------


def test_a_thread_started_without_a_title_is_titled_from_its_input(ops, client_as):
    """Seen in a trial: a thread started through the API without a title was listed as
    "b7158ba8768d45c8bc67e4665b0a719a"."""
    response = ops.post("/threads", {"graph": "expense", "input": {
        **CLAIM, "description": "Two nights at the\nHotel Adlon"}})
    assert response.status_code == 201, response.content
    thread_id = response.json()["thread_id"]
    assert ops.get(f"/threads/{thread_id}").json()["title"] == "Two nights at the"
    page = client_as("ops").get("/threads/").content.decode()
    assert ">Two nights at the</a>" in page
    # a title the caller gives is kept as given
    given = ops.post("/threads", {"graph": "expense", "title": "Q3 travel",
                                  "input": CLAIM}).json()["thread_id"]
    assert Thread.objects.get(thread_id=given).title == "Q3 travel"
