"""The Jinja2 environment of our pages (`templates/`, settings.TEMPLATES): Django's template
engine spent more than half of a review page's CPU on its node and variable machinery; Jinja2
compiles each template to Python once per process. The admin, form widgets and third-party
apps keep Django's engine (the second entry of settings.TEMPLATES).

What a Django template got from its built-in tags and filters is here under the same name,
by Django's own function where the output must stay the same (dates, `truncatechars`,
`filesizeformat`, `pluralize` ...), and `url()`, `static()`, `querystring()`, `now_as()`
for the tags. An undefined name renders empty, and so do its attributes and calls, as in
Django's templates (`DjangoUndefined`)."""

from __future__ import annotations

import html
import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django import forms
from django.conf import settings
from django.core.signals import setting_changed
from django.forms import renderers
from django.http import HttpRequest
from django.middleware import csrf as csrf_middleware
from django.middleware.csrf import get_token
from django.template import defaultfilters, defaulttags
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject, cached_property
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString
from django.utils.timezone import template_localtime
from jinja2 import ChainableUndefined, Environment, pass_context
from jinja2.runtime import Context

from approvals import layout, page_helpers

# A URL without arguments is the same for every request under one URLconf and script
# prefix: the base layout alone reverses nine of them on every page (~25 us each).
_fixed_urls: dict[tuple[str, str, str], str] = {}


def url(name: str, *args: Any, **kwargs: Any) -> str:
    if args or kwargs:
        return reverse(name, args=args or None, kwargs=kwargs or None)
    key = (name, str(get_urlconf() or settings.ROOT_URLCONF), get_script_prefix())
    found = _fixed_urls.get(key)
    if found is None:
        found = _fixed_urls[key] = reverse(name)
    return found


# A static file's URL is fixed for the life of a process: the manifest storage reads its
# manifest once, when it is first used, and serves every later URL from it. Yet each
# `static()` call splits, unquotes, looks up and joins the path again (~10 us each, five in
# the base layout: every page). Settings changes (tests) start over, as the storage does.
_static_urls: dict[str, str] = {}


def static_url(path: str) -> str:
    """Django's `static(path)`, computed once per path."""
    found = _static_urls.get(path)
    if found is None:
        found = _static_urls[path] = static(path)
    return found


def _settings_changed(**_: Any) -> None:
    _static_urls.clear()


setting_changed.connect(_settings_changed, dispatch_uid="stepwise-static-urls")


def date(value: Any, fmt: str | None = None) -> str:
    # Django's engine hands `date` the value in the current time zone (`expects_localtime`)
    return defaultfilters.date(template_localtime(value), fmt)


def now_as(fmt: str) -> str:
    return defaultfilters.date(timezone.localtime(), fmt)


@pass_context
def querystring(context: Context, **changes: Any) -> str:
    """The request's query string with `changes` (None drops a key), as `{% querystring %}`."""
    return defaulttags.querystring(SimpleNamespace(request=context["request"]), **changes)


