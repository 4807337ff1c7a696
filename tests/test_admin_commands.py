"""
Tests for L{axl.admin.commands} and L{axl.admin.service.AdminProtocol}: every v0.5.14 command's
JSON (names, member order, types, units, omissions) and every error path, against a fake
L{AdminSource}; the connection lifecycle over C{StringTransport}.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from axl.admin.codec import FIND_ERROR, AdminError
from axl.admin.commands import (
    AdminHandler,
    AdminSource,
    PathRow,
    PeerRow,
    RemoteTimeout,
    SessionRow,
    TreeRow,
    go_hex_decode,
    sort_peers,
)
from axl.admin.service import MAX_QUEUED_REQUESTS, AdminFactory
from axl.crypto import Identity
from axl.link.multicast import MulticastInterfaceInfo

A = Identity(bytes(32))  # 3b6a27bc..., 202:24ae:c219:8a4a:de94:eae2:b97e:ac87
B = Identity(bytes(range(1, 33)))  # 79b5562e..., 201:192a:a745:c066:ac1a:fe1d:3bb4:5d59
C_KEY = bytes.fromhex("004bfbe9f78d2834c89d8a19cba144113ac5d731e08eae053df326a935104241")
C_ADDR = "209:d010:5821:cb5f:2cdd:89d7:98d1:7aef"


class FakeSource:
    """An AdminSource with canned tables and controllable remote requests."""

    build_name = "axl"
    build_version = "9.9"

    def __init__(self) -> None:
        self.public_key = A.public_key
        self.peer_rows: list[PeerRow] = []
        self.tree_rows: list[TreeRow] = []
        self.path_rows: list[PathRow] = []
        self.session_rows: list[SessionRow] = []
        self.multicast_rows: list[MulticastInterfaceInfo] = []
        self.requests: list[tuple[str, bytes, Deferred[Any]]] = []
        self.added: list[tuple[str, str]] = []
        self.removed: list[tuple[str, str]] = []

    def routing_entries(self) -> int:
        return 4

    def peers(self) -> Sequence[PeerRow]:
        return self.peer_rows

    def tree(self) -> Sequence[TreeRow]:
        return self.tree_rows

    def paths(self) -> Sequence[PathRow]:
        return self.path_rows

    def sessions(self) -> Sequence[SessionRow]:
        return self.session_rows

    def multicast_interfaces(self) -> Sequence[MulticastInterfaceInfo]:
        return self.multicast_rows

    def _remote(self, kind: str, key: bytes) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.requests.append((kind, key, d))
        return d

    def request_node_info(self, key: bytes) -> Deferred[Any]:
        return self._remote("nodeinfo", key)

    def request_self(self, key: bytes) -> Deferred[Any]:
        return self._remote("self", key)

    def request_peers(self, key: bytes) -> Deferred[list[bytes]]:
        return self._remote("peers", key)

    def request_tree(self, key: bytes) -> Deferred[list[bytes]]:
        return self._remote("tree", key)

    def add_peer(self, uri: str, interface: str) -> None:
        if (uri, interface) in self.added:
            raise AdminError("peer is already configured")
        self.added.append((uri, interface))

    def remove_peer(self, uri: str, interface: str) -> None:
        if (uri, interface) not in self.added:
            raise AdminError("peer is not configured")
        self.added.remove((uri, interface))
        self.removed.append((uri, interface))


class CommandTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.source = FakeSource()
        self.handler = AdminHandler(self.source)

    def envelope(self, request: Any) -> tuple[dict[str, Any], bool]:
        d = self.handler.answer(request)
        raw, keep = self.successResultOf(d)
        self.assertTrue(raw.endswith(b"}\n"))
        doc: dict[str, Any] = json.loads(raw)
        return doc, keep

    def ok(self, name: str, **arguments: Any) -> Any:
        doc, _ = self.envelope({"request": name, "arguments": arguments})
        self.assertEqual(doc["status"], "success", doc.get("error"))
        self.assertNotIn("error", doc)
        return doc["response"]

    def error(self, request: Any) -> str:
        doc, _ = self.envelope(request)
        self.assertEqual(doc["status"], "error")
        self.assertIsNone(doc["response"])
        self.assertEqual(list(doc), ["status", "error", "request", "response"])
        error: str = doc["error"]
        return error


class CommandTests(CommandTestCase):
    def test_list(self) -> None:
        """Lower-cased, sorted, fields only where there are arguments; as the real node."""
        listing = self.ok("list")["list"]
        names = [row["command"] for row in listing]
        self.assertEqual(names, [
            "addpeer", "debug_remotegetpeers", "debug_remotegetself", "debug_remotegettree",
            "getmulticastinterfaces", "getnodeinfo", "getpaths", "getpeers", "getself",
            "getsessions", "gettree", "gettun", "list", "removepeer",
        ])  # fmt: skip
        by_name = {row["command"]: row for row in listing}
        self.assertEqual(by_name["addpeer"], {"command": "addpeer",
                         "description": "Add a peer to the peer list", "fields": ["uri", "interface"]})  # fmt: skip
        self.assertEqual(by_name["getself"],
                         {"command": "getself", "description": "Show details about this node"})  # fmt: skip
        self.assertEqual(by_name["getpeers"]["fields"], ["sort"])
        self.assertEqual(by_name["debug_remotegettree"]["description"], "Debug use only")

    def test_list_ignores_arguments(self) -> None:
        """list reads no arguments, so any value is fine (as Go)."""
        doc, _ = self.envelope({"request": "list", "arguments": 5})
        self.assertEqual(doc["status"], "success")

    def test_get_self(self) -> None:
        doc, keep = self.envelope({"request": "GETSELF"})
        self.assertFalse(keep)
        self.assertEqual(doc["request"], {"request": "GETSELF", "arguments": {}})
        self.assertEqual(list(doc["response"].items()), [
            ("build_name", "axl"), ("build_version", "9.9"), ("key", A.public_key.hex()),
            ("address", "202:24ae:c219:8a4a:de94:eae2:b97e:ac87"), ("routing_entries", 4),
            ("subnet", "302:24ae:c219:8a4a::/64"),
        ])  # fmt: skip

    def test_get_peers(self) -> None:
        """Members in Go's order; down rows omit address/counters; units are ns and s."""
        self.source.peer_rows = [
            PeerRow("tls://127.0.0.1:41712", True, True, C_KEY, port=1, priority=0, cost=1,
                    bytes_recvd=1539, bytes_sent=1861, rate_recvd=10, rate_sent=0,
                    uptime=7.131902226, latency=0.00102, last_error="old", last_error_age=3.0),
            PeerRow("tcp://127.0.0.1:1", False, False, last_error="dial failed: refused",
                    last_error_age=2.132566332),
        ]  # fmt: skip
        peers = self.ok("getPeers")["peers"]
        self.assertEqual(list(peers[0].items()), [
            ("remote", "tcp://127.0.0.1:1"), ("up", False), ("inbound", False), ("key", ""),
            ("port", 0), ("priority", 0), ("cost", 0), ("last_error_time", 2132566332),
            ("last_error", "dial failed: refused"),
        ])  # fmt: skip
        self.assertEqual(list(peers[1].items()), [
            ("remote", "tls://127.0.0.1:41712"), ("up", True), ("inbound", True),
            ("address", C_ADDR), ("key", C_KEY.hex()), ("port", 1), ("priority", 0), ("cost", 1),
            ("bytes_recvd", 1539), ("bytes_sent", 1861), ("rate_recvd", 10),
            ("uptime", 7.131902226), ("latency", 1020000),
        ])  # fmt: skip
        self.assertIsInstance(peers[1]["latency"], int)

    def test_peer_sort(self) -> None:
        up = dict(up=True)
        rows = [
            PeerRow("a", inbound=True, key=b"\x01" * 32, cost=1, uptime=9.0, **up),
            PeerRow("b", inbound=False, key=b"\x02" * 32, cost=5, uptime=1.0, **up),
            PeerRow("c", inbound=False, key=b"\x03" * 32, cost=2, uptime=5.0, **up),
        ]
        self.assertEqual([r.remote for r in sort_peers(rows, "")], ["b", "c", "a"])
        self.assertEqual([r.remote for r in sort_peers(rows, "cost")], ["a", "c", "b"])
        self.assertEqual([r.remote for r in sort_peers(rows, "uptime")], ["b", "c", "a"])
        self.assertEqual([r.remote for r in sort_peers(rows, "bogus")], ["b", "c", "a"])
        self.source.peer_rows = rows
        self.assertEqual([p["remote"] for p in self.ok("getPeers", sort="cost")["peers"]],
                         ["a", "c", "b"])  # fmt: skip

    def test_get_tree(self) -> None:
        """Sorted by key; the root's parent is itself."""
        self.source.tree_rows = [
            TreeRow(A.public_key, C_KEY, 2),
            TreeRow(C_KEY, C_KEY, 1),
        ]
        tree = self.ok("getTree")["tree"]
        self.assertEqual(tree, [
            {"address": C_ADDR, "key": C_KEY.hex(), "parent": C_KEY.hex(), "sequence": 1},
            {"address": A.ipv6, "key": A.public_key.hex(), "parent": C_KEY.hex(), "sequence": 2},
        ])  # fmt: skip
        self.assertEqual(list(tree[0]), ["address", "key", "parent", "sequence"])

    def test_get_paths(self) -> None:
        self.source.path_rows = [PathRow(B.public_key, (1, 2), 1796427190), PathRow(C_KEY, (), 7)]
        paths = self.ok("getPaths")["paths"]
        self.assertEqual(paths, [
            {"address": C_ADDR, "key": C_KEY.hex(), "path": [], "sequence": 7},
            {"address": B.ipv6, "key": B.public_key.hex(), "path": [1, 2], "sequence": 1796427190},
        ])  # fmt: skip

    def test_get_sessions(self) -> None:
        self.source.session_rows = [SessionRow(B.public_key, 328, 11, 0.092252705)]
        self.assertEqual(self.ok("getSessions"), {"sessions": [
            {"address": B.ipv6, "key": B.public_key.hex(), "bytes_recvd": 328, "bytes_sent": 11,
             "uptime": 0.092252705},
        ]})  # fmt: skip

    def test_empty_tables(self) -> None:
        self.assertEqual(self.ok("getPeers"), {"peers": []})
        self.assertEqual(self.ok("getPaths"), {"paths": []})
        self.assertEqual(self.ok("getSessions"), {"sessions": []})
        self.assertEqual(self.ok("getMulticastInterfaces"), {"multicast_interfaces": []})

    def test_multicast_and_tun(self) -> None:
        self.source.multicast_rows = [
            MulticastInterfaceInfo("ygv2", "-", False, True, True),
            MulticastInterfaceInfo("ygv1", "[fe80::1]:33389", True, True, False),
        ]
        rows = self.ok("getMulticastInterfaces")["multicast_interfaces"]
        self.assertEqual([r["name"] for r in rows], ["ygv1", "ygv2"])
        self.assertEqual(list(rows[0].items()), [("name", "ygv1"), ("address", "[fe80::1]:33389"),
                         ("beacon", True), ("listen", True), ("password", False)])  # fmt: skip
        self.assertEqual(self.ok("getTun"), {"enabled": False})

    def test_get_node_info(self) -> None:
        """Keyed by the lower-case hex key; the remote JSON verbatim."""
        doc = self.handler.answer({"request": "getNodeInfo", "arguments": {"key": C_KEY.hex().upper()}})
        self.assertNoResult(doc)
        kind, key, d = self.source.requests[0]
        self.assertEqual((kind, key), ("nodeinfo", C_KEY))
        d.callback({"buildname": "yggdrasil", "name": "<c>"})
        raw, _ = self.successResultOf(doc)
        self.assertIn(b'"name": "\\u003cc\\u003e"', raw)
        self.assertEqual(json.loads(raw)["response"], {C_KEY.hex(): {"buildname": "yggdrasil", "name": "<c>"}})

    def test_debug_remote(self) -> None:
        """Keyed by the target's IPv6 address; key lists split; an empty one gives {}."""
        for name, kind, answer, expected in [
            ("debug_remoteGetSelf", "self", {"key": C_KEY.hex(), "routing_entries": "3"},
             {"key": C_KEY.hex(), "routing_entries": "3"}),
            ("debug_remoteGetPeers", "peers", [A.public_key, A.public_key],
             {"keys": [A.public_key.hex(), A.public_key.hex()]}),
            ("debug_remoteGetTree", "tree", [B.public_key, A.public_key],
             {"keys": [B.public_key.hex(), A.public_key.hex()]}),
            ("debug_remoteGetTree", "tree", [], {}),
        ]:  # fmt: skip
            d = self.handler.answer({"request": name, "arguments": {"key": C_KEY.hex()}})
            got_kind, key, remote = self.source.requests.pop()
            self.assertEqual((got_kind, key), (kind, C_KEY))
            remote.callback(answer)
            raw, _ = self.successResultOf(d)
            self.assertEqual(json.loads(raw)["response"], {C_ADDR: expected})

    def test_remote_timeouts(self) -> None:
        """getNodeInfo says 'timed out waiting for response', the debug ones 'timeout'."""
        for name, message in [("getNodeInfo", "timed out waiting for response"),
                              ("debug_remoteGetSelf", "timeout"), ("debug_remoteGetPeers", "timeout"),
                              ("debug_remoteGetTree", "timeout")]:  # fmt: skip
            d = self.handler.answer({"request": name, "arguments": {"key": C_KEY.hex()}})
            self.source.requests.pop()[2].errback(RemoteTimeout("no answer"))
            raw, _ = self.successResultOf(d)
            self.assertEqual(json.loads(raw)["error"], message)

    def test_add_remove_peer(self) -> None:
        self.assertEqual(self.ok("addPeer", uri="tls://h:1", interface="eth0"), {})
        self.assertEqual(self.source.added, [("tls://h:1", "eth0")])
        self.assertEqual(self.error({"request": "addPeer", "arguments": {"uri": "tls://h:1",
                                                                      "interface": "eth0"}}),
                         "peer is already configured")  # fmt: skip
        self.assertEqual(self.ok("removePeer", uri="tls://h:1", interface="eth0"), {})
        self.assertEqual(self.error({"request": "removePeer", "arguments": {"uri": "tls://x:1"}}),
                         "peer is not configured")  # fmt: skip

    def test_argument_names_case_insensitive(self) -> None:
        """Go's json.Unmarshal matches struct fields case-insensitively; unknown ones are ignored."""
        self.ok("addPeer", URI="tls://h:2", other="x")
        self.assertEqual(self.source.added, [("tls://h:2", "")])

    def test_internal_error_is_a_reply(self) -> None:
        """A bug in a source is an error envelope (and a logged traceback), not a dead connection."""
        def broken() -> Sequence[TreeRow]:
            raise RuntimeError("boom")

        self.source.tree = broken  # type: ignore[method-assign]
        self.assertEqual(self.error({"request": "getTree"}), "internal error: boom")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ErrorTests(CommandTestCase):
    def test_unknown_action(self) -> None:
        raw, keep = self.successResultOf(self.handler.answer({"request": "FOO", "keepalive": True}))
        doc = json.loads(raw)
        self.assertEqual(doc["error"], "unknown action 'foo', try 'list' for help")
        self.assertEqual(doc["request"], {"request": "FOO", "arguments": {}, "keepalive": True})
        self.assertTrue(keep, "an unknown action does not end a keepalive connection")

    def test_unknown_action_bytes(self) -> None:
        from tests.test_admin_codec import UNKNOWN_FOO

        raw, _ = self.successResultOf(self.handler.answer({"request": "foo", "arguments": {}}))
        self.assertEqual(raw, UNKNOWN_FOO)

    def test_no_request(self) -> None:
        doc, _ = self.envelope({"arguments": {"a": 1}})
        self.assertEqual(doc["error"], "no request specified")
        self.assertEqual(doc["request"], {"request": "", "arguments": {"a": 1}})

    def test_generic(self) -> None:
        self.assertEqual(self.error(FIND_ERROR), "failed to find request")
        self.assertEqual(self.error([1]), "failed to unmarshal request")

    def test_wrong_argument_types(self) -> None:
        """Go's unmarshal messages, with the real node's type and struct names."""
        for name, go_type in [
            ("getSelf", "admin.GetSelfRequest"), ("getPeers", "admin.GetPeersRequest"),
            ("getTree", "admin.GetTreeRequest"), ("getPaths", "admin.GetPathsRequest"),
            ("getSessions", "admin.GetSessionsRequest"), ("getNodeInfo", "core.GetNodeInfoRequest"),
            ("debug_remoteGetSelf", "core.DebugGetSelfRequest"),
            ("debug_remoteGetPeers", "core.DebugGetPeersRequest"),
            ("debug_remoteGetTree", "core.DebugGetTreeRequest"),
            ("addPeer", "admin.AddPeerRequest"), ("removePeer", "admin.RemovePeerRequest"),
            ("getMulticastInterfaces", "multicast.GetMulticastInterfacesRequest"),
            ("getTun", "tun.GetTUNRequest"),
        ]:  # fmt: skip
            for value, kind in [(5, "number"), (True, "bool"), ([], "array"), ("x", "string")]:
                self.assertEqual(self.error({"request": name, "arguments": value}),
                                 f"json: cannot unmarshal {kind} into Go value of type {go_type}")  # fmt: skip
        for name, struct, field in [
            ("getNodeInfo", "GetNodeInfoRequest", "key"),
            ("debug_remoteGetSelf", "DebugGetSelfRequest", "key"),
            ("debug_remoteGetPeers", "DebugGetPeersRequest", "key"),
            ("debug_remoteGetTree", "DebugGetTreeRequest", "key"),
            ("getPeers", "", "sort"), ("addPeer", "", "uri"), ("removePeer", "", "uri"),
        ]:  # fmt: skip
            self.assertEqual(
                self.error({"request": name, "arguments": {field: 5, "unknown": 1}}),
                f"json: cannot unmarshal number into Go struct field {struct}.{field} of type string",
            )
        self.assertEqual(
            self.error({"request": "addPeer", "arguments": {"uri": True, "interface": 1.5}}),
            "json: cannot unmarshal bool into Go struct field .uri of type string",
        )
        self.assertEqual(self.error({"request": "getPeers", "arguments": {"sort": {}}}),
                         "json: cannot unmarshal object into Go struct field .sort of type string")  # fmt: skip

    def test_null_arguments(self) -> None:
        doc, _ = self.envelope({"request": "getTun", "arguments": None})
        self.assertEqual(doc["request"], {"request": "getTun", "arguments": None})
        self.assertEqual(doc["response"], {"enabled": False})

    def test_node_info_key_errors(self) -> None:
        def err(key: Any) -> str:
            args = {} if key is None else {"key": key}
            return self.error({"request": "getNodeInfo", "arguments": args})

        self.assertEqual(err(None), "no remote public key supplied")
        self.assertEqual(err(""), "no remote public key supplied")
        self.assertEqual(err("zz"), "failed to decode public key: encoding/hex: invalid byte: U+007A 'z'")
        self.assertEqual(err("abc"), "failed to decode public key: encoding/hex: odd length hex string")
        self.assertEqual(err("00"), "invalid public key length")
        self.assertEqual(self.source.requests, [])

    def test_debug_key_errors(self) -> None:
        for name in ("debug_remoteGetSelf", "debug_remoteGetPeers", "debug_remoteGetTree"):
            def err(key: Any) -> str:
                args = {} if key is None else {"key": key}
                return self.error({"request": name, "arguments": args})

            self.assertEqual(err("zz"), "encoding/hex: invalid byte: U+007A 'z'")
            self.assertEqual(err(""), "invalid public key length")
            self.assertEqual(err(None), "invalid public key length")
            self.assertEqual(err("00"), "invalid public key length")
        self.assertEqual(self.source.requests, [])

    def test_go_hex_decode(self) -> None:
        self.assertEqual(go_hex_decode("0aFF"), b"\x0a\xff")
        with self.assertRaises(AdminError) as e:
            go_hex_decode("0\x01")
        self.assertEqual(str(e.exception), "encoding/hex: invalid byte: U+0001")


