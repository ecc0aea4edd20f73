"""Everything that changes review state: `check_*` validates, `do_*` changes rows atomically.

Races are settled by conditional updates (`filter(status=...).update(...)` and counting the
rows changed), which hold on SQLite and PostgreSQL alike: the first claim or decision wins and
the second is refused with a message saying who won, so a run is never resumed twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from approvals import agent_inbox, decided, rowread
from approvals.access import OVERRIDE_CLAIM
from approvals.diff import to_jsonable
from approvals.jsonvalues import JSONValueError, check_json_value, check_state_value
from approvals.models import Decision, ReviewRequest
from approvals.selectors import get_checkpoint, is_stalled, review_decision, state_types
from orchestration import START
from orchestration.checkpoint import (
    CheckpointConfig,
    CheckpointTuple,
    InMemoryCheckpointSaver,
    serde,
)
from orchestration.errors import OrchestrationError, SerializationError
from orchestration.pregel.subgraphs import branch_from_child
from orchestration.runtime import rowwrite, runs
from orchestration.runtime.events import EventNaming, publish
from orchestration.runtime.leases import is_orphaned
from orchestration.runtime.models import Checkpoint, Run, Thread
from orchestration.runtime.registry import get_graph
from orchestration.runtime.runs import RunAction
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.titles import first_line
from orchestration.types import Interrupt, Overwrite


class ReviewError(Exception):
    """An action on a review cannot happen; the message says why and what to do instead."""


# ---------------------------------------------------------------- review requests


def review_payload(value: Any, node: str) -> tuple[str, dict[str, Any]]:
    """(kind, payload) for an interrupt's value: a review payload as is, anything else as a
    generic "respond" review that shows the value and asks for a text answer. An Agent Inbox
    request (or list of them) is a review answered with Agent Inbox's responses."""
    agent = agent_inbox.review_payload(value, node)
    if agent is not None:
        return ReviewRequest.Kind.REVIEW, _storable(agent)
    if isinstance(value, Mapping) and value.get("kind") == "review":
        return ReviewRequest.Kind.REVIEW, _storable(to_jsonable(value))
    return ReviewRequest.Kind.RESPOND, _storable({
        "kind": "respond",
        "title": _question(value) or f"{node or 'A node'} asks for an answer",
        "description": "The run paused with the value below. Reply with text to continue.",
        "data": to_jsonable(value),
        "actions": ["respond"],
    })


# Where LangGraph's examples put the question of an `interrupt({...})`.
_QUESTION_KEYS = ("question", "title", "prompt", "message", "task")
_TITLE_MAX = 200


def _question(value: Any) -> str:
    """What an interrupt asks, to title its review in the inbox: the value when it is text
    (`interrupt("Approve the refund?")`), else the first of `_QUESTION_KEYS` that holds text
    (`interrupt({"question": ..., "amount": ...})`); its first line, cut to `_TITLE_MAX`.
    Empty when there is none: the title then names the node."""
    if isinstance(value, Mapping):
        asked = (value.get(key) for key in _QUESTION_KEYS)
        value = next((text for text in asked if isinstance(text, str) and text.strip()), None)
    if not isinstance(value, str):
        return ""
    return first_line(value, _TITLE_MAX)


