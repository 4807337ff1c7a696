# -*- test-case-name: tests.test_ipv6_udp -*-
"""
UDP over the overlay's IPv6 (RFC 768 with RFC 8200 section 8.1: the checksum covers the IPv6
pseudo-header and is mandatory; a computed 0 is sent as 0xFFFF, a received 0 is dropped), so a
kernel UDP socket behind a real Yggdrasil TUN node talks to us unchanged (spec/yggdrasil-wire.md
section 5.3 carries the packets).

L{encode_udp}/L{decode_udp} are pure; L{UDPLayer} demultiplexes datagrams to bound ports and
sends through the IPv6 layer (which looks up the key behind a destination address itself).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from twisted.logger import Logger

from axl.crypto.keys import short_key
from axl.errors import DecodeError
from axl.interfaces import IIPv6Layer
from axl.ipv6.packet import HEADER_SIZE, build_packet, decode_header, upper_layer_checksum
from axl.logs import observer as log_observer

__all__ = [
    "NEXT_HEADER_UDP",
    "UDP_HEADER_SIZE",
    "Datagram",
    "encode_udp",
    "decode_udp",
    "UDPLayer",
    "DatagramHandler",
]

NEXT_HEADER_UDP = 17
UDP_HEADER_SIZE = 8
_HEAD = struct.Struct("!HHHH")
_EPHEMERAL = (49152, 65535)

DatagramHandler = Callable[["Datagram"], None]
"""C{handler(datagram)}: one datagram for a bound port."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """
    One received datagram.

    @ivar source_key: the full key of the node that sent it (from the session).
    """

    source_key: bytes
    src: bytes
    sport: int
    dst: bytes
    dport: int
    payload: bytes


def encode_udp(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> bytes:
    """The whole IPv6 packet carrying one UDP datagram (hop limit 64)."""
    length = UDP_HEADER_SIZE + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"a UDP datagram is at most 65535 bytes, got {length}")
    head = _HEAD.pack(sport, dport, length, 0)
    csum = upper_layer_checksum(src, dst, NEXT_HEADER_UDP, head, payload) or 0xFFFF
    return build_packet(src, dst, NEXT_HEADER_UDP, _HEAD.pack(sport, dport, length, csum) + payload)


def decode_udp(packet: bytes, source_key: bytes = b"") -> Datagram:
    """
    Parse and verify the UDP datagram in a whole IPv6 packet.

    @raise DecodeError: not UDP, lengths that disagree, a zero or wrong checksum.
    """
    head = decode_header(packet)
    if head.next_header != NEXT_HEADER_UDP:
        raise DecodeError("not a UDP packet")
    body = memoryview(packet)[HEADER_SIZE:]
    if head.payload_length != len(body):
        raise DecodeError("the IPv6 payload length disagrees with the packet")
    if len(body) < UDP_HEADER_SIZE:
        raise DecodeError("UDP datagram shorter than its header")
    sport, dport, length, csum = _HEAD.unpack_from(body)
    if length != len(body):
        raise DecodeError(f"UDP length {length} disagrees with the IPv6 payload length {len(body)}")
    if csum == 0:
        raise DecodeError("UDP over IPv6 without a checksum")
    if upper_layer_checksum(head.src, head.dst, NEXT_HEADER_UDP, body) != 0:
        raise DecodeError("bad UDP checksum")
    return Datagram(source_key, head.src, sport, head.dst, dport, bytes(body[UDP_HEADER_SIZE:]))


class UDPLayer:
    """
    UDP for one node: registers for next header 17 with the IPv6 layer.

    @ivar max_payload: the largest payload that fits one packet (the MTU minus 48 bytes).
    @ivar stats: counters C{in}, C{out}, C{dropped} (bad datagrams, closed ports).
    """

    log = Logger(observer=log_observer)

    def __init__(self, ipv6: IIPv6Layer) -> None:
        self.ipv6 = ipv6
        self.address: bytes = bytes(ipv6.address)
        self.max_payload = int(ipv6.mtu) - HEADER_SIZE - UDP_HEADER_SIZE
        self._ports: dict[int, DatagramHandler] = {}
        self._next = _EPHEMERAL[0] + int.from_bytes(os.urandom(2), "big") % (_EPHEMERAL[1] - _EPHEMERAL[0])
        self.stats = {"in": 0, "out": 0, "dropped": 0}
        ipv6.register_protocol(NEXT_HEADER_UDP, self.packet_received)

    def bind(self, port: int, handler: DatagramHandler) -> int:
        """
        Deliver datagrams for C{port} (0: a free ephemeral port) to C{handler}; returns the port.

        @raise ValueError: the port is taken, out of range, or no ephemeral port is free.
        """
        if port == 0:
            for _ in range(_EPHEMERAL[1] - _EPHEMERAL[0] + 1):
                candidate = self._next
                self._next = candidate + 1 if candidate < _EPHEMERAL[1] else _EPHEMERAL[0]
                if candidate not in self._ports:
                    port = candidate
                    break
            else:
                raise ValueError("no free ephemeral UDP port")
        if not 0 < port < 65536:
            raise ValueError(f"a UDP port is 1-65535, got {port}")
        if port in self._ports:
            raise ValueError(f"overlay UDP port {port} is already bound")
        self._ports[port] = handler
        return port

    def unbind(self, port: int) -> None:
        """Stop delivering C{port}'s datagrams."""
        self._ports.pop(port, None)

    def send(self, sport: int, dst: bytes, dport: int, payload: bytes) -> None:
        """
        Send C{payload} from our address and C{sport} to C{dst} (16 bytes, in 200::/7) and
        C{dport}.

        @raise ValueError: the payload is larger than L{max_payload}.
        """
        if len(payload) > self.max_payload:
            raise ValueError(f"a UDP payload is at most {self.max_payload} bytes here, got {len(payload)}")
        self.stats["out"] += 1
        self.ipv6.send_ipv6(encode_udp(self.address, sport, dst, dport, payload))

    def packet_received(self, source_key: bytes, packet: bytes) -> None:
        """The IPv6 layer's handler for next header 17."""
        self.stats["in"] += 1
        try:
            datagram = decode_udp(packet, source_key)
        except DecodeError as e:
            self.stats["dropped"] += 1
            self.log.debug("dropped a UDP packet from {peer}: {err}", peer=short_key(source_key), err=e)
            return
        handler = self._ports.get(datagram.dport)
        if handler is None:
            self.stats["dropped"] += 1
            return
        handler(datagram)
