# -*- test-case-name: tests.test_mesh_tree -*-
"""
Behaviour tests for L{axl.mesh.tree} (spec section 8.1 item 8): the C{_update} order, C{fix()}
outcomes, timers, announce echo, and a restart while a peer holds a higher seq for us.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.mesh.router import Router
from axl.mesh.sim import SimNetwork
from axl.mesh.tree import REFRESH_S, TIMEOUT_S, Info
from axl.mesh.wire import (
    FRAME_ANNOUNCE,
    FRAME_SIGREQ,
    FRAME_SIGRES,
    Announce,
    SigReq,
    SigRes,
    tree_tbs,
)
from tests.mesh_fakes import FakeLink, counter_randbytes, identities


def signed(node: Identity, parent: Identity, seq: int, nonce: int, port: int) -> Announce:
    """A valid Announce of C{node} under C{parent}."""
    tbs = tree_tbs(node.public_key, parent.public_key, seq, nonce, port)
    return Announce(
        node.public_key, parent.public_key, seq, nonce, port, parent.sign(tbs), node.sign(tbs)
    )


def info(parent: bytes, seq: int, nonce: int) -> Info:
    return Info(parent, seq, nonce, 1, b"p" * 64, b"s" * 64)


class UpdateOrderTests(SynchronousTestCase):
    """C{_update} (spec section 3.4.1) on a bare router."""

    def setUp(self) -> None:
        self.ids = identities(4)
        self.clock = Clock()
        self.router = Router(self.ids[3], self.clock, lambda s, d: None)
        self.tree = self.router.tree
        self.key = self.ids[2].public_key
        self.low, self.high = self.ids[0].public_key, self.ids[1].public_key

    def test_new_key(self) -> None:
        """An entry for an unknown key is accepted."""
        self.assertTrue(self.tree.update(self.key, info(self.high, 5, 5)))
        self.assertEqual(self.tree.infos[self.key].seq, 5)

    def test_seq(self) -> None:
        """A higher seq wins whatever the parent and nonce; a lower seq loses."""
        self.tree.update(self.key, info(self.low, 5, 1))
        self.assertFalse(self.tree.update(self.key, info(self.low, 4, 0)))
        self.assertTrue(self.tree.update(self.key, info(self.high, 6, 99)))
        self.assertEqual(self.tree.infos[self.key].parent, self.high)

    def test_equal_seq_lower_parent(self) -> None:
        """With equal seq, the lower parent key wins whatever the nonces."""
        self.tree.update(self.key, info(self.high, 5, 1))
        self.assertFalse(self.tree.update(self.key, info(self.high, 5, 1)))
        self.assertTrue(self.tree.update(self.key, info(self.low, 5, 99)))
        self.assertFalse(self.tree.update(self.key, info(self.high, 5, 0)))
        self.assertEqual(self.tree.infos[self.key].parent, self.low)

    def test_equal_parent_lower_nonce(self) -> None:
        """With equal seq and parent, only a strictly lower nonce wins."""
        self.tree.update(self.key, info(self.low, 5, 10))
        self.assertFalse(self.tree.update(self.key, info(self.low, 5, 10)))
        self.assertFalse(self.tree.update(self.key, info(self.low, 5, 11)))
        self.assertTrue(self.tree.update(self.key, info(self.low, 5, 9)))
        self.assertEqual(self.tree.infos[self.key].nonce, 9)

    def test_accept_clears_sent(self) -> None:
        """Accepting a new entry for K removes K from every peer's sent set."""
        self.tree.sent = {self.low: {self.key, self.high}, self.high: {self.key}}
        self.tree.update(self.key, info(self.low, 1, 1))
        self.assertEqual(self.tree.sent, {self.low: {self.high}, self.high: set()})

    def test_timeout(self) -> None:
        """Others' entries expire 5 min after their last accepted update."""
        self.tree.update(self.key, info(self.low, 1, 1))
        self.clock.advance(TIMEOUT_S - 10)
        self.tree.update(self.key, info(self.low, 2, 1))
        self.clock.advance(TIMEOUT_S - 1)
        self.assertIn(self.key, self.tree.infos)
        self.clock.advance(1)
        self.assertNotIn(self.key, self.tree.infos)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refresh_timer(self) -> None:
        """Our own entry sets the refresh flag 4 min after it was stored; the tick re-signs."""
        self.router.start()
        seq = self.tree.infos[self.router.public_key].seq
        self.clock.advance(REFRESH_S - 1)
        self.assertEqual(self.tree.infos[self.router.public_key].seq, seq)
        self.clock.advance(1)
        self.assertEqual(self.tree.infos[self.router.public_key].seq, seq)
        self.assertTrue(self.tree.refresh)
        self.clock.advance(1)  # the next tick re-roots with a new seq
        self.assertEqual(self.tree.infos[self.router.public_key].seq, seq + 1)
        self.assertFalse(self.tree.refresh)
        self.router.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FixTests(SynchronousTestCase):
    """C{fix()} outcomes, driven through frames on a fake link."""

    def setUp(self) -> None:
        self.low, self.mid, self.high = identities(3)
        self.clock = Clock()

    def _router(self, me: Identity) -> Router:
        router = Router(me, self.clock, lambda s, d: None, randbytes=counter_randbytes())
        router.start()
        self.addCleanup(router.stop)
        return router

    def _attach(self, router: Router, peer: Identity, res_port: int) -> FakeLink:
        """Link up to C{peer}; C{peer} answers our SigReq with port C{res_port}."""
        link = FakeLink(peer.public_key)
        router.link_up(link)
        self.assertEqual(link.types()[:2], [FRAME_SIGREQ, 5])
        req = SigReq.decode(link.of_type(FRAME_SIGREQ)[-1])
        tbs = tree_tbs(router.public_key, peer.public_key, req.seq, req.nonce, res_port)
        res = SigRes(req.seq, req.nonce, res_port, peer.sign(tbs))
        router.frame_received(link, FRAME_SIGRES, res.encode())
        return link

    def test_start_as_root(self) -> None:
        """The first tick (at start) makes the node root with seq 1 and port 0."""
        router = self._router(self.mid)
        me = router.tree.infos[self.mid.public_key]
        self.assertEqual((me.parent, me.seq, me.port), (self.mid.public_key, 1, 0))
        self.assertEqual(me.psig, me.sig)
        self.assertEqual(router.root(), self.mid.public_key)
        self.assertEqual(router.coords(), [])

    def test_peer_with_lower_root(self) -> None:
        """A peer whose root is lower than us becomes our parent with its SigRes."""
        router = self._router(self.mid)
        link = self._attach(router, self.low, res_port=5)
        router.frame_received(link, FRAME_ANNOUNCE, signed(self.low, self.low, 1, 7, 0).encode())
        self.clock.advance(1)
        me = router.tree.infos[self.mid.public_key]
        self.assertEqual((me.parent, me.seq, me.port), (self.low.public_key, 2, 5))
        ann = Announce(self.mid.public_key, me.parent, me.seq, me.nonce, me.port, me.psig, me.sig)
        self.assertTrue(ann.verify())
        self.assertEqual(router.root(), self.low.public_key)
        self.assertEqual(router.coords(), [5])
        # A fresh SigReq (seq 3) goes out after the change, and our new entry is announced.
        self.assertEqual(SigReq.decode(link.of_type(FRAME_SIGREQ)[-1]).seq, 3)
        self.assertIn(ann.encode(), link.of_type(FRAME_ANNOUNCE))

    def test_peer_with_higher_root(self) -> None:
        """A peer whose root is higher than our key never becomes our parent."""
        router = self._router(self.low)
        link = self._attach(router, self.high, res_port=1)
        router.frame_received(link, FRAME_ANNOUNCE, signed(self.high, self.high, 1, 7, 0).encode())
        self.clock.advance(3)
        me = router.tree.infos[self.low.public_key]
        self.assertEqual((me.parent, me.seq), (self.low.public_key, 1))
        self.assertEqual(router.root(), self.low.public_key)

    def test_root_through_peer(self) -> None:
        """A peer that is a child of a lower root gives us that root and deeper coords."""
        router = self._router(self.high)
        link = self._attach(router, self.mid, res_port=4)
        router.frame_received(link, FRAME_ANNOUNCE, signed(self.low, self.low, 1, 1, 0).encode())
        router.frame_received(link, FRAME_ANNOUNCE, signed(self.mid, self.low, 3, 2, 9).encode())
        self.clock.advance(1)
        self.assertEqual(router.root(), self.low.public_key)
        self.assertEqual(router.coords(), [9, 4])
        self.assertEqual(router.root_for_key(self.mid.public_key), self.low.public_key)
        self.assertEqual(router.coords_for_key(self.mid.public_key), [9])

    def test_self_root_after_parent_lost(self) -> None:
        """Without an alternative, a node re-roots (higher seq) 1-2 s after losing its parent."""
        router = self._router(self.mid)
        link = self._attach(router, self.low, res_port=5)
        router.frame_received(link, FRAME_ANNOUNCE, signed(self.low, self.low, 1, 7, 0).encode())
        self.clock.advance(1)
        self.assertEqual(router.root(), self.low.public_key)
        router.link_down(link)
        self.clock.advance(1)
        self.assertEqual(router.parent(), self.low.public_key)  # doRoot1 set, waiting
        self.clock.advance(1)
        me = router.tree.infos[self.mid.public_key]
        self.assertEqual((me.parent, me.seq), (self.mid.public_key, 3))
        self.assertEqual(router.root(), self.mid.public_key)

    def test_bad_sigres_closes(self) -> None:
        """A SigRes whose psig does not verify raises ProtocolError (the link is dropped)."""
        from axl.errors import ProtocolError

        router = self._router(self.mid)
        link = FakeLink(self.low.public_key)
        router.link_up(link)
        req = SigReq.decode(link.of_type(FRAME_SIGREQ)[-1])
        bad = SigRes(req.seq, req.nonce, 1, self.high.sign(b"whatever"))
        self.assertRaises(ProtocolError, router.frame_received, link, FRAME_SIGRES, bad.encode())

    def test_bad_announce_closes(self) -> None:
        """An Announce with a bad signature, or port 0 under another parent, raises."""
        from axl.errors import ProtocolError

        router = self._router(self.mid)
        link = FakeLink(self.low.public_key)
        router.link_up(link)
        good = signed(self.low, self.high, 1, 1, 3)
        forged = Announce(
            good.key, good.parent, good.seq, good.nonce, good.port, good.sig, good.sig
        )
        self.assertRaises(
            ProtocolError, router.frame_received, link, FRAME_ANNOUNCE, forged.encode()
        )
        zero = signed(self.low, self.high, 1, 1, 0)
        self.assertRaises(ProtocolError, router.frame_received, link, FRAME_ANNOUNCE, zero.encode())

    def test_sigreq_answered(self) -> None:
        """Every SigReq gets a SigRes with our port for the requester, signed by us."""
        router = self._router(self.mid)
        link = FakeLink(self.high.public_key)
        router.link_up(link)
        router.frame_received(link, FRAME_SIGREQ, SigReq(12, 34).encode())
        res = SigRes.decode(link.of_type(FRAME_SIGRES)[-1])
        self.assertEqual((res.seq, res.nonce, res.port), (12, 34, 1))
        self.assertTrue(res.verify(self.high.public_key, self.mid.public_key))


