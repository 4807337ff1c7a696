# -*- test-case-name: tests.test_interfaces -*-
"""
Tests for L{axl.interfaces}: the layer boundaries other modules implement.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface

from axl import interfaces


class InterfaceShapeTests(SynchronousTestCase):
    """The names each layer relies on stay in the interfaces."""

    def test_all_are_interfaces(self) -> None:
        """Every exported name is a zope Interface."""
        for name in interfaces.__all__:
            self.assertTrue(getattr(interfaces, name).isOrExtends(Interface), name)

    def test_members(self) -> None:
        """Each interface declares the methods and attributes the layers above call."""
        expected = {
            "INode": {"config", "identity", "public_key", "clock", "links", "router", "sessions", "ipv6", "tcp",
                      "streams", "topology"},
            "INodeReactor": {"listenTCP", "connectTCP", "connectUNIX", "callLater", "seconds", "stop"},
            "ILink": {"remote_key", "priority", "order", "inbound", "uri", "send_frame", "close"},
            "ILinkHandler": {"link_up", "frame_received", "link_down"},
            "IRouter": {"public_key", "send", "send_lookup"},
            "ISessions": {"send"},
            "IIPv6Layer": {"address", "mtu", "send_ipv6", "register_protocol", "register_ptb_handler"},
            "IAcknowledgingTransport": {"when_acknowledged"},
        }
        for name, members in expected.items():
            self.assertTrue(members <= set(getattr(interfaces, name).names(all=True)), name)
