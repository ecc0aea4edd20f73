"""The API's routes (mounted at /api/v1/), the token page and the "New run" pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, path

from approvals import new_run
from approvals.api import pages
from approvals.api.api import api

_patterns, _app, _namespace = api.urls


def _exempt(items: list[URLPattern | URLResolver]) -> None:
    # Bearer tokens, not sessions: the login redirect must not apply to the API.
    for item in items:
        if isinstance(item, URLPattern):
            login_not_required(item.callback)
        else:
            _exempt(item.url_patterns)


_exempt(_patterns)

urlpatterns = [
    path("api/v1/", (_patterns, _app, _namespace)),
    path("account/api-tokens/", pages.tokens, name="api-tokens"),
    path("account/api-tokens/<int:pk>/revoke/", pages.revoke, name="api-token-revoke"),
    path("account/notifications/", pages.notifications, name="notifications"),
    # the browser's way to start a thread (issue 12 part 3); same checks as POST /threads
    path("runs/new/", new_run.choose_graph, name="new-run-graphs"),
    path("runs/new/<str:graph>/", new_run.new_run, name="new-run"),
]
