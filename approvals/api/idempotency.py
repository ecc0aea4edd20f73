"""`Idempotency-Key` on POSTs that create work: the first response is stored in the same
transaction as the work, and the same key from the same user within 24 hours replays it.

A concurrent second request with the same key loses on the unique (user, key) constraint:
its transaction, work included, rolls back and it replays the winner's response.
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


def _fingerprint(request: HttpRequest) -> str:
    h = hashlib.sha256()
    h.update(f"{request.method} {request.path}\n".encode())
    h.update(request.body)
    return h.hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> HttpResponse:
    if record.fingerprint != fingerprint:
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
    fingerprint = _fingerprint(request)
    cutoff = timezone.now() - WINDOW
    existing = IdempotencyRecord.objects.filter(user=user, key=key, created_at__gte=cutoff).first()
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.filter(user=user, key=key, created_at__lt=cutoff).delete()
            status, body = work()
            encoded = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
            IdempotencyRecord.objects.create(
                user=user, key=key, fingerprint=fingerprint, status=status, body=encoded
            )
    except IntegrityError:
        winner = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if winner is None:
            raise
        return _replay(winner, fingerprint)
    return _json(status, encoded)
