# -*- test-case-name: tests.test_streams_channel,tests.test_streams_sender -*-
"""
One destination's pooled C{/send} connection (spec/axl-node.md section 5.2), a L{Channel}: the
messages waiting for it and those written but not yet acknowledged (L{ChannelCore}), and the
connection's lifecycle as an automat state machine (L{ChannelLifecycle})::

    new --start--> connecting --connected--> open --close--> closing --lost--> closed
                        |                     |
                        +--connect_failed-----+--lost------------------------> closed

 - I{new}: messages queue up until L{ChannelInputs.start} dials.
 - I{connecting}: messages queue up; a failed dial fails them all.
 - I{open}: messages are written as the transport takes them, at most L{SEND_WINDOW} bytes
   unacknowledged. With an axl receiver (the acknowledged protocol on the owner's C{ack_port})
   each fires once the receiver's status frame says it accepted it (queued for C{/recv}), or
   fails with the receiver's refusal; with a Go AXL receiver (which refuses C{ack_port}, so
   the channel dials C{port}), once the peer's TCP acknowledged it (when the transport provides
   L{IAcknowledgingTransport}, else once written). Idle for C{idle_close} seconds, it closes.
 - I{closing}: we closed it (idle, or the node stops); acknowledgements still arrive.
 - I{closed}: gone. Messages still in flight fail; if the peer closed a connection that had
   worked (its own idle timeout), the queued ones move to a new channel, else they fail.

A message not through within C{send_timeout} fails with L{SendTimedOut} (or L{PeerTimedOut} if
no connection was ever made); a receiver's refusal of an oversize message fails it with
L{MessageRefused}, a receiver that will not take it now with L{PeerBusy}.

Per-message events (a message queued, acknowledged, refused or timed out, the transport
resuming) are plain calls on the core: they act on the connection the lifecycle currently
offers for writing (C{ChannelCore.writer}, set on entering I{open}, cleared on leaving it), and
stay off the machine, whose transition lookup costs more than the rest of a small message's
work (automat scans its transitions on every input).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol as TypingProtocol, TypeVar

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionRefusedError, TCPTimedOutError
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.crypto.keys import short_key
from axl.errors import ProtocolError
from axl.logs import observer as log_observer
from axl.streams.errors import (
    DeliveryError,
    MessageRefused,
    PeerBusy,
    PeerTimedOut,
    PeerUnreachable,
    RemoteError,
    SendTimedOut,
    failure_reason,
)
from axl.streams.framing import (
    MessageDecoder,
    Status,
    parse_oversize_reply,
    parse_status,
    write_acked_message,
    write_frame,
)
from axl.streams.interfaces import IAcknowledgingTransport

__all__ = [
    "SEND_WINDOW", "Channel", "ChannelCore", "ChannelLifecycle", "ChannelOwner", "Frame",
    "REPLY_MAX", "connect_error", "dial_message_port",
]

log = Logger(observer=log_observer)

#: Unacknowledged bytes allowed on one pooled connection before later messages wait (one larger
#: message is always allowed on its own).
SEND_WINDOW = 4 * 1024 * 1024

#: The longest reply frame a C{/send} connection decodes (an oversize refusal is far shorter).
REPLY_MAX = 64 * 1024


class Frame:
    """
    One message on its way: C{d} fires with its length once it is through, or fails with a
    L{DeliveryError}.

    @ivar written: whether it was written to the connection (no longer queued).
    @ivar timer: its C{send_timeout}, while it runs.
    """

    __slots__ = ("d", "done", "meta", "payload", "size", "timer", "written")

    def __init__(self, payload: bytes, meta: bytes = b"") -> None:
        self.payload = payload  # dropped once written: the transport holds the bytes then
        self.size = len(payload)
        self.meta = meta  # the acknowledged protocol's metadata (e.g. the message id)
        self.d: Deferred[int] = Deferred()
        self.written = False
        self.done = False
        self.timer: IDelayedCall | None = None

    def finish(self, result: int | Failure) -> None:
        """Fire C{d} with C{result} (once; later calls do nothing) and stop the timer."""
        if self.done:
            return
        self.done = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if isinstance(result, Failure):
            self.d.errback(result)
        else:
            self.d.callback(result)


class ChannelOwner(TypingProtocol):
    """What a channel needs from the L{axl.streams.sender.MessageSender} that made it."""

    clock: IReactorTime
    port: int
    idle_close: float
    send_timeout: float
    connect_timeout: float

    #: The acknowledged protocol's overlay port, or None to use C{port} only.
    ack_port: int | None

    @property
    def dial(self) -> Callable[[bytes, int], IStreamClientEndpoint]:
        """C{dial(key, port)} -> an endpoint to that node's overlay port."""

    def speaks_acks(self, dest: bytes) -> bool:
        """Whether to try the acknowledged protocol with C{dest} (it did not refuse it lately)."""

    def mark_legacy(self, dest: bytes) -> None:
        """C{dest} refused the acknowledged port (a Go AXL node): use C{port} for a while."""

    def forget(self, dest: bytes, channel: Channel) -> None:
        """C{channel} takes no more messages: the next message to C{dest} makes a new one."""

    def requeue(self, dest: bytes, frames: deque[Frame]) -> None:
        """Send C{frames}, never written, on a new connection, ahead of anything newer."""


