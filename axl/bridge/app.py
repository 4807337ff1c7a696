# -*- test-case-name: tests.test_bridge_topology -*-
"""
The bridge's Klein application. Each route is a method of L{Bridge}; its state (the node, the
clock) lives on the instance, so several bridges can run in one process (tests do).
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from axl.bridge.metrics import CONTENT_TYPE_LATEST, NodeMetrics
from axl.node import Node

__all__ = ["Bridge"]


class Bridge:
    """
    The HTTP bridge of one node. Serve it with C{Site(Bridge(node, clock).app.resource())}.
    """

    app = Klein()

    def __init__(self, node: Node, clock: IReactorTime) -> None:
        self._node = node
        self._clock = clock
        self._metrics: NodeMetrics | None = None

    @property
    def metrics(self) -> NodeMetrics:
        """The node's metrics, built on first use (the layers exist by then)."""
        if self._metrics is None:
            from axl.admin.node import node_view

            source = node_view(self._node, self._clock) if self._node.links is not None else None
            self._metrics = NodeMetrics(source, self._clock)
        return self._metrics

    @app.route("/metrics", methods=["GET"])
    def prometheus(self, request: IRequest) -> bytes:
        """The node's metrics in Prometheus' text format (L{axl.bridge.metrics})."""
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self.metrics.render()

    @app.route("/topology", methods=["GET"])
    def topology(self, request: IRequest) -> bytes:
        """Our key, address, peers and spanning tree as JSON (lists are never null)."""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._node.topology()).encode("utf-8") + b"\n"

    @app.route("/send")
    @app.route("/recv")
    @app.route("/mcp")
    @app.route("/mcp/", branch=True)
    @app.route("/a2a")
    @app.route("/a2a/", branch=True)
    def messaging(self, request: IRequest) -> bytes | IResource:
        """
        C{/send}, C{/recv}, C{/mcp/...}, C{/a2a/...}: served by the application layer's
        L{axl.bridge.messaging.MessagingAPI} (C{node.streams.api}) once it is attached.
        """
        streams = getattr(self._node, "streams", None)
        if streams is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"404 page not found\n"
        self.metrics.observe(request)
        # The messaging app routes on the whole path, not on what this route left over.
        request.prepath = []
        request.postpath = request.path.split(b"/")[1:]
        resource: IResource = streams.api.app.resource()
        return resource
