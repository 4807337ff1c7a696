# -*- test-case-name: tests.test_streams_sender -*-
"""
The outbound side of the port-7000 message protocol.

L{Sender.send} (C{/send}): messages to one destination share one overlay connection while they
flow, so they arrive in the order sent; the connection is closed after C{idle_close} seconds
without traffic (a Go AXL receiver has only 128 connection slots). A send succeeds only once the
remote TCP has acknowledged the whole message (when the transport provides
L{IAcknowledgingTransport}; otherwise once it is written), and fails with 503 if that takes longer
than C{send_timeout} (a receiver that stopped draining its queue).

L{Sender.request} (C{/mcp}, C{/a2a}): one new connection per request, one request frame, one
reply frame, within one end-to-end deadline; the connect has its own, shorter bound.

A receiver of ours refuses a message over its C{max_message_size} with one reply frame
(L{axl.streams.framing.oversize_reply}) before closing: on a C{/send} connection that fails the
message with 413 if it is still unacknowledged (a message small enough to be acknowledged in
the same round trip was already answered 200; the refusal is then logged); on a request
connection it is the reply (the bridge reports its C{error}).

Messages to our own key never leave the node: they go straight to our L{StreamRegistry}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import TCPTimedOutError
from twisted.internet.interfaces import (
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.crypto.keys import short_key
from axl.errors import ProtocolError
from axl.streams.framing import FrameDecoder, parse_oversize_reply, write_frame
from axl.streams.interfaces import IAcknowledgingTransport
from axl.streams.registry import StreamRegistry

__all__ = ["SEND_WINDOW", "DeliveryError", "Dial", "Sender"]

#: Dial a node's overlay port: C{dial(key, port)} -> an endpoint.
Dial = Callable[[bytes, int], IStreamClientEndpoint]

#: Unacknowledged bytes allowed on one pooled connection before later messages wait (one larger
#: message is always allowed on its own).
SEND_WINDOW = 4 * 1024 * 1024


#: The longest reply frame a C{/send} connection decodes (an oversize refusal is far shorter).
_REPLY_MAX = 64 * 1024


class DeliveryError(Exception):
    """
    A message could not be delivered; C{status} is the HTTP status the bridge answers (502 peer
    unreachable or connection lost, 503 send timeout, 504 connect or reply timeout, 413 the
    receiver refused it as over its C{max_message_size}).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _reason(failure: Failure) -> str:
    text = failure.getErrorMessage()
    return text if text else getattr(failure.type, "__name__", "error")


class _Frame:
    __slots__ = ("d", "payload", "state", "timer")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.d: Deferred[int] = Deferred()
        self.state = "queued"  # -> "written" -> "done"
        self.timer: IDelayedCall | None = None

    def finish(self, result: int | Failure) -> None:
        if self.state == "done":
            return
        self.state = "done"
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if isinstance(result, Failure):
            self.d.errback(result)
        else:
            self.d.callback(result)


@implementer(IPushProducer)
class _SendProtocol(Protocol):
    """The protocol of one pooled C{/send} connection; the L{_Channel} does the work."""

    transport: Any  # set by makeConnection

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.paused = False
        self._decoder: FrameDecoder | None = FrameDecoder(_REPLY_MAX)

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)

    def close(self) -> None:
        """Close after what is written (a transport waits for its producer to unregister)."""
        if self.transport is not None:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        # Replies nobody asked for (a receiver that took our message for an envelope) are
        # dropped; only a receiver's refusal of an oversize message (our extension) matters.
        if self._decoder is None:
            return
        try:
            frames = self._decoder.feed(data)
        except ProtocolError:
            self._decoder = None  # not our framing, or a long reply: nothing we need
            return
        for frame in frames:
            refusal = parse_oversize_reply(frame)
            if refusal is not None:
                self._decoder = None
                self.channel.refused(*refusal)
                self.transport.abortConnection()
                return

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.channel.pump()

    def stopProducing(self) -> None:
        self.paused = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.channel.lost(reason)