class ChannelLifecycle(TypingProtocol):
    """The inputs of a channel's connection lifecycle (each returns None, so it may re-enter)."""

    def start(self) -> None:
        """Dial the destination."""

    def connected(self, protocol: SendProtocol) -> None:
        """The dial succeeded."""

    def connect_failed(self, failure: Failure) -> None:
        """The dial failed (or took longer than C{connect_timeout})."""

    def close(self) -> None:
        """Close the connection (idle, or the node is stopping)."""

    def lost(self, reason: Failure) -> None:
        """The connection is gone."""


@implementer(IPushProducer)
class SendProtocol(Protocol):
    """The protocol of one pooled C{/send} connection; its channel does the work."""

    transport: Any  # set by makeConnection

    def __init__(self, channel: Channel, acknowledged: bool = False) -> None:
        self.channel = channel
        self.acknowledged = acknowledged
        self.paused = False
        self._decoder: MessageDecoder | None = MessageDecoder(REPLY_MAX)

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)

    def close(self) -> None:
        """Close after what is written (a transport waits for its producer to unregister)."""
        if self.transport is not None:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.acknowledged:
            self._statuses(data)
            return
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

    def _statuses(self, data: bytes) -> None:
        """The receiver's status frames, one per message, in order (the acknowledged protocol)."""
        if self._decoder is None:
            return
        try:
            statuses = [parse_status(frame) for frame in self._decoder.feed(data)]
        except ProtocolError as e:
            self._decoder = None
            log.warn("dropping the connection to {peer}: bad status frame: {err}",
                     peer=short_key(self.channel.dest), err=e)  # fmt: skip
            self.transport.abortConnection()
            return
        for status in statuses:
            if not self.channel.answered(status):
                self._decoder = None
                log.warn("dropping the connection to {peer}: a status for no message",
                         peer=short_key(self.channel.dest))  # fmt: skip
                self.transport.abortConnection()
                return
            if status.close:
                self._decoder = None
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


