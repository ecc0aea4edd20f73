"""Request checks that must run before anything reads `request.POST`, and Django's CSP and
messages middlewares without their per-request lookups."""

from __future__ import annotations

import codecs
import copy
import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.messages import middleware as messages_middleware
from django.http import HttpRequest, HttpResponse
from django.middleware import csp as csp_middleware
from django.utils.csp import CSP, build_policy
from django.utils.module_loading import import_string

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def utf8_forms_only(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., object]:
    """Refuse a form body in any charset but UTF-8 with a 415 that says so. Django refuses it
    too, but only when something reads `request.POST`, and its debug page reads it again while
    reporting that, which turned the refusal into a 500."""

    def middleware(request: HttpRequest) -> HttpResponse:
        charset = request.content_params.get("charset") if request.content_params else None
        if charset and request.content_type in FORM_TYPES and not _is_utf8(charset):
            return HttpResponse(
                f"Forms must be sent as UTF-8; this one says charset={charset[:40]}. "
                "Send it again as UTF-8 (what browsers do for these pages).",
                status=415, content_type="text/plain; charset=utf-8",
            )
        return get_response(request)

    return middleware


def _is_utf8(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


def no_nul_in_address(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[..., object]:
    """Refuse a path or query string with a NUL character: pages look rows up by them, and
    PostgreSQL refuses NUL in any text it is given (a DataError, so a 500)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        query = (k + "".join(vs) for k, vs in request.GET.lists())
        if "\x00" in request.path or any("\x00" in text for text in query):
            return HttpResponse(
                "The address holds a NUL character (%00); remove it.",
                status=400, content_type="text/plain; charset=utf-8",
            )
        return get_response(request)

    return middleware


class ContentSecurityPolicyMiddleware(csp_middleware.ContentSecurityPolicyMiddleware):
    """Django's CSP middleware, with each policy's header value built once instead of on every
    response. The value depends only on the configuration (`SECURE_CSP`, or a view's
    `csp_override`) unless that asks for a nonce; a built value is reused only while the
    configuration it was built from is equal to the one in force (compared with a copy taken
    when it was built, so a setting changed or overridden in place is seen), and a policy
    with a nonce is built per response, as Django does."""

    KEPT = 32  # distinct configurations remembered (settings, per-view overrides)

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self._built: dict[int, tuple[Any, str]] = {}

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        for header, attribute, setting in _CSP_HEADERS:
            config = getattr(response, attribute, _UNSET)
            if config is _UNSET:
                config = getattr(settings, setting)
            # an empty configuration sends no header; a view's own header is kept
            if config and header not in response:
                response.headers[str(header)] = self._policy(config, request)
        return response

    def _policy(self, config: Any, request: HttpRequest) -> str:
        built = self._built.get(id(config))
        if built is not None and built[0] == config:
            return built[1]
        if _asks_for_nonce(config):
            return build_policy(config, csp_middleware.get_nonce(request))
        policy = build_policy(config)
        if len(self._built) >= self.KEPT:
            self._built.clear()
        self._built[id(config)] = (copy.deepcopy(config), policy)
        return policy


_UNSET = object()
_CSP_HEADERS = (
    (CSP.HEADER_ENFORCE, "_csp_config", "SECURE_CSP"),
    (CSP.HEADER_REPORT_ONLY, "_csp_ro_config", "SECURE_CSP_REPORT_ONLY"),
)


def _asks_for_nonce(config: Any) -> bool:
    return any(
        values == CSP.NONCE or (isinstance(values, list | tuple | set) and CSP.NONCE in values)
        for values in config.values()
    )


class MessageMiddleware(messages_middleware.MessageMiddleware):
    """Django's, with the storage class (`MESSAGE_STORAGE`) imported once per setting value
    instead of looked up by its dotted path on every request."""

    def process_request(self, request: HttpRequest) -> None:
        request._messages = _message_storage(settings.MESSAGE_STORAGE)(request)


@functools.cache
def _message_storage(path: str) -> Any:
    return import_string(path)