def _storable(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with each NUL character in its strings replaced by U+FFFD, as an HTML parser
    shows one. A graph's data may carry one from outside (an e-mail, a tool's output), and
    PostgreSQL stores none in text or jsonb: the review was never opened and the run failed
    ("invalid byte sequence for encoding UTF8: 0x00"). Looked for in the JSON text first:
    almost no payload has one, and encoding it costs less than walking it."""
    if "\\u0000" not in json.dumps(payload):
        return payload
    return _without_nul(payload)  # type: ignore[no-any-return]


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def review_due_at(payload: Mapping[str, Any], graph_name: str) -> Any:
    """When a new review is due: `"due_in"` seconds in its payload, else the graph's default
    (settings.STEPWISE_REVIEW_DUE_SECONDS), else never."""
    from django.conf import settings

    due_in = payload.get("due_in")
    if due_in is None:
        due_in = getattr(settings, "STEPWISE_REVIEW_DUE_SECONDS", {}).get(graph_name)
    # `not > 0` also refuses NaN, which compares false with everything
    if isinstance(due_in, bool) or not isinstance(due_in, (int, float)) or not due_in > 0:
        return None
    try:
        return timezone.now() + dt.timedelta(seconds=float(due_in))
    except OverflowError:  # later than any date (`"due_in": 1e12`): never due, as with none
        return None


def paused_checkpoint_id(thread: Thread) -> str:
    if thread.head_checkpoint_id:
        return thread.head_checkpoint_id
    latest = (
        Checkpoint.objects.filter(thread=thread, checkpoint_ns="")
        .order_by("-checkpoint_id")
        .values_list("checkpoint_id", flat=True)
        .first()
    )
    return latest or ""


def do_open_reviews(run: Run, interrupts: Sequence[Interrupt], *,
                    thread: Thread | None = None) -> list[ReviewRequest]:
    """One open review per interrupt of a paused run (idempotent: a re-sent signal or a
    resume that re-asks an interrupt reuses the open row); open reviews of the thread that
    are no longer asked are superseded.

    What `update_or_create` per interrupt and one supersede UPDATE did, in fewer round trips
    (a worker opens a review on every pause): the thread's open reviews are read and locked
    at once, an asked one is updated as `update_or_create` updates it, a new one is created
    in a savepoint that settles a race on the one-open-per-interrupt constraint as
    `get_or_create` does, and the supersede UPDATE runs only when an open review is no longer
    asked. No savepoint of its own: an error here ends the run's transaction, as before.

    `thread`: the run's thread as its row now is (its head the paused checkpoint), when the
    caller has it; else it is read."""
    if thread is None or thread.pk != run.thread_id:
        thread = _thread(run.thread_id)
    checkpoint_id = paused_checkpoint_id(thread)
    reviews: list[ReviewRequest] = []
    with transaction.atomic(savepoint=False):
        open_now = {review.interrupt_id: review for review in _lock_open_reviews(thread)}
        for intr in interrupts:
            kind, payload = review_payload(intr.value, intr.node)
            fields = {
                "run": run,
                "node": intr.node,
                "checkpoint_id": checkpoint_id,
                "kind": kind,
                "title": str(payload.get("title") or "")[:300],
                "payload": payload,
                "assignee": str(payload.get("assignee") or "")[:150],
            }
            review = open_now.get(intr.id)
            if review is not None:
                _update_review(review, fields)
            else:
                review, _ = _create_review(thread, run, intr.id, fields, {
                    **fields, "status": ReviewRequest.Status.PENDING,
                    "due_at": review_due_at(payload, thread.graph_name)})
            reviews.append(review)
        asked = [i.id for i in interrupts]
        if set(open_now) - set(asked):
            ReviewRequest.objects.filter(thread=thread, status__in=ReviewRequest.OPEN).exclude(
                interrupt_id__in=asked
            ).update(status=ReviewRequest.Status.SUPERSEDED, closed_at=timezone.now())
    return reviews


# A worker opens reviews on every pause: the thread and its open reviews are read by
# statements fixed once (approvals.rowread builds the ORM's instances), not querysets
# compiled each time.
_THREAD = (rowread.Join(Thread, "t"),)
_REVIEW = (rowread.Join(ReviewRequest, "r"),)


@functools.cache
def _thread_sql() -> str:
    table = connection.ops.quote_name(Thread._meta.db_table)
    return f"SELECT {rowread.select(_THREAD)} FROM {table} t WHERE t.id = %s"  # noqa: S608


@functools.cache
def _open_reviews_sql(lock: bool) -> str:
    table = connection.ops.quote_name(ReviewRequest._meta.db_table)
    return (f"SELECT {rowread.select(_REVIEW)} FROM {table} r "  # noqa: S608
            "WHERE r.thread_id = %s AND r.status IN (%s, %s) ORDER BY r.id"
            + (" FOR UPDATE" if lock else ""))


def _thread(pk: int) -> Thread:
    """`Thread.objects.get(pk=pk)`."""
    with connection.cursor() as cursor:
        cursor.execute(_thread_sql(), [pk])
        row = cursor.fetchone()
    if row is None:
        raise Thread.DoesNotExist("Thread matching query does not exist.")
    return rowread.build(_THREAD, row)  # type: ignore[return-value]


def _lock_open_reviews(thread: Thread) -> list[ReviewRequest]:
    """`ReviewRequest.objects.select_for_update().filter(thread=thread,
    status__in=ReviewRequest.OPEN).order_by("pk")` (the lock where the database has one)."""
    with connection.cursor() as cursor:
        cursor.execute(_open_reviews_sql(connection.features.has_select_for_update),
                       [thread.pk, *(str(status) for status in ReviewRequest.OPEN)])
        rows = cursor.fetchall()
    return [rowread.build(_REVIEW, row) for row in rows]  # type: ignore[misc]


# The fields `update_or_create` saves besides its defaults: those whose `pre_save` may
# change them (date and time fields), written back with the values read under the lock.
_PRE_SAVE_FIELDS = frozenset(
    name
    for field in ReviewRequest._meta.local_concrete_fields
    if not (field in ReviewRequest._meta.pk_fields
            or field.__class__.pre_save is models.Field.pre_save)
    for name in {field.name, field.attname}
)


def _update_review(review: ReviewRequest, fields: Mapping[str, Any]) -> None:
    """`update_or_create`'s update of the open row it found and locked."""
    for name, value in fields.items():
        setattr(review, name, value)
    review.save(update_fields=set(fields) | _PRE_SAVE_FIELDS)