@dataclass(eq=False)
class ChannelCore:
    """
    The messages of one destination's channel.

    @ivar queue: messages not yet written, oldest first.
    @ivar inflight: messages written and not yet acknowledged, oldest first.
    @ivar protocol: the connection, once one was made (even if it is closed since).
    @ivar writer: the connection while it is I{open} (the lifecycle sets and clears it).
    @ivar progress: whether any message went through on this connection.
    """

    owner: ChannelOwner
    dest: bytes
    channel: Channel
    queue: deque[Frame] = field(default_factory=deque)
    inflight: deque[Frame] = field(default_factory=deque)
    inflight_bytes: int = 0
    protocol: SendProtocol | None = None
    writer: SendProtocol | None = None
    acks: bool = False
    answers: bool = False
    progress: bool = False
    idle: IDelayedCall | None = None

    # -- per-message events (Channel forwards them here) ---------------------------------------

    def enqueue(self, frame: Frame) -> None:
        """A new message, at the back of the queue; written at once if the connection is open."""
        self.queue.append(frame)
        self.write_queued()

    def requeue(self, frames: Iterable[Frame]) -> None:
        """Messages moved from a connection that closed, at the front, in their order."""
        self.queue.extendleft(reversed(list(frames)))
        self.write_queued()

    def acked(self, frame: Frame) -> None:
        """Acknowledgements are cumulative: every message written up to C{frame} is through."""
        self.progress = True
        while self.inflight:
            done = self.inflight.popleft()
            self.inflight_bytes -= done.size
            done.finish(done.size)
            if done is frame:
                break
        self.write_queued()

    def refused(self, error: str, limit: int) -> None:
        """
        Fail the first unacknowledged message over C{limit} with L{MessageRefused} (one already
        acknowledged was reported sent before the refusal could arrive: it is logged).
        """
        for frame in self.inflight:
            if not frame.done and frame.size > limit:
                frame.finish(Failure(MessageRefused(error, limit)))
                return
        log.info("{peer} refused a message already reported as sent: {err}",
                 peer=short_key(self.dest), err=error)  # fmt: skip

    def answered(self, status: Status) -> bool:
        """
        The receiver's status for the oldest message awaiting one (the acknowledged protocol):
        200 accepted, 413 over its C{max_message_size}, 503 not taken; C{close} refuses every
        message of the connection. False if no message awaits one (the receiver broke the
        protocol).
        """
        if status.close:
            error = PeerBusy(f"Peer refused the connection: {status.error}")
            while self.inflight:
                self.inflight.popleft().finish(Failure(error))
            self.inflight_bytes = 0
            self.fail_queued(error)
            return True
        if not self.inflight:
            return False
        frame = self.inflight.popleft()
        self.inflight_bytes -= frame.size
        if status.code == 200:
            self.progress = True
            if frame.done:
                log.info("{peer} accepted a message after its send timed out", peer=short_key(self.dest))
            frame.finish(frame.size)
        elif status.code == 413 and status.limit is not None:
            frame.finish(Failure(MessageRefused(status.error, status.limit)))
        elif status.code == 503:
            frame.finish(Failure(PeerBusy(f"Peer refused the message: {status.error}")))
        else:
            frame.finish(Failure(RemoteError(f"Peer refused the message ({status.code}): {status.error}")))
        self.write_queued()
        return True

    def timed_out(self, frame: Frame) -> None:
        """C{frame}'s C{send_timeout} passed: fail it, saying whether it was written."""
        frame.timer = None
        timeout = self.owner.send_timeout
        error: DeliveryError
        if not frame.written:
            try:
                self.queue.remove(frame)
            except ValueError:
                pass
            if self.protocol is None:
                error = PeerTimedOut(f"Timed out reaching peer after {timeout:g} s")
            else:
                error = SendTimedOut(
                    f"Send timed out: the peer took no more data for {timeout:g} s; not sent"
                )
        elif self.answers:
            error = SendTimedOut(
                f"Send timed out: the peer did not accept the message within {timeout:g} s"
                " (it may still be queued there)"
            )
        else:
            error = SendTimedOut(
                f"Send timed out: the peer did not acknowledge the message within {timeout:g} s"
                " (it may still arrive)"
            )
        frame.finish(Failure(error))
        if self.writer is not None:
            self.check_idle()

    def write_queued(self) -> None:
        """
        If the connection is open, write queued messages while the transport takes them and the
        window allows, then run or stop the idle timer.
        """
        protocol = self.writer
        if protocol is None:
            return
        transport = protocol.transport
        while self.queue and not protocol.paused:
            frame = self.queue[0]
            size = frame.size
            if self.inflight_bytes and self.inflight_bytes + size > SEND_WINDOW:
                break
            self.queue.popleft()
            frame.written = True
            payload, frame.payload = frame.payload, b""  # the transport's copy is the one kept
            if self.answers:
                write_acked_message(transport, payload, frame.meta)
                self.inflight.append(frame)
                self.inflight_bytes += size
                continue
            write_frame(transport, payload)
            if self.acks:
                self.inflight.append(frame)
                self.inflight_bytes += size
                # A lost connection fails what is in flight (the lost input), not this errback.
                transport.when_acknowledged().addCallbacks(
                    _acked, _ack_failed, callbackArgs=(self, frame)
                )
            else:
                self.progress = True
                frame.finish(size)
        self.check_idle()

    # -- helpers of the lifecycle --------------------------------------------------------------

    def fail_queued(self, error: DeliveryError) -> None:
        """Fail every message not yet written."""
        while self.queue:
            self.queue.popleft().finish(Failure(error))

    def fail_inflight(self, reason: Failure) -> None:
        """Fail every message written and not yet acknowledged."""
        error = PeerUnreachable(
            f"Connection to peer lost before the message was acknowledged: {failure_reason(reason)}"
        )
        while self.inflight:
            self.inflight.popleft().finish(Failure(error))
        self.inflight_bytes = 0

    def check_idle(self) -> None:
        """Run the idle timer while nothing is queued or in flight; stop it otherwise."""
        if self.queue or self.inflight:
            self.stop_idle()
        elif self.idle is None or not self.idle.active():
            self.idle = self.owner.clock.callLater(self.owner.idle_close, self.channel.close)
        else:
            self.idle.reset(self.owner.idle_close)

    def stop_idle(self) -> None:
        """Cancel the idle timer."""
        if self.idle is not None and self.idle.active():
            self.idle.cancel()
        self.idle = None


