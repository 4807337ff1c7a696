"""
Userspace TCP over the overlay: a sans-IO connection machine (L{connection}), the per-node
stack (L{stack}), Twisted transports (L{transport}) and endpoints (L{endpoints}).
"""

from axl.tcp.connection import Connection, TCPConfig
from axl.tcp.stack import TCPStack

__all__ = ["Connection", "TCPConfig", "TCPStack"]
