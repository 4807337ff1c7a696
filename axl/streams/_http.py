# -*- test-case-name: tests.test_streams_mcp -*-
"""
One bounded HTTP call for the streams (router, A2A server), through an injected treq client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime

from axl.errors import no_answer

__all__ = ["HttpCallError", "http_call"]


class HttpCallError(Exception):
    """
    The call failed. C{phase} is C{"contact"} (no response) or C{"read"} (the body could not
    be read); the message says why.
    """

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


def _reason(e: BaseException, timeout: float) -> str:
    if isinstance(e, DeferredTimeout):
        return f"no answer within {timeout:g} s"
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


async def http_call(
    http: Any,
    clock: IReactorTime,
    timeout: float,
    method: str,
    url: str,
    headers: Mapping[str, str],
    data: bytes | None = None,
) -> tuple[int, Any, bytes]:
    """
    Make the request and read the whole body within C{timeout} seconds in total.

    @return: (status, response headers, body).
    @raise HttpCallError: on any failure.
    """
    hdrs = {k.encode("ascii"): [v.encode("utf-8")] for k, v in headers.items()}
    start = clock.seconds()
    d: Deferred[Any] = maybeDeferred(http.request, method, url, headers=hdrs, data=data)
    d.addTimeout(timeout, clock, onTimeoutCancel=no_answer)
    try:
        response = await d
    except Exception as e:
        raise HttpCallError(
            "contact", _reason(e, timeout)
        ) from e
    left = max(timeout - (clock.seconds() - start), 0.001)
    body_d: Deferred[bytes] = response.content()
    body_d.addTimeout(left, clock, onTimeoutCancel=no_answer)
    try:
        body = await body_d
    except Exception as e:
        raise HttpCallError("read", _reason(e, timeout)) from e
    return response.code, response.headers, body
