# -*- test-case-name: tests.test_bridge_topology -*-
"""
The bridge's Klein application. Each route is a method of L{Bridge}; its state lives on the
instance, so several bridges can run in one process (tests do).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from axl.bridge.messaging import MessagingAPI

__all__ = ["Bridge"]


class Bridge:
    """
    The HTTP bridge of one node. Serve it with C{Site(Bridge(topology, messaging).app.resource())}.

    @param topology: makes the C{/topology} document (L{axl.bridge.topology.topology_document}).
    @param messaging: the message routes (C{/send}, C{/recv}, C{/mcp}, C{/a2a}).
    """

    app = Klein()

    def __init__(self, topology: Callable[[], dict[str, object]], messaging: MessagingAPI) -> None:
        self._topology = topology
        self._messaging = messaging

    @app.route("/topology", methods=["GET"])
    def topology(self, request: IRequest) -> bytes:
        """Our key, address, peers and spanning tree as JSON (lists are never null)."""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._topology()).encode("utf-8") + b"\n"

    @app.route("/send")
    @app.route("/recv")
    @app.route("/mcp")
    @app.route("/mcp/", branch=True)
    @app.route("/a2a")
    @app.route("/a2a/", branch=True)
    def messaging(self, request: IRequest) -> IResource:
        """C{/send}, C{/recv}, C{/mcp/...}, C{/a2a/...}: served by the L{MessagingAPI}."""
        # The messaging app routes on the whole path, not on what this route left over.
        request.prepath = []
        request.postpath = request.path.split(b"/")[1:]
        resource: IResource = self._messaging.app.resource()
        return resource
