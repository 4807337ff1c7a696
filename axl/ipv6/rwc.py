# -*- test-case-name: tests.test_ipv6_rwc -*-
"""
The IPv6 carriage (Yggdrasil's C{ipv6rwc}, spec/yggdrasil-wire.md section 5.3): IPv6 packets
between our userspace stack and the sessions, as plaintexts C{01 || packet}.

Outgoing: the destination (a 200::/8 address or a 300::/8 subnet) names a partial key; if we
know the full key behind it we send, otherwise we keep the packet (in order, for 2 minutes; at
most L{MAX_PENDING_PER_DEST} per destination, the oldest giving way, and L{MAX_PENDING_PACKETS}
/ L{MAX_PENDING_BYTES} in all, new ones refused beyond) and ask the router to look the partial
key up (the router keeps retrying while we wait, so nothing waits for TCP to retransmit); a path
notify, or a packet from the key, teaches us the full key and flushes the packets in order (Go
keeps only the newest). Incoming: too big -> ICMPv6 Packet Too Big back; not for us -> drop;
the sender's key is learnt; a source address that does not belong to the key that encrypted the
packet -> drop (anti-spoofing); then the packet goes to the handler registered for its next
header with the sender's FULL key.

Unlike Go, a packet to our own address or subnet is delivered locally, and ICMPv6 echo requests
are answered.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from axl.crypto.address import (
    ADDR_PREFIX,
    SUBNET_PREFIX,
    addr_for_key,
    key_for_addr,
    key_for_subnet,
    subnet_for_key,
)
from axl.crypto.keys import short_key
from axl.errors import DecodeError
from axl.interfaces import IIPv6Layer, ISessions
from axl.ipv6.icmpv6 import (
    NEXT_HEADER_ICMPV6,
    PTB_BODY_MAX,
    TYPE_ECHO_REQUEST,
    TYPE_PACKET_TOO_BIG,
    decode_packet_too_big,
    echo_reply,
    packet_too_big,
)
from axl.ipv6.packet import HEADER_SIZE
from axl.logs import observer as log_observer
from axl.ratelimit import DropCounter
from axl.session.proto import CORE_MTU, SESSION_TRAFFIC

__all__ = [
    "IPv6Layer",
    "KEY_TIMEOUT",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_PACKETS",
    "MAX_PENDING_PER_DEST",
    "ProtocolHandler",
    "PTBHandler",
]

KEY_TIMEOUT = 120.0
"""Seconds a learnt key (refreshed on use) or a buffered packet is kept."""
MAX_PENDING_PER_DEST = 32
"""Packets kept per destination whose key is being looked up (the oldest give way)."""
MAX_PENDING_PACKETS = 1024
"""Packets kept for all destinations together (new ones are refused beyond it)."""
MAX_PENDING_BYTES = 4 * 1024 * 1024
"""Bytes kept for all destinations together (new ones are refused beyond it)."""

ProtocolHandler = Callable[[bytes, bytes], None]
"""C{handler(source_key, packet)}: a whole IPv6 packet from the full key C{source_key}."""

PTBHandler = Callable[[bytes, int, bytes], None]
"""C{handler(source_key, mtu, original_prefix)}: a Packet Too Big about a packet we sent."""

_TRAFFIC_BYTE = bytes((SESSION_TRAFFIC,))


class Lookups(Protocol):
    """The part of L{axl.interfaces.IRouter} this layer uses."""

    def send_lookup(self, partial_key: bytes) -> None:
        """Look up the key starting with C{partial_key} (L{axl.interfaces.IRouter.send_lookup})."""


class _KeyInfo:
    __slots__ = ("key", "address", "subnet", "expires")

    def __init__(self, key: bytes, expires: float) -> None:
        self.key = key
        self.address = addr_for_key(key)
        self.subnet = subnet_for_key(key)
        self.expires = expires


@implementer(IIPv6Layer)
class IPv6Layer:
    """
    The ipv6rwc of one node.

    @ivar address: our 16-byte address.
    @ivar subnet: the 8-byte prefix of our /64.
    @ivar mtu: the largest packet sent or accepted (65535, the core MTU).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        public_key: bytes,
        sessions: ISessions,
        router: Lookups,
        clock: IReactorTime,
        mtu: int = CORE_MTU,
    ) -> None:
        self.public_key = public_key
        self.address = addr_for_key(public_key)
        self.subnet = subnet_for_key(public_key)
        self.mtu = mtu
        self.drops: Counter[str] = Counter()  # packets dropped, by reason (for /metrics)
        self._sessions = sessions
        self._router = router
        self._clock = clock
        self._protocols: dict[int, ProtocolHandler] = {}
        self._ptb_handlers: list[PTBHandler] = []
        self._by_key: dict[bytes, _KeyInfo] = {}
        self._by_addr: dict[bytes, _KeyInfo] = {}
        self._by_subnet: dict[bytes, _KeyInfo] = {}
        # destination (16-byte address or 8-byte subnet) -> its (packet, expiry time)s, in order
        self._pending: dict[bytes, deque[tuple[bytes, float]]] = {}
        self._sweeper: IDelayedCall | None = None
        #: packets and bytes waiting for a key, and packets dropped by the limits so far
        self.pending_packets = 0
        self.pending_bytes = 0
        self._drops = DropCounter(
            clock,
            self.log,
            "dropped {n} packets waiting for address lookups (limits: {per} per destination, "
            "{total} packets, {size} bytes in total)",
            per=MAX_PENDING_PER_DEST,
            total=MAX_PENDING_PACKETS,
            size=MAX_PENDING_BYTES,
        )

    # -- IIPv6Layer -----------------------------------------------------------------------

    def register_protocol(self, next_header: int, handler: ProtocolHandler) -> None:
        """
        Deliver incoming packets with C{next_header} to C{handler(source_key, packet)} (a
        L{ProtocolHandler}); a later registration replaces an earlier one.
        """
        if not 0 <= next_header <= 255:
            raise ValueError(f"a next header is one byte, got {next_header}")
        if not callable(handler):
            raise TypeError("a protocol handler must be callable")
        self._protocols[next_header] = handler

    def register_ptb_handler(self, handler: PTBHandler) -> None:
        """
        Call C{handler(source_key, mtu, original_prefix)} for each ICMPv6 Packet Too Big about a
        packet we sent: from the network (C{source_key} is the full key of the node that sent
        it), or from this layer itself when we tried to send more than L{mtu} bytes
        (C{source_key} is our own key). C{original_prefix} is the start of our packet (at
        least its 40-byte header).
        """
        self._ptb_handlers.append(handler)

    def send_ipv6(self, packet: bytes) -> None:
        """
        Send one IPv6 packet from our stack. Malformed ones, ones from an address that is not
        ours and ones to destinations outside 200::/7 are dropped (logged at debug level, as
        Go's are with an error nobody reads).
        """
        if len(packet) < HEADER_SIZE or packet[0] & 0xF0 != 0x60:
            self.log.debug("dropped an outgoing packet that is not IPv6")
            return
        if len(packet) > self.mtu:
            self._local_ptb(packet)
            return
        src = packet[8:24]
        if src != self.address and src[:8] != self.subnet:
            self.log.debug("dropped an outgoing packet from a foreign source address")
            return
        dst = packet[24:40]
        if dst == self.address or dst[:8] == self.subnet:
            self._deliver(self.public_key, packet)
            return
        prefix = dst[0]
        if prefix == ADDR_PREFIX:
            info = self._by_addr.get(dst)
            dest = dst
        elif prefix == SUBNET_PREFIX:
            dest = dst[:8]
            info = self._by_subnet.get(dest)
        else:
            self.log.debug("dropped an outgoing packet to a destination outside 200::/7")
            return
        now = self._clock.seconds()
        if info is not None and info.expires > now:
            info.expires = now + KEY_TIMEOUT
            self._sessions.send(info.key, _TRAFFIC_BYTE + packet)
            return
        self._hold(dest, packet, now + KEY_TIMEOUT)
        self._arm_sweeper()
        partial = key_for_addr(dst) if prefix == ADDR_PREFIX else key_for_subnet(dest)
        self._router.send_lookup(partial)

    # -- from below -----------------------------------------------------------------------

    def _hold(self, dest: bytes, packet: bytes, expires: float) -> None:
        queue = self._pending.get(dest)
        if queue is None:
            queue = self._pending[dest] = deque()
        if len(queue) >= MAX_PENDING_PER_DEST:
            old, _ = queue.popleft()
            self.pending_packets -= 1
            self.pending_bytes -= len(old)
            self._drops.add(1)
        if (
            self.pending_packets >= MAX_PENDING_PACKETS
            or self.pending_bytes + len(packet) > MAX_PENDING_BYTES
        ):
            self._drops.add(1)
            if not queue:
                del self._pending[dest]
            return
        queue.append((packet, expires))
        self.pending_packets += 1
        self.pending_bytes += len(packet)

    def _unhold(self, dest: bytes) -> list[tuple[bytes, float]]:
        queue = self._pending.pop(dest, None)
        if queue is None:
            return []
        self.pending_packets -= len(queue)
        self.pending_bytes -= sum(len(packet) for packet, _ in queue)
        return list(queue)

    @property
    def pending_dropped(self) -> int:
        """Packets dropped so far by the limits or after waiting L{KEY_TIMEOUT}."""
        return self._drops.total

    def path_notify(self, full_key: bytes) -> None:
        """The router found C{full_key} (its C{on_path_notify}): learn it, flush its packets."""
        self._flush(self._learn(full_key))

    def _flush(self, info: _KeyInfo) -> None:
        """Send, in order, the packets kept for the address and subnet of C{info.key}."""
        if not self._pending:
            return
        now = self._clock.seconds()
        for dest in (info.address, info.subnet):
            for packet, expires in self._unhold(dest):
                if expires > now:
                    self._sessions.send(info.key, _TRAFFIC_BYTE + packet)

    def packet_received(self, source_key: bytes, packet: bytes) -> None:
        """One IPv6 packet (session type 1) decrypted from the full key C{source_key}."""
        if len(packet) < HEADER_SIZE or packet[0] & 0xF0 != 0x60:
            return
        if len(packet) > self.mtu:
            self.send_ipv6(packet_too_big(packet, self.mtu))
            return
        dst = packet[24:40]
        if dst != self.address and dst[:8] != self.subnet:
            return
        info = self._learn(source_key)
        # A packet from the key teaches it as well as a path notify does (we may never find
        # a path ourselves: the remote found us and our replies go along its coordinates), so
        # what we kept for its address goes out now, before anything this packet prompts.
        self._flush(info)
        src = packet[8:24]
        if src != info.address and src[:8] != info.subnet:
            self.drops["ipv6_source_not_sender"] += 1
            self.log.debug(
                "dropped a packet from {key} with a source address that is not its own",
                key=short_key(source_key),
            )
            return
        self._deliver(source_key, packet)

    # -- internals ------------------------------------------------------------------------

    def _deliver(self, source_key: bytes, packet: bytes) -> None:
        next_header = packet[6]
        if next_header == NEXT_HEADER_ICMPV6 and len(packet) > HEADER_SIZE:
            kind = packet[HEADER_SIZE]
            if kind == TYPE_PACKET_TOO_BIG:
                self._network_ptb(source_key, packet)
                return
            if kind == TYPE_ECHO_REQUEST and NEXT_HEADER_ICMPV6 not in self._protocols:
                reply = echo_reply(packet)
                if reply is not None:
                    self.send_ipv6(reply)
                return
        handler = self._protocols.get(next_header)
        if handler is None:
            return
        try:
            handler(source_key, packet)
        except Exception:
            self.log.failure("protocol {nh} handler failed", nh=next_header)

    def _network_ptb(self, source_key: bytes, packet: bytes) -> None:
        try:
            ptb = decode_packet_too_big(packet)
        except DecodeError as e:
            self.log.debug("dropped a bad Packet Too Big: {err}", err=e)
            return
        original_src = ptb.original[8:24]
        if original_src != self.address and original_src[:8] != self.subnet:
            return  # not about a packet of ours
        self._ptb(source_key, ptb.mtu, ptb.original)

    def _local_ptb(self, packet: bytes) -> None:
        self.log.debug(
            "outgoing packet of {n} bytes exceeds the MTU {mtu}", n=len(packet), mtu=self.mtu
        )
        self._ptb(self.public_key, self.mtu, packet[:PTB_BODY_MAX])

    def _ptb(self, source_key: bytes, mtu: int, original: bytes) -> None:
        for handler in self._ptb_handlers:
            try:
                handler(source_key, mtu, original)
            except Exception:
                self.log.failure("Packet Too Big handler failed")

    def _learn(self, key: bytes) -> _KeyInfo:
        expires = self._clock.seconds() + KEY_TIMEOUT
        info = self._by_key.get(key)
        if info is None:
            info = _KeyInfo(key, expires)
            self._by_key[key] = info
            self._by_addr[info.address] = info
            self._by_subnet[info.subnet] = info
            self._arm_sweeper()
        else:
            info.expires = expires
        return info

    def known_key(self, address: bytes) -> bytes | None:
        """The full key we know for a 16-byte address (or one inside a subnet), if any."""
        info = self._by_addr.get(address) or self._by_subnet.get(address[:8])
        if info is None or info.expires <= self._clock.seconds():
            return None
        return info.key

    def _arm_sweeper(self) -> None:
        if self._sweeper is None or not self._sweeper.active():
            self._sweeper = self._clock.callLater(KEY_TIMEOUT / 2, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._clock.seconds()
        for key, info in list(self._by_key.items()):
            if info.expires <= now:
                del self._by_key[key]
                if self._by_addr.get(info.address) is info:
                    del self._by_addr[info.address]
                if self._by_subnet.get(info.subnet) is info:
                    del self._by_subnet[info.subnet]
        for dest, queue in list(self._pending.items()):
            expired = 0
            while queue and queue[0][1] <= now:
                packet, _ = queue.popleft()
                self.pending_packets -= 1
                self.pending_bytes -= len(packet)
                expired += 1
            if expired:
                self._drops.add(expired)
            if not queue:
                del self._pending[dest]
        if self._by_key or self._pending:
            self._arm_sweeper()

    def stop(self) -> None:
        """Cancel the sweeper and forget keys and buffered packets."""
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        self._by_key.clear()
        self._by_addr.clear()
        self._by_subnet.clear()
        self._pending.clear()
        self.pending_packets = self.pending_bytes = 0
