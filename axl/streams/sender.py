# -*- test-case-name: tests.test_streams_sender -*-
"""
The outbound side of the port-7000 message protocol.

L{MessageSender.send} (C{/send}): messages to one destination share one overlay connection while they
flow, so they arrive in the order sent; the connection is closed after C{idle_close} seconds
without traffic (a Go AXL receiver has only 128 connection slots). Each destination's connection
is a channel (L{axl.streams.channel}, a state machine). To an axl node it uses the acknowledged
protocol on C{ack_port} (L{axl.streams.framing.acknowledged_port}): a send succeeds only once
the receiver says it queued the message, and fails with the receiver's refusal otherwise. A node
that refuses C{ack_port} (a Go AXL node) is remembered for L{LEGACY_TTL} seconds and sent plain
frames on C{port}: a send then succeeds once the remote TCP acknowledged the whole message. Either
way it fails with L{SendTimedOut} if that takes longer than C{send_timeout} (a receiver that
stopped draining its queue).

L{MessageSender.request} (C{/mcp}, C{/a2a}): one new connection per request, one request frame, one
reply frame, within one end-to-end deadline; the connect has its own, shorter bound.

A receiver of ours refuses a message over its C{max_message_size} with one reply frame
(L{axl.streams.framing.oversize_reply}) before closing: on a C{/send} connection that fails the
message with L{MessageRefused} if it is still unacknowledged (a message small enough to be
acknowledged in the same round trip was already reported sent; the refusal is then logged); on a
request connection it is the reply (the bridge reports its C{error}).

Messages to our own key never leave the node: they go straight to our L{StreamRegistry}.

Every failure is a L{axl.streams.errors.DeliveryError} of the kind that says why.
"""

from __future__ import annotations

import json

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import TCPTimedOutError
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.errors import ProtocolError
from axl.logs import observer as log_observer
from axl.ratelimit import AggregatedLog
from axl.streams.channel import Channel, Frame
from axl.streams.errors import PeerTimedOut, PeerUnreachable, RemoteError, SendTimedOut, failure_reason
from axl.streams.framing import MessageDecoder, write_frame
from axl.streams.registry import StreamRegistry
from axl.streams.streamed import BodySource, LocalStreamedMessage, StreamedMessage

__all__ = ["LEGACY_TTL", "Dial", "MessageSender"]

#: How long a destination that refused the acknowledged port is sent plain frames before it is
#: tried again (a Go AXL node's key stays one for long; an axl node that was starting is retried).
LEGACY_TTL = 600.0

#: Dial a node's overlay port: C{dial(key, port)} -> an endpoint.
Dial = Callable[[bytes, int], IStreamClientEndpoint]


def _meta(message_id: str | None) -> bytes:
    """The acknowledged protocol's metadata of a message (its client's C{X-Message-Id})."""
    return json.dumps({"id": message_id}).encode("ascii") if message_id else b""


class _RequestProtocol(Protocol):
    """One request connection: write the request frame, read one reply frame."""

    transport: Any  # set by makeConnection

    def __init__(self, max_message_size: int) -> None:
        self._decoder = MessageDecoder(max_message_size)
        self.reply: Deferred[bytes] = Deferred()
        self.reply_received = False

    def send(self, payload: bytes) -> None:
        write_frame(self.transport, payload)

    def dataReceived(self, data: bytes) -> None:
        if self.reply.called:
            return
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as e:
            self.reply.errback(RemoteError(str(e)))
            self.transport.abortConnection()
            return
        if frames:
            self.reply_received = True
            self.transport.loseConnection()
            self.reply.callback(frames[0])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.reply.called:
            self.reply.errback(
                RemoteError(f"no response from peer: connection closed ({failure_reason(reason)})")
            )


