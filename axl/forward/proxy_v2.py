# -*- test-case-name: tests.test_forward_proxy_v2 -*-
"""
The PROXY protocol version 2 header (HAProxy's "The PROXY protocol", section 2.2), as a
C{remote_tcp} forward with C{?proxy=v2} sends it to the local service before the caller's
bytes: command PROXY, family TCP over IPv6, source = the caller's Yggdrasil address and overlay
port, destination = our address and the forward's overlay port, and one TLV of type
L{TLV_YGGDRASIL_KEY} (0xE0, in the range the spec leaves to applications) holding the caller's
full 32-byte public key. Pure; the decoder is for services written in Python and for tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from axl.errors import DecodeError

__all__ = [
    "SIGNATURE",
    "TLV_YGGDRASIL_KEY",
    "ProxyHeader",
    "encode_proxy_v2",
    "decode_proxy_v2",
    "HEADER_MAX",
]

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
TLV_YGGDRASIL_KEY = 0xE0
VERSION_COMMAND_PROXY = 0x21
VERSION_COMMAND_LOCAL = 0x20
FAMILY_TCP6 = 0x21
FAMILY_UDP6 = 0x22
HEADER_MAX = 16 + 0xFFFF
_FIXED = struct.Struct("!12sBBH")
_IPV6 = struct.Struct("!16s16sHH")
_IPV4 = struct.Struct("!4s4sHH")
_FAMILY_ADDR_LEN = {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216, 0x00: 0}


@dataclass(frozen=True)
class ProxyHeader:
    """
    A decoded header. For C{LOCAL} (health checks) or unknown families the addresses are None.

    @ivar tlvs: C{(type, value)} pairs in order.
    """

    command: str
    family: int
    source: tuple[bytes, int] | None
    destination: tuple[bytes, int] | None
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())

    @property
    def yggdrasil_key(self) -> bytes | None:
        """The caller's key from TLV 0xE0, if present and 32 bytes long."""
        for kind, value in self.tlvs:
            if kind == TLV_YGGDRASIL_KEY and len(value) == 32:
                return value
        return None


def encode_proxy_v2(src: bytes, sport: int, dst: bytes, dport: int, key: bytes | None,
                    udp: bool = False) -> bytes:  # fmt: skip
    """A PROXY v2 header for an IPv6 connection from C{src}:C{sport} to C{dst}:C{dport}."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("PROXY v2 IPv6 addresses are 16 bytes")
    body = _IPV6.pack(src, dst, sport, dport)
    if key is not None:
        if len(key) != 32:
            raise ValueError("a Yggdrasil key is 32 bytes")
        body += struct.pack("!BH", TLV_YGGDRASIL_KEY, 32) + key
    family = FAMILY_UDP6 if udp else FAMILY_TCP6
    return _FIXED.pack(SIGNATURE, VERSION_COMMAND_PROXY, family, len(body)) + body


def decode_proxy_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    """
    Parse a header at the start of C{data}: C{(header, bytes used)}, or None while C{data} is
    shorter than the whole header.

    @raise DecodeError: not a PROXY v2 header (bad signature, version, command, lengths or TLVs).
    """
    n = min(len(data), 12)
    if data[:n] != SIGNATURE[:n]:
        raise DecodeError("not a PROXY protocol v2 header (bad signature)")
    if len(data) < 16:
        return None
    _, ver_cmd, family, length = _FIXED.unpack_from(data)
    if ver_cmd >> 4 != 2:
        raise DecodeError(f"PROXY protocol version {ver_cmd >> 4}, expected 2")
    if ver_cmd & 0x0F not in (0, 1):
        raise DecodeError(f"unknown PROXY command {ver_cmd & 0x0F}")
    if len(data) < 16 + length:
        return None
    body = bytes(data[16 : 16 + length])
    command = "PROXY" if ver_cmd & 0x0F == 1 else "LOCAL"
    source = destination = None
    addr_len = _FAMILY_ADDR_LEN.get(family, 0)
    if addr_len > length:
        raise DecodeError(f"a family {family:#x} header needs {addr_len} address bytes, has {length}")
    if command == "PROXY" and family in (FAMILY_TCP6, FAMILY_UDP6):
        s, d, sp, dp = _IPV6.unpack_from(body)
        source, destination = (s, sp), (d, dp)
    elif command == "PROXY" and family in (0x11, 0x12):
        s, d, sp, dp = _IPV4.unpack_from(body)
        source, destination = (s, sp), (d, dp)
    tlvs: list[tuple[int, bytes]] = []
    pos = addr_len
    while pos < length:
        if pos + 3 > length:
            raise DecodeError("truncated PROXY v2 TLV header")
        kind, size = struct.unpack_from("!BH", body, pos)
        if pos + 3 + size > length:
            raise DecodeError(f"PROXY v2 TLV {kind:#x} overruns the header")
        tlvs.append((kind, body[pos + 3 : pos + 3 + size]))
        pos += 3 + size
    return ProxyHeader(command, family, source, destination, tuple(tlvs)), 16 + length
