"""Every view: each role allowed or refused; anonymous users are sent to the login page.

The matrix must have a row for every route of the site (walked from the URL resolver), so a
new route without one fails `test_every_route_has_a_row_in_the_matrix`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

ALL = ("viewer", "reviewer", "ops", "admin")
DECIDERS = ("reviewer", "admin")
OPERATORS = ("ops", "admin")
OPS_VIEWERS = ("viewer", "ops", "admin")
# deciding a review differently forks the thread: it needs both permissions
REDECIDERS = ("admin",)
FORKERS = ("ops", "admin")
STARTERS = ("ops", "admin")
# a logged-in user's own settings: open to every account, with a role or without one
EVERYONE = (*ALL, None)

# (name, method, url kwargs from the objects, POST data, roles allowed)
VIEWS: list[tuple[str, str, str, dict[str, Any], tuple[str | None, ...]]] = [
    ("inbox", "get", "", {}, ALL),
    ("threads", "get", "", {}, ALL),
    ("thread", "get", "thread", {}, ALL),
    ("thread-live", "get", "thread", {}, ALL),
    ("thread-tree", "get", "thread", {"unfold": "a..b"}, ALL),
    ("checkpoint-compare", "get", "checkpoint", {"q": "1"}, ALL),
    ("checkpoint", "get", "checkpoint", {}, ALL),
    ("checkpoint-state", "get", "checkpoint", {}, ALL),
    ("checkpoint-fork", "get", "checkpoint", {}, FORKERS),
    ("checkpoint-fork", "post", "checkpoint", {"reason": "try"}, FORKERS),
    # a subgraph checkpoint that does not exist: forkers get the error message, not a 403
    ("subgraph-fork", "post", "thread", {"namespace": "x", "checkpoint_id": "c", "reason": "r"},
     FORKERS),
    ("review-data", "get", "review", {}, ALL),
    ("review", "get", "review", {}, ALL),
    ("review-claim", "post", "review", {}, DECIDERS),
    ("review-unclaim", "post", "review", {}, DECIDERS),
    ("review-decide", "post", "review", {"action": "approve"}, DECIDERS),
    ("review-redecide", "get", "decided", {}, REDECIDERS),
    ("review-decide-next", "post", "review", {"action": "approve"}, DECIDERS),
    ("review-agent-answer", "post", "review", {"r0-type": "accept"}, DECIDERS),
    ("reviews-bulk", "post", "", {"action": "approve", "reviews": "REVIEW"}, DECIDERS),
    ("ops", "get", "", {}, OPS_VIEWERS),
    ("run", "get", "run", {}, OPS_VIEWERS),
    ("run-action", "post", "run-cancel", {"reason": "stuck"}, OPERATORS),
    ("ops-bulk", "post", "", {"action": "cancel", "runs": "RUN"}, OPERATORS),
    ("new-run-graphs", "get", "", {}, STARTERS),
    ("new-run", "get", "graph", {}, STARTERS),
    ("new-run", "post", "graph", {"title": "x"}, STARTERS),
    # every user manages their own tokens and e-mail settings (someone else's token: 404-ish)
    ("api-tokens", "get", "", {}, EVERYONE),
    ("api-tokens", "post", "", {"name": "ci"}, EVERYONE),
    ("api-token-revoke", "post", "token", {}, EVERYONE),
    ("notifications", "get", "", {}, EVERYONE),
]
# Probes and the Prometheus scrape: reachable without a session on purpose (load balancers,
# Prometheus); /metrics has its own token/address check. Tested in test_web_health.py.
PROBES = ("healthz", "readyz", "metrics")
CASES = [(name, method, kw, data, role, role in allowed)
         for name, method, kw, data, allowed in VIEWS for role in (*ALL, None)]


# Routes Django itself provides (login, logout, password views, the admin): they carry their
# own checks, and the login page must be reachable without logging in. The HTTP API has its
# own matrix, derived from its own route list (test_api_permissions.py).
FRAMEWORK_PREFIXES = ("django.",)
SEPARATE_MATRICES = ("admin", "api")


def site_routes() -> dict[str, str]:
    """Name -> view module of every named route of the site, the admin's excepted."""
    found: dict[str, str] = {}

    def walk(patterns: list[Any]) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace not in SEPARATE_MATRICES:
                    walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                found[p.name] = p.callback.__module__
    walk(get_resolver().url_patterns)
    return found


