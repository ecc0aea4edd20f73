"""Our pages are Jinja2 (approvals/templating.py): they escape and treat missing values as
Django's engine did, are compiled once per process unless DEBUG is on, and the admin keeps
Django's engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.template import engines
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

ROOT = Path(__file__).resolve().parents[2]


def render(source: str, **context: object) -> str:
    return engines["jinja2"].from_string(source).render(context)


def test_printed_values_are_escaped_as_django_escapes_them():
    text = """<b title='x'>"Tom" & Jerry</b>"""
    assert render("{{ v }}", v=text) == escape(text)
    assert "&#x27;" in escape(text) and "&quot;" in escape(text)


def test_every_kind_of_printed_value_renders_as_djangos_conditional_escape():
    from django.utils.functional import lazy
    from django.utils.html import conditional_escape
    from django.utils.safestring import mark_safe

    class Text(str):
        pass

    lazy_text = lazy(lambda: "<i>'lazy'</i>", str)()
    for value in ["<a href='x'>&</a>", "", 12, -3, True, None, 1.5, mark_safe("<b>ok</b>"),
                  Text("<t>"), lazy_text, ["<l>"], {"k": "<v>"}]:
        assert render("{{ v }}", v=value) == str(conditional_escape(value)), value


def test_a_missing_value_its_attributes_and_calls_render_empty():
    assert (
        render("[{{ nothing }}|{{ nothing.user.get_username() }}|{{ none.pk }}]", none=None)
        == "[||]"
    )
    assert render("{{ none.get_username() or 'deleted' }}", none=None) == "deleted"


def test_django_filters_keep_their_output():
    assert render("{{ 2048|filesizeformat }}") == "2.0\xa0KB"
    assert render("{{ 'abcdefghij'|truncatechars(5) }}") == "abcd…"
    assert render("{{ 'a\nb <c>'|linebreaksbr }}") == "a<br>b &lt;c&gt;"
    assert render("{{ 'x'|capfirst }}{{ 2|pluralize }}{{ 1|pluralize('es') }}") == "Xs"


def test_templates_are_compiled_once_when_debug_is_off():
    env = engines["jinja2"].env
    assert env.auto_reload is False
    assert env.get_template("base.html") is env.get_template("base.html")


def test_templates_reload_when_changed_with_debug_on():
    code = (
        "import django; django.setup(); from django.template import engines; "
        "print(engines['jinja2'].env.auto_reload)"
    )
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "True"


@pytest.mark.django_db
def test_the_admin_keeps_djangos_engine_and_our_pages_use_jinja2(client_as, make_user):
    admin = make_user(None, is_staff=True, is_superuser=True)
    client = client_as(user=admin)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "Site administration" in response.content.decode()
    assert response.templates  # recorded: Django's engine rendered it
    page = client.get(reverse("inbox"))
    assert page.status_code == 200 and not page.templates  # Jinja2: nothing recorded
    assert f'href="{reverse("admin:index")}">Admin</a>' in page.content.decode()


@pytest.mark.django_db
def test_error_pages_and_login_render_through_jinja2(client):
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404
    assert "<h1>Not found</h1>" in missing.content.decode()
    login = client.get(reverse("login"))
    html = login.content.decode()
    assert 'name="csrfmiddlewaretoken"' in html and 'name="username"' in html



@pytest.mark.django_db
def test_a_page_masks_its_csrf_token_once_and_a_form_posts_with_it(make_user, make_review):
    review = make_review()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("reviewer"))
    html = client.get(reverse("review", args=[review.pk])).content.decode()
    tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    tokens += re.findall(r'"X-CSRFToken": "([^"]+)"', html)
    # the htmx headers, the logout, claim and decision forms: one mask, as Django's engine
    assert len(tokens) == 4 and len(set(tokens)) == 1
    claimed = client.post(reverse("review-claim", args=[review.pk]),
                          {"csrfmiddlewaretoken": tokens[0]})
    assert claimed.status_code == 303
    assert client.post(reverse("review-unclaim", args=[review.pk])).status_code == 403


@pytest.mark.django_db
def test_the_inbox_masks_its_csrf_token_once_for_its_rows_and_its_layout(make_user,
                                                                          make_review):
    """The claim forms of the inbox rows (rendered in Python, approvals.inbox_rows) carry the
    token the layout's htmx headers and logout form carry: one mask per response, a fresh one
    in the next response, and a form posts with it."""
    first, second = make_review(), make_review()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("reviewer"))

    def tokens() -> list[str]:
        html = client.get(reverse("inbox")).content.decode()
        found = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        return found + re.findall(r'"X-CSRFToken": "([^"]+)"', html)

    page = tokens()
    # the htmx headers, the logout form, the bulk form and the two rows' claim forms
    assert len(page) >= 4 and len(set(page)) == 1
    assert set(tokens()) != set(page)  # the next response is masked afresh
    claimed = client.post(reverse("review-claim", args=[first.pk]),
                          {"csrfmiddlewaretoken": page[0]})
    assert claimed.status_code == 303
    assert client.post(reverse("review-claim", args=[second.pk])).status_code == 403


def test_a_rotated_csrf_secret_gets_a_token_of_its_own(rf):
    """`page_csrf_token` reuses its mask only for the secret it masked: after a rotation (a
    login) the page's forms get a token of the new secret."""
    from django.middleware.csrf import _unmask_cipher_token, rotate_token

    from approvals.templating import page_csrf_token

    request = rf.get("/")
    request.META["CSRF_COOKIE"] = "a" * 32
    first = page_csrf_token(request)
    assert page_csrf_token(request) == first
    rotate_token(request)
    rotated = page_csrf_token(request)
    assert rotated != first
    assert _unmask_cipher_token(rotated) == request.META["CSRF_COOKIE"] != "a" * 32


