# -*- test-case-name: tests.test_streams_streamed -*-
"""
A C{/send} forwarded while its body arrives (issue 12; README "Messaging", "Streamed sends"):
L{StreamedMessage}. The bridge hands over a large body whose length it knows (its
C{Content-Length}) as a L{BodySource}, a push producer of the body's bytes; the message holds
at most the overlay connection's send buffer of it, never the whole.

 - It dials its own connection (L{axl.streams.channel.dial_message_port}: the acknowledged
   protocol on C{ack_port}, or plain frames on C{port} for a Go AXL node), never the pooled one,
   so a slow client holds up no other message to the same peer. The body is paused meanwhile.
 - Once connected it writes the frame header (the length is known), then each body chunk as it
   arrives. The body is paused (the HTTP connection stops reading) while the overlay transport
   pauses its producer (its send buffer is above its own, auto-tuned bound) and while more
   than L{STREAM_WINDOW} bytes are unacknowledged by the peer's TCP (when the transport reports
   acknowledgements, L{IAcknowledgingTransport}): so a receiver cannot make it hold more,
   whatever windows it advertises. Paused by the peer for C{send_timeout} seconds in all, it
   fails with L{SendTimedOut}.
 - It succeeds exactly when a pooled send would: on the receiver's status frame (200), or, for
   a Go AXL receiver, once its TCP acknowledged every byte; the receiver's refusals, a lost
   connection and the timeouts fail it with the same L{DeliveryError}s.
 - A body that ends short or a client that goes away (L{StreamedMessage.lost}), or a caller
   that cancels C{result}, aborts the overlay connection: the receiver drops the partial frame
   (L{axl.streams.listener}), so no message is delivered.

Messages to our own key are collected and queued whole (L{LocalStreamedMessage}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol as TypingProtocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.crypto.keys import short_key
from axl.errors import ProtocolError
from axl.ratelimit import AggregatedLog
from axl.streams.channel import REPLY_MAX, ChannelOwner, connect_error, dial_message_port
from axl.streams.errors import (
    DeliveryError,
    MessageRefused,
    PeerBusy,
    PeerUnreachable,
    RemoteError,
    SendTimedOut,
    failure_reason,
)
from axl.streams.framing import (
    MessageDecoder,
    acked_message_head,
    frame_header,
    parse_oversize_reply,
    parse_status,
)
from axl.streams.interfaces import IAcknowledgingTransport

__all__ = ["STREAM_WINDOW", "BodySink", "BodySource", "LocalStreamedMessage", "StreamedMessage"]

#: Bytes of a streamed message that may be written and not yet acknowledged by the peer's TCP;
#: past it the body is paused until half of it is acknowledged.
STREAM_WINDOW = 1024 * 1024
#: Acknowledgements are asked for every this many bytes written.
_ACK_STEP = STREAM_WINDOW // 4


class BodySink(TypingProtocol):
    """Where a L{BodySource} delivers the body (a L{StreamedMessage})."""

    def write(self, data: bytes) -> None:
        """The next bytes of the body."""

    def end(self) -> None:
        """The whole body (its declared length) arrived."""

    def lost(self, why: str) -> None:
        """The body will not be completed (the client went away): drop the message."""


class BodySource(TypingProtocol):
    """A message body arriving from a client: a push producer of its bytes (the bridge's request)."""

    #: the body's length, declared before it arrives
    length: int

    def attach(self, sink: BodySink) -> None:
        """Deliver the body (what arrived already, then the rest) to C{sink}."""

    def pauseProducing(self) -> None:
        """Stop delivering bytes (stop reading the client)."""

    def resumeProducing(self) -> None:
        """Deliver bytes again."""


class StreamedOwner(ChannelOwner, TypingProtocol):
    """What a streamed message needs from its L{axl.streams.sender.MessageSender}."""

    #: where failed dials are counted (one line per peer and window, not one per message)
    unreachable: AggregatedLog


@implementer(IPushProducer)
class _StreamProtocol(Protocol):
    """The overlay connection of one streamed message; its L{StreamedMessage} does the work."""

    transport: Any  # set by makeConnection

    def __init__(self, message: StreamedMessage, acknowledged: bool) -> None:
        self.message = message
        self.acknowledged = acknowledged
        self._decoder: MessageDecoder | None = MessageDecoder(REPLY_MAX)

    def dataReceived(self, data: bytes) -> None:
        if self._decoder is None:
            return
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as e:
            self._decoder = None
            if self.acknowledged:
                self.message.fail(RemoteError(f"bad status frame from peer: {e}"))
            return  # a Go AXL receiver's long replies are nothing we need
        for frame in frames:
            if self.acknowledged:
                self._decoder = None  # one message, one status
                self.message.answered(frame)
                return
            refusal = parse_oversize_reply(frame)
            if refusal is not None:
                self._decoder = None
                self.message.fail(MessageRefused(*refusal))
                return

    # the overlay transport pauses us while its send buffer is above its bound
    def pauseProducing(self) -> None:
        self.message.overlay_paused()

    def resumeProducing(self) -> None:
        self.message.overlay_resumed()

    def stopProducing(self) -> None:
        pass  # the connection is going: connectionLost follows

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.message.connection_lost(self, reason)


class StreamedMessage:
    """
    One message sent while its body arrives, on a connection of its own (module docstring).

    @ivar result: fires with the message length once it is through, or fails with a
        L{DeliveryError}; cancelling it aborts the message.
    """

    def __init__(
        self, owner: StreamedOwner, dest: bytes, source: BodySource, meta: bytes = b""
    ) -> None:
        self._owner = owner
        self._dest = dest
        self._source = source
        self._meta = meta
        self.length = source.length
        self.result: Deferred[int] = Deferred(self._cancelled)
        self.done = False
        self._protocol: _StreamProtocol | None = None
        self._early: list[bytes] = []  # body bytes that arrived before the connection
        self._written = 0
        self._ended = False
        self._timer: IDelayedCall | None = None
        self._stalled = 0.0  # seconds the peer kept the body paused, in all
        self._stalled_since = 0.0
        self._held_by: set[str] = set()  # why the peer holds the body paused: "buffer", "window"
        self._sent = 0  # bytes written to the connection (header included)
        self._acked = 0  # of which the peer's TCP acknowledged at least this many
        self._asked = 0  # the last point an acknowledgement was asked for
        self._acks = False  # whether the transport reports acknowledgements

    @property
    def buffered(self) -> int:
        """Body bytes held here (they arrived before the connection was up)."""
        return sum(map(len, self._early))

    def start(self) -> None:
        """Take the body (paused) and dial the destination."""
        self._source.pauseProducing()
        self._source.attach(self)
        d = dial_message_port(self._owner, self._dest, lambda acked: _StreamProtocol(self, acked))
        d.addCallbacks(self._connected, self._connect_failed)

    # -- the overlay connection --------------------------------------------------------------------

    def _connected(self, protocol: _StreamProtocol) -> None:
        if self.done:  # cancelled or lost while connecting
            protocol.transport.abortConnection()
            return
        self._protocol = protocol
        transport = protocol.transport
        self._acks = IAcknowledgingTransport.providedBy(transport)
        head = acked_message_head(self.length, self._meta) if protocol.acknowledged else frame_header(self.length)
        transport.write(head)
        self._sent = len(head)
        early, self._early = self._early, []
        for chunk in early:
            self._forward(chunk)
        if self.done:
            return
        transport.registerProducer(protocol, True)  # may pause us at once
        if self._ended:
            self._body_done()
        elif not self._held_by:
            self._source.resumeProducing()

    def _connect_failed(self, failure: Failure) -> None:
        if self.done:
            return
        error = connect_error(failure, self._owner.connect_timeout)
        self._owner.unreachable.event(short_key(self._dest), error.message)
        self.fail(error)

    def overlay_paused(self) -> None:
        """The overlay send buffer is full: pause the body."""
        self._hold("buffer")

    def overlay_resumed(self) -> None:
        """The overlay send buffer drained: the body may flow again."""
        self._release("buffer")

    def _hold(self, why: str) -> None:
        """
        The peer holds the body up (C{why}): pause it. The time spent so, in all, is the peer's:
        past C{send_timeout} seconds of it the message fails (a peer that takes data slowly
        cannot hold it longer than one that takes none).
        """
        if self.done or self._ended:
            return
        held = bool(self._held_by)
        self._held_by.add(why)
        if held:
            return
        self._source.pauseProducing()
        clock, timeout = self._owner.clock, self._owner.send_timeout
        self._stalled_since = clock.seconds()
        self._timer = clock.callLater(
            max(timeout - self._stalled, 0.0),
            self.fail,
            SendTimedOut(f"Send timed out: the peer took too little data for {timeout:g} s; not sent"),
        )

    def _release(self, why: str) -> None:
        """The peer no longer holds the body up for C{why}: resume it if nothing else does."""
        if why not in self._held_by:
            return
        self._held_by.discard(why)
        if self._held_by or self.done or self._ended:
            return
        self._stalled += self._owner.clock.seconds() - self._stalled_since
        self._stop_timer()
        self._source.resumeProducing()

    def _acknowledged(self, _: object, mark: int) -> None:
        """The peer's TCP acknowledged the first C{mark} bytes written."""
        self._acked = max(self._acked, mark)
        if self._sent - self._acked <= STREAM_WINDOW // 2:
            self._release("window")

    def answered(self, frame: bytes) -> None:
        """The receiver's status frame (the acknowledged protocol)."""
        try:
            status = parse_status(frame)
        except ProtocolError as e:
            self.fail(RemoteError(f"bad status frame from peer: {e}"))
            return
        if status.code == 200:
            if not self._ended:
                self.fail(RemoteError("Peer accepted a message it had not received whole"))
                return
            self._succeed()
        elif status.code == 413 and status.limit is not None:
            self.fail(MessageRefused(status.error, status.limit))
        elif status.code == 503:
            what = "connection" if status.close else "message"
            self.fail(PeerBusy(f"Peer refused the {what}: {status.error}"))
        else:
            self.fail(RemoteError(f"Peer refused the message ({status.code}): {status.error}"))

    def connection_lost(self, protocol: _StreamProtocol, reason: Failure) -> None:
        """The overlay connection is gone: fail the message unless it went through."""
        if protocol is self._protocol:
            self._protocol = None
        if not self.done:
            self.fail(PeerUnreachable(
                f"Connection to peer lost before the message was acknowledged: {failure_reason(reason)}"
            ))  # fmt: skip

    # -- the body (BodySink) -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """The next body bytes: forward them, or keep them until the connection is up."""
        if self.done:
            return
        if self._protocol is None:
            self._early.append(data)
            return
        self._forward(data)

    def end(self) -> None:
        """The whole body arrived."""
        if self.done:
            return
        self._ended = True
        if self._protocol is not None:
            self._body_done()

    def lost(self, why: str) -> None:
        """The body will not be completed: abort, so the receiver drops the partial message."""
        self.fail(PeerUnreachable(f"Message not sent: {why}"))

    def _forward(self, data: bytes) -> None:
        if self._written + len(data) > self.length:
            self.fail(RemoteError(f"message body longer than its declared {self.length} bytes"))
            return
        self._written += len(data)
        assert self._protocol is not None
        transport = self._protocol.transport
        transport.write(data)
        self._sent += len(data)
        if not self._acks:
            return
        if self._sent - self._asked >= _ACK_STEP:
            self._asked = self._sent
            # A lost connection fails the message (connection_lost), not this errback.
            acknowledged = cast("Deferred[None]", transport.when_acknowledged())
            acknowledged.addCallbacks(self._acknowledged, lambda _: None, callbackArgs=(self._sent,))
        if self._sent - self._acked > STREAM_WINDOW:
            self._hold("window")

    def _body_done(self) -> None:
        """Every byte is written: wait for the receiver's status, or its TCP's acknowledgement."""
        assert self._protocol is not None
        if self._written != self.length:
            self.fail(RemoteError(f"message body of {self._written} bytes, {self.length} declared"))
            return
        self._stop_timer()
        timeout = self._owner.send_timeout
        transport: Any = self._protocol.transport
        if self._protocol.acknowledged:
            error = SendTimedOut(
                f"Send timed out: the peer did not accept the message within {timeout:g} s"
                " (it may still be queued there)"
            )
        elif IAcknowledgingTransport.providedBy(transport):
            error = SendTimedOut(
                f"Send timed out: the peer did not acknowledge the message within {timeout:g} s"
                " (it may still arrive)"
            )
            # A lost connection fails the message (connection_lost), not this errback.
            acknowledged = cast("Deferred[None]", transport.when_acknowledged())
            acknowledged.addCallbacks(lambda _: self._succeed(), lambda _: None)
        else:
            self._succeed()  # as the pooled sender: written is all an ordinary transport tells
            return
        if not self.done:
            self._timer = self._owner.clock.callLater(timeout, self.fail, error)

    # -- the outcome -------------------------------------------------------------------------------

    def _succeed(self) -> None:
        if self.done:
            return
        self._finish()
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.unregisterProducer()
            protocol.transport.loseConnection()
        self.result.callback(self.length)

    def fail(self, error: DeliveryError) -> None:
        """Fail the message with C{error} and abort its connection (once; later calls do nothing)."""
        if self.done:
            return
        self._finish()
        self._abort()
        self.result.errback(Failure(error))

    def _cancelled(self, _: Deferred[int]) -> None:
        """The caller gave up (its client went away): abort; C{result} fails with CancelledError."""
        if not self.done:
            self._finish()
            self._abort()

    def _finish(self) -> None:
        self.done = True
        self._early = []
        self._stop_timer()

    def _abort(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class LocalStreamedMessage:
    """
    A streamed message to our own key: the body is collected, then queued whole with
    C{deliver(payload)} (the sender's local delivery). It holds the whole message.
    """

    def __init__(self, source: BodySource, deliver: Callable[[bytes], Deferred[int]]) -> None:
        self._source = source
        self._deliver = deliver
        self._body = bytearray()
        self.length = source.length
        self.result: Deferred[int] = Deferred(self._cancelled)
        self.done = False

    def start(self) -> None:
        """Take the body."""
        self._source.attach(self)
        self._source.resumeProducing()

    def write(self, data: bytes) -> None:
        """The next body bytes: kept."""
        if not self.done:
            self._body += data

    def end(self) -> None:
        """The whole body arrived: queue it."""
        if self.done:
            return
        self.done = True
        payload, self._body = bytes(self._body), bytearray()
        self._deliver(payload).chainDeferred(self.result)

    def lost(self, why: str) -> None:
        """The body will not be completed: drop what arrived."""
        if not self.done:
            self.done = True
            self._body = bytearray()
            self.result.errback(Failure(PeerUnreachable(f"Message not sent: {why}")))

    def _cancelled(self, _: Deferred[int]) -> None:
        self.done = True
        self._body = bytearray()

