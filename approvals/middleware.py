"""Request checks that must run before anything reads `request.POST`."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