def csrf(request: HttpRequest) -> dict[str, Any]:
    """`csrf_token` and `csrf_input` masked once per page, as Django's engine does (its `csrf`
    context processor): the Jinja2 backend's lazy values mask the secret again on every use
    (four times on a review page: the htmx headers, the logout, claim and decision forms),
    each mask 32 `secrets.choice` calls. A fresh mask per response is what protects the
    secret (BREACH); still only on use, so a page without a form sets no CSRF cookie."""
    token = SimpleLazyObject(lambda: page_csrf_token(request))
    return {"csrf_token": token, "csrf_input": SimpleLazyObject(lambda: format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', str(token)))}


def page_csrf_token(request: HttpRequest) -> str:
    """The CSRF token of this response, masked on first use and then reused by every form of
    the page, the ones rendered in Python (`inbox_rows`) as well as the template's: one mask
    per response, as Django's engine gives one page (each mask: 32 `secrets.choice` calls).
    Kept with the secret it masks: a secret rotated since (a login) gets a token of its own."""
    secret = request.META.get("CSRF_COOKIE")
    kept = getattr(request, "_stepwise_csrf_token", None)
    if kept is not None and secret is not None and kept[0] == secret:
        return kept[1]
    if secret is None:
        token = get_token(request)  # a new secret and its cookie, by Django
    else:
        # what get_token does with a secret the request has: the cookie is sent again (its
        # expiry renewed) and the secret masked afresh
        request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
        token = mask_csrf_secret(secret)
    request._stepwise_csrf_token = (request.META["CSRF_COOKIE"], token)  # type: ignore[attr-defined]
    return token


_CSRF_CHARS = csrf_middleware.CSRF_ALLOWED_CHARS
_CSRF_INDEX = {char: i for i, char in enumerate(_CSRF_CHARS)}
# bytes from here up are dropped: 248 = 4 x 62, so each character is equally likely
_CSRF_UNBIASED = 256 - 256 % len(_CSRF_CHARS)


def mask_csrf_secret(secret: str) -> str:
    """Django's `_mask_cipher_secret` (the same token: a random mask of 32 characters, then
    the secret shifted by it), the mask drawn from one read of the OS's random source.
    Django draws it with 32 `secrets.choice` calls, each a system call of its own: ~47 us of
    CPU per page here, a quarter of it in the kernel; this ~8 us. Same source, same uniform
    characters."""
    size, count = csrf_middleware.CSRF_SECRET_LENGTH, len(_CSRF_CHARS)
    mask: list[int] = []
    while len(mask) < size:  # 48 bytes give 32 usable ones but for a 1-in-10^9 chance
        mask += [byte % count for byte in secrets.token_bytes(48) if byte < _CSRF_UNBIASED]
    del mask[size:]
    cipher = (
        _CSRF_CHARS[(_CSRF_INDEX[char] + shift) % count]
        for char, shift in zip(secret, mask, strict=True)
    )
    return "".join(_CSRF_CHARS[shift] for shift in mask) + "".join(cipher)


def escape_printed(value: Any) -> Any:
    """Django's `conditional_escape` of a printed value (`&#x27;`, `&quot;`, where MarkupSafe
    writes `&#39;`, `&#34;`: the pages keep the markup they had). Most printed values are
    plain text or numbers: those skip its lazy-argument checks (`keep_lazy`), a seventh of a
    review page's rendering."""
    kind = type(value)
    if kind is str:
        return SafeString(html.escape(value))
    if kind is int:
        return SafeString(value)
    return conditional_escape(value)


class FormRenderer(renderers.Jinja2):
    """Form widgets by Django's Jinja2 widget templates in this module's environment (its
    escaping and missing values: the same markup as Django's engine gives): Django's engine
    rendering a field's widget was a tenth of a review page's CPU. Our forms only (their
    `default_renderer`): the admin's widgets have no Jinja2 templates."""

    @cached_property
    def engine(self) -> Any:
        return self.backend({
            "APP_DIRS": False, "NAME": "stepwiseforms",
            # templates/ first: its attrs.html keeps the markup of Django's engine
            "DIRS": [settings.BASE_DIR / "templates", Path(forms.__file__).parent / "jinja2"],
            "OPTIONS": {"environment": "approvals.templating.environment"},
        })


form_renderer = FormRenderer()


class DjangoUndefined(ChainableUndefined):
    """Missing values stay silent through attributes, items and calls (`None.get_username()`
    renders empty, as Django's engine renders a missing `None.get_username`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> DjangoUndefined:
        return self


def environment(**options: Any) -> Environment:
    options["undefined"] = DjangoUndefined
    # Every printed value is escaped as Django's engine escapes it
    options["finalize"] = escape_printed
    options.setdefault("keep_trailing_newline", True)  # as Django's loader keeps it
    env = Environment(**options)  # noqa: S701  the backend turns autoescape on
    env.globals.update(
        url=url,
        static=static_url,
        querystring=querystring,
        layout_head=layout.layout_head,
        layout_header=layout.layout_header,
        now_as=now_as,
        json_value=page_helpers.json_value,
        payload_html=page_helpers.payload_html,
        next_steps=page_helpers.next_steps,
        review_queue=page_helpers.review_queue,
        agent_answer_form=page_helpers.agent_answer_form,
        tree_row=page_helpers.tree_row,
    )
    env.filters.update(
        date=date,
        timesince=defaultfilters.timesince_filter,
        truncatechars=defaultfilters.truncatechars,
        linebreaksbr=defaultfilters.linebreaksbr,
        filesizeformat=defaultfilters.filesizeformat,
        pluralize=defaultfilters.pluralize,
        capfirst=defaultfilters.capfirst,
        urlencode=defaultfilters.urlencode,
        markdown=page_helpers.markdown,
        duration=page_helpers.duration,
        changed_only=page_helpers.changed_only,
        unchanged_only=page_helpers.unchanged_only,
    )
    return env
