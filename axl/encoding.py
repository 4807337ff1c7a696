# -*- test-case-name: tests.test_encoding -*-
"""
Go's C{encoding/binary} unsigned varints (LEB128), as Yggdrasil and ironwood use them.

Encoders emit the minimal form; the decoder accepts any form Go accepts (at most 10 bytes, no
more than 64 bits), see spec/yggdrasil-wire.md section 0.
"""

from __future__ import annotations

from axl.errors import DecodeError

__all__ = ["MAX_UINT64", "uvarint_encode", "uvarint_decode", "uvarint_size"]

MAX_UINT64 = (1 << 64) - 1

# Small values are by far the most common (ports, lengths, key sequence numbers): precompute them.
_SMALL = [bytes([i]) for i in range(128)]


def uvarint_encode(value: int) -> bytes:
    """Encode C{0 <= value < 2**64} in the minimal uvarint form."""
    if value < 128:
        if value < 0:
            raise ValueError(f"uvarint cannot encode a negative value: {value}")
        return _SMALL[value]
    if value > MAX_UINT64:
        raise ValueError(f"uvarint cannot encode more than 64 bits: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def uvarint_size(value: int) -> int:
    """The number of bytes L{uvarint_encode} emits for C{value}."""
    return max(1, (value.bit_length() + 6) // 7)


def uvarint_decode(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """
    Decode one uvarint starting at C{offset}.

    @return: C{(value, offset just past it)}.
    @raise DecodeError: the data ends inside the varint, it is longer than 10 bytes, or it
        overflows 64 bits (a 10th byte greater than 1).
    """
    end = len(data)
    if offset < end:
        b = data[offset]
        if b < 0x80:
            return b, offset + 1
    result = 0
    shift = 0
    i = offset
    while True:
        if i >= end:
            raise DecodeError("truncated uvarint")
        b = data[i]
        i += 1
        if shift == 63 and b > 1:
            raise DecodeError("uvarint overflows 64 bits")
        if b < 0x80:
            return result | (b << shift), i
        result |= (b & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise DecodeError("uvarint longer than 10 bytes")
