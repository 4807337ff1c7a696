"""Tests for L{axl.streams.recv_queue}: bounded, never dropping, long-pollable."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.streams.recv_queue import Message, RecvQueue

A, B = b"a" * 32, b"b" * 32


class RecvQueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def test_fifo(self) -> None:
        """Messages come out oldest first with their sender; an empty queue gives None."""
        q = RecvQueue(self.clock)
        self.successResultOf(q.put(A, b"1"))
        self.successResultOf(q.put(B, b"2"))
        self.assertEqual(q.get(), Message(A, b"1"))
        self.assertEqual(q.get(), Message(B, b"2"))
        self.assertIsNone(q.get())

    def test_full_by_count_blocks_and_loses_nothing(self) -> None:
        """At the count bound a put waits (not dropped) and is admitted, in order, as room appears."""
        q = RecvQueue(self.clock, max_messages=2)
        q.put(A, b"1"), q.put(A, b"2")
        d3, d4 = q.put(A, b"3"), q.put(B, b"4")
        self.assertNoResult(d3)
        self.assertEqual((len(q), q.waiting_puts, q.blocked_puts), (2, 2, 2))
        self.assertEqual(q.get(), Message(A, b"1"))
        self.successResultOf(d3)
        self.assertNoResult(d4)
        got = [q.get(), q.get(), q.get(), q.get()]
        self.successResultOf(d4)
        self.assertEqual(
            [m.payload if m else None for m in got], [b"2", b"3", b"4", None]
        )

    def test_full_by_bytes(self) -> None:
        """The byte bound blocks too, but a single oversized message is taken into an empty queue."""
        q = RecvQueue(self.clock, max_bytes=10)
        self.successResultOf(q.put(A, b"x" * 50))
        d = q.put(A, b"y")
        self.assertNoResult(d)
        q.get()
        self.successResultOf(d)
        self.assertEqual(q.size_bytes, 1)

    def test_order_kept_behind_blocked(self) -> None:
        """A small put never overtakes an earlier blocked one: drained, they come out in put order."""
        q = RecvQueue(self.clock, max_bytes=10)
        q.put(A, b"x" * 8)
        big = q.put(A, b"y" * 5)
        small = q.put(A, b"z")  # would fit beside the first, but waits behind the big one
        self.assertNoResult(big)
        self.assertNoResult(small)
        drained = [q.get()]
        self.successResultOf(big)
        self.successResultOf(small)
        drained += [q.get(), q.get(), q.get()]
        self.assertEqual(drained, [Message(A, b"x" * 8), Message(A, b"y" * 5), Message(A, b"z"), None])

    def test_wait_gets_later_message(self) -> None:
        """A long-poll is answered by the next message put."""
        q = RecvQueue(self.clock)
        d = q.wait(10)
        self.assertNoResult(d)
        q.put(B, b"hi")
        self.assertEqual(self.successResultOf(d), Message(B, b"hi"))
        self.assertEqual(len(q), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wait_times_out(self) -> None:
        """A long-poll with nothing arriving fires None after its time."""
        q = RecvQueue(self.clock)
        d = q.wait(5)
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.assertIsNone(self.successResultOf(d))

    def test_cancelled_wait_takes_nothing(self) -> None:
        """A cancelled long-poll (client gone) leaves later messages in the queue."""
        q = RecvQueue(self.clock)
        d = q.wait(5)
        d.cancel()
        self.failureResultOf(d)
        q.put(A, b"kept")
        self.assertEqual(len(q), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_peek(self) -> None:
        """Peek shows the oldest message without removing it."""
        q = RecvQueue(self.clock)
        self.assertIsNone(q.peek())
        q.put(A, b"1")
        self.assertEqual(q.peek(), Message(A, b"1"))
        self.assertEqual(len(q), 1)

    def test_bad_bounds(self) -> None:
        """A queue without room for one message is refused."""
        self.assertRaises(ValueError, RecvQueue, self.clock, 0)


class FairnessTests(SynchronousTestCase):
    def test_waiting_senders_take_turns(self) -> None:
        """
        While the queue is full, waiting senders are admitted one message each in turn: a
        sender with many waiting messages does not crowd out one that came later, and each
        sender's own messages keep their order.
        """
        queue = RecvQueue(Clock(), max_messages=1)
        a, b = b"a" * 32, b"b" * 32
        self.successResultOf(queue.put(a, b"a0"))
        pending = [queue.put(a, b"a%d" % i) for i in range(1, 4)] + [queue.put(b, b"b1")]
        self.assertEqual(queue.waiting_puts, 4)
        got = [queue.get() for _ in range(5)]
        self.assertEqual(
            [m.payload for m in got if m is not None], [b"a0", b"a1", b"b1", b"a2", b"a3"]
        )
        for d in pending:
            self.successResultOf(d)
        self.assertEqual(queue.waiting_puts, 0)
