# -*- test-case-name: tests.test_session_proto -*-
"""
Tests for L{axl.session.proto}: the session-type byte and the proto messages of
spec/yggdrasil-wire.md sections 5.1-5.2, in the exact shapes a real node sends and expects.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from axl.errors import ConfigError
from axl.interfaces import ISessions
from axl.session.proto import Core, ProtoHandler, ProtoTimeout, node_info_json

US = bytes(range(32))
ASKER = bytes([0xAA]) * 32
PEERS = [bytes([i]) * 32 for i in (1, 2, 3)]
TREE = [bytes([i]) * 32 for i in (4, 5)]


@implementer(ISessions)
class FakeSessions:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, dest_key: bytes, plaintext: bytes) -> None:
        self.sent.append((dest_key, plaintext))


class ProtoAnswerTests(SynchronousTestCase):
    """What we answer to a remote node's requests."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.sessions = FakeSessions()
        self.info = node_info_json({"name": "node-X"})
        self.proto = ProtoHandler(
            self.sessions, US, self.clock, self.info, lambda: PEERS, lambda: TREE
        )
        self.core = Core(self.proto)

    def ask(self, plaintext: bytes) -> list[bytes]:
        self.sessions.sent.clear()
        self.core.received(ASKER, plaintext)
        self.assertTrue(all(k == ASKER for k, _ in self.sessions.sent))
        return [p for _, p in self.sessions.sent]

    def test_get_self(self) -> None:
        """02 ff 01 -> 02 ff 02 {"key":"<hex>","routing_entries":"<n as string>"}."""
        (reply,) = self.ask(b"\x02\xff\x01")
        self.assertEqual(reply[:3], b"\x02\xff\x02")
        self.assertEqual(reply[3:], b'{"key":"' + US.hex().encode() + b'","routing_entries":"2"}')

    def test_get_self_count(self) -> None:
        """routing_entries comes from the injected count when given."""
        proto = ProtoHandler(
            self.sessions, US, self.clock, self.info, lambda: PEERS, lambda: TREE, lambda: 17
        )
        proto.received(ASKER, b"\xff\x01")
        self.assertEqual(json.loads(self.sessions.sent[-1][1][3:])["routing_entries"], "17")

    def test_get_peers(self) -> None:
        """02 ff 03 -> 02 ff 04 followed by the peers' 32-byte keys."""
        self.assertEqual(self.ask(b"\x02\xff\x03"), [b"\x02\xff\x04" + b"".join(PEERS)])

    def test_get_tree(self) -> None:
        """02 ff 05 -> 02 ff 06 followed by the tree entries' keys."""
        self.assertEqual(self.ask(b"\x02\xff\x05"), [b"\x02\xff\x06" + b"".join(TREE)])

    def test_key_list_cut_to_mtu(self) -> None:
        """A key list is cut to whole keys so that the answer fits the MTU."""
        many = [i.to_bytes(32, "big") for i in range(3000)]
        proto = ProtoHandler(self.sessions, US, self.clock, self.info, lambda: many, lambda: [])
        proto.received(ASKER, b"\xff\x03")
        reply = self.sessions.sent[-1][1]
        self.assertLessEqual(len(reply) - 1, 65535)
        self.assertEqual((len(reply) - 3) % 32, 0)
        self.assertEqual(len(reply) - 3, 32 * ((65535 - 2) // 32))

    def test_node_info(self) -> None:
        """02 01 -> 02 02 <the NodeInfo JSON object>."""
        (reply,) = self.ask(b"\x02\x01")
        self.assertEqual(reply[:2], b"\x02\x02")
        doc = json.loads(reply[2:])
        self.assertEqual(doc["name"], "node-X")
        self.assertEqual(doc["buildname"], "axl")
        self.assertEqual(
            set(doc), {"name", "buildname", "buildversion", "buildplatform", "buildarch"}
        )

    def test_ignored(self) -> None:
        """Dummies, unknown types and stray responses get no answer and raise nothing."""
        for plaintext in (
            b"",
            b"\x00",
            b"\x02",
            b"\x02\x00",
            b"\x02\xff",
            b"\x02\xff\x00",
            b"\x02\xff\x02{}",
            b"\x02\xff\x09",
            b"\x02\x07",
            b"\x09abc",
            b"\x01" + bytes(40),
        ):
            self.assertEqual(self.ask(plaintext), [], plaintext)

    def test_ipv6_dispatch(self) -> None:
        """Type 1 goes to the IPv6 layer without the type byte."""
        got = []
        self.core.ipv6_received = lambda k, p: got.append((k, p))
        self.core.received(ASKER, b"\x01packet")
        self.assertEqual(got, [(ASKER, b"packet")])

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=64))
    def test_arbitrary(self, data: bytes) -> None:
        """Arbitrary plaintexts never raise; at most one answer is sent."""
        self.sessions.sent.clear()
        self.core.received(ASKER, data)
        self.assertLessEqual(len(self.sessions.sent), 1)


