# -*- test-case-name: tests.test_streams_mcp -*-
"""
The MCP stream (spec/axl-node.md section 7.3): an envelope C{{"service": s, "request": r}} is
POSTed to the local MCP router's C{/route}, and the router's answer goes back as the reply
envelope. Beyond AXL: the real caller's full key is passed as C{from_peer_id} and as the
C{X-From-Peer-Id} header; MCP transport headers travel both ways in an optional C{headers}
object; every failure (router down, slow, a reply without C{response}) is answered with an error
envelope instead of silence.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from axl.streams._http import HttpCallError, http_call
from axl.streams.envelope import (
    MISSING,
    dumps,
    encode_mcp_reply,
    get_field,
    parse_mcp_request,
)
from axl.streams.interfaces import IStream

__all__ = ["MCPStream"]


@implementer(IStream)
class MCPStream:
    """
    @param http: a C{treq.client.HTTPClient} (or C{StubTreq}).
    @param route_url: the router's C{/route} URL, e.g. C{http://127.0.0.1:9003/route}.
    @param timeout: the longest the router may take (keep it below the registry's timeout).
    """

    name = "mcp"

    def __init__(
        self, http: Any, route_url: str, clock: IReactorTime, timeout: float = 20.0
    ) -> None:
        self._http = http
        self.route_url = route_url
        self._clock = clock
        self.timeout = timeout

    def matches(self, envelope: dict[str, Any]) -> bool:
        return parse_mcp_request(envelope) is not None

    def error_reply(self, envelope: dict[str, Any], message: str) -> bytes:
        request = parse_mcp_request(envelope)
        return encode_mcp_reply(request.service if request else "", None, message)

    def handle(
        self, envelope: dict[str, Any], peer_key: bytes
    ) -> Deferred[bytes | None]:
        return Deferred.fromCoroutine(self._handle(envelope, peer_key))

    async def _handle(self, envelope: dict[str, Any], peer_key: bytes) -> bytes | None:
        request = parse_mcp_request(envelope)
        if request is None:
            raise ValueError("not an MCP envelope")
        service = request.service
        call: dict[str, Any] = {
            "service": service,
            "request": None if request.request is MISSING else request.request,
            "from_peer_id": peer_key.hex(),
        }
        if request.headers:
            call["headers"] = request.headers
        headers = {"Content-Type": "application/json", "X-From-Peer-Id": peer_key.hex()}
        try:
            code, _, body = await http_call(
                self._http,
                self._clock,
                self.timeout,
                "POST",
                self.route_url,
                headers,
                dumps(call),
            )
        except HttpCallError as e:
            what = (
                "failed to contact router"
                if e.phase == "contact"
                else "failed to read router response"
            )
            return encode_mcp_reply(service, None, f"{what}: {e}")
        try:
            reply = json.loads(body)
        except ValueError as e:
            return encode_mcp_reply(
                service, None, f"failed to parse router response (HTTP {code}): {e}"
            )
        if not isinstance(reply, dict):
            return encode_mcp_reply(
                service,
                None,
                f"failed to parse router response (HTTP {code}): not a JSON object",
            )
        error = get_field(reply, "error")
        if isinstance(error, str) and error:
            return encode_mcp_reply(service, None, f"router error: {error}")
        response = get_field(reply, "response")
        if response is MISSING:
            return encode_mcp_reply(
                service, None, f"router reply (HTTP {code}) has no response"
            )
        out_headers = get_field(reply, "headers")
        if not isinstance(out_headers, dict):
            out_headers = {}
        out_headers = {
            k: v
            for k, v in out_headers.items()
            if isinstance(k, str) and isinstance(v, str)
        }
        return encode_mcp_reply(service, response, "", out_headers)