class ProtocolTests(SynchronousTestCase):
    """The connection lifecycle of section 1.2 over a StringTransport."""

    def setUp(self) -> None:
        self.source = FakeSource()
        self.factory = AdminFactory(AdminHandler(self.source))
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def replies(self) -> list[dict[str, Any]]:
        data = self.transport.value().decode()
        decoder = json.JSONDecoder()
        out, i = [], 0
        while i < len(data):
            doc, end = decoder.raw_decode(data, i)
            out.append(doc)
            self.assertEqual(data[end], "\n")
            i = end + 1
        return out

    def test_one_request_then_close(self) -> None:
        """Without keepalive: one answer, then close; requests already sent are ignored."""
        self.proto.dataReceived(b'{"request":"getTun"}{"request":"getSelf"}')
        self.assertEqual([r["response"] for r in self.replies()], [{"enabled": False}])
        self.assertTrue(self.transport.disconnecting)

    def test_no_newline_needed(self) -> None:
        self.proto.dataReceived(b'{"request":"getTun"}')
        self.assertEqual(len(self.replies()), 1)

    def test_keepalive_several_requests(self) -> None:
        """Several requests on one keepalive connection, answered in order."""
        self.proto.dataReceived(b'{"request":"getTun","keepalive":true}\n{"request":"list","keepalive":true}')
        self.proto.dataReceived(b'{"request":"nope","keepalive":true}{"request":"getself"}')
        replies = self.replies()
        self.assertEqual([r["status"] for r in replies], ["success", "success", "error", "success"])
        self.assertEqual(replies[3]["request"], {"request": "getself", "arguments": {}})
        self.assertTrue(self.transport.disconnecting)

    def test_eof_on_keepalive(self) -> None:
        """The client half-closing a keepalive connection gets 'failed to find request'."""
        self.proto.dataReceived(b'{"request":"getTun","keepalive":true}')
        self.assertFalse(self.transport.disconnecting)
        self.proto.readConnectionLost()
        replies = self.replies()
        self.assertEqual(replies[1], {"status": "error", "error": "failed to find request",
                                      "request": {"request": ""}, "response": None})  # fmt: skip
        self.assertTrue(self.transport.disconnecting)

    def test_empty_connection(self) -> None:
        self.proto.readConnectionLost()
        self.assertEqual(self.replies()[0]["error"], "failed to find request")
        self.assertTrue(self.transport.disconnecting)

    def test_bad_json_is_an_error_reply(self) -> None:
        """Bad JSON gets an error envelope and the connection closes; nothing raises."""
        self.proto.dataReceived(b'{"request":"getTun","keepalive":true}{"request": x}{"request":"list"}')
        replies = self.replies()
        self.assertEqual(len(replies), 2)
        self.assertEqual(replies[1]["error"], "failed to find request")
        self.assertTrue(self.transport.disconnecting)

    def test_too_large(self) -> None:
        from axl.admin.codec import MAX_REQUEST_BYTES

        self.proto.dataReceived(b'{"request":"' + b"a" * MAX_REQUEST_BYTES)
        self.assertEqual(self.replies()[0]["error"], "failed to find request")
        self.assertTrue(self.transport.disconnecting)

    def test_slow_request_keeps_order(self) -> None:
        """A slow getNodeInfo blocks only its own connection, and later answers wait for it."""
        key = C_KEY.hex()
        self.proto.dataReceived(
            b'{"request":"getNodeInfo","arguments":{"key":"' + key.encode() + b'"},"keepalive":true}'
            b'{"request":"getTun","keepalive":true}'
        )
        self.assertEqual(self.transport.value(), b"")
        other = self.factory.buildProtocol(None)
        other_transport = StringTransport()
        other.makeConnection(other_transport)
        other.dataReceived(b'{"request":"getTun"}')
        self.assertIn(b"enabled", other_transport.value())
        self.source.requests[0][2].callback({"name": "c"})
        replies = self.replies()
        self.assertEqual([list(r["response"]) for r in replies], [[key], ["enabled"]])

    def test_answer_after_disconnect(self) -> None:
        """A remote answer arriving after the client left is dropped quietly."""
        self.proto.dataReceived(b'{"request":"getNodeInfo","arguments":{"key":"' + C_KEY.hex().encode() + b'"}}')
        self.proto.connectionLost()
        self.source.requests[0][2].callback({})
        self.assertEqual(self.transport.value(), b"")

    def test_pipelining_is_bounded(self) -> None:
        """Past MAX_QUEUED_REQUESTS waiting requests the connection stops reading."""
        key = C_KEY.hex().encode()
        slow = b'{"request":"getNodeInfo","arguments":{"key":"' + key + b'"},"keepalive":true}'
        self.proto.dataReceived(slow + b'{"request":"getTun","keepalive":true}' * (MAX_QUEUED_REQUESTS + 5))
        self.assertEqual(self.transport.producerState, "paused")
        self.source.requests[0][2].callback({})
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(len(self.replies()), MAX_QUEUED_REQUESTS + 6)

    def test_write_backpressure(self) -> None:
        """While the transport's buffer is full no further request is answered."""
        self.proto.pauseProducing()
        self.proto.dataReceived(b'{"request":"getTun","keepalive":true}')
        self.assertEqual(self.transport.value(), b"")
        self.proto.resumeProducing()
        self.assertEqual(len(self.replies()), 1)

    def test_registered_as_producer(self) -> None:
        self.assertIs(self.transport.producer, self.proto)
        self.assertTrue(self.transport.streaming)