class NodeInfoJsonTests(SynchronousTestCase):
    """The NodeInfo document."""

    def test_go_shape(self) -> None:
        """With Go's build fields the document is the 109 bytes the transcript's reply carried."""
        doc = node_info_json(
            {"name": "node-C"},
            {
                "buildname": "yggdrasil",
                "buildversion": "0.5.12",
                "buildplatform": "linux",
                "buildarch": "amd64",
            },
        )
        self.assertEqual(
            doc,
            b'{"buildarch":"amd64","buildname":"yggdrasil","buildplatform":"linux",'
            b'"buildversion":"0.5.12","name":"node-C"}',
        )
        self.assertEqual(len(doc), 109)

    def test_escaping(self) -> None:
        """HTML characters are escaped as Go's encoder does; other text stays UTF-8."""
        doc = node_info_json({"a": "<&>é"}, {})
        self.assertEqual(doc, '{"a":"\\u003c\\u0026\\u003eé"}'.encode())

    def test_too_big(self) -> None:
        """More than 16384 bytes is a ConfigError."""
        self.assertRaises(ConfigError, node_info_json, {"x": "y" * 16384})


class ProtoRequestTests(SynchronousTestCase):
    """Our own requests and their answers."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.sessions = FakeSessions()
        self.proto = ProtoHandler(self.sessions, US, self.clock, b"{}", lambda: [], lambda: [])

    def test_request_self(self) -> None:
        """request_self sends 02 ff 01 and fires with the decoded answer."""
        d = self.proto.request_self(ASKER)
        self.assertEqual(self.sessions.sent, [(ASKER, b"\x02\xff\x01")])
        self.proto.received(ASKER, b'\xff\x02{"key":"ab","routing_entries":"3"}')
        self.assertEqual(self.successResultOf(d), {"key": "ab", "routing_entries": "3"})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_request_peers_and_tree(self) -> None:
        """Key-list answers are split into 32-byte keys; a ragged list is refused."""
        dp = self.proto.request_peers(ASKER)
        dt = self.proto.request_tree(ASKER)
        self.proto.received(ASKER, b"\xff\x04" + b"".join(PEERS) + b"x")
        self.assertNoResult(dp)
        self.flushLoggedErrors()
        self.proto.received(ASKER, b"\xff\x04" + b"".join(PEERS))
        self.proto.received(ASKER, b"\xff\x06" + b"".join(TREE))
        self.assertEqual(self.successResultOf(dp), PEERS)
        self.assertEqual(self.successResultOf(dt), TREE)

    def test_request_node_info(self) -> None:
        """request_node_info sends 02 01 and takes the 02 02 answer (not a debug 02 answer)."""
        d = self.proto.request_node_info(ASKER)
        self.assertEqual(self.sessions.sent, [(ASKER, b"\x02\x01")])
        self.proto.received(ASKER, b'\xff\x02{"key":"x"}')
        self.assertNoResult(d)
        self.proto.received(ASKER, b'\x02{"name":"n"}')
        self.assertEqual(self.successResultOf(d), {"name": "n"})

    def test_answer_from_someone_else(self) -> None:
        """An answer from another key does not resolve our request."""
        d = self.proto.request_self(ASKER)
        self.proto.received(US, b'\xff\x02{"key":"x","routing_entries":"1"}')
        self.assertNoResult(d)
        self.clock.advance(6)
        self.failureResultOf(d, ProtoTimeout)

    def test_timeout(self) -> None:
        """Requests fail with ProtoTimeout after 6 s; a late answer is ignored."""
        d = self.proto.request_self(ASKER)
        self.clock.advance(5.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, ProtoTimeout)
        self.proto.received(ASKER, b'\xff\x02{"key":"x","routing_entries":"1"}')

    def test_stop(self) -> None:
        """stop() cancels outstanding requests and their timers."""
        d = self.proto.request_tree(ASKER)
        self.proto.stop()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
