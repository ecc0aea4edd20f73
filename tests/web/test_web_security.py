"""Headers and markup that keep the pages safe: a strict Content-Security-Policy that the
pages need no exception to (no inline script or style), and no trusted proxy header unless
configured."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import reverse

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=", re.I)


@pytest.fixture
def pages(start_paused, make_run):
    review = start_paused()
    thread = review.thread
    run = make_run(thread=thread)
    return [
        reverse("inbox"), reverse("threads"), reverse("ops"), reverse("run", args=[run.pk]),
        reverse("review", args=[review.pk]), reverse("thread", args=[thread.thread_id]),
        reverse("checkpoint-fork", args=[thread.thread_id, review.checkpoint_id]),
        reverse("review-decide", args=[review.pk]),
    ]


def test_pages_send_a_strict_content_security_policy(client_as, pages):
    client = client_as("admin")
    for url in pages[:-1]:
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'", url
        assert directives["script-src"] == "'self'", url
        assert directives["style-src"] == "'self'", url
        assert directives["frame-ancestors"] == "'none'", url
        assert "unsafe" not in policy, url


def test_login_page_sends_the_policy_too(client):
    assert "default-src 'self'" in client.get(reverse("login"))["Content-Security-Policy"]


def test_pages_need_no_inline_script_or_style(client_as, pages):
    client = client_as("admin")
    for url in pages[:-1]:
        page = client.get(url).content.decode()
        assert not INLINE_SCRIPT.search(page), (url, INLINE_SCRIPT.search(page))
        assert not INLINE_STYLE.search(page), (url, INLINE_STYLE.search(page))
    # htmx would inject its indicator <style> and eval hx-on code: both turned off
    assert '"includeIndicatorStyles": false' in page


def test_a_form_error_page_needs_no_inline_script_either(client_as, pages):
    page = client_as("admin").post(pages[-1], {"action": "reject"}).content.decode()
    assert not INLINE_SCRIPT.search(page) and not INLINE_STYLE.search(page)


def test_a_client_claiming_https_is_not_believed_without_a_configured_proxy(client_as):
    assert getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is None
    response = client_as("viewer").get(reverse("inbox"), HTTP_X_FORWARDED_PROTO="https")
    assert response.wsgi_request.is_secure() is False
