# -*- test-case-name: tests.test_tcp_endpoints -*-
"""
Userspace TCP over the overlay: a sans-IO connection machine (L{connection} and its parts), the
per-node stack (L{stack}), Twisted transports (L{transport}) and endpoints (L{endpoints}).
"""

from __future__ import annotations

from axl.tcp.connection import Connection, TCPConfig
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.stack import TCPStack
from axl.tcp.transport import OverlayTransport

__all__ = [
    "Connection",
    "OverlayClientEndpoint",
    "OverlayServerEndpoint",
    "OverlayTransport",
    "TCPConfig",
    "TCPStack",
]
