# -*- test-case-name: tests.test_session_service -*-
"""
The session/IPv6 part of C{axl.service}: L{axl.service.build_overlay_layers} builds the overlay
over the router with the config's NodeInfo, the link layer's peers and the router's tree.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from axl import service
from axl.config import config_from_dict
from axl.crypto.keys import Identity
from axl.errors import ConfigError
from axl.interfaces import IIPv6Layer, IRouter, ISessions
from axl.ipv6.stack import Overlay, OverlayService

US = Identity(bytes(32))
PEER = bytes([9]) * 32


@implementer(IRouter)
class FakeRouter:
    def __init__(self) -> None:
        self.public_key = US.public_key
        self.sent: list[tuple[bytes, bytes]] = []
        self.tree = type("Tree", (), {"infos": {US.public_key: 1, PEER: 2}})()

    def send(self, dest_key: bytes, data: bytes) -> None:
        self.sent.append((dest_key, data))

    def send_lookup(self, partial_key: bytes) -> None:
        pass


class FakeLinks:
    def links(self) -> list[Any]:
        return [type("Link", (), {"remote_key": PEER})()]


def _node(config: dict[str, Any], router: Any) -> tuple[Overlay, MultiService, Clock]:
    clock = Clock()
    clock.advance(1.7e9)
    overlay = service.build_overlay_layers(
        config_from_dict(config, source="n.json"), US, clock, router, FakeLinks()  # type: ignore[arg-type]
    )
    top = MultiService()
    OverlayService(overlay).setServiceParent(top)
    return overlay, top, clock


class WiringTests(SynchronousTestCase):
    """What make_node_service builds for these layers."""

    def test_overlay(self) -> None:
        """The sessions and the IPv6 layer provide their interfaces and use our address."""
        overlay, _, _ = _node({}, FakeRouter())
        self.assertTrue(verifyObject(ISessions, overlay.sessions))
        self.assertTrue(verifyObject(IIPv6Layer, overlay.ipv6))
        self.assertEqual(overlay.ipv6.address, US.address)

    def test_answers_use_node_state(self) -> None:
        """GetPeers lists the up links' keys, GetTree the router's entries, NodeInfo the config."""
        router = FakeRouter()
        overlay, _, _ = _node({"NodeInfo": {"name": "mine"}}, router)
        asker = bytes([7]) * 32
        proto = overlay.proto
        answers = []
        overlay.sessions.send = lambda key, data: answers.append(data)
        for request in (b"\xff\x03", b"\xff\x05", b"\x01"):
            proto.received(asker, request)
        self.assertEqual(answers[0], b"\x02\xff\x04" + PEER)
        self.assertEqual(answers[1], b"\x02\xff\x06" + US.public_key + PEER)
        self.assertEqual(json.loads(answers[2][2:])["name"], "mine")

    def test_stop_cancels_timers(self) -> None:
        """Stopping the service cancels the sessions' timers."""
        router = FakeRouter()
        overlay, top, clock = _node({}, router)
        top.startService()
        overlay.sessions.send(PEER, b"\x02\x01")  # creates a buffer with a timer
        self.assertTrue(clock.getDelayedCalls())
        top.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_node_info_too_big(self) -> None:
        """An oversized NodeInfo is a ConfigError naming the config file."""
        e = self.assertRaises(ConfigError, _node, {"NodeInfo": {"x": "y" * 20000}}, FakeRouter())
        self.assertIn("n.json", str(e))
