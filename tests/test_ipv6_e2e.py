# -*- test-case-name: tests.test_ipv6_e2e -*-
"""
Three whole nodes (C{make_node_service}) in this process on 127.0.0.1: A listens, B and C peer to
A. B sends one IPv6 packet to C's address through its IPv6 layer (the test-only hook is simply
C{node.ipv6.send_ipv6}); C must deliver it with B's full key as the source. Every wait is bounded
and everything is stopped in cleanup.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater

from axl.ipv6.packet import build_packet
from tests.inprocess import InProcessNodesTestCase

EXPERIMENT = 253  # RFC 3692 next header for experiments: no other layer registers it
WAIT = 30.0



class ThreeNodeTests(InProcessNodesTestCase):
    """B -> A -> C over real TCP links on loopback."""

    timeout = WAIT + 10

    def test_b_to_c_through_a(self) -> Deferred[None]:
        """C receives B's packet with B's full 32-byte key; the source address is B's."""
        return ensureDeferred(self._scenario())

    async def _scenario(self) -> None:
        _, b, c = self.start_star()
        got: list[tuple[bytes, bytes]] = []
        c.ipv6.register_protocol(EXPERIMENT, lambda key, packet: got.append((key, packet)))
        packet = build_packet(b.ipv6.address, c.ipv6.address, EXPERIMENT, b"hello C, from B")
        waited = 0.0
        while not got and waited < WAIT:
            b.ipv6.send_ipv6(packet)  # resent until the tree and the lookup have settled
            await deferLater(reactor, 0.25, lambda: None)
            waited += 0.25
        self.assertTrue(got, "C never received B's packet")
        key, received = got[0]
        self.assertEqual(key, b.public_key)
        self.assertEqual(received, packet)
        self.assertEqual(received[8:24], b.identity.address)