class _Channel:
    """One destination's pooled connection and its messages."""

    log = Logger()

    def __init__(self, sender: Sender, dest: bytes) -> None:
        self.sender = sender
        self.dest = dest
        self.queue: deque[_Frame] = deque()
        self.inflight: deque[_Frame] = deque()
        self.inflight_bytes = 0
        self.protocol: _SendProtocol | None = None
        self.acks = False
        self.progress = False
        self.closed = False
        self.idle: IDelayedCall | None = None

    def connect(self) -> None:
        s = self.sender
        d = connectProtocol(s.dial(self.dest, s.port), _SendProtocol(self))
        d.addTimeout(s.connect_timeout, s.clock)
        d.addCallbacks(self.connected, self.connect_failed)

    def connected(self, protocol: _SendProtocol) -> None:
        if self.closed:
            protocol.close()
            return
        self.protocol = protocol
        self.acks = IAcknowledgingTransport.providedBy(protocol.transport)
        self.pump()

    def connect_failed(self, failure: Failure) -> None:
        if failure.check(DeferredTimeout):
            error = DeliveryError(
                504, f"Timed out reaching peer after {self.sender.connect_timeout:g} s"
            )
        elif failure.check(TCPTimedOutError):
            error = DeliveryError(504, f"Timed out reaching peer: {_reason(failure)}")
        else:
            error = DeliveryError(502, f"Failed to reach peer: {_reason(failure)}")
        self.log.info(
            "cannot reach {peer}: {err}", peer=short_key(self.dest), err=error.message
        )
        self.shut(error)

    def pump(self) -> None:
        protocol = self.protocol
        if protocol is None or self.closed:
            return
        transport = protocol.transport
        while self.queue and not protocol.paused:
            frame = self.queue[0]
            size = len(frame.payload)
            if self.inflight_bytes and self.inflight_bytes + size > SEND_WINDOW:
                break
            self.queue.popleft()
            frame.state = "written"
            write_frame(transport, frame.payload)
            if self.acks:
                self.inflight.append(frame)
                self.inflight_bytes += size
                transport.when_acknowledged().addCallbacks(
                    self.acked, self.ack_failed, callbackArgs=(frame,)
                )
            else:
                self.progress = True
                frame.finish(size)
        self.check_idle()

    def acked(self, _: object, frame: _Frame) -> None:
        self.progress = True
        # Acknowledgements are cumulative: every frame written up to this one is through.
        while self.inflight:
            done = self.inflight.popleft()
            self.inflight_bytes -= len(done.payload)
            done.finish(len(done.payload))
            if done is frame:
                break
        self.pump()

    def ack_failed(self, failure: Failure) -> None:
        pass  # connectionLost fails what is still in flight

    def refused(self, error: str, limit: int) -> None:
        """
        The receiver refused a message as over its C{max_message_size} (C{limit}) and closes
        the connection: the first one still in flight that is that large fails with 413 (one
        already acknowledged was answered 200 before the refusal could arrive; it is logged).
        """
        for frame in self.inflight:
            if frame.state != "done" and len(frame.payload) > limit:
                frame.finish(Failure(DeliveryError(413, error)))
                return
        self.log.info(
            "{peer} refused a message already reported as sent: {err}",
            peer=short_key(self.dest),
            err=error,
        )

    def check_idle(self) -> None:
        busy = self.queue or self.inflight
        if busy or self.protocol is None or self.closed:
            if self.idle is not None and self.idle.active():
                self.idle.cancel()
            self.idle = None
        elif self.idle is None or not self.idle.active():
            self.idle = self.sender.clock.callLater(
                self.sender.idle_close, self.idle_timeout
            )
        else:
            self.idle.reset(self.sender.idle_close)

    def idle_timeout(self) -> None:
        if self.idle is not None and self.idle.active():
            self.idle.cancel()  # called early by Sender.close: leave no timer behind
        self.idle = None
        self.sender.forget(self)
        self.closed = True
        if self.protocol is not None:
            self.protocol.close()

    def timed_out(self, frame: _Frame) -> None:
        frame.timer = None
        timeout = self.sender.send_timeout
        if frame.state == "queued":
            try:
                self.queue.remove(frame)
            except ValueError:
                pass
            if self.protocol is None:
                error = DeliveryError(
                    504, f"Timed out reaching peer after {timeout:g} s"
                )
            else:
                error = DeliveryError(
                    503,
                    f"Send timed out: the peer took no more data for {timeout:g} s; not sent",
                )
        else:
            error = DeliveryError(
                503,
                f"Send timed out: the peer did not acknowledge the message within {timeout:g} s (it may still arrive)",
            )
        frame.finish(Failure(error))
        self.check_idle()

    def lost(self, reason: Failure) -> None:
        was_open = not self.closed
        self.closed = True
        self.sender.forget(self)
        if self.idle is not None and self.idle.active():
            self.idle.cancel()
        self.idle = None
        error = DeliveryError(
            502,
            f"Connection to peer lost before the message was acknowledged: {_reason(reason)}",
        )
        while self.inflight:
            self.inflight.popleft().finish(Failure(error))
        self.inflight_bytes = 0
        if self.queue and was_open and self.progress:
            # The peer closed a connection that worked (e.g. its idle timeout): carry on with a new one.
            self.sender.requeue(self.dest, self.queue)
            self.queue = deque()
        else:
            self.shut(
                DeliveryError(502, f"Connection to peer closed: {_reason(reason)}")
            )

    def shut(self, error: DeliveryError) -> None:
        self.closed = True
        self.sender.forget(self)
        while self.queue:
            self.queue.popleft().finish(Failure(error))


