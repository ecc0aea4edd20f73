"""Django's CSP and messages middlewares as approvals.middleware runs them (the policy built once
per configuration, the message storage class imported once): the same headers and storage as
Django's own, including when the configuration changes, a view overrides it, or a nonce is
asked for."""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.http import HttpRequest, HttpResponse
from django.middleware.csp import ContentSecurityPolicyMiddleware as DjangoCsp
from django.test import RequestFactory
from django.utils.csp import CSP, build_policy

from approvals.middleware import ContentSecurityPolicyMiddleware, MessageMiddleware


def through(middleware_class: Any, view: Any = None) -> tuple[HttpRequest, HttpResponse]:
    request = RequestFactory().get("/")
    response = middleware_class(view or (lambda request: HttpResponse("ok")))(request)
    return request, response


def test_pages_send_the_policy_django_builds_from_the_setting(client_as, settings):
    client = client_as("reviewer")
    expected = build_policy(settings.SECURE_CSP)
    assert [client.get("/")["Content-Security-Policy"] for _ in range(2)] == [expected] * 2
    assert "Content-Security-Policy-Report-Only" not in client.get("/")


def test_a_changed_setting_is_sent_on_the_next_response(settings):
    middleware = ContentSecurityPolicyMiddleware(lambda request: HttpResponse("ok"))
    first = middleware(RequestFactory().get("/"))["Content-Security-Policy"]
    settings.SECURE_CSP = {**settings.SECURE_CSP, "img-src": [CSP.SELF]}
    assert middleware(RequestFactory().get("/"))["Content-Security-Policy"] == build_policy(
        settings.SECURE_CSP) != first
    # and a setting changed in place, not replaced
    settings.SECURE_CSP = copy.deepcopy(settings.SECURE_CSP)
    middleware(RequestFactory().get("/"))
    settings.SECURE_CSP["img-src"].append("https://images.example.com")
    assert "https://images.example.com" in middleware(RequestFactory().get("/"))[
        "Content-Security-Policy"]


def test_report_only_and_view_overrides_are_as_djangos(settings):
    settings.SECURE_CSP_REPORT_ONLY = {"default-src": [CSP.SELF], "report-uri": "/csp/"}

    def overriding(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("ok")
        response._csp_config = {"default-src": [CSP.NONE]}  # what @csp_override sets
        return response

    def own_header(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok", headers={"Content-Security-Policy": "default-src *"})

    for view in (None, overriding, own_header):
        ours, django = through(ContentSecurityPolicyMiddleware, view)[1], through(DjangoCsp,
                                                                                 view)[1]
        for header in ("Content-Security-Policy", "Content-Security-Policy-Report-Only"):
            assert ours[header] == django[header], (view, header)
    assert through(ContentSecurityPolicyMiddleware, overriding)[1][
        "Content-Security-Policy"] == "default-src 'none'"


def test_a_policy_with_a_nonce_carries_each_responses_own_nonce(settings):
    settings.SECURE_CSP = {"script-src": [CSP.SELF, CSP.NONCE]}
    middleware = ContentSecurityPolicyMiddleware(
        lambda request: HttpResponse(str(request._csp_nonce)))  # a page that uses its nonce
    sent = []
    for _ in range(2):
        response = middleware(RequestFactory().get("/"))
        nonce = response.content.decode()
        assert response["Content-Security-Policy"] == f"script-src 'self' 'nonce-{nonce}'"
        sent.append(nonce)
    assert sent[0] != sent[1]


def test_messages_use_the_storage_the_setting_names(settings):
    for storage in (FallbackStorage, CookieStorage, FallbackStorage):
        settings.MESSAGE_STORAGE = f"{storage.__module__}.{storage.__name__}"
        request = RequestFactory().get("/")
        request.session = {}
        MessageMiddleware(lambda request: HttpResponse("ok"))(request)
        assert type(request._messages) is storage
