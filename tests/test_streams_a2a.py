"""Tests for L{axl.streams.a2a}: forwarding A2A envelopes to the local A2A server."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from axl.streams.a2a import A2AStream
from axl.streams.interfaces import IStream
from tests.streams_helpers import FakeHTTPServer

A = bytes(range(32))


class A2AStreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.server = FakeHTTPServer(
            body=b'{"jsonrpc": "2.0", "id": 1, "result": {"task": {}}}'
        )
        self.http = StubTreq(self.server)
        self.stream = A2AStream(self.http, "http://127.0.0.1:9004/", self.clock)

    def call(self, envelope: dict) -> dict:  # type: ignore[type-arg]
        d = self.stream.handle(envelope, A)
        self.http.flush()
        return json.loads(self.successResultOf(d))  # type: ignore[no-any-return]

    def test_interface(self) -> None:
        """A2AStream provides IStream and claims only C{"a2a": true}."""
        verifyObject(IStream, self.stream)
        self.assertTrue(self.stream.matches({"a2a": True}))
        self.assertFalse(self.stream.matches({"a2a": "true"}))

    def test_post(self) -> None:
        """A request is POSTed to / with A2A-Version 1.0 and the caller's key; the JSON comes back."""
        reply = self.call(
            {
                "a2a": True,
                "request": {"jsonrpc": "2.0", "method": "SendMessage", "id": 1},
            }
        )
        self.assertEqual(
            reply,
            {
                "a2a": True,
                "response": {"jsonrpc": "2.0", "id": 1, "result": {"task": {}}},
            },
        )
        (req,) = self.server.requests
        self.assertEqual((req["method"], req["path"]), ("POST", "/"))
        self.assertEqual(req["headers"]["a2a-version"], "1.0")
        self.assertEqual(req["headers"]["x-from-peer-id"], A.hex())
        self.assertEqual(
            json.loads(req["body"]),
            {"jsonrpc": "2.0", "method": "SendMessage", "id": 1},
        )

    def test_agent_card(self) -> None:
        """An agent-card envelope GETs /.well-known/agent-card.json."""
        self.server.answer = (200, {}, b'{"name": "agent"}')
        self.assertEqual(
            self.call({"a2a": True, "agent_card": True, "request": None}),
            {"a2a": True, "response": {"name": "agent"}},
        )
        (req,) = self.server.requests
        self.assertEqual(
            (req["method"], req["path"]), ("GET", "/.well-known/agent-card.json")
        )
        self.assertEqual(req["headers"]["x-from-peer-id"], A.hex())

    def test_non_json_answer(self) -> None:
        """An SSE or other non-JSON body is answered with an error envelope at once."""
        self.server.answer = (
            200,
            {b"Content-Type": b"text/event-stream"},
            b"data: {}\n\n",
        )
        reply = self.call({"a2a": True, "request": {}})
        self.assertEqual(reply["response"], None)
        self.assertIn("text/event-stream", reply["error"])

    def test_unreachable(self) -> None:
        """An unreachable A2A server gives C{failed to contact a2a server: ...}."""
        stream = A2AStream(StubTreq(FakeHTTPServer()), "http://[bad", self.clock)
        reply = json.loads(self.successResultOf(stream.handle({"a2a": True}, A)))
        self.assertTrue(reply["error"].startswith("failed to contact a2a server: "))
