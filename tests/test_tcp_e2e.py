# -*- test-case-name: tests.test_tcp_e2e -*-
"""
The issue's "done when": three whole nodes (C{make_node_service}) in this process on
127.0.0.1, A the relay, B and C peered to A. A twisted.web server on overlay port 80 of C
answers a treq request from B, carried by overlay TCP through A; then 4 MiB go up and back.
Real time, every wait bounded.
"""

from __future__ import annotations

from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.web.client import Agent
from twisted.web.resource import Resource
from twisted.web.server import Site

from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.stack import TCPStack
from tests.inprocess import InProcessNodesTestCase

WAIT = 30.0



class Echo(Resource):
    """GET: a greeting naming the caller's key; POST: the body back."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello " + request.getClientAddress().public_key.hex().encode()

    def render_POST(self, request: Any) -> bytes:
        return request.content.read()


class OverlayEndpoints:
    """
    An Agent endpoint factory: the URI host is the peer's key in hex, split into two 32-digit
    labels (a DNS label holds at most 63 characters, and treq checks).
    """

    def __init__(self, tcp: TCPStack) -> None:
        self.tcp = tcp

    def endpointForURI(self, uri: Any) -> OverlayClientEndpoint:
        key = bytes.fromhex(uri.host.decode().replace(".", ""))
        return OverlayClientEndpoint(self.tcp, key, uri.port)


class HTTPThroughRelayTests(InProcessNodesTestCase):
    """HTTP over overlay TCP, B -> A -> C, over real tcp:// links on loopback (L{InProcessNodesTestCase.start_star})."""

    timeout = WAIT + 30

    def test_http_b_to_c_through_a(self) -> Deferred[None]:
        """B's GET reaches C's overlay port 80 via A and names B's key; a 4 MiB POST echoes."""
        return ensureDeferred(self._scenario())

    async def _scenario(self) -> None:
        _, b, c = self.start_star()
        port = await OverlayServerEndpoint(c.tcp, 80).listen(Site(Echo()))
        self.addCleanup(port.stopListening)
        http = treq.client.HTTPClient(Agent.usingEndpointFactory(reactor, OverlayEndpoints(b.tcp)))
        hexkey = c.public_key.hex()
        url = f"http://{hexkey[:32]}.{hexkey[32:]}:80/"
        response = None
        waited = 0.0
        while response is None and waited < WAIT:
            try:
                response = await http.get(url, timeout=10)
            except Exception:
                await deferLater(reactor, 0.5, lambda: None)
                waited += 0.5
        self.assertIsNotNone(response, "no HTTP answer through the relay")
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), b"hello " + b.public_key.hex().encode())
        blob = bytes(range(256)) * (4 * 4096)
        response = await http.post(url, data=blob, timeout=WAIT)
        self.assertEqual(await response.content(), blob)
