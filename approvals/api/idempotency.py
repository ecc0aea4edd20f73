"""`Idempotency-Key` on POSTs that create work: the first response is stored in the same
transaction as the work, and the same key from the same user within 24 hours replays it.

The key is reserved before the work: the transaction's first write inserts the record (its
answer filled in when the work is done), so a concurrent request with the same key waits on
the unique (user, key) constraint until the first one ends (PostgreSQL: the index entry's
lock; SQLite: the one write lock, taken by `BEGIN IMMEDIATE`), and then
- replays the first one's response if it committed (IntegrityError on the insert), or
- does the work itself if the first one was refused (its transaction, the reservation
  included, rolled back: nothing was written, so the retry is decided afresh).
It never does the work beside the first one, which had answered a duplicate with the 409 of
the work done ("already decided") instead of the first response.

The request is identified by method, path and the body's JSON in canonical form (keys
sorted, no whitespace), so the same JSON written another way is the same request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from approvals.api.models import IdempotencyRecord
from approvals.api.problems import ApiProblem

WINDOW = dt.timedelta(hours=24)
MAX_KEY = 200


def _json(status: int, body: Any, replayed: bool = False) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, cls=DjangoJSONEncoder), status=status, content_type="application/json"
    )
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _fingerprints(request: HttpRequest) -> tuple[str, ...]:
    """(the request's fingerprint, and the raw body's one that records written before
    canonical fingerprints hold, for retries across that upgrade)."""
    head = f"{request.method} {request.path}\n".encode()
    raw = hashlib.sha256(head + request.body).hexdigest()
    try:
        # the body parsed already (the endpoint's parser refused anything else)
        parsed = json.loads(request.body)
    except ValueError:
        return (raw,)
    canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(head + canonical.encode()).hexdigest(), raw


def _replay(record: IdempotencyRecord, fingerprints: tuple[str, ...]) -> HttpResponse:
    if record.fingerprint not in fingerprints:
        raise ApiProblem(
            409,
            f"Idempotency-Key {record.key!r} was already used for a different request "
            "within 24 hours; use a new key for new work.",
        )
    return _json(record.status, record.body, replayed=True)


def run_once(
    request: HttpRequest, user: Any, work: Callable[[], tuple[int, dict[str, Any]]],
    *, work_is_atomic: bool = False,
) -> HttpResponse:
    """Do `work` (returning status and JSON body) in one transaction, once per key.

    `work_is_atomic`: `work` writes only through one action that is a transaction of its own
    (all or nothing, e.g. `do_decide`). Without a key there is then nothing else to put in
    the transaction, so no block is opened around it: the action's block is the outermost
    one, and the SAVEPOINT and RELEASE it sent inside ours (two round trips of every API
    decision) are not sent. With a key the record still shares the work's transaction."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        if work_is_atomic:
            status, body = work()
        else:
            with transaction.atomic():
                status, body = work()
        return _json(status, body)
    if not key.strip() or len(key) > MAX_KEY:
        raise ApiProblem(400, f"Idempotency-Key must be 1 to {MAX_KEY} characters.")
    fingerprints = _fingerprints(request)
    cutoff = timezone.now() - WINDOW
    existing = IdempotencyRecord.objects.filter(user=user, key=key, created_at__gte=cutoff).first()
    if existing is not None:
        return _replay(existing, fingerprints)
    reserved = False
    try:
        with transaction.atomic():
            # the first write: the key's reservation (see the module's docstring)
            IdempotencyRecord.objects.filter(user=user, key=key, created_at__lt=cutoff).delete()
            record = IdempotencyRecord.objects.create(
                user=user, key=key, fingerprint=fingerprints[0], status=0, body={}
            )
            reserved = True
            status, body = work()
            encoded = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
            IdempotencyRecord.objects.filter(pk=record.pk).update(status=status, body=encoded)
    except IntegrityError:
        if reserved:  # the work's own (the key was ours): not a duplicate
            raise
        winner = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if winner is None:  # pragma: no cover - the winner's record is committed
            raise
        return _replay(winner, fingerprints)
    return _json(status, encoded)
