# -*- test-case-name: tests.test_tcp_stack -*-
"""
The TCP layer of one node: demultiplexes segments to connections by (local port, remote key,
remote port), runs listeners, allocates ephemeral ports, answers unknown ports with RST, turns
segments into whole IPv6 packets (with correct checksums) and stops cleanly.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError, ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from axl.crypto import addr_for_key, short_key
from axl.errors import DecodeError
from axl.interfaces import IIPv6Layer
from axl.ipv6.packet import checksum
from axl.logs import observer as log_observer
from axl.ratelimit import AggregatedLog
from axl.tcp.common import RcvBudget
from axl.tcp.connection import SYN_RCVD, TIME_WAIT, AppEvents, Connection, TCPConfig
from axl.tcp.segment import (
    ACK,
    NEXT_HEADER_TCP,
    RST,
    SYN,
    Segment,
    decode_segment,
    verify_checksum,
)
from axl.tcp.seq import MASK

__all__ = ["BACKLOG_PER_PEER", "EPHEMERAL_PORTS", "Listener", "TCPStack"]

EPHEMERAL_PORTS = (49152, 65535)
_HDR = struct.Struct("!HHIIBBHHH")
_IP6 = struct.Struct("!IHBB")
_PLEN = struct.Struct("!H")
_BACKLOG = 128
#: Half-open connections one remote key may hold on one listener (issue 12: a SYN flood from one
#: key cannot take the whole backlog; new keys cost a session handshake, itself rate-limited).
BACKLOG_PER_PEER = 16

ConnKey = tuple[int, bytes, int]
Accept = Callable[[Connection], "AppEvents | None"]


class Listener:
    """A listening port: C{accept(conn)} returns the app for an established connection (or None)."""

    def __init__(self, stack: TCPStack, port: int, accept: Accept) -> None:
        self.stack, self.port, self.accept = stack, port, accept
        self.half_open = 0
        self.half_open_by_peer: dict[bytes, int] = {}

    def close(self) -> None:
        """Stop accepting; established connections are not affected."""
        if self.stack._listeners.get(self.port) is self:
            del self.stack._listeners[self.port]


class TCPStack:
    """
    @param ipv6: the IPv6 layer below (L{IIPv6Layer}); we register for next header 6.
    @param public_key: our full 32-byte key (for connections to ourselves).
    @param verify_checksums: check checksums of incoming segments (not needed for packets that
        passed the session layer's MAC).
    @param secret: the RFC 6528 ISN key; random if omitted.
    @param isn: tests only: C{isn(local_port, peer_key, remote_port)} overrides RFC 6528.
    """

    log = Logger(observer=log_observer)

    def __init__(self, ipv6: IIPv6Layer, public_key: bytes, clock: IReactorTime,
                 config: TCPConfig | None = None, verify_checksums: bool = False,
                 secret: bytes | None = None, connect_timeout: float = 10.0,
                 isn: Callable[[int, bytes, int], int] | None = None) -> None:
        self.ipv6, self.public_key, self.clock = ipv6, public_key, clock
        self.address: bytes = bytes(ipv6.address)
        self.config = config or TCPConfig(mtu=int(ipv6.mtu))
        self.rcv_budget = RcvBudget(self.config.rcv_budget)   # shared by all connections
        self.verify_checksums = verify_checksums
        self.connect_timeout = connect_timeout
        self._isn = isn
        self._secret = secret if secret is not None else os.urandom(32)
        self._conns: dict[ConnKey, Connection] = {}
        self._half_open: dict[Connection, Listener] = {}   # passive opens not yet established
        self._listeners: dict[int, Listener] = {}
        self._local: deque[bytes] = deque()
        self._local_call: IDelayedCall | None = None
        self._next_port = EPHEMERAL_PORTS[0] + int.from_bytes(self._secret[:2], "big") % (
            EPHEMERAL_PORTS[1] - EPHEMERAL_PORTS[0])
        self._stopping: Deferred[None] | None = None
        self._stop_call: IDelayedCall | None = None
        self.stopped = False
        self.stats = {"in": 0, "out": 0, "rst_sent": 0, "dropped": 0}
        self.drops = AggregatedLog(clock, self.log, "dropped", "TCP packets")
        self.rcv_budget.on_drop = lambda key, n, why: self.drops.event(
            short_key(key), f"{n} bytes {why}")
        ipv6.register_protocol(NEXT_HEADER_TCP, self.packet_received)
        ipv6.register_ptb_handler(lambda source_key, mtu, original: self.packet_too_big(mtu, original))

    # ---- public API --------------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """The connections currently known (any state but CLOSED)."""
        return list(self._conns.values())

    def listen(self, port: int, accept: Accept) -> Listener:
        """Accept connections on C{port}; raises C{CannotListenError} if it is taken."""
        if not 0 < port < 65536:
            raise CannotListenError(
                "overlay", port, ValueError("port must be 1..65535"))
        if port in self._listeners:
            raise CannotListenError(
                "overlay", port, OSError("port already in use"))
        listener = self._listeners[port] = Listener(self, port, accept)
        return listener

    def connect(self, peer_key: bytes, port: int, app: AppEvents) -> Connection:
        """Open a connection to C{peer_key}:C{port}; C{app} hears about it."""
        if self.stopped or self._stopping is not None:
            raise RuntimeError("the TCP stack is stopped")
        if len(peer_key) != 32:
            raise ValueError("a peer key is 32 bytes")
        if not 0 < port < 65536:
            raise ValueError("port must be 1..65535")
        lport = self._allocate_port(peer_key, port)
        conn = self._new_connection(lport, peer_key, port)
        conn.app = app
        conn.open_active()
        return conn

    def stop(self, grace: float = 2.0) -> Deferred[None]:
        """
        Close every connection (FIN), reset those still open after C{grace} seconds, cancel all
        timers. Fires when nothing is left.
        """
        if self._stopping is not None:
            return self._stopping
        self.stopped = True
        self._listeners.clear()
        self.drops.stop()
        d: Deferred[None] = Deferred()
        self._stopping = d
        for conn in list(self._conns.values()):
            if conn.state == SYN_RCVD or conn.app is None:
                conn.abort(ConnectionLost("stack stopped"))     # half-open: RST
            elif conn.state == TIME_WAIT:
                conn._finish(ConnectionLost("stack stopped"), rst=False)
            else:
                conn.close()                                    # FIN after queued data
        if self._conns:
            self._stop_call = self.clock.callLater(grace, self._force_stop)
        else:
            self._stopped()
        return d

    def _force_stop(self) -> None:
        self._stop_call = None
        for conn in list(self._conns.values()):
            conn.abort(ConnectionLost("stack stopped"))
        self._conns.clear()
        self._stopped()

    def _stopped(self) -> None:
        if self._stop_call is not None and self._stop_call.active():
            self._stop_call.cancel()
        self._stop_call = None
        if self._local_call is not None and self._local_call.active():
            self._local_call.cancel()
        self._local_call = None
        self._local.clear()
        d, self._stopping = self._stopping, None
        if d is not None:
            self._stopping = succeed(None)
            d.callback(None)

    def packet_too_big(self, mtu: int, original: bytes) -> None:
        """
        An ICMPv6 Packet Too Big (RFC 8201) for a packet we sent: C{original} is the quoted
        packet (at least the IPv6 header and the first 8 TCP bytes). Shrinks that connection's
        segments.
        """
        if len(original) < 48 or original[6] != NEXT_HEADER_TCP or bytes(original[8:24]) != self.address:
            return
        sport, dport = struct.unpack_from("!HH", original, 40)
        dst = bytes(original[24:40])
        for (lport, rkey, rport), conn in list(self._conns.items()):
            if lport == sport and rport == dport and addr_for_key(rkey) == dst:
                conn.lower_mtu(mtu)

    # ---- packets in --------------------------------------------------------------------------

    def packet_received(self, source_key: bytes, packet: bytes) -> None:
        """The IPv6 layer's handler: one whole IPv6 packet with next header 6."""
        self.stats["in"] += 1
        n = len(packet)
        if n < 60 or packet[6] != NEXT_HEADER_TCP or _PLEN.unpack_from(packet, 4)[0] != n - 40:
            self._drop("malformed IPv6/TCP packet", source_key)
            return
        mv = memoryview(packet)[40:]
        if self.verify_checksums and not verify_checksum(packet[8:24], packet[24:40], mv):
            self._drop("bad TCP checksum", source_key)
            return
        try:
            seg = decode_segment(mv)
        except DecodeError as e:
            self._drop(str(e), source_key)
            return
        conn = self._conns.get((seg.dport, source_key, seg.sport))
        if conn is not None:
            conn.segment_arrived(seg)
            return
        if self.stopped or seg.flags & RST:
            return
        listener = self._listeners.get(seg.dport)
        if listener is not None and seg.flags & (SYN | ACK) == SYN:
            if listener.half_open >= _BACKLOG:
                self._drop("listen backlog full", source_key)
                return
            if listener.half_open_by_peer.get(source_key, 0) >= BACKLOG_PER_PEER:
                self._drop(f"{BACKLOG_PER_PEER} half-open connections from this key", source_key)
                return
            self._passive_open(listener, source_key, seg)
            return
        self._reset(source_key, seg)

    def _drop(self, why: str, source_key: bytes) -> None:
        self.stats["dropped"] += 1
        self.drops.event(short_key(source_key), why)

    def _reset(self, peer_key: bytes, seg: Segment) -> None:
        """RST for a segment that belongs to no connection (RFC 9293 3.10.7.1)."""
        self.stats["rst_sent"] += 1
        emit = self._make_emit(peer_key, seg.dport, seg.sport)
        if seg.flags & ACK:
            emit(seg.ack, 0, RST, 0, b"", b"")
        else:
            emit(0, (seg.seq + seg.seg_len) & MASK, RST | ACK, 0, b"", b"")

    def _passive_open(self, listener: Listener, peer_key: bytes, syn: Segment) -> None:
        conn = self._new_connection(syn.dport, peer_key, syn.sport)
        listener.half_open += 1
        listener.half_open_by_peer[peer_key] = listener.half_open_by_peer.get(peer_key, 0) + 1
        self._half_open[conn] = listener
        conn.on_established = self._established
        conn.open_passive(syn)

    def _unlisten(self, conn: Connection) -> Listener | None:
        listener = self._half_open.pop(conn, None)
        if listener is not None:
            listener.half_open -= 1
            peer = conn.remote_key
            left = listener.half_open_by_peer.pop(peer, 1) - 1
            if left:
                listener.half_open_by_peer[peer] = left
        return listener

    def _established(self, conn: Connection) -> None:
        listener = self._unlisten(conn)
        if listener is None or self._listeners.get(listener.port) is not listener:
            conn.abort()
            return
        app = listener.accept(conn)
        if app is None:
            conn.abort()
            return
        conn.app = app
        app.tcp_established()

    # ---- connections -------------------------------------------------------------------------

    def _new_connection(self, lport: int, peer_key: bytes, rport: int) -> Connection:
        key = (lport, peer_key, rport)
        digest = hashlib.blake2b(
            self.address + addr_for_key(peer_key) + struct.pack("!HH", lport, rport),
            key=self._secret, digest_size=8).digest()
        # RFC 6528: ISN = M + F(addresses, ports, secret), M a 4-microsecond timer
        iss = (int(self.clock.seconds() * 250_000) + int.from_bytes(digest[:4], "big")) & MASK
        if self._isn is not None:
            iss = self._isn(lport, peer_key, rport) & MASK
        conn = Connection(self.config, self.clock, self._make_emit(peer_key, lport, rport), iss,
                          ts_offset=int.from_bytes(digest[4:], "big"), release=self._release,
                          budget=self.rcv_budget)
        conn.local_port, conn.remote_key, conn.remote_port = lport, peer_key, rport
        self._conns[key] = conn
        return conn

    def _release(self, conn: Connection) -> None:
        self._unlisten(conn)
        key = (conn.local_port, conn.remote_key, conn.remote_port)
        if self._conns.get(key) is conn:
            del self._conns[key]
        if self._stopping is not None and not self._conns and self._stop_call is not None:
            self._stopped()

    def _allocate_port(self, peer_key: bytes, rport: int) -> int:
        lo, hi = EPHEMERAL_PORTS
        span = hi - lo + 1
        for _ in range(span):
            port = self._next_port
            self._next_port = lo + (port + 1 - lo) % span
            if port not in self._listeners and (port, peer_key, rport) not in self._conns:
                return port
        raise RuntimeError("no free ephemeral port")

    # ---- packets out -------------------------------------------------------------------------

    def _make_emit(self, peer_key: bytes, sport: int, dport: int
                   ) -> Callable[[int, int, int, int, bytes, bytes | bytearray | memoryview], None]:
        addrs = self.address + addr_for_key(peer_key)
        pseudo_tail = struct.Struct("!IxxxB")
        pack_tail = pseudo_tail.pack
        send = self._deliver_local if peer_key == self.public_key else self.ipv6.send_ipv6
        hdr_pack, ip_pack = _HDR.pack, _IP6.pack
        stats = self.stats

        def emit(seq: int, ack: int, flags: int, window: int, opts: bytes,
                 payload: bytes | bytearray | memoryview) -> None:
            hdr_len = 20 + len(opts)
            tcp_len = hdr_len + len(payload)
            hdr = hdr_pack(sport, dport, seq, ack, hdr_len << 2, flags, window, 0, 0)
            csum = checksum(addrs + pack_tail(tcp_len, NEXT_HEADER_TCP), hdr, opts, payload)
            hdr = hdr_pack(sport, dport, seq, ack, hdr_len << 2, flags, window, csum, 0)
            stats["out"] += 1
            send(b"".join((ip_pack(0x60000000, tcp_len, NEXT_HEADER_TCP, 64), addrs, hdr, opts,
                           payload)))

        return emit

    def _deliver_local(self, packet: bytes) -> None:
        if self.stopped and not self._conns:
            return
        self._local.append(packet)
        if self._local_call is None:
            self._local_call = self.clock.callLater(0, self._flush_local)

    def _flush_local(self) -> None:
        self._local_call = None
        q = self._local
        while q:
            self.packet_received(self.public_key, q.popleft())

