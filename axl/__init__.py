"""
axl: a pure-Python (Twisted) node for the Yggdrasil v0.5 mesh, with AXL's local HTTP bridge.

An application talks HTTP to its own node on 127.0.0.1:9002; nodes peer over TLS/TCP, route on
ironwood's spanning tree, encrypt end to end and carry a userspace TCP over the overlay.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
