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
from axl.mesh.forward import MAX_CACHED_PATH
from axl.mesh.paths import MAX_PATHS, MAX_RECENT_BYTES, MAX_RUMORS
from axl.mesh.router import Router
from axl.mesh.tree import MAX_ENTRIES_PER_PEER, MAX_FORMER_PEERS, MAX_TREE_ENTRIES, TIMEOUT_S
from axl.mesh.wire import (
    FRAME_ANNOUNCE,
    FRAME_SIGREQ,
    FRAME_SIGRES,
    FRAME_TRAFFIC,
    MAX_WATERMARK,
    Announce,
    PathNotify,
    SigReq,
    SigRes,
    Traffic,
    notify_info_bytes,
    tree_tbs,
)
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


def fake_root(i: int) -> bytes:
    """The Announce payload of a made-up node that is its own root (one signature)."""
    node = Identity(b"fake" + i.to_bytes(28, "big"))
    tbs = tree_tbs(node.public_key, node.public_key, 1, 1, 0)
    sig = node.sign(tbs)
    return Announce(node.public_key, node.public_key, 1, 1, 0, sig, sig).encode()


class TreeQuotaTests(SynchronousTestCase):
    """
    The per-peer quota on tree entries (L{axl.mesh.tree.MAX_ENTRIES_PER_PEER}, issue 12): a peer
    announcing made-up nodes fills its own quota and no more.
    """

    def setUp(self) -> None:
        self.root, self.middle, self.me, self.honest, self.attacker = identities(5, seed=12)
        self.clock = Clock()
        self.router = Router(self.me, self.clock, lambda s, d: None, randbytes=counter_randbytes())
        self.router.start()
        self.addCleanup(self.router.stop)
        self.tree = self.router.tree
        self.evil = FakeLink(self.attacker.public_key)
        self.router.link_up(self.evil)

    def flood(self, count: int, start: int = 0) -> None:
        """C{count} made-up nodes from the attacker, within its announce rate limit."""
        for i in range(start, start + count):
            self.router.frame_received(self.evil, FRAME_ANNOUNCE, fake_root(i))
            if i % 100 == 99:
                self.clock.advance(0.5)

    def test_defaults(self) -> None:
        self.assertEqual((self.tree.max_entries_per_peer, self.tree.max_entries, self.tree.max_former),
                         (MAX_ENTRIES_PER_PEER, MAX_TREE_ENTRIES, MAX_FORMER_PEERS))  # fmt: skip

    def test_flood_held_to_the_quota(self) -> None:
        """
        100,000 made-up nodes (over 500 s, so some expire meanwhile) never make us hold more
        than the quota for the attacker; the rest are refused, counted.
        """
        quota = MAX_ENTRIES_PER_PEER
        for start in range(0, 100_000, 5_000):
            self.flood(5_000, start)
            self.assertLessEqual(len(self.tree.charged[self.attacker.public_key]), quota)
            self.assertLessEqual(len(self.tree.infos), quota + 1)  # + our own entry
        self.assertGreaterEqual(self.tree.refused.total, 100_000 - 2 * quota)

    def test_updates_for_held_keys_apply(self) -> None:
        """At its quota, the peer's newer entry for a key it already holds replaces the old one."""
        self.tree.max_entries_per_peer = 4
        self.flood(10)
        held = sorted(self.tree.charged[self.attacker.public_key])
        self.assertEqual(len(held), 4)
        first = Identity(b"fake" + (0).to_bytes(28, "big"))
        self.assertIn(first.public_key, held)
        newer = signed(first, first, 2, 1, 0)
        self.router.frame_received(self.evil, FRAME_ANNOUNCE, newer.encode())
        self.assertEqual(self.tree.infos[first.public_key].seq, 2)
        self.assertEqual(sorted(self.tree.charged[self.attacker.public_key]), held)

    def honest_peer(self) -> FakeLink:
        """Link up the honest peer and receive its ancestry: root -> middle -> honest."""
        link = FakeLink(self.honest.public_key)
        self.router.link_up(link)
        for ann in (
            signed(self.root, self.root, 1, 1, 0),
            signed(self.middle, self.root, 1, 1, 3),
            signed(self.honest, self.middle, 1, 1, 4),
        ):
            self.router.frame_received(link, FRAME_ANNOUNCE, ann.encode())
        return link

    def test_honest_ancestry_accepted_while_attacker_at_quota(self) -> None:
        """The attacker at its quota does not stop a second peer's ancestry from being stored."""
        self.tree.max_entries_per_peer = 4
        self.flood(10)
        self.honest_peer()
        self.assertEqual(
            self.tree.ancestry(self.honest.public_key),
            [self.root.public_key, self.middle.public_key, self.honest.public_key],
        )
        self.assertEqual(self.tree.coords(self.honest.public_key), (3, 4))
        self.assertEqual(len(self.tree.charged[self.attacker.public_key]), 4)

    def test_released_on_expiry(self) -> None:
        """Entries that expire stop counting: the peer may add new keys again."""
        self.tree.max_entries_per_peer = 4
        self.flood(4)
        self.flood(1, start=4)
        self.assertEqual(self.tree.refused.total, 1)
        self.clock.advance(TIMEOUT_S + 1)
        self.assertNotIn(self.attacker.public_key, self.tree.charged)
        self.flood(4, start=10)
        self.assertEqual(len(self.tree.charged[self.attacker.public_key]), 4)
        self.assertEqual(self.tree.refused.total, 1)

    def test_released_on_link_down(self) -> None:
        """
        When the attacker's last link goes down, its made-up entries are forgotten at once, but
        one it relayed first that a peer still up needs (the honest peer's root) is kept and
        charged to that peer.
        """
        self.tree.max_entries_per_peer = 8
        self.router.frame_received(self.evil, FRAME_ANNOUNCE, signed(self.root, self.root, 1, 1, 0).encode())
        self.router.frame_received(self.evil, FRAME_ANNOUNCE, signed(self.attacker, self.attacker, 1, 1, 0).encode())
        self.flood(4)
        self.honest_peer()
        self.assertEqual(len(self.tree.charged[self.attacker.public_key]), 5)
        self.router.link_down(self.evil)
        self.assertNotIn(self.attacker.public_key, self.tree.charged)
        self.assertEqual(
            self.tree.charged[self.honest.public_key], {self.root.public_key, self.middle.public_key}
        )
        # our entry, the honest peer's ancestry, the attacker's own (until it expires)
        self.assertEqual(len(self.tree.infos), 5)
        self.assertEqual(self.tree.coords(self.honest.public_key), (3, 4))

    def test_global_cap(self) -> None:
        """
        Two flooding peers share the global cap (the one charged more gives way to the other,
        down to an even split), and an honest peer's ancestry still gets in: an attacker's
        entry gives way to it.
        """
        self.tree.max_entries_per_peer = 6
        self.tree.max_entries = 8
        self.flood(6)
        second = FakeLink(identities(1, seed=99)[0].public_key)
        self.router.link_up(second)
        for i in range(100, 110):
            self.router.frame_received(second, FRAME_ANNOUNCE, fake_root(i))
        self.assertEqual(len(self.tree.charged[self.attacker.public_key]), 4)
        self.assertEqual(len(self.tree.charged[second.remote_key]), 4)
        self.assertEqual(self.tree.refused.total, 6)
        self.honest_peer()
        self.assertEqual(
            self.tree.ancestry(self.honest.public_key),
            [self.root.public_key, self.middle.public_key, self.honest.public_key],
        )
        self.assertEqual(sum(len(keys) for keys in self.tree.charged.values()), 8)
        self.assertEqual(len(self.tree.infos), 8 + 2)  # + ours and the honest peer's own

    def test_global_cap_keeps_needed_entries(self) -> None:
        """
        At the global cap, entries of a peer's ancestry are never what gives way, even when the
        peer charged the most relayed them: a new key is refused instead.
        """
        self.tree.max_entries = 2
        self.router.link_up(FakeLink(self.honest.public_key))
        for ann in (
            signed(self.root, self.root, 1, 1, 0),
            signed(self.middle, self.root, 1, 1, 3),
            signed(self.honest, self.middle, 1, 1, 4),
        ):
            self.router.frame_received(self.evil, FRAME_ANNOUNCE, ann.encode())
        self.assertEqual(len(self.tree.charged[self.attacker.public_key]), 2)
        second = FakeLink(identities(1, seed=99)[0].public_key)
        self.router.link_up(second)
        self.router.frame_received(second, FRAME_ANNOUNCE, fake_root(1))
        self.assertEqual(self.tree.refused.total, 1)
        self.assertEqual(self.tree.coords(self.honest.public_key), (3, 4))

    def test_former_peers_own_entries_capped(self) -> None:
        """
        Peers that come and go leave their own entries (kept until they expire, as ironwood
        does), but only the last max_former of them.
        """
        self.tree.max_former = 2
        gone = identities(4, seed=21)
        for peer in gone:
            link = FakeLink(peer.public_key)
            self.router.link_up(link)
            self.router.frame_received(link, FRAME_ANNOUNCE, signed(peer, peer, 1, 1, 0).encode())
            self.router.link_down(link)
        self.assertEqual([p.public_key in self.tree.infos for p in gone], [False, False, True, True])


