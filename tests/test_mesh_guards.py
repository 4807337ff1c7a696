# -*- test-case-name: tests.test_mesh_guards -*-
"""
Guards of the spanning tree (spec/yggdrasil-wire.md section 3.5) that refuse something, each
shown to refuse (issue 11, item 2): parent selection never picks a peer whose ancestry holds us
(that would close a routing loop), and a changed announce for a key we already know is verified
before it replaces the stored entry.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.errors import ProtocolError
from axl.mesh.router import Router
from axl.mesh.wire import FRAME_ANNOUNCE, FRAME_SIGREQ, FRAME_SIGRES, Announce, SigReq, SigRes, tree_tbs
from tests.mesh_fakes import FakeLink, counter_randbytes, identities
from tests.test_mesh_tree import signed


class TreeGuardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.low, self.mid, self.high = identities(3)
        self.clock = Clock()
        self.router = Router(self.mid, self.clock, lambda s, d: None, randbytes=counter_randbytes())
        self.router.start()
        self.addCleanup(self.router.stop)

    def attach(self, peer: Identity, port: int, delay: float = 0.0) -> FakeLink:
        """Link up to C{peer}, whose SigRes (port C{port}) arrives C{delay} s later (its cost)."""
        link = FakeLink(peer.public_key)
        self.router.link_up(link)
        req = SigReq.decode(link.of_type(FRAME_SIGREQ)[-1])
        self.clock.advance(delay)
        tbs = tree_tbs(self.mid.public_key, peer.public_key, req.seq, req.nonce, port)
        self.router.frame_received(link, FRAME_SIGRES, SigRes(req.seq, req.nonce, port, peer.sign(tbs)).encode())
        return link

    def test_never_a_parent_below_us(self) -> None:
        """
        A cheap peer that is our own child (its ancestry holds us) offers our root at a fraction
        of our parent's cost; even on a refresh, which takes any parent at half the cost, it is
        not chosen: that would make a loop.
        """
        to_low = self.attach(self.low, port=5, delay=1.0)  # a slow link: cost ~2000
        self.router.frame_received(to_low, FRAME_ANNOUNCE, signed(self.low, self.low, 1, 7, 0).encode())
        self.clock.advance(1)
        self.assertEqual(self.router.parent(), self.low.public_key)
        to_high = self.attach(self.high, port=6)  # a fast link: cost 1
        self.router.frame_received(to_high, FRAME_ANNOUNCE, signed(self.high, self.mid, 1, 9, 6).encode())
        self.assertLess(self.router.tree.peers.by_key[self.high.public_key][0].cost * 4,
                        self.router.tree.peers.by_key[self.low.public_key][0].cost)  # fmt: skip
        for _ in range(3):
            self.router.tree.refresh = True
            self.clock.advance(1)
            self.assertNotEqual(self.router.parent(), self.high.public_key)

    def test_changed_announce_for_a_known_key_is_verified(self) -> None:
        """A forged announce with a higher seq for a key we hold is refused; the entry stays."""
        link = self.attach(self.low, port=5)
        good = signed(self.low, self.low, 1, 7, 0)
        self.router.frame_received(link, FRAME_ANNOUNCE, good.encode())
        stored = self.router.tree.infos[self.low.public_key]
        newer = signed(self.low, self.low, 2, 7, 0)
        forged = Announce(newer.key, newer.parent, newer.seq, newer.nonce, newer.port, newer.psig, good.sig)
        self.assertRaises(ProtocolError, self.router.frame_received, link, FRAME_ANNOUNCE, forged.encode())
        self.assertIs(self.router.tree.infos[self.low.public_key], stored)
        # The identical entry again is accepted without a new check (and changes nothing).
        self.router.frame_received(link, FRAME_ANNOUNCE, good.encode())
        self.assertIs(self.router.tree.infos[self.low.public_key], stored)