def _create_review(thread: Thread, run: Run, interrupt_id: str, fields: Mapping[str, Any],
                   create_fields: Mapping[str, Any]) -> tuple[ReviewRequest, bool]:
    """`get_or_create`'s creation: in a savepoint, and if another transaction opened the
    same interrupt meanwhile (the unique constraint), that row updated instead; a created
    review's `review_requested` event recorded. On PostgreSQL the insert itself leaves out a
    row the constraint refuses (`ON CONFLICT DO NOTHING`, by a statement fixed once) and
    writes the event too: no savepoint, three round trips fewer per review."""
    if connection.vendor == "postgresql":
        review = ReviewRequest(thread=thread, interrupt_id=interrupt_id, **create_fields)
        requested = EventNaming("review_requested", thread=thread, run=run, key="review")
        if rowwrite.insert(review, skip_conflict=True, along=requested):
            requested.announce()  # after the review's post_save receivers, as `publish` was
            return review, True
    else:
        try:
            with transaction.atomic():
                review = ReviewRequest.objects.create(
                    thread=thread, interrupt_id=interrupt_id, **create_fields)
        except IntegrityError:
            pass
        else:
            publish("review_requested", thread=thread, run=run, data={"review": review.pk})
            return review, True
    review, created = ReviewRequest.objects.update_or_create(
        thread=thread, interrupt_id=interrupt_id, status__in=ReviewRequest.OPEN,
        defaults=fields, create_defaults=create_fields)
    if created:
        publish("review_requested", thread=thread, run=run, data={"review": review.pk})
    return review, created


def do_supersede_open_reviews(thread: Thread) -> int:
    """A new branch makes the open reviews of the old head unanswerable."""
    return ReviewRequest.objects.filter(thread=thread, status__in=ReviewRequest.OPEN).update(
        status=ReviewRequest.Status.SUPERSEDED, closed_at=timezone.now()
    )


# ---------------------------------------------------------------- claims


def do_claim(user: AbstractBaseUser, review: ReviewRequest) -> None:
    changed = ReviewRequest.objects.filter(
        pk=review.pk, status=ReviewRequest.Status.PENDING, claimed_by__isnull=True
    ).update(status=ReviewRequest.Status.CLAIMED, claimed_by=user, claimed_at=timezone.now())
    if changed != 1:
        review.refresh_from_db()
        if review.claimed_by_id == user.pk and review.status == ReviewRequest.Status.CLAIMED:
            return  # a double click: already ours
        raise ReviewError(_not_open_message(review, "claim"))
    publish("review_claimed", thread=review.thread, actor=user, data={"review": review.pk})


def do_unclaim(user: AbstractBaseUser, review: ReviewRequest) -> None:
    mine = Q(claimed_by=user) if not user.has_perm(OVERRIDE_CLAIM) else Q()
    changed = (
        ReviewRequest.objects.filter(mine, pk=review.pk, status=ReviewRequest.Status.CLAIMED)
        .update(status=ReviewRequest.Status.PENDING, claimed_by=None, claimed_at=None)
    )
    if changed != 1:
        review.refresh_from_db()
        raise ReviewError(_not_open_message(review, "release"))
    publish("review_unclaimed", thread=review.thread, actor=user, data={"review": review.pk})


