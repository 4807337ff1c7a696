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
   first message within C{first_timeout} (shorter), so idle connections cannot hold slots;
 - C{budget} (issue 12; C{recv_queue_max_bytes} in the node): the bytes all connections hold
   (whole messages not yet in the C{/recv} queue, and the messages in progress) plus the
   queue's own bytes. A connection that has read a message's 4-byte header reserves the whole
   announced length before it reads on; if the budget has no room it stops reading (the rest
   waits in the sender's TCP, under C{tcp_rcv_budget_bytes}) and waits its turn: room is given
   first come first served, so a large message is not starved by small ones, and a reserved
   message always completes (or its connection times out), so nothing deadlocks. Once the
   budget is full every connection between messages stops reading too. Memory held here is at
   most C{budget} plus the one read that filled it (a message longer than the budget goes
   through alone, when nothing else is held).

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
from axl.logs import observer as log_observer
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
from axl.streams.dedup import valid_message_id
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

    log = Logger(observer=log_observer)

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
        budget: int | None = None,
        queued_bytes: Callable[[], int] = lambda: 0,
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
        self.budget = budget
        self.queued_bytes = queued_bytes
        #: bytes charged by all connections: their whole messages not yet in the queue, and for
        #: each message in progress its announced length once reserved (else what has arrived)
        self.held = 0
        self._protos: dict[MessageProtocol, None] = {}
        self._waiting: dict[MessageProtocol, None] = {}  # waiting for room, first come first served
        self._freeing = False
        self._over = False  # the budget was full when last looked at (everyone paused then)

    def _is_over(self) -> bool:
        return self.budget is not None and self.held + self.queued_bytes() >= self.budget

    def _fits(self, proto: MessageProtocol, need: int) -> bool:
        assert self.budget is not None  # only asked with a budget
        queued = self.queued_bytes()
        if self.held + queued + need <= self.budget:
            return True
        # Nothing else holds anything, so nothing could ever free room: a message larger than
        # the budget (max_message_size above recv_queue_max_bytes) goes through alone.
        return self.held == proto.charge and queued == 0

    def may_read(self, proto: MessageProtocol) -> bool:
        """
        Whether C{proto} may read more now; if not it waits, in arrival order, for
        L{space_freed}. A connection that has read the header of a message reserves the whole
        announced length before reading the rest; one between messages reads on only while the
        budget has room.
        """
        if self.budget is None:
            return True
        need = proto.room_needed()
        if need == 0:
            self._waiting.pop(proto, None)
            return True
        ahead = next(iter(self._waiting), proto)
        if ahead is proto and self._fits(proto, need):
            self._waiting.pop(proto, None)
            proto.reserve()
            return True
        self._waiting[proto] = None
        return False

    def account(self, proto: MessageProtocol, delta: int) -> None:
        """C{proto}'s charge changed by C{delta} bytes."""
        self.held += delta
        if delta > 0 and not self._over and self._is_over():
            # Everyone who would need more room stops reading at once, not only whoever reads
            # next, so a full budget is passed by at most the read that filled it (once, as it
            # fills: a connection finishing a message later waits at its next read).
            self._over = True
            for other in tuple(self._protos):
                if other is not proto and other.room_needed():
                    other.budget_pause()
        elif delta < 0:
            self.space_freed()

    def join(self, proto: MessageProtocol) -> None:
        """C{proto} took a connection slot."""
        self._protos[proto] = None

    def forget(self, proto: MessageProtocol) -> None:
        """C{proto} is gone."""
        self._protos.pop(proto, None)
        self._waiting.pop(proto, None)
        self.space_freed()

    def space_freed(self) -> None:
        """Let connections waiting for room read again, first come first served, while it fits."""
        self._over = self._is_over()
        if self._freeing:
            return  # a resumed connection freed room while we resume: the loop carries on
        self._freeing = True
        try:
            while self._waiting:
                proto = next(iter(self._waiting))
                if self.budget is not None and proto.room_needed() and not self._fits(
                    proto, proto.room_needed()
                ):
                    break  # the first in line does not fit yet; nobody overtakes it
                proto.budget_resume()  # leaves the line once it reads again (or is gone)
                if next(iter(self._waiting), None) is proto:
                    break
        finally:
            self._freeing = False

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

    log = Logger(observer=log_observer)
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
        self.charge = 0  # bytes accounted to the factory's budget
        self._reserved: int | None = None  # the message in progress's length, once reserved
        self._busy_size = 0
        self._budget_wait = False
        self.peer_key = b""

    @property
    def in_message(self) -> bool:
        """Part of a message has arrived but not all of it."""
        return self._decoder.in_frame

    def room_needed(self) -> int:
        """
        The budget this connection needs before it reads on: the rest of an announced message
        not reserved yet, 1 between messages (some room), 0 while it reads a reserved message.
        """
        if not self._open:
            return 0
        decoder = self._decoder
        length = decoder.pending_length
        if length is None:
            return 1
        if self._reserved is not None:
            return 0
        return max(length - decoder.buffered, 1)

    def reserve(self) -> None:
        """The factory granted room: reserve the message in progress's whole length."""
        length = self._decoder.pending_length
        if length is not None and self._reserved is None:
            self._reserved = length
            self._account()

    def _account(self) -> None:
        whole = sum(len(p) for p in self._pending if isinstance(p, bytes)) + self._busy_size
        partial = 0
        if self._open:  # what a closed connection had of a message is dropped
            partial = self._decoder.buffered
            if self._reserved is not None:
                partial = max(partial, self._reserved)
        charge = whole + partial
        if charge != self.charge:
            delta, self.charge = charge - self.charge, charge
            self._factory.account(self, delta)

    def budget_pause(self) -> None:
        """The budget is exhausted: stop reading until L{budget_resume}."""
        if self._open and not self._budget_wait:
            self._budget_wait = True
            self._factory._waiting[self] = None
            if not self._paused:
                self._paused = True
                self.transport.pauseProducing()

    def budget_resume(self) -> None:
        """The budget may have room again: read if it allows (else wait again)."""
        if not self._budget_wait or not self._open:
            self._budget_wait = False
            self._factory._waiting.pop(self, None)
            return
        if self._factory.may_read(self):
            self._budget_wait = False
            self._pump()

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
        factory.join(self)
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
        if messages:
            self._reserved = None  # the reserved message, if any, is whole now
        self._pending.extend(messages)
        self._account()
        if not self._factory.may_read(self):
            self._budget_wait = True
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
                    self._busy_size = len(payload) if isinstance(payload, bytes) else 0
                    self._dispatch(payload).addCallbacks(self._dispatched, self._dispatch_failed)
                if not self._open:
                    break
                if self._busy or self._budget_wait:
                    if not self._paused:
                        # Still working on a message (or over the memory budget): stop reading.
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
        self._account()
        self._update_timer()

    def _reply(self, reply: bytes) -> None:
        if self._open:
            write_frame(self.transport, reply)

    def _dispatched(self, reply: bytes | None) -> None:
        self._busy = False
        self._busy_size = 0
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
        self._budget_wait = False
        self._factory.forget(self)
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
                self._reserved = None
                self._discard_left = e.length
                data = rest
                continue
            if messages:
                self._reserved = None  # the reserved message, if any, is whole now
            self._pending.extend(messages)
            break
        self._account()
        if self._open and not self._factory.may_read(self):
            self._budget_wait = True
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
        message_id = body.meta.get("id")
        if not (isinstance(message_id, str) and valid_message_id(message_id)):
            message_id = None  # absent or unusable: delivered without duplicate detection
        queue = self._factory.registry.queue
        return queue.put(self.peer_key, body.payload, message_id).addCallback(_accepted)


def _accepted(_: object) -> bytes:
    return ACK_OK
