"""Tests for L{axl.streams.registry}: ordered dispatch, disabled streams, allow-lists, failures."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from axl.streams.interfaces import IStream
from axl.streams.recv_queue import Message, RecvQueue
from axl.streams.registry import StreamRegistry

A = b"a" * 32


@implementer(IStream)
class FakeStream:
    def __init__(self, name: str, key: str, result: Any = b"reply") -> None:
        self.name, self.key, self.result = name, key, result
        self.calls: list[tuple[dict[str, Any], bytes]] = []

    def matches(self, envelope: dict[str, Any]) -> bool:
        return self.key in envelope

    def handle(self, envelope: dict[str, Any], peer_key: bytes) -> Any:
        self.calls.append((envelope, peer_key))
        return self.result

    def error_reply(self, envelope: dict[str, Any], message: str) -> bytes:
        return json.dumps({"error": message}).encode()


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.queue = RecvQueue(self.clock)
        self.reg = StreamRegistry(self.queue, self.clock, timeout=5)

    def test_fake_provides_interface(self) -> None:
        """The test stream really provides L{IStream} (so the registry accepts it)."""
        verifyObject(IStream, FakeStream("x", "x"))
        self.assertRaises(TypeError, self.reg.add, object())

    def test_first_match_wins(self) -> None:
        """Streams are tried in order; the first that matches serves and its reply is returned."""
        one, two = (
            FakeStream("one", "k", succeed(b"1")),
            FakeStream("two", "k", succeed(b"2")),
        )
        self.reg.add(one)
        self.reg.add(two)
        self.assertEqual(self.successResultOf(self.reg.dispatch(b'{"k": 1}', A)), b"1")
        self.assertEqual(len(one.calls), 1)
        self.assertEqual(two.calls, [])
        self.assertEqual(self.reg.names, ["one", "two"])
        self.assertRaises(ValueError, self.reg.add, FakeStream("one", "z"))

    def test_unclaimed_goes_to_queue(self) -> None:
        """A message no stream claims (binary, or JSON without the keys) is queued with its sender."""
        self.reg.add(FakeStream("one", "k"))
        self.assertIsNone(self.successResultOf(self.reg.dispatch(b"\x00binary", A)))
        self.assertIsNone(self.successResultOf(self.reg.dispatch(b'{"other": 1}', A)))
        self.assertEqual(
            [self.queue.get(), self.queue.get()],
            [Message(A, b"\x00binary"), Message(A, b'{"other": 1}')],
        )

    def test_disabled_stream_answers_error_and_never_queues(self) -> None:
        """A disabled stream's envelope is answered at once with an error and never queued to /recv."""
        stream = FakeStream("mcp", "service")
        self.reg.add(stream, enabled=False)
        reply = self.successResultOf(self.reg.dispatch(b'{"service": "w"}', A))
        self.assertEqual(json.loads(reply), {"error": "mcp not enabled on this node"})
        self.assertIsNone(self.queue.get())
        self.assertEqual(self.queue.waiting_puts, 0)
        self.assertEqual(stream.calls, [])

    def test_allow_list(self) -> None:
        """A peer outside a stream's allow-list gets an error envelope and the stream is not called."""
        stream = FakeStream("mcp", "k")
        self.reg.add(stream, allowed=[b"z" * 32])
        reply = self.successResultOf(self.reg.dispatch(b'{"k": 1}', A))
        self.assertEqual(json.loads(reply), {"error": "mcp: peer not allowed"})
        self.assertEqual(stream.calls, [])

    def test_failing_stream_answers_error(self) -> None:
        """A stream whose handle fails is answered with its error envelope (logged)."""
        self.reg.add(FakeStream("s", "k", fail(RuntimeError("kaput"))))
        reply = self.successResultOf(self.reg.dispatch(b'{"k": 1}', A))
        self.assertEqual(json.loads(reply), {"error": "s failed: kaput"})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_slow_stream_times_out(self) -> None:
        """A stream slower than the registry's timeout is answered with an error envelope."""
        self.reg.add(FakeStream("s", "k", Deferred()))
        d = self.reg.dispatch(b'{"k": 1}', A)
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.assertEqual(
            json.loads(self.successResultOf(d)), {"error": "s timed out after 5 s"}
        )

    def test_no_reply(self) -> None:
        """A stream that answers None produces no reply."""
        self.reg.add(FakeStream("s", "k", None))
        self.assertIsNone(self.successResultOf(self.reg.dispatch(b'{"k": 1}', A)))

    def test_queue_full_delays_the_dispatch(self) -> None:
        """With the queue full, dispatch of an unclaimed message fires only once it is queued."""
        q = RecvQueue(self.clock, max_messages=1)
        reg = StreamRegistry(q, self.clock)
        reg.dispatch(b"1", A)
        d = reg.dispatch(b"2", A)
        self.assertNoResult(d)
        q.get()
        self.successResultOf(d)
