# -*- test-case-name: tests.test_mesh_tree -*-
"""
The ironwood spanning tree (spec/yggdrasil-wire.md sections 3.3 to 3.5): the soft-state table of
signed entries (C{infos}), the C{_update} order every node applies identically, signature
requests and responses, parent selection C{fix()}, gossip C{sendAnnounces()}, coordinates and
tree distance. Pure: driven by the router with link events, frames and maintenance ticks.

Bounded memory (issue 12): a node needs only its own ancestry and its peers' ancestries
(section 3.5.5), but any validly signed Announce is accepted, and keys cost nothing to make. So
each entry for a new key is charged to the peer it was first learned from (our own entry and
entries for the key of a peer that is up are not charged); a peer holding
L{MAX_ENTRIES_PER_PEER} entries gets its announces for further new keys refused (counted in
C{Tree.refused}, logged aggregated), while its updates for keys already held still apply. All
peers together are charged L{MAX_TREE_ENTRIES} at most: past it, a new key from a peer makes an
entry of the peer charged the most give way (one in no ancestry we need: ours or a peer's), if
that peer is charged more than the sender; otherwise it is refused. So hostile peers can fill
the table only with each other's entries, never push out what an honest peer needs. A
charge ends when its entry expires; when the last link to a peer goes down, the entries charged
to it that are in our ancestry or in the ancestry of a peer still up are kept (charged to that
peer, or to nobody for ours), and the rest are forgotten at once; its own entry stays until it
expires, for the last L{MAX_FORMER_PEERS} peers gone. The table therefore holds at most
L{MAX_TREE_ENTRIES} charged entries, plus ours, our peers' own, L{MAX_FORMER_PEERS} former
peers' own (and, for at most L{TIMEOUT_S}, a former ancestry of ours).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from axl.crypto.keys import Identity, short_key
from axl.encoding import MAX_UINT64
from axl.errors import ProtocolError
from axl.logs import observer as log_observer
from axl.mesh.peers import UNKNOWN_LAG, Deadline, PeerLink, Peers
from axl.mesh.wire import (
    FRAME_ANNOUNCE,
    FRAME_SIGREQ,
    FRAME_SIGRES,
    Announce,
    Path,
    SigReq,
    SigRes,
    tree_tbs,
)
from axl.ratelimit import AggregatedLog

__all__ = ["MAX_ENTRIES_PER_PEER", "MAX_FORMER_PEERS", "MAX_TREE_ENTRIES", "REFRESH_S", "TIMEOUT_S", "Info", "Tree", "tree_dist"]

#: Our own entry is re-signed after this long (C{routerRefresh}).
REFRESH_S = 240.0
#: Other entries are forgotten after this long without an update (C{routerTimeout}).
TIMEOUT_S = 300.0

#: Tree entries charged to all peers together at most (about 7 MiB); past it, an entry no
#: ancestry we need has is forgotten from the peer charged the most, if that is not the sender.
MAX_TREE_ENTRIES = 2048
#: Own entries of peers whose links went down kept at most (until they expire; the oldest go).
MAX_FORMER_PEERS = 128
#: Tree entries charged to one peer at most (the keys first learned from it, other than its own):
#: ~8 times the depth of the deepest real tree (10 to 30); legitimately a peer sends its own
#: ancestry and ours. About 1.7 KiB each (C{bench/bench_tree_flood.py}): 0.5 MiB per peer.
MAX_ENTRIES_PER_PEER = 256

_MAX_COST = MAX_UINT64


class Info:
    """One entry of C{infos}: node C{key}'s signed position under C{parent}."""

    __slots__ = ("_payload", "nonce", "parent", "port", "psig", "seq", "sig")

    def __init__(
        self, parent: bytes, seq: int, nonce: int, port: int, psig: bytes, sig: bytes
    ) -> None:
        self.parent = parent
        self.seq = seq
        self.nonce = nonce
        self.port = port
        self.psig = psig
        self.sig = sig
        self._payload: bytes | None = None

    @classmethod
    def from_announce(cls, ann: Announce) -> Info:
        """The entry a verified L{Announce} carries (the table keys it by C{ann.key})."""
        return cls(ann.parent, ann.seq, ann.nonce, ann.port, ann.psig, ann.sig)

    def announce(self, key: bytes) -> bytes:
        """The Announce payload for this entry (encoded once)."""
        if self._payload is None:
            self._payload = Announce(
                key, self.parent, self.seq, self.nonce, self.port, self.psig, self.sig
            ).encode()
        return self._payload

    def same(self, other: Info) -> bool:
        """Whether C{other} is the same signed entry (every field equal)."""
        return (
            self.parent == other.parent
            and self.seq == other.seq
            and self.nonce == other.nonce
            and self.port == other.port
            and self.psig == other.psig
            and self.sig == other.sig
        )


