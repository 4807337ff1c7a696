# -*- test-case-name: tests.test_streams_listener,tests.test_streams_acknowledged -*-
"""
The inbound side of the port-7000 message protocol (spec/axl-node.md section 6.3), as a Twisted
protocol over any stream transport (the overlay TCP in production).

Per connection: any number of messages, each dispatched in order through the
L{StreamRegistry}; a stream's reply is written back on the same connection. While a message is
being dispatched (a stream working, or the C{/recv} queue full) the connection is not read, so a
slow consumer pushes back through TCP. Limits:

 - C{max_message_size}: a longer announced length is answered with one error frame
   (L{oversize_reply}: C{{"error": ..., "max_message_size": M}}); the rest of that message is
   read and thrown away, then the connection is closed;
 - C{max_conns} in total and C{max_conns_per_peer} per sender key: extra connections are closed
   at once (so one peer cannot take every slot);
 - C{read_timeout}: a message that stops making progress for this long closes the connection
   (no bytes for N seconds, not an absolute deadline as in AXL);
 - C{idle_timeout}: the longest wait for the next message; a new connection must start its
   first message within C{first_timeout} (shorter), so idle connections cannot hold slots.

A message that has fully arrived is never lost: if the connection closes while it waits for the
queue, it is still queued.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.crypto.keys import short_key
from axl.errors import ProtocolError
from axl.overlay_address import OverlayAddress
from axl.streams.framing import (
    ACK_OK,
    ACKED_OVERHEAD,
    MessageDecoder,
    MessageTooLarge,
    oversize_error,
    oversize_reply,
    parse_acked_body,
    status_frame,
    write_frame,
)
from axl.streams.registry import StreamRegistry

__all__ = [
    "AcknowledgedMessageFactory",
    "AcknowledgedMessageProtocol",
    "MessageFactory",
    "MessageProtocol",
    "peer_key_of",
]


def peer_key_of(address: IAddress) -> bytes:
    """The sender's full key from a transport's C{getPeer()} (an L{OverlayAddress})."""
    if not isinstance(address, OverlayAddress) or len(address.public_key) != 32:
        raise ValueError(f"not an overlay address: {address!r}")
    return address.public_key


class MessageFactory(Factory):
    """Builds a L{MessageProtocol} per inbound connection and keeps the connection counts."""

    log = Logger()

    def __init__(
        self,
        registry: StreamRegistry,
        clock: IReactorTime,
        max_message_size: int = 16 * 1024 * 1024,
        max_conns: int = 128,
        max_conns_per_peer: int = 32,
        read_timeout: float = 60.0,
        idle_timeout: float = 300.0,
        first_timeout: float = 30.0,
        key_of: Callable[[IAddress], bytes] = peer_key_of,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.max_message_size = max_message_size
        self.max_conns = max_conns
        self.max_conns_per_peer = max_conns_per_peer
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.first_timeout = min(first_timeout, idle_timeout)
        self.key_of = key_of
        self.total = 0
        self.per_peer: dict[bytes, int] = {}

    def buildProtocol(self, addr: IAddress | None) -> MessageProtocol:
        return MessageProtocol(self)

    def acquire(self, key: bytes) -> str | None:
        """Take a connection slot for C{key}; the reason if none is free."""
        if self.total >= self.max_conns:
            return f"connection limit reached ({self.max_conns})"
        count = self.per_peer.get(key, 0)
        if count >= self.max_conns_per_peer:
            return f"per-peer connection limit reached ({self.max_conns_per_peer})"
        self.total += 1
        self.per_peer[key] = count + 1
        return None

    def release(self, key: bytes) -> None:
        """Give back a slot taken by L{acquire}."""
        self.total -= 1
        count = self.per_peer[key] - 1
        if count:
            self.per_peer[key] = count
        else:
            del self.per_peer[key]


class MessageProtocol(Protocol):
    """One inbound connection carrying framed messages."""

    log = Logger()
    transport: (
        Any  # an ITCPTransport that is also an IPushProducer (set by makeConnection)
    )

    def __init__(self, factory: MessageFactory) -> None:
        self._factory = factory
        self._decoder = MessageDecoder(factory.max_message_size)
        self._pending: deque[Any] = deque()  # received messages (bytes) waiting for dispatch
        self._busy = False
        self._in_pump = False
        self._paused = False
        self._open = False
        self._has_slot = False
        self._timer: IDelayedCall | None = None
        self._discard_left: int | None = None  # bytes of a refused message still to come
        self.peer_key = b""

    def connectionMade(self) -> None:
        factory = self._factory
        try:
            self.peer_key = factory.key_of(self.transport.getPeer())
        except ValueError as e:
            self.log.warn("refusing a message connection: {err}", err=e)
            self.transport.loseConnection()
            return
        refused = factory.acquire(self.peer_key)
        if refused is not None:
            self.log.warn(
                "refusing a message connection from {peer}: {why}",
                peer=short_key(self.peer_key),
                why=refused,
            )
            self._refuse_connection(refused)
            return
        self._has_slot = True
        self._open = True
        self._arm(factory.first_timeout)

    def _refuse_connection(self, why: str) -> None:
        """No slot for this connection: close it (a Go AXL node does the same, silently)."""
        self.transport.loseConnection()

    def _dispatch(self, item: Any) -> Deferred[bytes | None]:
        """Dispatch one received message through the registry; fires with the reply or None."""
        return self._factory.registry.dispatch(item, self.peer_key)

    def _arm(self, seconds: float) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(seconds)
        else:
            self._timer = self._factory.clock.callLater(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        what = "a message stalled" if self._decoder.in_frame else "idle"
        self.log.info(
            "closing a message connection from {peer}: {what}",
            peer=short_key(self.peer_key),
            what=what,
        )
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._discard_left is not None:
            self._discard(data)
            return
        if not self._open:
            return
        try:
            messages = self._decoder.feed(data)
        except MessageTooLarge as e:
            self._refuse_oversize(e)
            return
        except ProtocolError as e:
            self.log.warn(
                "dropping a message connection from {peer}: {err}",
                peer=short_key(self.peer_key),
                err=e,
            )
            self._open = False
            self._disarm()
            self.transport.loseConnection()
            return
        self._pending.extend(messages)
        self._pump()

    def _refuse_oversize(self, e: MessageTooLarge) -> None:
        """
        Answer an oversize header with one L{oversize_reply} frame, then shut our side (FIN);
        the messages that arrived whole before it are still dispatched. The rest of the refused
        message is read and thrown away (never held), so a sender that does not read replies (a
        Go AXL node on C{/send}) finishes its write and closes instead of stalling; the
        connection closes once the declared length has gone by, or when it stops progressing
        for the read timeout.
        """
        self.log.info(
            "refusing a message of {n} bytes from {peer} (max_message_size {limit})",
            n=e.length,
            peer=short_key(self.peer_key),
            limit=e.limit,
        )
        self._pending.extend(e.frames)
        self._open = False
        self._discard_left = e.length - e.received
        write_frame(self.transport, oversize_reply(e.length, e.limit))
        lose_write = getattr(self.transport, "loseWriteConnection", None)
        if lose_write is not None:
            lose_write()
        else:
            self.transport.loseConnection()
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        self._pump()

    def _discard(self, data: bytes) -> None:
        """Bytes of a refused message: count them off, close when it has all gone by."""
        assert self._discard_left is not None  # only called while discarding
        self._discard_left -= len(data)
        if self._discard_left <= 0:
            self._disarm()
            self.transport.loseConnection()
        else:
            self._arm(self._factory.read_timeout)

    def _update_timer(self) -> None:
        if self._discard_left is not None:
            if self._discard_left > 0:
                self._arm(self._factory.read_timeout)
            else:
                self._disarm()
                self.transport.loseConnection()
        elif not self._open or self._busy:
            self._disarm()
        elif self._decoder.in_frame:
            self._arm(self._factory.read_timeout)
        else:
            self._arm(self._factory.idle_timeout)

    def _pump(self) -> None:
        if self._in_pump:
            return  # a reply that arrived synchronously; the running loop carries on
        self._in_pump = True
        try:
            while True:
                while self._pending and not self._busy:
                    payload = self._pending.popleft()
                    self._busy = True
                    self._dispatch(payload).addCallbacks(self._dispatched, self._dispatch_failed)
                if not self._open:
                    break
                if self._busy:
                    if not self._paused:
                        # Still working on a message: stop reading until it is done.
                        self._paused = True
                        self.transport.pauseProducing()
                    break
                if not self._paused:
                    break
                # Resuming may hand us buffered data at once (it lands in _pending): loop.
                self._paused = False
                self.transport.resumeProducing()
        finally:
            self._in_pump = False
        self._update_timer()

    def _reply(self, reply: bytes) -> None:
        if self._open:
            write_frame(self.transport, reply)

    def _dispatched(self, reply: bytes | None) -> None:
        self._busy = False
        if reply is not None:
            self._reply(reply)
        self._pump()

    def _dispatch_failed(self, failure: Failure) -> None:
        self.log.failure(
            "dispatching a message from {peer} failed",
            failure,
            peer=short_key(self.peer_key),
        )
        self._dispatched(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._open = False
        self._disarm()
        if self._has_slot:
            self._has_slot = False
            self._factory.release(self.peer_key)
        if self._decoder.in_frame:
            self.log.info(
                "message connection from {peer} closed inside a message ({n} bytes discarded)",
                peer=short_key(self.peer_key),
                n=self._decoder.buffered,
            )
        # Messages that arrived whole are still delivered.
        self._pump()


@dataclass(frozen=True)
class _Refused:
    """An oversize message refused at its header; its status is written in its turn."""

    length: int
    limit: int


class AcknowledgedMessageFactory(Factory):
    """
    Builds an L{AcknowledgedMessageProtocol} per inbound connection on the acknowledged port.
    The limits, connection counts and registry are those of C{messages} (the C{tcp_port}
    factory): both ports share one C{max_concurrent_conns} and C{max_conns_per_peer}.
    """

    def __init__(self, messages: MessageFactory) -> None:
        self.messages = messages

    def buildProtocol(self, addr: IAddress | None) -> AcknowledgedMessageProtocol:
        return AcknowledgedMessageProtocol(self.messages)


class AcknowledgedMessageProtocol(MessageProtocol):
    """
    One inbound connection of the acknowledged message protocol between axl nodes (README
    "Messaging"; L{axl.streams.framing.write_acked_message}). Every message is answered, in
    order, with one status frame: C{200} once it is in the C{/recv} queue (so the sender's
    C{/send} answers 200 only for a message we took), C{413} with our C{max_message_size} when
    it is larger (its bytes are read and thrown away and the connection carries on), and a
    connection over the connection limits gets one C{503} frame with C{"close": true} before it
    is closed. Messages are never sniffed for envelopes: a C{/send} payload always goes to
    C{/recv}.
    """

    def __init__(self, factory: MessageFactory) -> None:
        super().__init__(factory)
        self._decoder = MessageDecoder(factory.max_message_size + ACKED_OVERHEAD)

    def _refuse_connection(self, why: str) -> None:
        write_frame(self.transport, status_frame(503, why, close=True))
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        while data and self._open:
            if self._discard_left is not None:
                take = min(self._discard_left, len(data))
                self._discard_left -= take
                data = data[take:]
                if self._discard_left:
                    break
                self._discard_left = None
                continue
            try:
                messages = self._decoder.feed(data)
            except MessageTooLarge as e:
                limit = self._factory.max_message_size
                self.log.info(
                    "refusing a message of {n} bytes from {peer} (max_message_size {limit})",
                    n=e.length, peer=short_key(self.peer_key), limit=limit,
                )  # fmt: skip
                self._pending.extend(e.frames)
                self._pending.append(_Refused(e.length, limit))
                rest = self._decoder.take_buffered()[4:]  # after the refused message's header
                self._discard_left = e.length
                data = rest
                continue
            self._pending.extend(messages)
            break
        self._pump()

    def _dispatch(self, item: Any) -> Deferred[bytes | None]:
        limit = self._factory.max_message_size
        if isinstance(item, _Refused):
            return succeed(status_frame(413, oversize_error(item.length, limit), limit))
        try:
            body = parse_acked_body(item)
        except ProtocolError as e:
            self.log.warn("dropping a message connection from {peer}: {err}",
                          peer=short_key(self.peer_key), err=e)  # fmt: skip
            self._open = False
            self.transport.loseConnection()
            return succeed(None)
        size = len(body.payload)
        if size > limit:
            self.log.info("refusing a message of {n} bytes from {peer} (max_message_size {limit})",
                          n=size, peer=short_key(self.peer_key), limit=limit)  # fmt: skip
            return succeed(status_frame(413, oversize_error(size, limit), limit))
        return self._factory.registry.queue.put(self.peer_key, body.payload).addCallback(_accepted)


def _accepted(_: object) -> bytes:
    return ACK_OK
