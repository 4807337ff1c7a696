"""
The local HTTP bridge applications talk to (spec/axl-node.md section 5): a Klein app on
127.0.0.1:9002 by default.
"""

from axl.bridge.app import Bridge

__all__ = ["Bridge"]