def test_every_route_has_a_row_in_the_matrix():
    ours = {name for name, module in site_routes().items()
            if not module.startswith(FRAMEWORK_PREFIXES)}
    assert ours, "no route found: the resolver walk is broken"
    covered = {row[0] for row in VIEWS} | set(PROBES)
    assert ours - covered == set(), "routes without a row in VIEWS (add who may use them)"
    assert covered - ours == set(), "rows in VIEWS for routes that no longer exist"


@pytest.mark.django_db
def test_only_the_probes_answer_without_a_session():
    anonymous = Client()
    assert anonymous.get(reverse("healthz")).status_code == 200
    assert anonymous.get(reverse("readyz")).status_code in (200, 503)  # never a login redirect
    assert anonymous.get(reverse("metrics"), REMOTE_ADDR="192.0.2.1").status_code == 403


@pytest.fixture
def objects(start_paused, make_review, make_run):
    review = start_paused()
    decided = make_review(status="decided", checkpoint_id="c1")
    return {"review": review, "decided": decided, "run": make_run()}


def url_for(name: str, kw: str, objects: dict[str, Any]) -> str:
    if kw == "thread":
        return reverse(name, args=[objects["review"].thread.thread_id])
    if kw == "checkpoint":
        review = objects["review"]
        return reverse(name, args=[review.thread.thread_id, review.checkpoint_id])
    if kw in ("review", "decided"):
        return reverse(name, args=[objects[kw].pk])
    if kw == "run":
        return reverse(name, args=[objects["run"].pk])
    if kw == "graph":
        return reverse(name, args=["web_review"])
    if kw == "token":
        return reverse(name, args=[999_999])
    if kw == "run-cancel":
        return reverse(name, args=[objects["run"].pk, "cancel"])
    return reverse(name)


@pytest.mark.parametrize(("name", "method", "kw", "data", "role", "allowed"), CASES,
                         ids=[f"{c[0]}-{c[4] or 'no-role'}" for c in CASES])
def test_view_allows_exactly_its_roles(client_as, objects, name, method, kw, data, role, allowed):
    client = client_as(role)
    ids = {"RUN": objects["run"].pk, "REVIEW": objects["review"].pk}
    data = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in data.items()}
    response = getattr(client, method)(url_for(name, kw, objects), data)
    if allowed:
        assert response.status_code != 403, response.content[:300]
        assert response.status_code < 500
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("name", "method", "kw"), [(v[0], v[1], v[2]) for v in VIEWS])
def test_anonymous_user_is_redirected_to_login(objects, name, method, kw):
    url = url_for(name, kw, objects)
    response = getattr(Client(), method)(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_review_assigned_to_a_group_cannot_be_claimed_by_a_reviewer_outside_it(
    make_review, make_user, client_as
):
    review = make_review(assignee="finance")
    response = client_as("reviewer").post(reverse("review-claim", args=[review.pk]))
    assert response.status_code == 403
    review.refresh_from_db()
    assert review.status == "pending"


def test_review_assigned_to_a_group_can_be_claimed_by_its_member(make_review, make_user):
    from django.contrib.auth.models import Group

    review = make_review(assignee="finance")
    user = make_user("reviewer")
    user.groups.add(Group.objects.create(name="finance"))
    client = Client()
    client.force_login(user)
    client.post(reverse("review-claim", args=[review.pk]))
    review.refresh_from_db()
    assert (review.status, review.claimed_by) == ("claimed", user)


def test_bulk_action_refuses_when_any_run_is_not_accessible(client_as, make_run):
    """Bulk goes through access_run per run: an unknown id stops the whole action."""
    run = make_run()
    response = client_as("ops").post(
        reverse("ops-bulk"), {"action": "cancel", "runs": [run.pk, 999999]}
    )
    assert response.status_code == 404


def test_forms_carry_a_csrf_token_and_htmx_sends_it(client_as, make_review):
    review = make_review()
    client = client_as("reviewer")
    client.handler.enforce_csrf_checks = True
    page = client.get(reverse("review", args=[review.pk])).content.decode()
    assert "csrfmiddlewaretoken" in page
    assert "hx-headers='{\"X-CSRFToken\"" in page


def test_post_without_csrf_token_is_refused(make_user, make_review):
    review = make_review()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("reviewer"))
    response = client.post(reverse("review-claim", args=[review.pk]))
    assert response.status_code == 403
    review.refresh_from_db()
    assert review.status == "pending"