def _not_open_message(review: ReviewRequest, verb: str) -> str:
    if review.status == ReviewRequest.Status.DECIDED:
        # a fixed statement (the decision with its author), not a queryset compiled for
        # every lost race: ~40% of decisions under load end here
        decision = review_decision(review.pk)
        who = decision.decided_by.get_username() if decision and decision.decided_by else "someone"
        when = timezone.localtime(decision.decided_at).strftime("%H:%M:%S") if decision else ""
        action = decision.get_action_display().lower() if decision else "decided"
        # a claim or a release resumes nothing: saying so of them read as if it could have
        outcome = ("the run was not resumed again" if verb == "decision"
                   else "a decided review is no longer claimed by anyone")
        return (
            f"Review #{review.pk} was already decided by {who} at {when} ({action}). "
            f"Your {verb} was not applied: {outcome}."
        )
    if review.status == ReviewRequest.Status.CLAIMED and review.claimed_by is not None:
        return (
            f"Review #{review.pk} is claimed by {review.claimed_by.get_username()}. "
            "Ask them to release it, or pick another review."
        )
    if review.status in (ReviewRequest.Status.SUPERSEDED, ReviewRequest.Status.CANCELLED):
        return (
            f"Review #{review.pk} is {review.get_status_display().lower()}: the thread moved on "
            "(a fork or a cancelled run). Open the thread to see its current state."
        )
    return (
        f"Review #{review.pk} is {review.get_status_display().lower()}: your {verb} was not "
        "applied. Reload the review to see where it stands."
    )


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class DecisionInput:
    action: str
    comment: str = ""
    values: Mapping[str, Any] | None = None
    text: str = ""
    # the exact resume value, when the review's format dictates it (Agent Inbox responses)
    answer: Any = None


def check_decision(review: ReviewRequest, d: DecisionInput) -> None:
    if d.action not in review.actions:
        allowed = ", ".join(review.actions)
        raise ReviewError(
            f"'{d.action}' is not allowed on review #{review.pk} (allowed: {allowed})."
        )
    if d.action == Decision.Action.REJECT and not d.comment.strip():
        raise ReviewError("A rejection needs a comment saying why.")
    if d.action == Decision.Action.RESPOND and not d.text.strip():
        raise ReviewError("A response needs some text.")
    try:
        check_json_value(dict(d.values or {}))
    except JSONValueError as exc:
        raise ReviewError(f"The edited values were not accepted: {exc}") from None


def do_decide(
    user: AbstractBaseUser, review: ReviewRequest, d: DecisionInput
) -> Decision:
    """Record the decision and resume the thread with it, all or nothing."""
    check_decision(review, d)
    if d.answer is None and agent_inbox.is_agent_review(review.payload):
        try:
            d = replace(d, answer=agent_inbox.answer_for_action(review.payload, d.action,
                                                                 d.values, d.text))
        except agent_inbox.AnswerError as exc:
            raise ReviewError(f"Review #{review.pk}: {exc}") from None
    if review.status not in ReviewRequest.OPEN:
        # Decided, cancelled or superseded when this request read it: no status leads back
        # to open, so the conditional update could only lose. Refused as it would refuse,
        # without its transaction and the re-read (four round trips of a lost race, which is
        # most often this: the review was decided between the page and the POST).
        raise ReviewError(_not_open_message(review, "decision"))
    try:
        with transaction.atomic():
            if not _close_for_decision(user, review):
                raise _Refused
            decision = _decision(user, review, d)
            run = _resume(user, review, decision)
            # written after the run it caused is queued (the answer and the run's reason
            # need only the unsaved row): the immutable row names its run from the start
            decided.record_decided(user, review, decision, run, reason=d.comment or d.text,
                                   data={"review": review.pk, "action": d.action})
    except _Refused:
        review.refresh_from_db()
        raise ReviewError(_not_open_message(review, "decision")) from None
    except IntegrityError:  # the unique decision-per-review constraint: someone was faster
        review.refresh_from_db()
        raise ReviewError(_not_open_message(review, "decision")) from None
    return decision


class _Refused(Exception):
    pass