def test_form_widgets_by_jinja2_keep_the_markup_of_djangos_engine():
    from django import forms
    from django.forms.renderers import DjangoTemplates

    from approvals.forms import schema_field, text_field
    from approvals.templating import form_renderer

    specs = {"n": {"type": "number"}, "i": {"type": "integer", "minimum": 1},
             "b": {"type": "boolean"}, "e": {"enum": ["a", "b'<&>", 3]},
             "s": {"type": "string", "maxLength": 20}, "long": {"type": "string"},
             "arr": {"type": "array"}, "o": {"type": "object"}, "any": {}}
    sent = {"n": "1.5", "i": "x'\"<", "b": "on", "e": '"b\'<&>"', "s": "it's <b>&amp;",
            "long": "a\nb'\"", "arr": '[1, "<x>"]', "o": '{"k": "\'"}', "any": "null",
            "t": "x'\"", "c": "b"}
    for data in (None, sent, {}):
        django_form, ours = (forms.Form(data, renderer=r)
                             for r in (DjangoTemplates(), form_renderer))
        for form in (django_form, ours):
            form.fields.update({k: schema_field(k, spec, required=True)
                                for k, spec in specs.items()})
            form.fields["t"] = text_field(required=True)
            form.fields["c"] = forms.ChoiceField(choices=[("a", "A'<"), ("b", "B")])
            if data is not None:
                form.is_valid()
        for name in django_form.fields:
            assert str(ours[name]) == str(django_form[name]), name
            assert str(ours[name].errors) == str(django_form[name].errors), name


def test_a_url_without_arguments_follows_the_script_prefix_and_urlconf():
    from django.urls import clear_url_caches, set_script_prefix, set_urlconf

    assert render("{{ url('inbox') }}") == "/"
    set_script_prefix("/stepwise/")
    try:
        assert render("{{ url('inbox') }}|{{ url('review', 3) }}") == \
            "/stepwise/|/stepwise/reviews/3/"
    finally:
        set_script_prefix("/")
    set_urlconf("approvals.api.urls")
    try:
        clear_url_caches()
        with pytest.raises(Exception, match="inbox"):
            render("{{ url('inbox') }}")
    finally:
        set_urlconf(None)
    assert render("{{ url('inbox') }}") == "/"


def test_static_urls_are_djangos_and_follow_a_settings_change():
    """`static()` in our templates is computed once per path (approvals.templating), and
    starts over when the settings change, as Django's storage does."""
    from django.templatetags.static import static
    from django.test import override_settings

    from approvals.templating import static_url

    assert static_url("stepwise.css") == static("stepwise.css")
    with override_settings(STATIC_URL="/assets/"):
        assert static_url("stepwise.css") == static("stepwise.css")
        assert static_url("stepwise.css").startswith("/assets/")
    assert static_url("stepwise.css") == static("stepwise.css")
    assert not static_url("stepwise.css").startswith("/assets/")


def test_a_csrf_mask_is_djangos_token_of_the_secret_and_fresh_each_time():
    """`mask_csrf_secret` draws its mask in one read of the OS's random source; the token is
    still Django's: 64 allowed characters, unmasking to the secret, a new mask every call,
    every character of the alphabet drawn (none dropped by the unbiasing)."""
    from django.middleware.csrf import (
        CSRF_ALLOWED_CHARS,
        CSRF_TOKEN_LENGTH,
        _check_token_format,
        _unmask_cipher_token,
    )

    from approvals.templating import mask_csrf_secret

    secret = "Zz09" * 8
    tokens = [mask_csrf_secret(secret) for _ in range(400)]
    for token in tokens:
        assert len(token) == CSRF_TOKEN_LENGTH
        _check_token_format(token)
        assert _unmask_cipher_token(token) == secret
    assert len(set(tokens)) == len(tokens)
    assert set("".join(token[:32] for token in tokens)) == set(CSRF_ALLOWED_CHARS)


@pytest.mark.django_db
def test_a_page_sends_the_csrf_cookie_again_as_djangos_get_token_does(make_user):
    """Using the request's secret renews the cookie's expiry (Django's `get_token` flags it)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("reviewer"))
    first = client.get(reverse("inbox"))
    secret = first.cookies["csrftoken"].value
    again = client.get(reverse("inbox"))
    assert again.cookies["csrftoken"].value == secret
