"""Tests for L{axl.streams.sender}: pooled ordered sends with acknowledgement, and requests."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.streams.envelope import encode_mcp_request
from axl.streams.listener import MessageFactory
from axl.streams.recv_queue import Message, RecvQueue
from axl.streams.registry import StreamRegistry
from axl.streams.errors import (
    DeliveryError,
    MessageRefused,
    PeerTimedOut,
    PeerUnreachable,
    RemoteError,
    SendTimedOut,
)
from axl.streams.sender import MessageSender
from tests.streams_helpers import MemoryNet, key
from tests.test_streams_registry import FakeStream

A, B, C = key(1), key(2), key(3)


class SenderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNet()
        self.queue_b = RecvQueue(self.clock, max_messages=3)
        self.reg_b = StreamRegistry(self.queue_b, self.clock)
        self.factory_b = MessageFactory(self.reg_b, self.clock, max_message_size=1000)
        self.net.listen(B, 7000, self.factory_b)
        self.queue_a = RecvQueue(self.clock)
        self.reg_a = StreamRegistry(self.queue_a, self.clock)
        self.sender = MessageSender(
            self.net.dial_from(A), self.clock, A, self.reg_a, max_message_size=1000
        )

    def drain_b(self) -> list[bytes]:
        out = []
        while (m := self.queue_b.get()) is not None:
            self.assertEqual(m.sender, A)
            out.append(m.payload)
            self.net.flush()
        return out

    def test_send_fires_when_acknowledged(self) -> None:
        """A send succeeds with the length only once the remote end has taken the bytes."""
        d = self.sender.send(B, b"hello")
        self.assertNoResult(d)
        self.net.flush()
        self.assertEqual(self.successResultOf(d), 5)
        self.assertEqual(self.queue_b.get(), Message(A, b"hello"))

    def test_one_connection_in_order_then_idle_close(self) -> None:
        """Sends to one destination share one connection, arrive in order, and it closes when idle."""
        ds = [self.sender.send(B, b"%d" % i) for i in range(3)]
        self.net.flush()
        for d in ds:
            self.successResultOf(d)
        self.assertEqual(len(self.net.pairs), 1)
        self.assertEqual(self.drain_b(), [b"0", b"1", b"2"])
        self.clock.advance(4.9)
        self.net.flush()
        self.assertEqual(len(self.net.pairs), 1)
        self.clock.advance(0.2)
        self.net.flush()
        self.assertEqual(self.net.pairs, [])
        self.assertEqual(self.factory_b.total, 0)
        d = self.sender.send(B, b"again")
        self.net.flush()
        self.successResultOf(d)
        self.assertEqual(self.drain_b(), [b"again"])

    def test_empty_message(self) -> None:
        """A zero-length message is delivered as such."""
        d = self.sender.send(B, b"")
        self.net.flush()
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.queue_b.get(), Message(A, b""))

    def test_refused(self) -> None:
        """A key without a listener fails at once: unreachable."""
        f = self.failureResultOf(self.sender.send(C, b"x"), PeerUnreachable)
        self.assertTrue(f.value.message.startswith("Failed to reach peer: "))

    def test_unreachable_times_out(self) -> None:
        """A key nobody answers for times out after the connect timeout (10 s)."""
        self.net.black_holes.add(C)
        d = self.sender.send(C, b"x")
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        f = self.failureResultOf(d, PeerTimedOut)
        self.assertEqual(f.value.message, "Timed out reaching peer after 10 s")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_full_receiver_503_loses_nothing(self) -> None:
        """A receiver that stops draining makes sends wait then time out; every one reported sent is in its queue."""
        ds = [self.sender.send(B, b"m%d" % i) for i in range(8)]
        self.net.flush()
        ok = [i for i, d in enumerate(ds) if d.called]
        self.assertTrue(0 < len(ok) < 8)
        self.clock.advance(30.1)
        kinds = {
            type(self.failureResultOf(d, DeliveryError).value)
            for i, d in enumerate(ds)
            if i not in ok
        }
        self.assertEqual(kinds, {SendTimedOut})
        delivered = self.drain_b()
        # Everything reported sent arrived, in order, and nothing arrived twice.
        self.assertEqual(delivered[: len(ok)], [b"m%d" % i for i in ok])
        self.assertEqual(len(delivered), len(set(delivered)))
        self.assertEqual(
            self.clock.getDelayedCalls()[0].getTime(), 30.1 + 5
        )  # only the idle close is left

    def test_send_to_self(self) -> None:
        """A message to our own key goes straight to our own queue."""
        d = self.sender.send(A, b"me")
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual(self.queue_a.get(), Message(A, b"me"))

    def test_remote_close_then_resend(self) -> None:
        """If the receiver closed the pooled connection, the next send dials again."""
        self.successResultOf(self._sent(b"1"))
        (_, s) = self.net.pairs[0]
        s.loseConnection()
        self.net.flush()
        self.assertEqual(self.net.pairs, [])
        self.successResultOf(self._sent(b"2"))
        self.assertEqual(self.drain_b(), [b"1", b"2"])

    def test_paused_transport_holds_messages(self) -> None:
        """While the transport pauses us, messages wait unsent; one that times out is 503, not sent."""
        self.successResultOf(self._sent(b"first"))
        (client, _) = self.net.pairs[0]
        client.protocol.pauseProducing()
        d = self.sender.send(B, b"held")
        self.net.flush()
        self.assertNoResult(d)
        self.clock.advance(30.1)
        f = self.failureResultOf(d, SendTimedOut)
        self.assertIn("not sent", f.value.message)
        later = self.sender.send(B, b"later")
        client.protocol.resumeProducing()
        self.net.flush()
        self.successResultOf(later)
        self.assertEqual(self.drain_b(), [b"first", b"later"])

    def _sent(self, payload: bytes) -> Any:
        d = self.sender.send(B, payload)
        self.net.flush()
        return d


class RequestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNet()
        self.queue_b = RecvQueue(self.clock)
        self.reg_b = StreamRegistry(self.queue_b, self.clock)
        self.stream = FakeStream("mcp", "service", b'{"service":"s","response":1}')
        self.reg_b.add(self.stream)
        self.net.listen(B, 7000, MessageFactory(self.reg_b, self.clock))
        self.reg_a = StreamRegistry(RecvQueue(self.clock), self.clock)
        self.reg_a.add(FakeStream("mcp", "service", b"local"))
        self.sender = MessageSender(
            self.net.dial_from(A), self.clock, A, self.reg_a, max_message_size=100
        )

    def test_round_trip(self) -> None:
        """A request gets the stream's reply frame; the stream saw the caller's key."""
        d = self.sender.request(B, encode_mcp_request("s", {}), 30)
        self.net.flush()
        self.assertEqual(
            json.loads(self.successResultOf(d)), {"service": "s", "response": 1}
        )
        self.assertEqual(self.stream.calls[0][1], A)
        self.assertEqual(self.net.pairs, [])

    def test_no_reply_timeout(self) -> None:
        """No reply within the deadline is 504 and the connection is dropped."""
        from twisted.internet.defer import Deferred

        self.stream.result = Deferred()
        d = self.sender.request(B, encode_mcp_request("s", {}), 3)
        self.net.flush()
        self.clock.advance(3.1)
        self.net.flush()
        f = self.failureResultOf(d, PeerTimedOut)
        self.assertEqual(f.value.message, "no response from peer within 3 s")

    def test_unclaimed_closed_without_reply(self) -> None:
        """A receiver that closes without replying is a remote error at once."""
        self.stream.result = None
        d = self.sender.request(B, encode_mcp_request("s", {}), 30)
        self.net.flush()
        self.net.pairs[0][1].loseConnection()
        self.net.flush()
        f = self.failureResultOf(d, RemoteError)
        self.assertTrue(
            f.value.message.startswith("no response from peer: connection closed")
        )

    def test_reply_too_large(self) -> None:
        """A reply over our max_message_size is a remote error with AXL's message."""
        self.stream.result = b"x" * 101
        d = self.sender.request(B, encode_mcp_request("s", {}), 30)
        self.net.flush()
        f = self.failureResultOf(d, RemoteError)
        self.assertEqual(f.value.message, "message size 101 exceeds maximum 100")

    def test_request_refused(self) -> None:
        """A request to a key without a listener is unreachable at once."""
        self.failureResultOf(self.sender.request(C, b"{}", 30), PeerUnreachable)

    def test_request_to_self(self) -> None:
        """A request to our own key is served by our own streams."""
        d = self.sender.request(A, encode_mcp_request("s", {}), 30)
        self.assertEqual(self.successResultOf(d), b"local")

    def test_cancelled_request_drops_connection(self) -> None:
        """If the caller goes away (cancel), the request connection is dropped at once."""
        from twisted.internet.defer import CancelledError, Deferred

        self.stream.result = Deferred()
        d = self.sender.request(B, encode_mcp_request("s", {}), 30)
        self.net.flush()
        self.assertEqual(len(self.net.pairs), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.net.flush()
        self.assertEqual(self.net.pairs, [])
        self.clock.advance(25)  # B's stream deadline; its late error reply goes nowhere
        self.net.flush()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PlainTransportTests(SenderTests):
    """The same behaviour over transports that do not report acknowledgements."""

    def setUp(self) -> None:
        super().setUp()
        from tests.streams_helpers import PlainPipeTransport

        self.net.transport_class = PlainPipeTransport

    def test_send_fires_when_acknowledged(self) -> None:
        """Without acknowledgements, a send succeeds once written."""
        d = self.sender.send(B, b"hello")
        self.assertEqual(self.successResultOf(d), 5)
        self.net.flush()
        self.assertEqual(self.queue_b.get(), Message(A, b"hello"))

    def test_full_receiver_503_loses_nothing(self) -> None:
        """Without acknowledgements every write counts as sent, and still nothing is lost."""
        ds = [self.sender.send(B, b"m%d" % i) for i in range(8)]
        self.net.flush()
        for d in ds:
            self.successResultOf(d)
        self.assertEqual(self.drain_b(), [b"m%d" % i for i in range(8)])


class OversizeRefusalTests(SynchronousTestCase):
    """B's limit (65536) is below A's: B refuses with one error frame, and A reports it."""

    LIMIT = 64 * 1024
    ERROR = "message of 65537 bytes exceeds the receiver's max_message_size of 65536 bytes"

    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNet()
        self.queue_b = RecvQueue(self.clock)
        self.reg_b = StreamRegistry(self.queue_b, self.clock)
        self.reg_b.add(FakeStream("mcp", "service", b'{"service":"s","response":1}'))
        self.factory_b = MessageFactory(self.reg_b, self.clock, max_message_size=self.LIMIT)
        self.net.listen(B, 7000, self.factory_b)
        self.sender = MessageSender(
            self.net.dial_from(A), self.clock, A, StreamRegistry(RecvQueue(self.clock), self.clock),
            max_message_size=1 << 20,
        )

    def test_send_refused_is_413(self) -> None:
        """The oversize /send is refused with the receiver's text and limit; the one before it arrived intact."""
        before = self.sender.send(B, b"small")
        big = self.sender.send(B, b"x" * (self.LIMIT + 1))
        self.net.flush()
        self.assertEqual(self.successResultOf(before), 5)
        f = self.failureResultOf(big, MessageRefused)
        self.assertEqual((f.value.message, f.value.limit), (self.ERROR, self.LIMIT))
        self.assertEqual(self.queue_b.get(), Message(A, b"small"))
        self.assertIsNone(self.queue_b.get())
        self.assertEqual(self.net.pairs, [])
        self.assertEqual(self.factory_b.total, 0)

    def test_next_send_uses_a_new_connection(self) -> None:
        """After a refusal the next message to that peer is delivered on a fresh connection."""
        big = self.sender.send(B, b"x" * (self.LIMIT + 1))
        self.net.flush()
        self.failureResultOf(big, DeliveryError)
        after = self.sender.send(B, b"after")
        self.net.flush()
        self.assertEqual(self.successResultOf(after), 5)
        self.assertEqual(self.queue_b.get(), Message(A, b"after"))

    def test_refusal_after_acknowledgement_is_logged(self) -> None:
        """
        A message acknowledged (so answered 200) before the refusal arrived cannot be taken back:
        the refusal is logged at info with the receiver's text, and nothing is delivered.
        """
        self.factory_b.max_message_size = 100
        with capturedLogs() as events:
            d = self.sender.send(B, b"y" * 101)
            self.net.flush()
        self.assertEqual(self.successResultOf(d), 101)
        self.assertIsNone(self.queue_b.get())
        (event,) = [e for e in events if "already reported as sent" in e["log_format"]]
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(
            event["err"], "message of 101 bytes exceeds the receiver's max_message_size of 100 bytes"
        )
        self.assertEqual(self.net.pairs, [])

    def test_other_replies_ignored(self) -> None:
        """A reply frame that is not an oversize refusal (e.g. an envelope answer) changes nothing."""
        d = self.sender.send(B, b'{"service":"s","request":{}}')
        self.net.flush()
        self.successResultOf(d)
        self.assertEqual(len(self.net.pairs), 1)  # still pooled, not aborted

    def test_request_gets_the_refusal_as_reply(self) -> None:
        """An oversize request's reply is the refusal frame itself (the bridge shows its error)."""
        envelope = encode_mcp_request("s", "x" * self.LIMIT)
        d = self.sender.request(B, envelope, 30)
        self.net.flush()
        self.assertEqual(
            json.loads(self.successResultOf(d)),
            {
                "error": f"message of {len(envelope)} bytes exceeds the receiver's max_message_size of 65536 bytes",
                "max_message_size": self.LIMIT,
            },
        )