@functools.cache
def _close_sql(vendor: str, any_claim: bool) -> str:
    q = connection.ops.quote_name
    open_ = ", ".join(f"'{str(s)}'" for s in ReviewRequest.OPEN)  # the model's own constants
    mine = "" if any_claim else " AND (claimed_by_id IS NULL OR claimed_by_id = %s)"
    return (f"UPDATE {q(ReviewRequest._meta.db_table)} SET status = "  # noqa: S608 - model names
            f"'{ReviewRequest.Status.DECIDED.value}', closed_at = %s "
            f"WHERE id = %s AND status IN ({open_}){mine}")


def _close_for_decision(user: AbstractBaseUser, review: ReviewRequest) -> bool:
    """Open -> decided, if no one else claimed it (anyone's claim with OVERRIDE_CLAIM); True
    if this request won. As `ReviewRequest.objects.filter(claimable, pk=..., status__in=OPEN)
    .update(status=DECIDED, closed_at=now)`, from a statement fixed once per process (its
    compilation was about a CPU-ms of every decision)."""
    any_claim = user.has_perm(OVERRIDE_CLAIM)
    closed_at = ReviewRequest._meta.get_field("closed_at").get_db_prep_save(
        timezone.now(), connection)
    params = [closed_at, review.pk] + ([] if any_claim else [user.pk])
    with connection.cursor() as cursor:
        cursor.execute(_close_sql(connection.vendor, any_claim), params)
        return cursor.rowcount == 1


def _decision(user: AbstractBaseUser, review: ReviewRequest, d: DecisionInput) -> Decision:
    """The decision's row, not saved yet."""
    values = dict(d.values or {}) if d.action == Decision.Action.EDIT else {}
    if d.answer is not None:
        values = {agent_inbox.RESPONSE_KEY: d.answer}
    return Decision(
        review=review,
        decided_by=user,
        action=d.action,
        comment=d.comment.strip(),
        values=to_jsonable(values),
        text=d.text.strip() if d.action == Decision.Action.RESPOND else "",
    )


def _record(user: AbstractBaseUser, review: ReviewRequest, d: DecisionInput) -> Decision:
    decision = _decision(user, review, d)
    decision.save(force_insert=True)
    return decision


def _resume(user: AbstractBaseUser, review: ReviewRequest, decision: Decision) -> Run:
    """Hand the answer to the run that will carry it: a new resume run, or the thread's
    queued or running one (parallel reviews of one thread never block each other)."""
    answer = decision.answer(user.get_username())
    reason = f"{decision.get_action_display()} review #{review.pk}"
    if decision.comment:
        reason += f": {decision.comment}"
    try:
        # savepoint=False: do_decide's atomic block is ours; any error here leaves it (as
        # ReviewError), and it rolls back the decision and the run together
        return runs.answer_thread(
            review.thread, {review.interrupt_id: answer}, user=user, reason=reason,
            savepoint=False,
        )
    except runs.RunError as exc:
        raise ReviewError(f"The decision was not recorded: {exc}") from exc


def do_redecide(
    user: AbstractBaseUser, review: ReviewRequest, d: DecisionInput
) -> Decision:
    """Answer a decided review differently on a new branch from the checkpoint it was asked at.

    The original branch and its decision are never changed. A new review row (already decided,
    `reanswer_of` the original) records the new answer, and a fork run re-runs the node from
    that checkpoint. A fork asks its interrupts anew (new ids), so the answer is delivered when
    the fork pauses there: `deliver_reanswers` resumes it (in the `run_paused` receiver).
    """
    if review.status != ReviewRequest.Status.DECIDED or not review.checkpoint_id:
        raise ReviewError(
            f"Review #{review.pk} is {review.status}; only a decided review can be decided "
            "differently (decide an open one directly)."
        )
    check_decision(review, d)
    reason = f"{Decision.Action(d.action).label} review #{review.pk} differently"
    if d.comment.strip():
        reason += f": {d.comment.strip()}"
    try:
        with transaction.atomic():
            do_supersede_open_reviews(review.thread)
            run = runs.fork_thread(
                review.thread, review.checkpoint_id, None, user=user, reason=reason
            )
            again = ReviewRequest.objects.create(
                thread=review.thread,
                run=run,
                interrupt_id=review.interrupt_id,
                node=review.node,
                checkpoint_id=review.checkpoint_id,
                kind=review.kind,
                title=review.title,
                payload=review.payload,
                status=ReviewRequest.Status.DECIDED,
                assignee=review.assignee,
                reanswer_of=review,
                closed_at=timezone.now(),
            )
            decision = _record(user, again, d)
            publish(
                "review_redecided",
                thread=review.thread,
                run=run,
                actor=user,
                reason=reason,
                data={"review": again.pk, "original": review.pk, "action": d.action},
            )
    except runs.RunError as exc:
        raise ReviewError(f"The new decision was not recorded: {exc}") from exc
    return decision