class AnnounceEchoTests(SynchronousTestCase):
    """Received announces for our own key (a restart, spec 3.5.3 and the transcript at 18.5)."""

    def setUp(self) -> None:
        self.me, self.peer = identities(2)
        self.clock = Clock()
        self.router = Router(self.me, self.clock, lambda s, d: None, randbytes=counter_randbytes(5))
        self.router.start()
        self.addCleanup(self.router.stop)
        self.link = FakeLink(self.peer.public_key)
        self.router.link_up(self.link)
        self.mine = self.router.tree.infos[self.me.public_key]  # seq 1, nonce 5

    def test_stale_copy_echoed(self) -> None:
        """Same seq and parent, higher nonce: rejected, and our entry is sent straight back."""
        stale = signed(self.me, self.me, 1, 17822401544058734017, 0)
        self.link.frames.clear()
        self.router.frame_received(self.link, FRAME_ANNOUNCE, stale.encode())
        self.assertEqual(
            self.link.of_type(FRAME_ANNOUNCE), [self.mine.announce(self.me.public_key)]
        )
        self.assertIs(self.router.tree.infos[self.me.public_key], self.mine)
        self.assertFalse(self.router.tree.refresh)

    def test_identical_copy_not_echoed(self) -> None:
        """Our exact entry coming back is not echoed (and is marked as sent to that peer)."""
        self.link.frames.clear()
        self.router.frame_received(
            self.link, FRAME_ANNOUNCE, self.mine.announce(self.me.public_key)
        )
        self.assertEqual(self.link.frames, [])
        self.assertIn(self.me.public_key, self.router.tree.sent[self.peer.public_key])

    def test_higher_seq_accepted_then_refreshed(self) -> None:
        """A higher seq for us (we restarted) is accepted, then re-signed above it."""
        remembered = signed(self.me, self.me, 9, 3, 0)
        self.router.frame_received(self.link, FRAME_ANNOUNCE, remembered.encode())
        self.assertTrue(self.router.tree.refresh)
        self.assertEqual(self.router.tree.infos[self.me.public_key].seq, 9)
        self.clock.advance(1)  # no better parent: doRoot1 now, re-root on the next tick
        self.assertEqual(self.router.tree.infos[self.me.public_key].seq, 9)
        self.assertTrue(self.router.tree.do_root1)
        self.clock.advance(1)
        self.assertEqual(self.router.tree.infos[self.me.public_key].seq, 10)


class RestartTests(SynchronousTestCase):
    """A node restarts while its peer still holds its older, higher-seq entry."""

    def test_restart_with_higher_seq_at_peer(self) -> None:
        """After a restart the node ends above the seq its peer remembered, and both agree."""
        net = SimNetwork(seed=3)
        root_id, node_id = identities(2, seed=11)
        root = net.add_node(root_id)
        node = net.add_node(node_id)
        net.connect(root, node)
        net.advance(2 * REFRESH_S + 5)  # two refreshes: the node's seq grows
        old_seq = node.router.tree.infos[node_id.public_key].seq
        self.assertGreaterEqual(old_seq, 3)
        net.remove_node(node)
        again = net.add_node(node_id)
        self.assertEqual(again.router.tree.infos[node_id.public_key].seq, 1)
        net.connect(root, again)
        net.advance(5)
        mine = again.router.tree.infos[node_id.public_key]
        self.assertGreater(mine.seq, old_seq)
        self.assertEqual(mine.parent, root_id.public_key)
        theirs = root.router.tree.infos[node_id.public_key]
        self.assertTrue(theirs.same(mine))
        self.assertEqual(net.errors, [])
        net.stop()
        self.assertEqual(net.clock.getDelayedCalls(), [])