def tree_dist(dest: Path, coords: Path) -> int:
    """C{dist}: hops between two coordinates through their deepest common ancestor."""
    common = 0
    for a, b in zip(dest, coords):
        if a != b:
            break
        common += 1
    return len(dest) + len(coords) - 2 * common


class Tree:
    """
    The spanning-tree state of one node.

    @ivar infos: key -> L{Info}, including our own entry once we have one.
    @ivar sent: peer key -> the keys whose current entry that peer has been sent.
    @ivar requests: peer key -> C{(seq, nonce)} of our outstanding SigReq.
    @ivar responses: peer key -> the valid L{SigRes} to that request.
    @ivar charged: peer key -> the keys of the entries charged to it (see the module docstring).
    @ivar refused: announces for new keys refused because their peer was at its quota.
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        identity: Identity,
        clock: IReactorTime,
        randbytes: Callable[[int], bytes],
        peers: Peers,
        on_change: Callable[[], None],
    ) -> None:
        self.identity = identity
        self.key = identity.public_key
        self.clock = clock
        self._randbytes = randbytes
        self.peers = peers
        self._on_change = on_change
        self.infos: dict[bytes, Info] = {}
        self._timers: dict[bytes, Deadline] = {}
        self.sent: dict[bytes, set[bytes]] = {}
        self.requests: dict[bytes, tuple[int, int]] = {}
        self.responses: dict[bytes, SigRes] = {}
        self.refresh = False
        self.do_root1 = False
        self.do_root2 = True
        self._paths: dict[bytes, tuple[bytes, Path]] = {}
        self.charged: dict[bytes, set[bytes]] = {}
        self._origin: dict[bytes, bytes] = {}  # charged key -> the peer key it is charged to
        self.max_entries_per_peer = MAX_ENTRIES_PER_PEER
        self.max_entries = MAX_TREE_ENTRIES
        self._former: dict[bytes, None] = {}  # own entries of peers gone, oldest first
        self.max_former = MAX_FORMER_PEERS
        self.refused = AggregatedLog(clock, self.log, "refused", "announces for new tree entries")

    # -- queries ---------------------------------------------------------------------------

    def root_and_path(self, key: bytes) -> tuple[bytes, Path]:
        """C{_getRootAndPath}: C{(root, coords)} of C{key}; C{(key, ())} on a loop or gap."""
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        infos = self.infos
        ports: list[int] = []
        visited: set[bytes] = set()
        here = key
        result: tuple[bytes, Path]
        while True:
            info = infos.get(here)
            if info is None or here in visited:
                result = (key, ())
                break
            visited.add(here)
            if info.parent == here:
                ports.reverse()
                result = (here, tuple(ports))
                break
            ports.append(info.port)
            here = info.parent
        self._paths[key] = result
        return result

    def coords(self, key: bytes) -> Path:
        """
        C{key}'s coordinates (section 3.5.6): the ports from the root down to it; empty for the root
        and for a key we have no entry for.
        """
        return self.root_and_path(key)[1]

    def root_and_dists(self, key: bytes) -> tuple[bytes | None, dict[bytes, int]]:
        """C{_getRootAndDists}: the last key with an entry along the parent chain, and hops."""
        dists: dict[bytes, int] = {}
        root = None
        here = key
        dist = 0
        infos = self.infos
        while here not in dists:
            info = infos.get(here)
            if info is None:
                break
            root = here
            dists[here] = dist
            dist += 1
            here = info.parent
        return root, dists

    def ancestry(self, key: bytes) -> list[bytes]:
        """The chain from the root side down to C{key} (stops at a loop or a missing entry)."""
        anc: list[bytes] = []
        seen: set[bytes] = set()
        here = key
        infos = self.infos
        while here not in seen:
            info = infos.get(here)
            if info is None:
                break
            anc.append(here)
            seen.add(here)
            here = info.parent
        anc.reverse()
        return anc

    # -- accepting entries -----------------------------------------------------------------

    def update(self, key: bytes, new: Info) -> bool:
        """C{_update} (section 3.4.1): accept C{new} for C{key} or reject it."""
        old = self.infos.get(key)
        if old is not None:
            if old.seq > new.seq:
                return False
            if old.seq == new.seq:
                if old.parent < new.parent:
                    return False
                if not new.parent < old.parent and not new.nonce < old.nonce:
                    return False
        for keys in self.sent.values():
            keys.discard(key)
        self._changed()
        self.infos[key] = new
        timer = self._timers.get(key)
        if key == self.key:
            if timer is None:
                self._timers[key] = Deadline(self.clock, REFRESH_S, self._refresh_due)
            else:
                timer.reset(REFRESH_S)
        elif timer is None:
            self._timers[key] = Deadline(self.clock, TIMEOUT_S, lambda: self._expire(key))
        else:
            timer.reset(TIMEOUT_S)
        return True

    def _refresh_due(self) -> None:
        self.refresh = True

    def _expire(self, key: bytes) -> None:
        self._timers.pop(key, None)
        self._uncharge(key)
        self._former.pop(key, None)
        if self.infos.pop(key, None) is not None:
            for keys in self.sent.values():
                keys.discard(key)
            self._changed()

    # -- per-peer quota (module docstring) ---------------------------------------------------

    def _charge(self, peer_key: bytes, key: bytes) -> None:
        self._origin[key] = peer_key
        self.charged.setdefault(peer_key, set()).add(key)

    def _uncharge(self, key: bytes) -> None:
        peer_key = self._origin.pop(key, None)
        if peer_key is not None:
            keys = self.charged[peer_key]
            keys.discard(key)
            if not keys:
                del self.charged[peer_key]

    def _over_quota(self, peer_key: bytes, key: bytes) -> bool:
        """
        Whether a new entry for C{key} from C{peer_key} is refused (and count it if so); at the
        global cap, an entry of the peer charged the most is forgotten to make room if it is
        not C{peer_key} and holds one no ancestry we need has.
        """
        if key == self.key or key in self.peers:
            return False
        held = len(self.charged.get(peer_key, ()))
        if held >= self.max_entries_per_peer:
            reason = f"it holds {self.max_entries_per_peer} tree entries already"
        elif len(self._origin) < self.max_entries or self._evict_for(held):
            return False
        else:
            reason = f"{self.max_entries} tree entries held, none that can give way"
        self.refused.event(short_key(peer_key), reason)
        return True

    def _needed(self) -> dict[bytes, bytes | None]:
        """The keys of our ancestry (-> None) and of our peers' (-> the first such peer)."""
        needed: dict[bytes, bytes | None] = dict.fromkeys(self.ancestry(self.key))
        for other in self.peers.by_key:
            for key in self.ancestry(other):
                needed.setdefault(key, other)
        return needed

    def _evict_for(self, held: int) -> bool:
        """At the global cap: forget one unneeded entry of a peer charged more than C{held}."""
        top = max(self.charged, key=lambda k: len(self.charged[k]))
        if len(self.charged[top]) <= held:
            return False
        needed = self._needed()
        for key in self.charged[top]:
            if key not in needed:
                self._uncharge(key)
                self._forget(key)
                self._changed()
                return True
        return False

    def _forget(self, key: bytes) -> None:
        """Drop C{key}'s entry and timer at once (its charge is already gone)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if self.infos.pop(key, None) is not None:
            for sent in self.sent.values():
                sent.discard(key)

    def _release_peer(self, peer_key: bytes) -> None:
        """
        The last link to C{peer_key} went down: keep the entries charged to it that are in our
        ancestry (no charge) or a peer's (charged to that peer) and forget the others.
        """
        keys = self.charged.pop(peer_key, set())
        needed = self._needed()
        if peer_key in self.infos and peer_key not in needed and peer_key not in self._origin:
            # Its own entry (never charged) stays until it expires, as in ironwood (after a
            # restart the peer learns from it which seq to exceed), but only for the last
            # MAX_FORMER_PEERS peers gone.
            former = self._former
            former[peer_key] = None
            if len(former) > self.max_former:
                oldest = next(iter(former))
                del former[oldest]
                self._forget(oldest)
                self._changed()
        for key in keys:
            self._origin.pop(key, None)
            if key in needed:
                owner = needed[key]
                if owner is not None:
                    self._charge(owner, key)
                continue
            self._forget(key)
        if keys:
            self._changed()

    def _changed(self) -> None:
        self._paths.clear()
        self._on_change()

    # -- requests --------------------------------------------------------------------------

    def _new_req(self) -> tuple[int, int]:
        me = self.infos.get(self.key)
        seq = ((me.seq if me is not None else 0) + 1) & MAX_UINT64
        return seq, int.from_bytes(self._randbytes(8), "big")

    def _send_req(self, peer: PeerLink, req: tuple[int, int]) -> None:
        peer.responded = False
        peer.send(FRAME_SIGREQ, SigReq(*req).encode())
        peer.srst = self.clock.seconds()

    def _send_reqs(self) -> None:
        self.requests.clear()
        self.responses.clear()
        for key, links in self.peers.by_key.items():
            req = self.requests[key] = self._new_req()
            for peer in tuple(links):
                self._send_req(peer, req)

    def _become_root(self) -> bool:
        seq, nonce = self._new_req()
        sig = self.identity.sign(tree_tbs(self.key, self.key, seq, nonce, 0))
        return self.update(self.key, Info(self.key, seq, nonce, 0, sig, sig))

    def _use_response(self, parent: bytes, res: SigRes) -> bool:
        sig = self.identity.sign(tree_tbs(self.key, parent, res.seq, res.nonce, res.port))
        return self.update(self.key, Info(parent, res.seq, res.nonce, res.port, res.psig, sig))

    # -- link events and frames ------------------------------------------------------------

    def link_up(self, peer: PeerLink, first: bool) -> None:
        """Section 3.5.3, link up (the bloom is sent by the router right after)."""
        if first:
            self.sent[peer.key] = set()
            self._former.pop(peer.key, None)
        else:
            for key in tuple(self.sent.get(peer.key, ())):
                info = self.infos.get(key)
                if info is not None:
                    peer.send(FRAME_ANNOUNCE, info.announce(key))
        peer.lag = UNKNOWN_LAG
        req = self.requests.get(peer.key)
        if req is None:
            req = self.requests[peer.key] = self._new_req()
        self._send_req(peer, req)

    def link_down(self, peer: PeerLink, last: bool) -> None:
        """
        Section 3.5.3, link down: when C{last} (no other link to the peer's key is up), forget what
        we sent that key and our signature request to it and its response, and release the
        entries charged to it (module docstring).
        """
        if last:
            self.sent.pop(peer.key, None)
            self.requests.pop(peer.key, None)
            self.responses.pop(peer.key, None)
            self._release_peer(peer.key)

    def handle_sigreq(self, peer: PeerLink, payload: bytes) -> None:
        """Always answer: sign the requester's entry under us with our port for it."""
        req = SigReq.decode(payload)
        psig = self.identity.sign(tree_tbs(peer.key, self.key, req.seq, req.nonce, peer.port))
        peer.send(FRAME_SIGRES, SigRes(req.seq, req.nonce, peer.port, psig).encode())

    def handle_sigres(self, peer: PeerLink, payload: bytes) -> None:
        """
        A SigRes (frame type 3) from C{peer}: measure the round trip; if it answers our current
        request, keep it (it makes C{peer} a parent candidate for L{fix}) and, on the link's first
        answer, update the link's lag (its cost, section 3.2).

        @raise ProtocolError: the payload does not decode or the signature does not verify (the link
            is dropped).
        """
        res = SigRes.decode(payload)
        if not res.verify(self.key, peer.key):
            raise ProtocolError("SigRes signature does not verify")
        peer.rtt = max(0.0, self.clock.seconds() - peer.srst)
        if self.requests.get(peer.key) != (res.seq, res.nonce):
            return
        if peer.key not in self.responses:
            self.responses[peer.key] = res
        if not peer.responded:
            peer.responded = True
            rtt = max(0, int((self.clock.seconds() - peer.srst) * 1e9))
            if peer.lag == UNKNOWN_LAG:
                peer.lag = rtt * 2
            else:
                prev = peer.lag
                peer.lag = prev * 7 // 8 + min(rtt, prev * 2) // 8
            self._on_change()

    def handle_announce(self, peer: PeerLink, payload: bytes) -> None:
        """
        An Announce (frame type 4) from C{peer}: store the entry if it wins the C{_update} order
        (section 3.4.1); if not and ours differs, send C{peer} the one we hold. Either way C{peer}
        now has that key's entry, so gossip does not send it again.

        @raise ProtocolError: the payload does not decode or a signature does not verify (the link
            is dropped).
        """
        ann = Announce.decode(payload)
        old = self.infos.get(ann.key)
        if old is None and self._over_quota(peer.key, ann.key):
            return
        # An entry byte-identical to the stored one was verified when it was stored.
        if (old is None or old.announce(ann.key) != payload) and not ann.verify():
            raise ProtocolError("Announce signature does not verify")
        info = Info.from_announce(ann)
        sent = self.sent.get(peer.key)
        if self.update(ann.key, info):
            if old is None and ann.key != self.key and ann.key not in self.peers:
                self._charge(peer.key, ann.key)
            if ann.key == self.key:
                self.refresh = True  # the network remembered a newer entry for us
            if sent is not None:
                sent.add(ann.key)
            return
        if sent is not None:
            sent.add(ann.key)
        stored = self.infos[ann.key]
        if not stored.same(info):
            peer.send(FRAME_ANNOUNCE, stored.announce(ann.key))

    # -- maintenance -----------------------------------------------------------------------

    def maintain(self) -> None:
        """The tree part of the 1 s tick: flags, caches, C{fix()}, C{sendAnnounces()}."""
        self.do_root2 = self.do_root2 or self.do_root1
        self._changed()
        self.fix()
        self.send_announces()

    def _cost(self, key: bytes, hops: int) -> int:
        return min(hops * peer.cost for peer in self.peers.by_key[key])

    def fix(self) -> None:
        """Parent selection (section 3.5.4)."""
        me_key = self.key
        best_root, best_parent, best_cost = me_key, me_key, _MAX_COST
        me = self.infos.get(me_key)
        me_parent = me.parent if me is not None else None
        if me_parent is not None and me_parent in self.peers:
            root, dists = self.root_and_dists(me_key)
            if root is not None and root < best_root:
                best_root, best_parent = root, me_parent
                best_cost = self._cost(me_parent, dists[root])
        for key in tuple(self.responses):
            if key not in self.infos or key not in self.peers:
                continue
            proot, pdists = self.root_and_dists(key)
            if me_key in pdists or proot is None:
                continue
            cost = self._cost(key, pdists[proot])
            if proot < best_root:
                best_root, best_parent, best_cost = proot, key, cost
            elif proot != best_root:
                continue
            if (self.refresh and cost * 2 < best_cost) or (
                best_parent != me_parent and cost < best_cost
            ):
                best_root, best_parent, best_cost = proot, key, cost
        if self.refresh or self.do_root1 or self.do_root2 or me_parent != best_parent:
            res = self.responses.get(best_parent)
            if res is not None and best_root != me_key and self._use_response(best_parent, res):
                self.log.debug(
                    "tree: parent {parent}, root {root}",
                    parent=short_key(best_parent),
                    root=short_key(best_root),
                )
                self.refresh = self.do_root1 = self.do_root2 = False
                self._send_reqs()
            elif self.do_root2:
                self._become_root()
                self.refresh = self.do_root1 = self.do_root2 = False
                self._send_reqs()
            elif not self.do_root1:
                self.do_root1 = True

    def send_announces(self) -> None:
        """Gossip (section 3.5.5): our ancestry and each peer's, root first, once each."""
        self_anc = self.ancestry(self.key)
        for peer_key, sent in self.sent.items():
            payloads = []
            for key in self_anc + self.ancestry(peer_key):
                if key not in sent:
                    sent.add(key)
                    payloads.append(self.infos[key].announce(key))
            if payloads:
                for peer in tuple(self.peers.by_key.get(peer_key, ())):
                    for payload in payloads:
                        peer.send(FRAME_ANNOUNCE, payload)

    def stop(self) -> None:
        """Cancel every entry's refresh and expiry timer (the router is stopping)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.refused.stop()

    # -- for /topology -----------------------------------------------------------------------

    def tree_info(self) -> list[dict[str, object]]:
        """One C{{public_key, parent, sequence}} per entry; ourselves even before the first tick."""
        out = [
            {"public_key": key.hex(), "parent": info.parent.hex(), "sequence": info.seq}
            for key, info in self.infos.items()
        ]
        if self.key not in self.infos:
            out.insert(0, {"public_key": self.key.hex(), "parent": self.key.hex(), "sequence": 0})
        return out