def _acked(_: object, core: ChannelCore, frame: Frame) -> None:
    core.acked(frame)


def _ack_failed(_: Failure) -> None:
    pass


_P = TypeVar("_P", bound=Protocol)


def dial_message_port(owner: ChannelOwner, dest: bytes, make: Callable[[bool], _P]) -> Deferred[_P]:
    """
    Connect to C{dest} for messages: C{make(True)} on its acknowledged port (C{owner.ack_port},
    README "Messaging"), or C{make(False)} on its C{port} when it refused that port lately or
    refuses it now (a Go AXL node, remembered with C{owner.mark_legacy}). Fails after
    C{owner.connect_timeout} seconds with a C{TimeoutError} (L{connect_error} names each failure).
    """

    def plain() -> Deferred[_P]:
        connecting: Deferred[_P] = connectProtocol(owner.dial(dest, owner.port), make(False))
        return connecting

    def refused(failure: Failure) -> Deferred[_P] | Failure:
        if not failure.check(ConnectionRefusedError):
            return failure
        owner.mark_legacy(dest)
        return plain()

    d: Deferred[_P]
    if owner.ack_port is not None and owner.speaks_acks(dest):
        d = connectProtocol(owner.dial(dest, owner.ack_port), make(True))
        d.addErrback(refused)
    else:
        d = plain()
    d.addTimeout(owner.connect_timeout, owner.clock)
    return d


def connect_error(failure: Failure, connect_timeout: float) -> DeliveryError:
    """The delivery error of a failed L{dial_message_port}: 504's L{PeerTimedOut} or L{PeerUnreachable}."""
    if failure.check(DeferredTimeout):
        return PeerTimedOut(f"Timed out reaching peer after {connect_timeout:g} s")
    if failure.check(TCPTimedOutError):
        return PeerTimedOut(f"Timed out reaching peer: {failure_reason(failure)}")
    return PeerUnreachable(f"Failed to reach peer: {failure_reason(failure)}")


