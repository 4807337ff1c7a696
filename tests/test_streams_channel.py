# -*- test-case-name: tests.test_streams_channel -*-
"""
Tests for L{axl.streams.channel}: the lifecycle of one destination's pooled C{/send} connection
as a state machine, driven directly with a fake owner, endpoint and transport.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from axl.streams.channel import Channel, ChannelCore, Frame
from axl.streams.errors import PeerTimedOut, PeerUnreachable, SendTimedOut

DEST = b"\x07" * 32


class Endpoint:
    """Connects with a StringTransport, at once, later (C{pending}), or fails."""

    def __init__(self, result: str = "now") -> None:
        self.result = result
        self.pending: Deferred[Any] | None = None
        self.transport = StringTransport()

    def connect(self, factory: Any) -> Deferred[Any]:
        if self.result == "fail":
            return fail(ConnectionRefusedError("no listener"))
        protocol = factory.buildProtocol(None)
        if self.result == "later":
            self.pending = Deferred()
            return self.pending.addCallback(lambda _: self._attach(protocol))
        return succeed(self._attach(protocol))

    def _attach(self, protocol: Any) -> Any:
        protocol.makeConnection(self.transport)
        return protocol


class Owner:
    """A fake MessageSender: records what the channel asks of it."""

    port = 7000
    ack_port = None  # plain frames only (the acknowledged protocol: tests.test_streams_acknowledged)
    idle_close = 5.0
    send_timeout = 30.0
    connect_timeout = 12.0

    def __init__(self, endpoint: Endpoint) -> None:
        self.clock = Clock()
        self.endpoint = endpoint
        self.events: list[tuple[str, object]] = []

    @property
    def dial(self) -> Any:
        def dial(key: bytes, port: int) -> Endpoint:
            self.events.append(("dial", port))
            return self.endpoint

        return dial

    def forget(self, dest: bytes, channel: Channel) -> None:
        self.events.append(("forget", dest))

    def requeue(self, dest: bytes, frames: deque[Frame]) -> None:
        self.events.append(("requeue", [f.payload for f in frames]))


class ChannelTests(SynchronousTestCase):
    def channel(self, result: str = "now") -> tuple[Channel, ChannelCore, Owner]:
        owner = Owner(Endpoint(result))
        channel = Channel(owner, DEST)  # type: ignore[arg-type]
        return channel, channel.core, owner

    def frame(self, channel: Channel, owner: Owner, payload: bytes) -> Frame:
        frame = Frame(payload)
        frame.timer = owner.clock.callLater(owner.send_timeout, channel.timed_out, frame)
        channel.enqueue(frame)
        return frame

    def test_queues_until_started_then_writes(self) -> None:
        """Messages wait in 'new'; start dials the owner's port and writes them in order."""
        channel, core, owner = self.channel()
        a, b = self.frame(channel, owner, b"a"), self.frame(channel, owner, b"bb")
        self.assertEqual(owner.endpoint.transport.value(), b"")
        channel.start()
        self.assertEqual(owner.events, [("dial", 7000)])
        self.assertEqual(owner.endpoint.transport.value(), b"\0\0\0\x01a\0\0\0\x02bb")
        # A StringTransport does not acknowledge: written counts as sent.
        self.assertEqual((self.successResultOf(a.d), self.successResultOf(b.d)), (1, 2))

    def test_refused_dial_fails_every_queued_message(self) -> None:
        """A failed dial fails each queued message as unreachable and the owner forgets the channel."""
        channel, _core, owner = self.channel("fail")
        a = self.frame(channel, owner, b"a")
        channel.start()
        self.assertIn("Failed to reach peer", self.failureResultOf(a.d, PeerUnreachable).value.message)
        self.assertEqual(owner.events, [("dial", 7000), ("forget", DEST)])
        self.assertEqual(owner.clock.getDelayedCalls(), [])

    def test_connect_timeout(self) -> None:
        """A dial that does not finish within connect_timeout fails its messages as timed out."""
        channel, _core, owner = self.channel("later")
        a = self.frame(channel, owner, b"a")
        channel.start()
        owner.clock.advance(12)
        f = self.failureResultOf(a.d, PeerTimedOut)
        self.assertEqual(f.value.message, "Timed out reaching peer after 12 s")

    def test_closed_while_connecting(self) -> None:
        """Closing before the dial finishes fails what is queued; a late connection is closed."""
        channel, _core, owner = self.channel("later")
        a = self.frame(channel, owner, b"a")
        channel.start()
        channel.close()
        self.failureResultOf(a.d, PeerUnreachable)
        assert owner.endpoint.pending is not None
        owner.endpoint.pending.callback(None)
        self.assertTrue(owner.endpoint.transport.disconnecting)
        self.assertEqual(owner.endpoint.transport.value(), b"")

    def test_idle_close(self) -> None:
        """An open channel with nothing to send closes after idle_close and is forgotten."""
        channel, _core, owner = self.channel()
        self.frame(channel, owner, b"a")
        channel.start()
        owner.clock.advance(4.9)
        self.assertFalse(owner.endpoint.transport.disconnecting)
        owner.clock.advance(0.1)
        self.assertTrue(owner.endpoint.transport.disconnecting)
        self.assertEqual(owner.events[-1], ("forget", DEST))
        channel.lost(Failure(ConnectionDone()))
        late = self.frame(channel, owner, b"late")  # never lost, even on a closed channel
        self.assertEqual(owner.endpoint.transport.value(), b"\0\0\0\x01a")
        owner.clock.advance(30)
        self.failureResultOf(late.d, SendTimedOut)

    def test_paused_then_timed_out(self) -> None:
        """A message the paused transport never took fails after send_timeout as not sent."""
        channel, core, owner = self.channel()
        channel.start()
        assert core.protocol is not None
        core.protocol.pauseProducing()
        a = self.frame(channel, owner, b"a")
        owner.clock.advance(30)
        f = self.failureResultOf(a.d, SendTimedOut)
        self.assertIn("not sent", f.value.message)
        self.assertEqual(list(core.queue), [])

    def test_peer_closed_working_connection_requeues(self) -> None:
        """When the peer closes a connection that worked, queued messages go to a new channel."""
        channel, core, owner = self.channel()
        self.frame(channel, owner, b"a")
        channel.start()
        assert core.protocol is not None
        core.protocol.pauseProducing()
        self.frame(channel, owner, b"b")
        channel.lost(Failure(ConnectionDone()))
        self.assertEqual(owner.events[-2:], [("forget", DEST), ("requeue", [b"b"])])

    def test_lost_before_any_progress_fails(self) -> None:
        """A connection lost before anything went through fails the queued messages."""
        channel, core, owner = self.channel("later")
        channel.start()
        assert owner.endpoint.pending is not None
        owner.endpoint.pending.callback(None)
        assert core.protocol is not None
        core.protocol.pauseProducing()
        a = self.frame(channel, owner, b"a")
        channel.lost(Failure(ConnectionDone()))
        self.assertIn("Connection to peer closed", self.failureResultOf(a.d, PeerUnreachable).value.message)