def deliver_reanswers(run: Run, interrupts: Sequence[Interrupt]) -> bool:
    """Answer a fork run's re-asked interrupts with the decisions recorded for it. True if it
    resumed the thread (interrupts left unanswered are asked again by that resumed run)."""
    waiting = list(
        ReviewRequest.objects.filter(
            run=run, reanswer_of__isnull=False, status=ReviewRequest.Status.DECIDED,
            decision__resumed_run__isnull=True,
        ).select_related("decision", "decision__decided_by", "thread")
    )
    if not waiting:
        return False
    remaining = list(interrupts)
    answers: dict[str, Any] = {}
    matched: list[tuple[ReviewRequest, Interrupt]] = []
    for review in waiting:
        intr = next((i for i in remaining if i.node == review.node), None)
        if intr is None:
            continue
        remaining.remove(intr)
        decision = review.decision
        who = decision.decided_by.get_username() if decision.decided_by else ""
        answers[intr.id] = decision.answer(who)
        matched.append((review, intr))
    if not matched:
        return False
    thread = matched[0][0].thread
    checkpoint_id = paused_checkpoint_id(Thread.objects.get(pk=thread.pk))
    for review, intr in matched:
        ReviewRequest.objects.filter(pk=review.pk).update(
            interrupt_id=intr.id, checkpoint_id=checkpoint_id
        )
    first = matched[0][0]
    resumed = runs.answer_thread(
        thread, answers, user=first.decision.decided_by,
        reason=f"deliver the new decision on review #{first.reanswer_of_id}",
    )
    for review, _ in matched:
        Decision.objects.filter(pk=review.decision.pk).update(resumed_run=resumed)
    return True


# ---------------------------------------------------------------- forks and runs


def state_value_errors(thread: Thread, values: Mapping[str, Any]) -> dict[str, str]:
    """Field -> why its value does not fit the graph's state schema (unknown field, or not
    of the declared type), for every edit of past state: the fork form, the API, `do_fork`."""
    return declared_values(thread, values)[1]


