"""Probes for load balancers and orchestrators, and the Prometheus scrape.

- `/healthz`: the process answers (no database touched): restart it if this fails.
- `/readyz`: the database answers, the channel layer answers, and at least one worker of
  runs beat recently (`orchestration.runtime.workers`): send it traffic only if this passes. Each
  check is one round trip; the body says which failed.
- `/metrics`: Prometheus text (`orchestration.runtime.metrics`). Not for the public: allowed
  with `Authorization: Bearer <STEPWISE_METRICS_TOKEN>`, or from an address in
  STEPWISE_METRICS_ALLOW (IPs or networks; loopback by default). The client address is the
  socket's (REMOTE_ADDR), never a forwarded header a client could set.

None needs a session (`login_not_required`), none sets a cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from approvals.models import ReviewRequest
from orchestration.runtime import metrics, queues
from orchestration.runtime.workers import fresh_workers, stale_after_seconds

logger = logging.getLogger(__name__)
_redis_clients: dict[str, Any] = {}


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks = {"database": _check(_database), "channel_layer": _check(_channel_layer),
              "worker": _check(_worker)}
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status=200 if ready else 503)


@login_not_required
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return HttpResponse(
            "metrics: send Authorization: Bearer <STEPWISE_METRICS_TOKEN>, or scrape from an "
            "address listed in STEPWISE_METRICS_ALLOW\n",
            status=403, content_type="text/plain; charset=utf-8",
        )
    body, content_type = metrics.render(ReviewCollector())
    return HttpResponse(body, content_type=content_type)


def _check(probe: Any) -> dict[str, Any]:
    try:
        detail = probe()
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
        logger.warning("readiness check %s failed: %s", probe.__name__, exc)
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    if isinstance(detail, tuple):
        return {"ok": detail[0], "detail": detail[1]}
    return {"ok": True, "detail": detail}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _channel_layer() -> str:
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if "redis" not in backend.lower():
        return "in-memory (this process only)"
    url = settings.REDIS_URL
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        _redis_clients[url] = client
    client.ping()
    return "redis"


def _worker() -> tuple[bool, str]:
    # a worker of runs: one that only sends notifications would leave every decision unmoved
    alive = fresh_workers(queue=queues.RUNS)
    window = stale_after_seconds()
    if alive:
        return True, f"{alive} worker(s) of runs beat in the last {window:g}s"
    return False, (f"no worker of runs (queue {queues.RUNS!r}) beat in the last {window:g}s: "
                   "runs would not move")


def _metrics_allowed(request: HttpRequest) -> bool:
    token = getattr(settings, "STEPWISE_METRICS_TOKEN", "")
    if token:
        sent = request.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for allowed in getattr(settings, "STEPWISE_METRICS_ALLOW", []):
        try:
            if address in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            logger.warning("STEPWISE_METRICS_ALLOW: %r is not an IP address or network",
                           allowed)
    return False


class ReviewCollector(Collector):
    """Open and overdue reviews, read from the database at scrape time (one query)."""

    def collect(self) -> Iterator[Any]:
        reviews = ReviewRequest.objects.filter(status__in=ReviewRequest.OPEN).aggregate(
            open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=timezone.now())),
        )
        yield GaugeMetricFamily("stepwise_reviews_open", "Reviews waiting for a decision",
                                value=reviews["open"])
        yield GaugeMetricFamily("stepwise_reviews_overdue", "Open reviews past their due time",
                                value=reviews["overdue"])
