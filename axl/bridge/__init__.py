# -*- test-case-name: tests.test_bridge_topology -*-
"""
The local HTTP bridge applications talk to (spec/axl-node.md section 5): a Klein app on
127.0.0.1:9002 by default.
"""

from __future__ import annotations

from axl.bridge.app import Bridge

__all__ = ["Bridge"]