class _RequestProtocol(Protocol):
    """One request connection: write the request frame, read one reply frame."""

    transport: Any  # set by makeConnection

    def __init__(self, max_message_size: int) -> None:
        self._decoder = FrameDecoder(max_message_size)
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
            self.reply.errback(DeliveryError(502, str(e)))
            self.transport.abortConnection()
            return
        if frames:
            self.reply_received = True
            self.transport.loseConnection()
            self.reply.callback(frames[0])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.reply.called:
            self.reply.errback(
                DeliveryError(
                    502, f"no response from peer: connection closed ({_reason(reason)})"
                )
            )


class Sender:
    """
    Sends messages and requests to other nodes' port-7000 listeners.

    @param dial: C{dial(key, port)} -> an C{IStreamClientEndpoint} to that node's port.
    @param local: our own registry, for messages to our own key.
    """

    log = Logger()

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
        self._channels: dict[bytes, _Channel] = {}

    def send(self, dest: bytes, payload: bytes) -> Deferred[int]:
        """
        Deliver one message to C{dest}'s C{/recv} (or streams). Fires with the payload length
        once the remote TCP acknowledged it; fails with L{DeliveryError}.
        """
        if dest == self.our_key:
            return self._send_local(payload)
        frame = _Frame(payload)
        channel = self._channels.get(dest)
        fresh = channel is None
        if channel is None:
            channel = self._channels[dest] = _Channel(self, dest)
        frame.timer = self.clock.callLater(self.send_timeout, channel.timed_out, frame)
        channel.queue.append(frame)
        if fresh:
            channel.connect()  # may fail at once, failing the frame
        else:
            channel.pump()
        return frame.d

    def _send_local(self, payload: bytes) -> Deferred[int]:
        result: Deferred[int] = Deferred()

        def expire() -> None:
            result.errback(
                DeliveryError(
                    503,
                    f"Send timed out: our own queue stayed full for {self.send_timeout:g} s",
                )
            )

        timer = self.clock.callLater(self.send_timeout, expire)

        def done(_: object) -> None:
            if timer.active():
                timer.cancel()
                result.callback(len(payload))

        self.local.dispatch(payload, self.our_key).addBoth(done)
        return result

    def forget(self, channel: _Channel) -> None:
        if self._channels.get(channel.dest) is channel:
            del self._channels[channel.dest]

    def requeue(self, dest: bytes, frames: deque[_Frame]) -> None:
        """Move unsent messages to a new connection, ahead of anything queued since."""
        channel = self._channels.get(dest)
        fresh = channel is None
        if channel is None:
            channel = self._channels[dest] = _Channel(self, dest)
        now = self.clock.seconds()
        for frame in frames:
            if frame.timer is not None and frame.timer.active():
                left = max(frame.timer.getTime() - now, 0.0)
                frame.timer.cancel()
                frame.timer = self.clock.callLater(left, channel.timed_out, frame)
        channel.queue.extendleft(reversed(frames))
        if fresh:
            channel.connect()
        else:
            channel.pump()

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
                raise DeliveryError(
                    504, f"no response from peer within {timeout:g} s"
                ) from None
            if reply is None:
                raise DeliveryError(502, "no response from peer: no stream answered")
            return reply
        start = self.clock.seconds()
        protocol = _RequestProtocol(self.max_message_size)
        connecting = connectProtocol(self.dial(dest, self.port), protocol)
        connect_timeout = min(self.connect_timeout, timeout)
        connecting.addTimeout(connect_timeout, self.clock)
        try:
            await connecting
        except DeferredTimeout:
            raise DeliveryError(
                504, f"Timed out reaching peer after {connect_timeout:g} s"
            ) from None
        except TCPTimedOutError as e:
            raise DeliveryError(504, f"Timed out reaching peer: {e}") from None
        except Exception as e:  # noqa: BLE001 - any dial error is "unreachable"
            raise DeliveryError(
                502, f"Failed to reach peer: {e or type(e).__name__}"
            ) from None
        protocol.send(payload)
        left = max(timeout - (self.clock.seconds() - start), 0.001)
        protocol.reply.addTimeout(left, self.clock)
        try:
            return await protocol.reply
        except DeferredTimeout:
            raise DeliveryError(
                504, f"no response from peer within {timeout:g} s"
            ) from None
        finally:
            if protocol.transport is not None and not protocol.reply_received:
                # Timed out, or our caller went away: drop the connection, nobody will read it.
                protocol.transport.abortConnection()

    def close(self) -> None:
        """Close every pooled connection (the node is stopping)."""
        for channel in list(self._channels.values()):
            channel.idle_timeout()