class PathTableBoundTests(SynchronousTestCase):
    """
    The caps on path entries, rumors and the packets kept for re-sending
    (L{axl.mesh.paths.MAX_PATHS}, L{MAX_RUMORS<axl.mesh.paths.MAX_RUMORS>},
    L{MAX_RECENT_BYTES<axl.mesh.paths.MAX_RECENT_BYTES>}).
    """

    def setUp(self) -> None:
        self.me = identities(1, seed=13)[0]
        self.clock = Clock()
        self.router = Router(self.me, self.clock, lambda s, d: None, randbytes=counter_randbytes())
        self.router.start()
        self.addCleanup(self.router.stop)
        self.finder = self.router.pathfinder
        self.sent: list[tuple[bytes, bytes]] = []
        # packets along a known path: recorded (no peer to carry them)
        self.finder._route_traffic = lambda path, from_path, src, dest, wm, data: self.sent.append((dest, data))

    def remote(self, i: int) -> Identity:
        return Identity(b"remote" + i.to_bytes(26, "big"))

    def answer(self, remote: Identity) -> None:
        """The signed notify of C{remote}, as if routed to us."""
        sig = remote.sign(notify_info_bytes(5, (1, 2)))
        self.finder._handle_notify(PathNotify((), MAX_WATERMARK, remote.public_key, self.me.public_key, 5, (1, 2), sig))

    def test_defaults(self) -> None:
        self.assertEqual((self.finder.max_paths, self.finder.max_rumors), (MAX_PATHS, MAX_RUMORS))

    def test_rumors_capped(self) -> None:
        """Sends to 10 keys with a cap of 4: the oldest lookups go, with their held packets."""
        self.finder.max_rumors = 4
        for i in range(10):
            self.router.send(self.remote(i).public_key, b"x%d" % i)
            self.assertLessEqual(len(self.finder.rumors), 4)
        self.assertEqual(self.finder.evicted, 6)
        self.assertEqual(self.finder.held_packets, 4)
        self.assertEqual(self.finder.held_dropped, 6)

    def test_paths_capped(self) -> None:
        """Answers from 10 keys with a cap of 4: the oldest path entries go; the newest are kept."""
        self.finder.max_paths = 4
        for i in range(10):
            self.router.send(self.remote(i).public_key, b"x")
            self.answer(self.remote(i))
            self.assertLessEqual(len(self.finder.paths), 4)
        self.assertEqual(sorted(self.finder.paths), sorted(self.remote(i).public_key for i in range(6, 10)))
        self.assertEqual(self.finder.evicted, 6)

    def test_recent_bytes_capped(self) -> None:
        """
        Packets kept for re-sending stay within MAX_RECENT_BYTES over all paths (each path
        would keep up to 16 KiB).
        """
        paths = MAX_RECENT_BYTES // (16 * 1024) + 16
        data = bytes(8 * 1024)
        for i in range(paths):
            self.router.send(self.remote(i).public_key, b"x")
            self.answer(self.remote(i))
            for _ in range(3):
                self.router.send(self.remote(i).public_key, data)
        self.assertEqual(len(self.sent), paths * 4)
        self.assertLessEqual(self.finder.recent_bytes, MAX_RECENT_BYTES)
        self.assertEqual(self.finder.recent_bytes, sum(e.recent_bytes for e in self.finder.paths.values()))


class PathCacheTests(SynchronousTestCase):
    """
    Traffic paths are chosen by the sending peer, up to a frame long: the router's path caches
    keep only paths of real length (L{axl.mesh.forward.MAX_CACHED_PATH}).
    """

    def test_long_paths_not_cached(self) -> None:
        me, peer = identities(2, seed=31)
        router = Router(me, Clock(), lambda s, d: None, randbytes=counter_randbytes())
        router.start()
        self.addCleanup(router.stop)
        link = FakeLink(peer.public_key)
        router.link_up(link)
        for i in range(200):
            path = tuple(range(1, 1000)) + (i + 1,)
            frame = Traffic(path, (), peer.public_key, bytes(32), MAX_WATERMARK, b"x").encode()
            router.frame_received(link, FRAME_TRAFFIC, frame)
        short = Traffic((1, 2), (), peer.public_key, bytes(32), MAX_WATERMARK, b"x").encode()
        router.frame_received(link, FRAME_TRAFFIC, short)
        self.assertEqual(sorted(len(raw) for raw in router._valid_paths), [0, 2])  # the short path, an empty "from"
        self.assertTrue(all(len(key) <= MAX_CACHED_PATH for key in router.forwarder._hops))