class MessageSender:
    """
    Sends messages and requests to other nodes' port-7000 listeners.

    @param dial: C{dial(key, port)} -> an C{IStreamClientEndpoint} to that node's port.
    @param local: our own registry, for messages to our own key.
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        dial: Dial,
        clock: IReactorTime,
        our_key: bytes,
        local: StreamRegistry,
        port: int = 7000,
        max_message_size: int = 16 * 1024 * 1024,
        idle_close: float = 5.0,
        send_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        ack_port: int | None = None,
    ) -> None:
        self.dial = dial
        self.clock = clock
        self.our_key = our_key
        self.local = local
        self.port = port
        self.max_message_size = max_message_size
        self.idle_close = idle_close
        self.send_timeout = send_timeout
        self.connect_timeout = connect_timeout
        self.ack_port = ack_port
        self._channels: dict[bytes, Channel] = {}
        self.unreachable = AggregatedLog(clock, self.log, "undelivered", "streamed messages", preposition="to")
        self._legacy: dict[bytes, float] = {}  # destination -> until when it gets plain frames

    def speaks_acks(self, dest: bytes) -> bool:
        """Whether to dial C{dest}'s C{ack_port} (it did not refuse it in the last L{LEGACY_TTL} s)."""
        until = self._legacy.get(dest)
        if until is None:
            return True
        if until <= self.clock.seconds():
            del self._legacy[dest]
            return True
        return False

    def mark_legacy(self, dest: bytes) -> None:
        """C{dest} refused C{ack_port}: send it plain frames on C{port} for L{LEGACY_TTL} s."""
        now = self.clock.seconds()
        for key in [k for k, until in self._legacy.items() if until <= now]:
            del self._legacy[key]  # forget expired entries: the table stays bounded by use
        self._legacy[dest] = now + LEGACY_TTL

    def send(self, dest: bytes, payload: bytes, message_id: str | None = None) -> Deferred[int]:
        """
        Deliver one message to C{dest}'s C{/recv}. Fires with the payload length once an axl
        receiver queued it (a Go AXL receiver: once its TCP acknowledged it); fails with a
        L{DeliveryError}.

        @param message_id: the client's C{X-Message-Id}: an axl receiver takes the message once
            per id within its window (a retry is answered as accepted, not delivered twice).
        """
        if dest == self.our_key:
            return self._send_local(payload, message_id)
        frame = Frame(payload, _meta(message_id))
        channel = self._channels.get(dest)
        fresh = channel is None
        if channel is None:
            channel = self._channels[dest] = Channel(self, dest)
        frame.timer = self.clock.callLater(self.send_timeout, channel.timed_out, frame)
        channel.enqueue(frame)
        if fresh:
            channel.start()  # may fail at once, failing the frame
        return frame.d

    def send_stream(
        self, dest: bytes, body: BodySource, message_id: str | None = None
    ) -> StreamedMessage | LocalStreamedMessage:
        """
        Deliver one message to C{dest}'s C{/recv} while its body arrives from C{body}
        (L{axl.streams.streamed}), on a connection of its own; its C{result} fires as L{send}'s
        Deferred would. A message to our own key is collected and queued whole.
        """
        message: StreamedMessage | LocalStreamedMessage
        if dest == self.our_key:
            message = LocalStreamedMessage(body, lambda payload: self._send_local(payload, message_id))
        else:
            message = StreamedMessage(self, dest, body, _meta(message_id))
        message.start()
        return message

    def _send_local(self, payload: bytes, message_id: str | None = None) -> Deferred[int]:
        result: Deferred[int] = Deferred()

        def expire() -> None:
            result.errback(
                SendTimedOut(f"Send timed out: our own queue stayed full for {self.send_timeout:g} s")
            )

        timer = self.clock.callLater(self.send_timeout, expire)

        def done(_: object) -> None:
            if timer.active():
                timer.cancel()
                result.callback(len(payload))

        # As between axl nodes, a /send payload is a message for /recv, never an envelope.
        self.local.queue.put(self.our_key, payload, message_id).addBoth(done)
        return result

    def forget(self, dest: bytes, channel: Channel) -> None:
        """C{channel} takes no more messages (it is closing)."""
        if self._channels.get(dest) is channel:
            del self._channels[dest]

    def requeue(self, dest: bytes, frames: deque[Frame]) -> None:
        """Move unsent messages to a new connection, ahead of anything queued since."""
        channel = self._channels.get(dest)
        fresh = channel is None
        if channel is None:
            channel = self._channels[dest] = Channel(self, dest)
        now = self.clock.seconds()
        for frame in frames:
            if frame.timer is not None and frame.timer.active():
                left = max(frame.timer.getTime() - now, 0.0)
                frame.timer.cancel()
                frame.timer = self.clock.callLater(left, channel.timed_out, frame)
        channel.requeue(frames)
        if fresh:
            channel.start()

    def request(self, dest: bytes, payload: bytes, timeout: float) -> Deferred[bytes]:
        """
        Send one request message and wait for its one reply message, all within C{timeout}
        seconds. Fails with L{DeliveryError}.
        """
        return Deferred.fromCoroutine(self._request(dest, payload, timeout))

    async def _request(self, dest: bytes, payload: bytes, timeout: float) -> bytes:
        if dest == self.our_key:
            d = self.local.dispatch(payload, self.our_key)
            d.addTimeout(timeout, self.clock)
            try:
                reply = await d
            except DeferredTimeout:
                raise PeerTimedOut(f"no response from peer within {timeout:g} s") from None
            if reply is None:
                raise RemoteError("no response from peer: no stream answered")
            return reply
        start = self.clock.seconds()
        protocol = _RequestProtocol(self.max_message_size)
        connecting = connectProtocol(self.dial(dest, self.port), protocol)
        connect_timeout = min(self.connect_timeout, timeout)
        connecting.addTimeout(connect_timeout, self.clock)
        try:
            await connecting
        except DeferredTimeout:
            raise PeerTimedOut(f"Timed out reaching peer after {connect_timeout:g} s") from None
        except TCPTimedOutError as e:
            raise PeerTimedOut(f"Timed out reaching peer: {e}") from None
        except Exception as e:  # noqa: BLE001 - any dial error is "unreachable"
            raise PeerUnreachable(f"Failed to reach peer: {e or type(e).__name__}") from None
        protocol.send(payload)
        left = max(timeout - (self.clock.seconds() - start), 0.001)
        protocol.reply.addTimeout(left, self.clock)
        try:
            return await protocol.reply
        except DeferredTimeout:
            raise PeerTimedOut(f"no response from peer within {timeout:g} s") from None
        finally:
            if protocol.transport is not None and not protocol.reply_received:
                # Timed out, or our caller went away: drop the connection, nobody will read it.
                protocol.transport.abortConnection()

    def close(self) -> None:
        """Close every pooled connection (the node is stopping)."""
        for channel in list(self._channels.values()):
            channel.close()
        self.unreachable.stop()
