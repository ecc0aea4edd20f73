"""The fixed parts of every page's layout (templates/base.html), rendered once per process.

The header (brand, nav, user menu) reverses eight URLs, checks two permissions through
Django's lazy `perms` wrappers and prints a dozen values on every page, yet reads the same for
everyone with the same name, staff flag, permissions and current section. So it is rendered
once for each set of the values it shows and kept, the page's CSRF input (masked per
response) put in at its place on every request. The partial is given those values and nothing
else (`templates/_layout_header.html` cannot read the user or the request), and they are the
key with the URLconf and script prefix its URLs depend on: a renamed user, a changed
permission or group, another section is a new key, so nothing is invalidated and nothing
stale is shown. The `<head>`'s static tags are kept the same way, keyed by nothing but the
settings (a settings change, as in tests, starts over, as `static_url` does).

With `auto_reload` (DEBUG) nothing is kept: an edited partial shows on the next page.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.context_processors import PermWrapper
from django.core.signals import setting_changed
from django.urls import get_script_prefix, get_urlconf
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

HEADER = "_layout_header.html"
START, OPS = "approvals.start_thread", "approvals.view_ops"

# Stands in for the CSRF input while a header is rendered for keeping: random per process, so
# no value printed in the header (a username) can forge it.
_CSRF_MARK = f"stepwise-csrf-{secrets.token_hex(16)}"

# Rendered headers: (markup before the CSRF input, markup after it), per key
_HEADERS: dict[tuple[Any, ...], tuple[str, str | None]] = {}
_HEADERS_MAX = 2048  # users x sections seen; emptied when full (each entry ~1.5 kB)


@pass_context
def layout_header(context: Context) -> Markup:
    """The page's header: what `_layout_header.html` renders for this page's user and section."""
    values = _header_values(context)
    env = context.environment
    if env.auto_reload:
        csrf_input = context.get("csrf_input", "")
        markup = env.get_template(HEADER).render(values, csrf_input=csrf_input)
        return Markup(markup)  # noqa: S704  autoescaped
    key = (str(get_urlconf() or settings.ROOT_URLCONF), get_script_prefix(), *values.values())
    kept = _HEADERS.get(key)
    if kept is None:
        markup = env.get_template(HEADER).render(values, csrf_input=_CSRF_MARK)
        before, mark, after = markup.partition(_CSRF_MARK)
        if not mark:  # signed out: no form, no input
            before, after = markup, None
        if len(_HEADERS) >= _HEADERS_MAX:
            _HEADERS.clear()
        kept = _HEADERS[key] = (before, after)
    before, after = kept
    if after is None:
        return Markup(before)  # noqa: S704  autoescaped
    # the CSRF input is Django's, its token of allowed characters only
    return Markup(before + str(context.get("csrf_input", "")) + after)  # noqa: S704


def _header_values(context: Context) -> dict[str, Any]:
    """Every value the header shows, read as base.html read them: `user` and `perms` from the
    context processors, the section from the request's resolved URL (none on a 404)."""
    user = context.get("user")
    if not getattr(user, "is_authenticated", False):
        return {"signed_in": False}
    perms = context.get("perms")
    match = getattr(context.get("request"), "resolver_match", None)
    return {
        "signed_in": True,
        "username": user.get_username(),
        "is_staff": bool(user.is_staff),
        "can_start": _has(context, perms, START),
        "can_view_ops": _has(context, perms, OPS),
        "section": getattr(match, "url_name", None),
    }


def _has(context: Context, perms: Any, name: str) -> bool:
    """`perms.approvals.start_thread` in a template: the user's `has_perm`, without building
    the lookup objects when `perms` is Django's wrapper."""
    if isinstance(perms, PermWrapper):
        return bool(perms.user.has_perm(name))
    app, codename = name.split(".")
    env = context.environment
    return bool(env.getattr(env.getattr(perms, app), codename))


HEAD = "_layout_head.html"
_HEAD_KEPT: dict[str, Markup] = {}


@pass_context
def layout_head(context: Context) -> Markup:
    """The `<head>`'s static tags (`_layout_head.html`), rendered once per process: they show
    static URLs only, which change only with the settings (forgotten then)."""
    env = context.environment
    kept = None if env.auto_reload else _HEAD_KEPT.get(HEAD)
    if kept is None:
        kept = Markup(env.get_template(HEAD).render())  # noqa: S704  autoescaped
        if not env.auto_reload:
            _HEAD_KEPT[HEAD] = kept
    return kept


def forget_all(**_: Any) -> None:
    _HEADERS.clear()
    _HEAD_KEPT.clear()


setting_changed.connect(forget_all, dispatch_uid="stepwise-layout")
