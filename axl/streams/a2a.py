# -*- test-case-name: tests.test_streams_a2a -*-
"""
The A2A stream (spec/axl-node.md section 7.4): C{{"a2a": true, "agent_card": true}} fetches the
local A2A server's agent card, C{{"a2a": true, "request": r}} POSTs C{r} to it (with
C{A2A-Version: 1.0}); the reply is C{{"a2a": true, "response": <server JSON>}}. The caller's
full key goes along as C{X-From-Peer-Id}. Beyond AXL: a server answer that is not JSON (an SSE
stream, an empty body, an HTML error page) is answered with an error envelope instead of
silence.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from axl.streams._http import HttpCallError, http_call
from axl.streams.envelope import MISSING, dumps, encode_a2a_reply, parse_a2a_request
from axl.streams.interfaces import IStream

__all__ = ["AGENT_CARD_PATH", "A2AStream"]

AGENT_CARD_PATH = "/.well-known/agent-card.json"


@implementer(IStream)
class A2AStream:
    """
    @param http: a C{treq.client.HTTPClient} (or C{StubTreq}).
    @param base_url: the A2A server's base URL, e.g. C{http://127.0.0.1:9004} (no trailing C{/}).
    """

    name = "a2a"

    def __init__(
        self, http: Any, base_url: str, clock: IReactorTime, timeout: float = 20.0
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self.timeout = timeout

    def matches(self, envelope: dict[str, Any]) -> bool:
        return parse_a2a_request(envelope) is not None

    def error_reply(self, envelope: dict[str, Any], message: str) -> bytes:
        return encode_a2a_reply(None, message)

    def handle(
        self, envelope: dict[str, Any], peer_key: bytes
    ) -> Deferred[bytes | None]:
        return Deferred.fromCoroutine(self._handle(envelope, peer_key))

    async def _handle(self, envelope: dict[str, Any], peer_key: bytes) -> bytes | None:
        request = parse_a2a_request(envelope)
        if request is None:
            raise ValueError("not an A2A envelope")
        headers = {"X-From-Peer-Id": peer_key.hex()}
        if request.agent_card:
            method, url, data, what = (
                "GET",
                self.base_url + AGENT_CARD_PATH,
                None,
                "agent card",
            )
        else:
            headers["Content-Type"] = "application/json"
            headers["A2A-Version"] = "1.0"
            body = None if request.request is MISSING else request.request
            method, url, data, what = (
                "POST",
                self.base_url + "/",
                dumps(body),
                "a2a response",
            )
        try:
            code, resp_headers, raw = await http_call(
                self._http, self._clock, self.timeout, method, url, headers, data
            )
        except HttpCallError as e:
            if e.phase == "contact":
                return encode_a2a_reply(None, f"failed to contact a2a server: {e}")
            return encode_a2a_reply(None, f"failed to read {what}: {e}")
        try:
            response = json.loads(raw)
        except ValueError:
            ctype = resp_headers.getRawHeaders(b"content-type", [b"none"])[0].decode(
                "latin-1"
            )
            return encode_a2a_reply(
                None,
                f"a2a server answered HTTP {code} with a non-JSON body ({len(raw)} bytes, content type {ctype});"
                " streaming A2A methods cannot cross the mesh",
            )
        return encode_a2a_reply(response)
