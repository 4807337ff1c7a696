# -*- test-case-name: tests.test_link_framing -*-
"""
Ironwood peer framing (spec/yggdrasil-wire.md section 2.6)::

    uvarint N || type (1 byte) || payload (N - 1 bytes)

N counts the type byte; 0 < N <= 131070 (Yggdrasil's C{peerMaxMessageSize}). Pure: no Twisted.
"""

from __future__ import annotations

from axl.encoding import uvarint_decode, uvarint_encode
from axl.errors import DecodeError

__all__ = [
    "PEER_MAX_MESSAGE_SIZE",
    "MAX_UVARINT_LEN",
    "FrameTooLarge",
    "EmptyFrame",
    "FrameDecoder",
    "encode_frame",
]

PEER_MAX_MESSAGE_SIZE = 65535 * 2
MAX_UVARINT_LEN = 10


class FrameTooLarge(DecodeError):
    """A frame longer than the link's limit (ironwood's C{ErrOversizedMessage})."""


class EmptyFrame(DecodeError):
    """A frame of length 0 (ironwood's C{ErrEmptyMessage})."""


def encode_frame(
    frame_type: int, payload: bytes = b"", max_size: int = PEER_MAX_MESSAGE_SIZE
) -> bytes:
    """
    One whole frame, length prefix included.

    @raise FrameTooLarge: type byte plus payload exceed C{max_size}.
    """
    if not 0 <= frame_type <= 255:
        raise ValueError(f"frame type must be a byte, not {frame_type}")
    size = len(payload) + 1
    if size > max_size:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {max_size}")
    return b"".join((uvarint_encode(size), bytes((frame_type,)), payload))


class FrameDecoder:
    """
    Incremental decoder: bytes in, C{(type, payload)} pairs out.

    After it raises, the stream is unusable and the link must be closed.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_size: int = PEER_MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """
        Add bytes; return every frame they complete, in order.

        @raise DecodeError: a length prefix longer than 10 bytes or over 64 bits.
        @raise EmptyFrame: a frame of length 0.
        @raise FrameTooLarge: a declared length over the limit (raised as soon as the prefix is
            read, before the body arrives).
        """
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data
        end = len(buf)
        offset = 0
        frames: list[tuple[int, bytes]] = []
        limit = self._max
        while offset < end:
            size = buf[offset]
            if size < 0x80:
                start = offset + 1
            else:
                try:
                    size, start = uvarint_decode(buf, offset)
                except DecodeError:
                    if end - offset < MAX_UVARINT_LEN:
                        break  # the prefix is not complete yet
                    raise
            if size == 0:
                raise EmptyFrame("empty frame (length 0)")
            if size > limit:
                raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {limit}")
            stop = start + size
            if stop > end:
                break
            frames.append((buf[start], bytes(buf[start + 1 : stop])))
            offset = stop
        if offset == end:
            if self._buf:
                self._buf = bytearray()
        elif buf is self._buf:
            if offset:
                del self._buf[:offset]
        else:
            self._buf = bytearray(buf[offset:])
        return frames
