# -*- test-case-name: tests.test_streams_framing -*-
"""
The framing of the port-7000 message protocol (spec/axl-node.md section 6.2): a 4-byte unsigned
big-endian length, then exactly that many payload bytes. A zero-length message is legal.

Pure code, no Twisted: L{FrameDecoder} turns received bytes into messages, L{frame_header} builds
the prefix for sending.
"""

from __future__ import annotations

import struct
from typing import Any

from axl.errors import ProtocolError

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME",
    "FrameDecoder",
    "FrameTooLarge",
    "encode_frame",
    "frame_header",
    "write_frame",
]

_LENGTH = struct.Struct("!I")
HEADER_SIZE = _LENGTH.size
#: The largest length the 4-byte prefix can carry.
MAX_FRAME = 0xFFFFFFFF


class FrameTooLarge(ProtocolError):
    """A frame announced a length above the receiver's limit."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message size {length} exceeds maximum {limit}")
        self.length = length
        self.limit = limit


def frame_header(length: int) -> bytes:
    """The 4-byte prefix of a message of C{length} bytes."""
    if not 0 <= length <= MAX_FRAME:
        raise ValueError(
            f"a message of {length} bytes cannot be framed (limit {MAX_FRAME})"
        )
    return _LENGTH.pack(length)


#: Up to this size a message is written as one buffer (header + payload): a tiny header
#: segment on its own can leave a small payload waiting for the peer's delayed ACK. Larger
#: payloads are written as they are (no copy).
_COALESCE = 64 * 1024


def write_frame(transport: Any, payload: bytes) -> None:
    """Write one message (header and payload) to C{transport}."""
    if len(payload) <= _COALESCE:
        transport.write(frame_header(len(payload)) + payload)
    else:
        transport.write(frame_header(len(payload)))
        transport.write(payload)


def encode_frame(payload: bytes) -> bytes:
    """
    One whole frame (prefix + payload). Write it with a single C{transport.write}: a 4-byte
    header written on its own can leave the payload waiting for the peer's delayed ACK.
    """
    return frame_header(len(payload)) + payload


class FrameDecoder:
    """
    Splits a byte stream into messages.

    @ivar max_length: the largest payload accepted; a longer announced length raises
        L{FrameTooLarge} as soon as its header is complete.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._need = (
            -1
        )  # payload length of the frame being received, -1 while in the header

    @property
    def in_frame(self) -> bool:
        """Whether part of a message (header or payload) has arrived but not all of it."""
        return self._need >= 0 or len(self._buf) > 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """
        Add received bytes; return every message they complete, in order.

        @raise FrameTooLarge: a header announced more than C{max_length}; the decoder is then
            unusable (the stream cannot be resynchronised).
        """
        buf = self._buf
        buf += data
        out: list[bytes] = []
        offset = 0
        size = len(buf)
        while True:
            if self._need < 0:
                if size - offset < HEADER_SIZE:
                    break
                (n,) = _LENGTH.unpack_from(buf, offset)
                if n > self.max_length:
                    raise FrameTooLarge(n, self.max_length)
                self._need = n
                offset += HEADER_SIZE
            n = self._need
            if size - offset < n:
                break
            with memoryview(
                buf
            ) as view:  # one copy, not two (a bytearray slice copies)
                out.append(bytes(view[offset : offset + n]))
            offset += n
            self._need = -1
        if offset:
            del buf[:offset]
        return out
