# -*- test-case-name: tests.test_streams_framing -*-
"""
The framing of the port-7000 message protocol (spec/axl-node.md section 6.2): a 4-byte unsigned
big-endian length, then exactly that many payload bytes. A zero-length message is legal.

Pure code, no Twisted: L{MessageDecoder} turns received bytes into messages, L{frame_header} builds
the prefix for sending. A receiver that refuses an oversize message answers with one
L{oversize_reply} frame before closing (our extension; a sender reads it with
L{parse_oversize_reply}).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from axl.errors import ProtocolError

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME",
    "MessageDecoder",
    "MessageTooLarge",
    "encode_message",
    "frame_header",
    "oversize_reply",
    "parse_oversize_reply",
    "write_frame",
]

_LENGTH = struct.Struct("!I")
HEADER_SIZE = _LENGTH.size
#: The largest length the 4-byte prefix can carry.
MAX_FRAME = 0xFFFFFFFF
#: No oversize reply is longer than this (the sender does not parse longer frames as one).
_OVERSIZE_REPLY_MAX = 1024


class MessageTooLarge(ProtocolError):
    """
    A frame announced a length above the receiver's limit.

    @ivar frames: the messages completed before that header by the same L{MessageDecoder.feed}
        call (they are not lost).
    @ivar received: how many bytes of the refused message itself had already arrived.
    """

    def __init__(
        self, length: int, limit: int, frames: list[bytes] | None = None, received: int = 0
    ) -> None:
        super().__init__(f"message size {length} exceeds maximum {limit}")
        self.length = length
        self.limit = limit
        self.frames: list[bytes] = frames if frames is not None else []
        self.received = received


def oversize_reply(length: int, limit: int) -> bytes:
    """
    The one reply frame payload a receiver writes before closing a connection whose next
    message announced C{length} bytes, over its C{limit} (spec/axl-node.md section 13.12).
    """
    return json.dumps(
        {
            "error": f"message of {length} bytes exceeds the receiver's max_message_size of {limit} bytes",
            "max_message_size": limit,
        },
        separators=(",", ":"),
    ).encode("ascii")


def parse_oversize_reply(payload: bytes) -> tuple[str, int] | None:
    """
    C{(error, max_message_size)} of an L{oversize_reply} (a JSON object with a string C{error}
    and an integer C{max_message_size}), or None if C{payload} is not one.
    """
    if not payload.startswith(b"{") or len(payload) > _OVERSIZE_REPLY_MAX:
        return None
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    error, limit = value.get("error"), value.get("max_message_size")
    if not isinstance(error, str) or not error:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    return error, limit


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


def encode_message(payload: bytes) -> bytes:
    """
    One whole frame (prefix + payload). Write it with a single C{transport.write}: a 4-byte
    header written on its own can leave the payload waiting for the peer's delayed ACK.
    """
    return frame_header(len(payload)) + payload


class MessageDecoder:
    """
    Splits a byte stream into messages.

    @ivar max_length: the largest payload accepted; a longer announced length raises
        L{MessageTooLarge} as soon as its header is complete.
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

        @raise MessageTooLarge: a header announced more than C{max_length}; the messages completed
            before it are in its C{frames}. The decoder is then unusable (the stream cannot be
            resynchronised).
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
                    del buf[:offset]
                    raise MessageTooLarge(n, self.max_length, out, len(buf) - HEADER_SIZE)
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
