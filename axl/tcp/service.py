# -*- test-case-name: tests.test_tcp_overlay -*-
"""
L{TCPService}: ties a L{TCPStack}'s life to the node's service tree (stopping the node closes
open connections — FIN, then RST after a short grace — and cancels every timer).
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred

from axl.tcp.stack import TCPStack

__all__ = ["TCPService"]


class TCPService(Service):
    """Stops C{stack} when the service stops; the Deferred fires once it has."""

    name = "tcp"

    def __init__(self, stack: TCPStack, grace: float = 2.0) -> None:
        self.stack = stack
        self.grace = grace

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.stack.stop(self.grace)