def _build() -> Callable[[ChannelCore], ChannelLifecycle]:
    b = TypeMachineBuilder(ChannelLifecycle, ChannelCore)
    new = b.state("new")
    connecting = b.state("connecting")
    is_open = b.state("open")
    closing = b.state("closing")
    closed = b.state("closed")

    @new.upon(ChannelLifecycle.start).to(connecting)
    def dial(lifecycle: ChannelLifecycle, core: ChannelCore) -> None:
        d = dial_message_port(core.owner, core.dest, partial(SendProtocol, core.channel))
        d.addCallbacks(lifecycle.connected, lifecycle.connect_failed)

    @connecting.upon(ChannelLifecycle.connected).to(is_open)
    def opened(lifecycle: ChannelLifecycle, core: ChannelCore, protocol: SendProtocol) -> None:
        core.protocol = core.writer = protocol
        core.answers = protocol.acknowledged
        core.acks = IAcknowledgingTransport.providedBy(protocol.transport)
        core.write_queued()

    @connecting.upon(ChannelLifecycle.connect_failed).to(closed)
    def unreachable(lifecycle: ChannelLifecycle, core: ChannelCore, failure: Failure) -> None:
        error = connect_error(failure, core.owner.connect_timeout)
        log.info("cannot reach {peer}: {err}", peer=short_key(core.dest), err=error.message)
        core.owner.forget(core.dest, core.channel)
        core.fail_queued(error)

    @closed.upon(ChannelLifecycle.connected).loop()
    def unwanted(lifecycle: ChannelLifecycle, core: ChannelCore, protocol: SendProtocol) -> None:
        protocol.close()  # closed while connecting (the node stopped)

    @new.upon(ChannelLifecycle.close).to(closed)
    @connecting.upon(ChannelLifecycle.close).to(closed)
    def abandon(lifecycle: ChannelLifecycle, core: ChannelCore) -> None:
        core.owner.forget(core.dest, core.channel)
        core.fail_queued(PeerUnreachable("Connection to peer closed: the node is stopping"))

    @is_open.upon(ChannelLifecycle.close).to(closing)
    def hang_up(lifecycle: ChannelLifecycle, core: ChannelCore) -> None:
        core.stop_idle()
        core.owner.forget(core.dest, core.channel)
        protocol, core.writer = core.writer, None
        assert protocol is not None
        protocol.close()

    @is_open.upon(ChannelLifecycle.lost).to(closed)
    def dropped(lifecycle: ChannelLifecycle, core: ChannelCore, reason: Failure) -> None:
        core.writer = None
        core.stop_idle()
        core.owner.forget(core.dest, core.channel)
        core.fail_inflight(reason)
        if core.queue and core.progress:
            # The peer closed a connection that worked (e.g. its idle timeout): carry on anew.
            frames, core.queue = core.queue, deque()
            core.owner.requeue(core.dest, frames)
        else:
            core.fail_queued(PeerUnreachable(f"Connection to peer closed: {failure_reason(reason)}"))

    @closing.upon(ChannelLifecycle.lost).to(closed)
    def hung_up(lifecycle: ChannelLifecycle, core: ChannelCore, reason: Failure) -> None:
        core.fail_inflight(reason)
        core.fail_queued(PeerUnreachable(f"Connection to peer closed: {failure_reason(reason)}"))

    for state in (closing, closed):
        state.upon(ChannelLifecycle.close).loop().returns(None)
    closed.upon(ChannelLifecycle.lost).loop().returns(None)
    closed.upon(ChannelLifecycle.connect_failed).loop().returns(None)
    return b.build()


_new_lifecycle = _build()


class Channel:
    """
    One destination's pooled connection: L{ChannelCore} holds its messages, a
    L{ChannelLifecycle} machine its connection. The owner calls the per-message methods; the
    connection's events drive the lifecycle.
    """

    def __init__(self, owner: ChannelOwner, dest: bytes) -> None:
        self.dest = dest
        self.core = ChannelCore(owner, dest, self)
        self._lifecycle = _new_lifecycle(self.core)

    # -- the lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Dial the destination (once, after the first message is queued)."""
        self._lifecycle.start()

    def close(self) -> None:
        """Close the connection (idle, or the node is stopping)."""
        self._lifecycle.close()

    def lost(self, reason: Failure) -> None:
        """The connection is gone."""
        self._lifecycle.lost(reason)

    # -- messages ------------------------------------------------------------------------------

    def enqueue(self, frame: Frame) -> None:
        """A new message for this destination."""
        self.core.enqueue(frame)

    def requeue(self, frames: Iterable[Frame]) -> None:
        """Messages moved from a connection that closed, ahead of newer ones."""
        self.core.requeue(frames)

    def pump(self) -> None:
        """The transport may take more data."""
        self.core.write_queued()

    def refused(self, error: str, limit: int) -> None:
        """The receiver refused a message over its C{max_message_size} (C{limit})."""
        self.core.refused(error, limit)

    def timed_out(self, frame: Frame) -> None:
        """C{frame}'s C{send_timeout} passed."""
        self.core.timed_out(frame)

    def answered(self, status: Status) -> bool:
        """The receiver's status for the oldest message awaiting one (acknowledged protocol)."""
        return self.core.answered(status)
