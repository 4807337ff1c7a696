# -*- test-case-name: tests.test_streams_recv_queue -*-
"""
The C{/recv} queue: inbound messages no stream claimed, oldest first (spec/axl-node.md section 8).

Unlike AXL (100 messages, the oldest silently evicted) the queue is bounded by a message count and
a byte total, and never drops anything: L{RecvQueue.put} returns a Deferred that fires only once
the message is in the queue, and the port-7000 listener stops reading that connection meanwhile,
so a full queue pushes back through TCP to the senders. A message larger than the byte bound is
still taken when the queue is empty (the size limit for one message is C{max_message_size}).

When room frees up, waiting senders are admitted in turn, one message each (round robin by sender
key; each sender's own messages keep their order), so a peer with many connections cannot crowd
out the others (spec/axl-node.md section 13.25).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from axl.logs import observer as log_observer
from axl.ratelimit import AggregatedLog
from axl.streams.dedup import SeenMessages

__all__ = ["Message", "RecvQueue"]


@dataclass(frozen=True)
class Message:
    """
    One received message: the sender's full 32-byte key, the payload, and the sender's
    C{X-Message-Id} if it gave one.
    """

    sender: bytes
    payload: bytes
    message_id: str | None = None


class RecvQueue:
    """
    A bounded FIFO of L{Message}s with waiting producers (L{put}) and long-polling consumers
    (L{wait}).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        clock: IReactorTime,
        max_messages: int = 1000,
        max_bytes: int = 32 * 1024 * 1024,
        seen: SeenMessages | None = None,
    ) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError("the receive queue needs room for at least one message")
        self._clock = clock
        #: message ids taken recently (a retry with the same sender and id is not queued again)
        self.seen = seen if seen is not None else SeenMessages(clock)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque[Message] = deque()
        self._bytes = 0
        # Puts waiting for room, per sender, senders in turn order (round robin).
        self._blocked: dict[bytes, deque[tuple[Message, Deferred[None]]]] = {}
        self._blocked_count = 0
        self._waiters: deque[Deferred[Message | None]] = deque()
        #: How many puts had to wait for room (a counter for operators and tests).
        self.blocked_puts = 0
        #: One line a minute or so, however many senders are paused.
        self.paused_log = AggregatedLog(clock, self.log, "paused", "messages (queue full)")
        #: Called after a message leaves the queue (the listener's memory budget watches it).
        self.on_space: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        """Payload bytes currently queued."""
        return self._bytes

    @property
    def waiting_puts(self) -> int:
        """Messages waiting for room (their connections are paused)."""
        return self._blocked_count

    def _fits(self, message: Message) -> bool:
        if not self._items:
            return True
        return (
            len(self._items) < self.max_messages
            and self._bytes + len(message.payload) <= self.max_bytes
        )

    def put(self, sender: bytes, payload: bytes, message_id: str | None = None) -> Deferred[None]:
        """
        Queue a message. The Deferred fires once it is queued (at once when there is room);
        one sender's messages are queued in the order C{put} was called, and while the queue is
        full the senders waiting for room take turns. A message whose C{message_id} this sender
        already gave within the window (L{SeenMessages}) is a retry: it fires at once and is not
        queued again.
        """
        if message_id is not None and not self.seen.first(sender, message_id):
            return succeed(None)
        message = Message(sender, payload, message_id)
        if not self._blocked:
            if self._waiters:
                # Hand it straight to a long-poller.
                self._waiters.popleft().callback(message)
                return succeed(None)
            if self._fits(message):
                self._append(message)
                return succeed(None)
        self.blocked_puts += 1
        self.paused_log.event(
            sender[:4].hex() + "…", f"receive queue full ({len(self._items)} messages, {self._bytes} bytes)"
        )
        d: Deferred[None] = Deferred()
        self._blocked.setdefault(sender, deque()).append((message, d))
        self._blocked_count += 1
        return d

    def _append(self, message: Message) -> None:
        self._items.append(message)
        self._bytes += len(message.payload)

    def peek(self) -> Message | None:
        """The oldest message without removing it (for C{HEAD /recv})."""
        return self._items[0] if self._items else None

    def get(self) -> Message | None:
        """Remove and return the oldest message, or None if the queue is empty."""
        if not self._items:
            return None
        message = self._items.popleft()
        self._bytes -= len(message.payload)
        self._admit()
        for notify in self.on_space:
            notify()
        return message

    def _admit(self) -> None:
        while self._blocked:
            sender = next(iter(self._blocked))  # whose turn it is
            waiting = self._blocked[sender]
            message, d = waiting[0]
            if not self._fits(message):
                return  # the sender keeps its turn until there is room for this message
            waiting.popleft()
            self._blocked_count -= 1
            del self._blocked[sender]
            if waiting:
                self._blocked[sender] = waiting  # to the back of the round
            self._append(message)
            d.callback(None)

    def wait(self, timeout: float) -> Deferred[Message | None]:
        """
        The oldest message, waiting up to C{timeout} seconds for one; fires with None if none
        came. Cancelling the Deferred (the HTTP client went away) withdraws the wait without
        taking a message.
        """
        message = self.get()
        if message is not None or timeout <= 0:
            return succeed(message)
        timer: list[IDelayedCall] = []

        def cancel(d: Deferred[Message | None]) -> None:
            self._discard(d, timer)

        d: Deferred[Message | None] = Deferred(cancel)
        timer.append(self._clock.callLater(timeout, self._expire, d))
        d.addBoth(self._stop_timer, timer)
        self._waiters.append(d)
        return d

    def _discard(self, d: Deferred[Message | None], timer: list[IDelayedCall]) -> None:
        try:
            self._waiters.remove(d)
        except ValueError:
            pass

    def _expire(self, d: Deferred[Message | None]) -> None:
        try:
            self._waiters.remove(d)
        except ValueError:
            return
        d.callback(None)

    @staticmethod
    def _stop_timer(result: object, timer: list[IDelayedCall]) -> object:
        if timer and timer[0].active():
            timer[0].cancel()
        return result

    def close(self) -> None:
        """Answer every long-poller with None (the node is stopping)."""
        while self._waiters:
            self._waiters.popleft().callback(None)
        self.paused_log.stop()