def declared_values(
    thread: Thread, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`values` (JSON, from a form or the API) as the state declares them, and field -> why
    for each one that does not fit (`state_value_errors`), in one pass over the types.

    "80.00" for a `Decimal` field becomes Decimal("80.00"), an object for a dataclass field
    that dataclass, as the graph's own nodes would have written them. The engine's
    `update_state` stores what it is given, as LangGraph's does, so a fork that applied the
    JSON left a `str` where the state says `Decimal`, and a later node's arithmetic on it went
    wrong. A value the checkpoint serializer cannot store once converted (the run's input
    holds it) stays as sent, which the graph then takes as it took the JSON before."""
    types = state_types(thread)
    converted = dict(values)
    errors: dict[str, str] = {}
    for name, value in values.items():
        if types and name not in types:
            errors[name] = f"{name!r} is not a field of this graph's state: {sorted(types)}"
            continue
        if name not in types:
            continue
        try:
            as_type = check_state_value(types[name], name, value)
        except JSONValueError as exc:
            errors[name] = str(exc)
            continue
        try:
            serde.dumps(as_type, field=name)
        except SerializationError:
            continue
        converted[name] = as_type
    return converted, errors


class ForkNeedsNode(ReviewError):
    """A fork's edits at a checkpoint several nodes wrote in one step, where no choice of node
    keeps the checkpoint's next steps: the person says which node's output they stand for."""

    def __init__(self, message: str, writers: Sequence[str]) -> None:
        super().__init__(message)
        self.writers = tuple(writers)


def check_fork_values(
    thread: Thread, tup: CheckpointTuple, values: Mapping[str, Any], as_node: str | None
) -> str | None:
    """Refuse `values` (Overwrites, already checked against the state's types by
    `declared_values`) that the graph would refuse, before the fork is queued: the engine's
    own `update_state` on a scratch copy in memory, so a bad value is refused here instead
    of failing the run later.

    Returns the node the edits are applied as (None: the engine infers it). The engine, as
    LangGraph does, will not guess when several nodes wrote the checkpoint in one step (a
    fan-out's branches); a person forking from such a step means "these values, then the same
    next steps", so the first of those nodes after which the branch takes the checkpoint's own
    next steps is chosen. When none does, `ForkNeedsNode` asks which one."""
    if not values:
        return as_node
    try:
        graph = get_graph(thread.graph_name)
    except Exception as exc:  # noqa: BLE001  an unregistered graph cannot be forked at all
        raise ReviewError(f"Thread {thread.thread_id} cannot be forked: {exc}") from exc
    writers = list(tup.metadata.writes)
    if as_node is not None and as_node != START and as_node not in graph.spec.nodes:
        raise ForkNeedsNode(
            f"as_node {as_node!r} is not a node of graph {thread.graph_name!r}; name one of "
            f"{', '.join(sorted(graph.spec.nodes))}, or leave it out to let Stepwise choose.",
            writers,
        )
    if as_node is not None or len(writers) < 2:
        _next_after_update(graph, thread, tup, values, as_node)
        return as_node
    keeps = sorted(tup.checkpoint.next)
    outcomes: dict[str, tuple[str, ...]] = {}
    for writer in writers:
        outcomes[writer] = _next_after_update(graph, thread, tup, values, writer)
        if sorted(outcomes[writer]) == keeps:
            return writer
    choices = "; ".join(
        f"as {writer}: {', '.join(nxt) or 'the end'}" for writer, nxt in outcomes.items()
    )
    raise ForkNeedsNode(
        f"Checkpoint {tup.checkpoint.id} was written by {', '.join(writers)} in one step, and "
        f"with these edits no single one of them leads to its next steps "
        f"({', '.join(tup.checkpoint.next) or 'the end'}). Say which node's output the edits "
        f"stand for (as_node); the branch continues from that node's edges ({choices}).",
        writers,
    )


def _next_after_update(
    graph: Any, thread: Thread, tup: CheckpointTuple, values: Mapping[str, Any],
    as_node: str | None,
) -> tuple[str, ...]:
    """The next steps of the checkpoint `update_state(values, as_node)` writes after `tup`,
    on a scratch copy in memory; what the engine refuses is a ReviewError."""
    scratch = InMemoryCheckpointSaver()
    at = scratch.put(CheckpointConfig(thread.thread_id), tup.checkpoint, tup.metadata)
    try:
        written = graph.with_checkpoint_saver(scratch).update_state(
            at, dict(values), as_node=as_node
        )
    except (OrchestrationError, TypeError, ValueError) as exc:
        raise ReviewError(f"The graph refuses these values: {exc}") from exc
    after = scratch.get_tuple(written)
    return tuple(after.checkpoint.next) if after is not None else ()


def do_fork(
    user: AbstractBaseUser,
    thread: Thread,
    checkpoint_id: str,
    values: Mapping[str, Any] | None,
    reason: str,
    as_node: str | None = None,
) -> Run:
    """Branch `thread` at `checkpoint_id` with the fields a person edited. Each edited field
    is an `Overwrite`: the branch holds exactly the value that was shown and edited, not the
    edit passed through the field's reducer (a topic list would repeat its items)."""
    if not reason.strip():
        raise ReviewError("A fork needs a reason (it is recorded in the thread's history).")
    tup = get_checkpoint(thread, checkpoint_id)
    if tup is None:
        raise ReviewError(f"Thread {thread.thread_id} has no checkpoint {checkpoint_id}.")
    converted, problems = declared_values(thread, values or {})
    if problems:
        raise ReviewError("The graph refuses these values: " + " ".join(problems.values()))
    edits = {name: Overwrite(value) for name, value in converted.items()}
    as_node = check_fork_values(thread, tup, edits, as_node)
    try:
        with transaction.atomic():
            do_supersede_open_reviews(thread)
            return runs.fork_thread(
                thread, checkpoint_id, edits or None,
                user=user, reason=reason.strip(), as_node=as_node,
            )
    except runs.RunError as exc:
        raise ReviewError(f"The fork was not started: {exc}") from exc


def do_fork_subgraph(
    user: AbstractBaseUser, thread: Thread, namespace: str, checkpoint_id: str, reason: str
) -> Run:
    """Branch `thread` from checkpoint `checkpoint_id` of subgraph `namespace`: the subgraph
    continues from there (asking again any review it waited at) in a new branch."""

    if not reason.strip():
        raise ReviewError("A fork needs a reason (it is recorded in the thread's history).")
    if not namespace or not checkpoint_id:
        raise ReviewError("Pick a subgraph checkpoint to fork from.")
    extra = {"user_id": user.pk, "user": user.get_username(), "reason": reason.strip()}
    try:
        with transaction.atomic():
            do_supersede_open_reviews(thread)
            head = branch_from_child(
                DjangoCheckpointSaver(),
                CheckpointConfig(thread.thread_id, checkpoint_id, checkpoint_ns=namespace),
                extra,
            )
            assert head.checkpoint_id is not None
            return runs.fork_thread(thread, head.checkpoint_id, None, user=user, reason=reason)
    except runs.RunError as exc:
        raise ReviewError(f"The fork was not started: {exc}") from exc
    except OrchestrationError as exc:
        raise ReviewError(f"The fork was not started: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RunActionResult:
    run: Run
    ok: bool
    message: str


def check_run_action(run: Run, action: str) -> str | None:
    """None if `action` applies to `run`, else why not. A queued run that no task will ever
    pick up (its task was lost) can be resumed or retried: both queue it again."""
    lost = run.status == Run.Status.QUEUED and is_orphaned(run)
    if action == RunAction.RESUME and not (is_stalled(run) or lost):
        return f"run {run.pk} is {run.status}, not stalled: nothing to resume{_instead(run)}"
    if action == RunAction.RETRY and not (run.status == Run.Status.FAILED or lost):
        return f"run {run.pk} is {run.status}; only failed runs can be retried{_instead(run)}"
    if action == RunAction.CANCEL and run.status in Run.FINISHED:
        return f"run {run.pk} already {run.status}"
    if action not in RunAction.values:
        return f"unknown action {action!r} (one of {', '.join(RunAction.values)})"
    return None


def has_action(run: Run) -> bool:
    """Whether some ops action can apply to `run` (`check_run_action`, by status alone):
    cancel while it is not finished, retry once it failed. A succeeded, cancelled or answered
    run takes none."""
    return run.status == Run.Status.FAILED or run.status not in Run.FINISHED


def fix_for(run: Run) -> str | None:
    """The action that fixes `run` by its status alone, no query: retry a failed run, resume a
    stalled one (what the ops console starts at, and offers for runs an action skipped).
    Cancel is never one: it is not a fix. A lost queued run takes either, so no action
    skips it."""
    if run.status == Run.Status.FAILED:
        return RunAction.RETRY
    return RunAction.RESUME if is_stalled(run) else None


def _instead(run: Run) -> str:
    fix = fix_for(run)
    return f"; {fix} it instead" if fix else ""


def do_run_action(user: AbstractBaseUser, run: Run, action: str, reason: str) -> Run:
    if not reason.strip():
        raise ReviewError("Every ops action needs a reason; it is recorded with your name.")
    problem = check_run_action(run, action)
    if problem:
        raise ReviewError(problem[0].upper() + problem[1:] + ".")
    reason = reason.strip()
    try:
        with transaction.atomic():
            if action == RunAction.RESUME:
                return runs.resume_stalled(run, user=user, reason=reason)
            if action == RunAction.RETRY:
                return runs.retry_run(run, user=user, reason=reason)
            cancelled = runs.cancel_run(run, user=user, reason=reason)
            ReviewRequest.objects.filter(
                thread_id=run.thread_id, status__in=ReviewRequest.OPEN
            ).update(status=ReviewRequest.Status.CANCELLED, closed_at=timezone.now())
            return cancelled
    except runs.RunError as exc:
        raise ReviewError(f"Run {run.pk}: {exc}") from exc


def do_bulk_run_action(
    user: AbstractBaseUser, run_list: Iterable[Run], action: str, reason: str
) -> list[RunActionResult]:
    """Each run on its own: one refusal does not undo the others."""
    results = []
    for run in run_list:
        try:
            new = do_run_action(user, run, action, reason)
            results.append(RunActionResult(new, True, f"run {run.pk}: {action} done"))
        except ReviewError as exc:
            results.append(RunActionResult(run, False, str(exc)))
    return results
