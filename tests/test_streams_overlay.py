"""
The application layer over the real userspace TCP (L{axl.tcp}): two nodes whose L{TCPStack}s
talk through an in-memory IPv6 network on a fake clock, each with its streams layer and bridge.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.bridge.topology import topology_document
from axl.config import config_from_dict
from axl.crypto.keys import Identity
from axl.service import build_bridge, overlay_dial
from axl.streams.service import build_streams_layer
from axl.tcp.endpoints import OverlayServerEndpoint
from axl.tcp.stack import TCPStack
from axl.tcp.testing import FakeIPv6Layer, LossyNetwork, run_until
from tests.test_bridge_messaging import BridgeNode, Services, _NoPeers


class OverlayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.net = LossyNetwork(self.clock)
        self.a, self.client_a = self.make_node(1, {})
        self.b, self.client_b = self.make_node(2, {"router_addr": "http://127.0.0.1"})

    def make_node(self, n: int, extra: dict[str, Any]) -> tuple[BridgeNode, StubTreq]:
        config = config_from_dict({"max_message_size": 2 * 1024 * 1024, **extra})
        identity = Identity(bytes([n]) * 32)
        key = identity.public_key
        tcp = TCPStack(FakeIPv6Layer(key, self.net), key, self.clock)
        services = Services()
        http = StubTreq(services)
        layer = build_streams_layer(config, key, self.clock, overlay_dial(tcp), http, plugin_streams=[])
        bridge = build_bridge(
            config, self.clock, layer, partial(topology_document, identity, _NoPeers(), _NoPeers())
        )
        node = BridgeNode(key, layer, bridge, services, http)
        self.successResultOf(OverlayServerEndpoint(tcp, config.tcp_port).listen(layer.factory))
        return node, StubTreq(bridge.app.resource())

    def pump(
        self, done: Callable[[], bool], max_time: float = 60.0, must: bool = True
    ) -> None:
        def check() -> bool:
            for node in (self.a, self.b):
                node.http.flush()
            self.client_a.flush()
            self.client_b.flush()
            return done()

        finished = run_until(self.clock, check, max_time)
        if must:
            self.assertTrue(finished)

    def request(
        self,
        client: StubTreq,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Any:
        return client.request(
            method, "http://127.0.0.1:9002" + path, headers=headers or {}, data=data
        )

    def wait(self, d: Any) -> Any:
        box: list[Any] = []
        d.addBoth(box.append)
        self.pump(lambda: bool(box))
        self.assertNotIsInstance(box[0], Exception)
        return box[0]

    def result(self, d: Any) -> tuple[int, Any, bytes]:
        response = self.wait(d)
        return response.code, response.headers, self.wait(response.content())

    def send(self, payload: bytes) -> Any:
        return self.request(
            self.client_a,
            "POST",
            "/send",
            {"X-Destination-Peer-Id": self.b.public_key.hex()},
            payload,
        )

    def test_send_recv_large(self) -> None:
        """A 2 MiB /send crosses the userspace TCP intact, with the sender's full key."""
        payload = os.urandom(2 * 1024 * 1024)
        code, headers, _ = self.result(self.send(payload))
        self.assertEqual(
            (code, headers.getRawHeaders("X-Sent-Bytes")), (200, [str(len(payload))])
        )
        code, headers, body = self.result(
            self.request(self.client_b, "GET", "/recv?wait=5")
        )
        self.assertEqual(
            (code, headers.getRawHeaders("X-From-Peer-Id"), body == payload),
            (200, [self.a.public_key.hex()], True),
        )

    def test_order_and_backpressure(self) -> None:
        """With B's queue bounded to 2, sends beyond its TCP buffer wait; all arrive in order, without stalls, as B drains."""
        self.b.streams.queue.max_messages = 2
        n = 96  # 6 MiB: more than B's TCP receive buffer (4 MiB)
        payloads = [bytes([i]) * 65536 for i in range(n)]
        ds = [self.send(p) for p in payloads]
        answered: list[Any] = []
        for d in ds:
            d.addCallback(lambda r: answered.append(r) or r)
        self.pump(lambda: len(answered) >= n, max_time=10, must=False)
        # 200 means B's TCP acknowledged the message: B stopped reading, so the rest wait.
        self.assertLess(len(answered), n - 16)
        got: list[bytes] = []
        while len(got) < n:
            t0 = self.clock.seconds()
            code, _, body = self.result(
                self.request(self.client_b, "GET", "/recv?wait=60")
            )
            self.assertEqual(code, 200)
            self.assertLess(
                self.clock.seconds() - t0, 1.0, "delivery stalled after B drained"
            )
            got.append(body)
        self.assertEqual(got, payloads)
        self.assertEqual({self.wait(d).code for d in ds}, {200})

    def test_send_over_receivers_limit_is_413(self) -> None:
        """
        Over the real TCP, a /send above B's max_message_size (1 MiB; A allows 2 MiB) is 413 with
        B's refusal text: B's error frame arrives before the message could be acknowledged.
        """
        self.b.streams.factory.max_message_size = 1024 * 1024
        size = 1024 * 1024 + 1
        code, _, body = self.result(self.send(b"x" * size))
        self.assertEqual(
            (code, body),
            (
                413,
                f"message of {size} bytes exceeds the receiver's max_message_size of 1048576 bytes\n".encode(),
            ),
        )
        code, _, _ = self.result(self.send(b"after"))
        self.assertEqual(code, 200)
        code, _, body = self.result(self.request(self.client_b, "GET", "/recv?wait=5"))
        self.assertEqual((code, body), (200, b"after"))

    def test_mcp_round_trip(self) -> None:
        """/mcp from A reaches B's router with A's key and returns its JSON."""
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        code, _, body = self.result(
            self.request(
                self.client_a,
                "POST",
                f"/mcp/{self.b.public_key.hex()}/weather",
                {},
                json.dumps(rpc).encode(),
            )
        )
        self.assertEqual((code, json.loads(body)["result"]), (200, {"ok": True}))
        routed = json.loads(self.b.services.router.requests[0]["body"])
        self.assertEqual(routed["from_peer_id"], self.a.public_key.hex())

    def test_unreachable(self) -> None:
        """A key nobody owns gives 502/504 within 15 s."""
        start = self.clock.seconds()
        code, _, _ = self.result(
            self.request(
                self.client_a,
                "POST",
                "/send",
                {"X-Destination-Peer-Id": "07" * 32},
                b"x",
            )
        )
        self.assertIn(code, (502, 504))
        self.assertLessEqual(self.clock.seconds() - start, 15)