class ConnectionLimitTests(SynchronousTestCase):
    def test_limit(self) -> None:
        """Past max_connections open connections a new one is refused, until one closes."""
        from twisted.logger import capturedLogs

        factory = AdminFactory(AdminHandler(FakeSource()), max_connections=2)
        protos = []
        for _ in range(2):
            proto = factory.buildProtocol(None)
            assert proto is not None
            proto.makeConnection(StringTransport())
            protos.append(proto)
        with capturedLogs() as events:
            self.assertIsNone(factory.buildProtocol(None))
            self.assertIsNone(factory.buildProtocol(None))
            self.assertIsNone(factory.buildProtocol(None))
        self.assertEqual(factory.refused, 3)
        self.assertEqual(len(events), 2, "rate-limited: the 1st and 2nd refusal, not the 3rd")
        protos[0].connectionLost()
        self.assertIsNotNone(factory.buildProtocol(None))


class SourceShapeTests(SynchronousTestCase):
    def test_fake_matches_protocol(self) -> None:
        """The fake has every member of AdminSource (so the tests exercise the real shape)."""
        members = {n for n in dir(AdminSource) if not n.startswith("_")}
        members |= set(getattr(AdminSource, "__annotations__", {}))
        self.assertIn("request_tree", members)
        fake = FakeSource()
        for name in members:
            self.assertTrue(hasattr(fake, name), name)
