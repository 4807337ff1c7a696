# -*- test-case-name: tests.test_streams_framing,tests.test_streams_acknowledged -*-
"""
The framing of the port-7000 message protocol (spec/axl-node.md section 6.2): a 4-byte unsigned
big-endian length, then exactly that many payload bytes. A zero-length message is legal.

Pure code, no Twisted: L{MessageDecoder} turns received bytes into messages, L{frame_header} builds
the prefix for sending. A receiver that refuses an oversize message answers with one
L{oversize_reply} frame before closing (our extension; a sender reads it with
L{parse_oversize_reply}).

The acknowledged message protocol between axl nodes (README "Messaging", L{ACK_PORT_OFFSET}):
each message frame's payload (written by L{write_acked_message}) is a 2-byte metadata length,
the metadata, then the message, and the receiver answers every message, in order, with one status frame
(L{status_frame}, read with L{parse_status}).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from axl.errors import ProtocolError

__all__ = [
    "ACK_OK",
    "ACK_PORT_OFFSET",
    "ACKED_OVERHEAD",
    "META_MAX",
    "AckedBody",
    "acked_message_head",
    "HEADER_SIZE",
    "MAX_FRAME",
    "MessageDecoder",
    "MessageTooLarge",
    "Status",
    "acknowledged_port",
    "encode_message",
    "frame_header",
    "parse_acked_body",
    "parse_status",
    "status_frame",
    "write_acked_message",
    "oversize_error",
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
        {"error": oversize_error(length, limit), "max_message_size": limit},
        separators=(",", ":"),
    ).encode("ascii")


def oversize_error(length: int, limit: int) -> str:
    """The one-line reason a receiver gives for refusing a message of C{length} bytes."""
    return f"message of {length} bytes exceeds the receiver's max_message_size of {limit} bytes"


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
    def pending_length(self) -> int | None:
        """The payload length announced by the frame in progress; None while in a header."""
        return self._need if self._need >= 0 else None

    def take_buffered(self) -> bytes:
        """Remove and return the bytes received but not returned as messages (after L{MessageTooLarge})."""
        data = bytes(self._buf)
        self._buf.clear()
        self._need = -1
        return data

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


# ---------------------------------------------------------------------------------------------
# The acknowledged message protocol (axl to axl; a Go AXL node never sees it).

#: The acknowledged protocol listens on overlay port C{tcp_port + 1} (C{tcp_port - 1} when
#: C{tcp_port} is 65535): see L{acknowledged_port}.
ACK_PORT_OFFSET = 1

_META_LENGTH = struct.Struct("!H")
#: The longest metadata a message may carry (a JSON object, e.g. a message id).
META_MAX = 1024
#: The status frame payload of an accepted message.
ACK_OK = b'{"status":200}'
_STATUS_MAX = 4096
#: The bytes a message of the acknowledged protocol may carry beyond its payload.
ACKED_OVERHEAD = _META_LENGTH.size + META_MAX


def acknowledged_port(tcp_port: int) -> int:
    """The overlay port of the acknowledged message protocol of a node whose C{tcp_port} is given."""
    return tcp_port + ACK_PORT_OFFSET if tcp_port < 0xFFFF else tcp_port - ACK_PORT_OFFSET


def write_acked_message(transport: Any, payload: bytes, meta: bytes = b"") -> None:
    """
    Write one message of the acknowledged protocol: a frame whose payload is the 2-byte length
    of C{meta} (empty, or a compact JSON object of at most L{META_MAX} bytes), C{meta}, then
    C{payload}.
    """
    head = acked_message_head(len(payload), meta)
    if len(payload) <= _COALESCE:
        transport.write(head + payload)
    else:
        transport.write(head)
        transport.write(payload)


def acked_message_head(length: int, meta: bytes = b"") -> bytes:
    """
    The bytes of a message of the acknowledged protocol before its C{length}-byte payload: the
    frame header, the 2-byte length of C{meta}, C{meta} (see L{write_acked_message}). A sender
    that streams a message writes this, then the payload as it arrives.
    """
    if len(meta) > META_MAX:
        raise ValueError(f"message metadata of {len(meta)} bytes (limit {META_MAX})")
    return frame_header(_META_LENGTH.size + len(meta) + length) + _META_LENGTH.pack(len(meta)) + meta


@dataclass(frozen=True)
class AckedBody:
    """One received message of the acknowledged protocol: its metadata object and payload."""

    meta: dict[str, Any]
    payload: bytes


def parse_acked_body(body: bytes) -> AckedBody:
    """
    Split a received frame payload of the acknowledged protocol.

    @raise ProtocolError: the metadata length runs past the frame, exceeds L{META_MAX}, or the
        metadata is not a JSON object.
    """
    if len(body) < _META_LENGTH.size:
        raise ProtocolError(f"a message frame of {len(body)} bytes has no metadata length")
    (n,) = _META_LENGTH.unpack_from(body)
    end = _META_LENGTH.size + n
    if n > META_MAX or end > len(body):
        raise ProtocolError(f"bad message metadata length {n} in a frame of {len(body)} bytes")
    meta: dict[str, Any] = {}
    if n:
        try:
            value = json.loads(body[_META_LENGTH.size : end])
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise ProtocolError("message metadata is not a JSON object")
        meta = value
    return AckedBody(meta, body[end:])


@dataclass(frozen=True)
class Status:
    """
    A receiver's answer to one message: C{code} 200 (accepted), 413 (over C{max_message_size},
    which C{limit} gives), 503 (not taken: C{close} says the whole connection was refused), or
    another code; C{error} says why.
    """

    code: int
    error: str = ""
    limit: int | None = None
    close: bool = False


def status_frame(code: int, error: str = "", limit: int | None = None, close: bool = False) -> bytes:
    """The payload of one status frame (L{ACK_OK} for an accepted message)."""
    if code == 200 and not error:
        return ACK_OK
    value: dict[str, Any] = {"status": code, "error": error}
    if limit is not None:
        value["max_message_size"] = limit
    if close:
        value["close"] = True
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def parse_status(payload: bytes) -> Status:
    """
    A status frame's payload as a L{Status}.

    @raise ProtocolError: it is not a JSON object with an integer C{status}.
    """
    if payload == ACK_OK:
        return Status(200)
    if len(payload) > _STATUS_MAX:
        raise ProtocolError(f"a status frame of {len(payload)} bytes")
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ProtocolError("a status frame is not a JSON object")
    code, error, limit = value.get("status"), value.get("error", ""), value.get("max_message_size")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ProtocolError("a status frame has no integer status")
    if not isinstance(error, str):
        error = str(error)
    if not isinstance(limit, int) or isinstance(limit, bool):
        limit = None
    return Status(code, error, limit, value.get("close") is True)
