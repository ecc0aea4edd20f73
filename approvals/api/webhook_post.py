"""One webhook POST, bounded as a whole.

httpx's timeout bounds each network operation, not the request: a receiver that answers
`200 OK` and then sends a byte of its body every three seconds, or trickles its headers, never
trips it. In an ops trial two such deliveries held both task workers for 78 s (a whole
attempt would have lasted 25 minutes) while every run waited. The POST runs on asyncio under
one deadline for connect, send and answer (`STEPWISE_WEBHOOK_TIMEOUT_SECONDS`); cancelling it
closes the connection, whatever the receiver is doing.

The TLS context (the CA bundle read and parsed) is built once per process: building it for
each attempt's client was 26 of the 27 CPU-ms an attempt cost.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from dataclasses import dataclass

import httpx

EXCERPT = 500  # bytes of the receiver's answer kept for the admin


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None  # None: no answer (refused, timed out, malformed)
    excerpt: str
    error: str
    duration_ms: int


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def post(url: str, body: bytes, headers: dict[str, str], limit: float) -> Answer:
    """POST `body` to `url`; whatever happens, back within `limit` seconds (plus the time
    to close the connection)."""
    started = time.monotonic()
    try:
        status, excerpt = asyncio.run(_post(url, body, headers, limit))
    except TimeoutError:
        return Answer(None, "", f"TimeoutError: no answer within {limit:g} s "
                      "(STEPWISE_WEBHOOK_TIMEOUT_SECONDS bounds the whole request)", _ms(started))
    except httpx.HTTPError as exc:
        return Answer(None, "", f"{type(exc).__name__}: {exc}"[:1000], _ms(started))
    return Answer(status, excerpt, "", _ms(started))


async def _post(url: str, body: bytes, headers: dict[str, str],
                limit: float) -> tuple[int, str]:
    deadline = asyncio.get_running_loop().time() + limit
    # redirects are not followed: a receiver that moved must be reconfigured by an admin
    async with httpx.AsyncClient(timeout=limit, verify=tls_context(),
                                 follow_redirects=False) as client:
        async with asyncio.timeout_at(deadline):
            response = await client.send(
                client.build_request("POST", url, content=body, headers=headers), stream=True
            )
        try:
            head = b""
            try:
                async with asyncio.timeout_at(deadline):
                    async for chunk in response.aiter_bytes():
                        head += chunk
                        if len(head) >= EXCERPT:
                            break
            except TimeoutError:
                pass  # it answered with its status; the rest of its body is not waited for
        finally:
            await response.aclose()
    return response.status_code, head[:EXCERPT].decode("utf-8", errors="replace")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
