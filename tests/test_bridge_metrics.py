"""
Tests for C{GET /metrics} (L{axl.bridge.metrics}): the exposition parsed by prometheus-client's
own parser, from a fake source; and counters moving on whole in-process nodes after C{/send},
C{/recv} and C{/mcp}.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.internet.threads import deferToThread
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from axl.admin.commands import PeerRow, SessionRow, TreeRow, PathRow
from axl.bridge.metrics import CONTENT_TYPE_LATEST, NodeMetrics
from tests.inprocess import InProcessNodesTestCase
from tests.test_admin_commands import A, B, C_KEY, FakeSource


class FakeMetricsSource(FakeSource):
    def root_and_depth(self) -> tuple[bytes, int]:
        return C_KEY, 2

    def lookups(self) -> tuple[int, int]:
        return 5, 3

    def drops(self) -> dict[str, int]:
        return {"session_traffic_invalid": 4, "tcp_invalid": 1}

    def tcp_stats(self) -> dict[str, int]:
        return {"in": 10, "out": 12, "rst_sent": 2, "dropped": 1, "retransmits": 7}

    def recv_queue(self) -> tuple[int, int]:
        return 3, 300


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as (name, sorted labels) -> value, via prometheus-client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class ExpositionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.source = FakeMetricsSource()
        self.source.peer_rows = [
            PeerRow("tls://h:1", True, False, B.public_key, bytes_recvd=100, bytes_sent=200, latency=0.002),
            PeerRow("tcp://h:2", True, True, C_KEY, bytes_recvd=1, bytes_sent=2),
            PeerRow("tcp://h:3", True, True, C_KEY),
            PeerRow("tls://down:1", False, False, last_error="x"),
        ]
        self.source.tree_rows = [TreeRow(A.public_key, C_KEY, 1), TreeRow(C_KEY, C_KEY, 1)]
        self.source.path_rows = [PathRow(B.public_key, (1,), 1)]
        self.source.session_rows = [SessionRow(B.public_key, 10, 20, 1.0), SessionRow(C_KEY, 1, 2, 1.0)]
        self.metrics = NodeMetrics(self.source, Clock())

    def test_parsed(self) -> None:
        got = samples(self.metrics.render().decode())
        expected = {
            ("axl_peers_up", ()): 2,
            ("axl_links", (("direction", "inbound"),)): 2,
            ("axl_links", (("direction", "outbound"),)): 1,
            ("axl_peer_up", (("key", ""), ("remote", "tls://down:1"))): 0,
            ("axl_peer_up", (("key", B.public_key.hex()), ("remote", "tls://h:1"))): 1,
            ("axl_peer_received_bytes_total", (("key", B.public_key.hex()), ("remote", "tls://h:1"))): 100,
            ("axl_peer_sent_bytes_total", (("key", C_KEY.hex()), ("remote", "tcp://h:2"))): 2,
            ("axl_peer_latency_seconds", (("key", B.public_key.hex()), ("remote", "tls://h:1"))): 0.002,
            ("axl_tree_root_info", (("root", C_KEY.hex()),)): 1,
            ("axl_tree_depth", ()): 2,
            ("axl_tree_entries", ()): 2,
            ("axl_sessions", ()): 2,
            ("axl_session_received_bytes_total", (("key", B.public_key.hex()),)): 10,
            ("axl_session_sent_bytes_total", (("key", C_KEY.hex()),)): 2,
            ("axl_paths", ()): 1,
            ("axl_lookups_sent_total", ()): 5,
            ("axl_lookups_answered_total", ()): 3,
            ("axl_packets_dropped_total", (("reason", "session_traffic_invalid"),)): 4,
            ("axl_packets_dropped_total", (("reason", "tcp_invalid"),)): 1,
            ("axl_tcp_segments_received_total", ()): 10,
            ("axl_tcp_segments_sent_total", ()): 12,
            ("axl_tcp_resets_sent_total", ()): 2,
            ("axl_tcp_retransmissions_total", ()): 7,
            ("axl_recv_queue_messages", ()): 3,
            ("axl_recv_queue_bytes", ()): 300,
            ("axl_messages_sent_total", ()): 0,
            ("axl_messages_received_total", ()): 0,
        }
        for key, value in expected.items():
            self.assertEqual(got.get(key), value, key)

    def test_names_follow_conventions(self) -> None:
        """axl_ prefix everywhere; counters end in _total; units are seconds or bytes."""
        for family in text_string_to_metric_families(self.metrics.render().decode()):
            self.assertTrue(family.name.startswith("axl_"), family.name)
            for s in family.samples:
                if family.type == "counter" and not s.name.endswith("_created"):
                    self.assertTrue(s.name.endswith("_total"), s.name)
            self.assertNotIn("millis", family.name)

    def test_value_moves(self) -> None:
        """Scrapes read the node now, not a copy."""
        self.source.session_rows = []
        got = samples(self.metrics.render().decode())
        self.assertEqual(got[("axl_sessions", ())], 0)

    def test_without_layers(self) -> None:
        """A bridge whose node has no layers still serves its own counters."""
        got = samples(NodeMetrics(None, Clock()).render().decode())
        self.assertEqual(got[("axl_messages_sent_total", ())], 0)
        self.assertNotIn(("axl_peers_up", ()), got)


def _http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class NodeCountersTests(InProcessNodesTestCase):
    """Counters move on real nodes: B sends to A through the bridge."""

    timeout = 60

    def scrape(self, node: Any):  # type: ignore[no-untyped-def]
        d = deferToThread(_http, f"http://127.0.0.1:{node.config.api_port}/metrics")
        return d.addCallback(lambda r: samples(r[1].decode()))

    @inlineCallbacks
    def test_send_and_recv(self):  # type: ignore[no-untyped-def]
        a, b, _ = self.start_star()
        base_b = f"http://127.0.0.1:{b.config.api_port}"
        base_a = f"http://127.0.0.1:{a.config.api_port}"
        before = yield self.scrape(b)
        self.assertEqual(before.get(("axl_messages_sent_total", ())), 0)
        key = a.identity.public_key.hex()
        status, _ = yield deferToThread(_http, f"{base_b}/send", b"hello", {"X-Destination-Peer-Id": key})
        self.assertEqual(status, 200)
        status, _ = yield deferToThread(_http, f"{base_b}/send", b"x", {"X-Destination-Peer-Id": "nothex"})
        self.assertEqual(status, 400)
        got = yield self.scrape(b)
        self.assertEqual(got[("axl_send_requests_total", (("code", "200"),))], 1)
        self.assertEqual(got[("axl_send_requests_total", (("code", "400"),))], 1)
        self.assertEqual(got[("axl_messages_sent_total", ())], 1)
        self.assertGreaterEqual(got[("axl_lookups_sent_total", ())], 1)
        self.assertGreater(got[("axl_tcp_segments_sent_total", ())], 0)
        self.assertEqual(got[("axl_sessions", ())], 1)
        self.assertEqual(got[("axl_peers_up", ())], 1)
        got_a = yield self.scrape(a)
        self.assertEqual(got_a[("axl_recv_queue_messages", ())], 1)
        self.assertEqual(got_a[("axl_recv_queue_bytes", ())], 5)
        self.assertGreaterEqual(got_a[("axl_lookups_answered_total", ())], 1)
        self.assertEqual(got_a[("axl_peers_up", ())], 2)
        self.assertEqual(got_a[("axl_tree_depth", ())], len(a.router.coords()))
        self.assertEqual(got[("axl_tree_depth", ())], len(b.router.coords()))
        self.assertEqual(got[("axl_tree_root_info", (("root", b.router.root().hex()),))], 1)
        status, body = yield deferToThread(_http, f"{base_a}/recv")
        self.assertEqual((status, body), (200, b"hello"))
        got_a = yield self.scrape(a)
        self.assertEqual(got_a[("axl_recv_queue_messages", ())], 0)
        self.assertEqual(got_a[("axl_messages_received_total", ())], 1)

    @inlineCallbacks
    def test_mcp_latency(self):  # type: ignore[no-untyped-def]
        """Every /mcp call lands in the histogram, whatever its outcome."""
        a = self.start_node("A", {})
        base = f"http://127.0.0.1:{a.config.api_port}"
        status, _ = yield deferToThread(_http, f"{base}/mcp/{'ab' * 32}/svc", b"not json",
                                        {"Content-Type": "application/json"})  # fmt: skip
        self.assertEqual(status, 400)
        got = yield self.scrape(a)
        self.assertEqual(got[("axl_request_duration_seconds_count", (("api", "mcp"),))], 1)
        self.assertEqual(got.get(("axl_request_duration_seconds_count", (("api", "a2a"),))), None)

    @inlineCallbacks
    def test_content_type(self):  # type: ignore[no-untyped-def]
        a = self.start_node("A", {})
        url = f"http://127.0.0.1:{a.config.api_port}/metrics"
        headers = yield deferToThread(lambda: urllib.request.urlopen(url, timeout=10).headers)
        self.assertEqual(headers["Content-Type"], CONTENT_TYPE_LATEST)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version="))


class ObserveTests(SynchronousTestCase):
    """NodeMetrics.observe on Twisted's DummyRequest: outcomes recorded when requests finish."""

    def request(self, method: bytes, path: bytes):  # type: ignore[no-untyped-def]
        from twisted.web.test.requesthelper import DummyRequest

        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        request.method = method
        request.path = path
        request.code = 200  # as twisted.web.server.Request starts (DummyRequest keeps responseCode)
        return request

    def test_outcomes(self) -> None:
        clock = Clock()
        metrics = NodeMetrics(None, clock)
        sent = self.request(b"POST", b"/send")
        metrics.observe(sent)
        self.assertEqual(samples(metrics.render().decode()).get(("axl_messages_sent_total", ())), 0,
                         "nothing is counted before the request finishes")  # fmt: skip
        sent.finish()
        gone = self.request(b"POST", b"/send")
        metrics.observe(gone)
        gone.processingFailed(Failure(ConnectionError("client went away")))
        mcp = self.request(b"POST", b"/mcp/" + b"ab" * 32 + b"/svc")
        metrics.observe(mcp)
        clock.advance(0.3)
        mcp.finish()
        recv = self.request(b"GET", b"/recv")
        metrics.observe(recv)
        recv.code = 204
        recv.finish()
        got = samples(metrics.render().decode())
        self.assertEqual(got[("axl_send_requests_total", (("code", "200"),))], 1)
        self.assertEqual(got[("axl_send_requests_total", (("code", "499"),))], 1)
        self.assertEqual(got[("axl_messages_sent_total", ())], 1)
        self.assertEqual(got[("axl_messages_received_total", ())], 0, "a 204 /recv delivered nothing")
        self.assertEqual(got[("axl_request_duration_seconds_sum", (("api", "mcp"),))], 0.3)
        self.assertEqual(got[("axl_request_duration_seconds_bucket", (("api", "mcp"), ("le", "0.25")))], 0)
        self.assertEqual(got[("axl_request_duration_seconds_bucket", (("api", "mcp"), ("le", "0.5")))], 1)


class BridgeRouteTests(SynchronousTestCase):
    """The /metrics route and the request counting wrapper, through StubTreq (no sockets)."""

    def stub(self, metrics: NodeMetrics | None):  # type: ignore[no-untyped-def]
        from treq.testing import StubTreq

        from axl.bridge.app import Bridge

        bridge = Bridge(lambda: {}, None, None, Clock(), None, metrics=metrics)  # type: ignore[arg-type]
        return StubTreq(bridge.resource())

    def test_without_metrics(self) -> None:
        """A bridge built without metrics answers /metrics 404 and serves its routes unwrapped."""
        http = self.stub(None)
        response = self.successResultOf(http.get("http://127.0.0.1/metrics"))
        self.assertEqual(response.code, 404)

    def test_counts_requests(self) -> None:
        """Each /send is counted by status when it finishes, here a 400 for a bad id."""
        metrics = NodeMetrics(FakeMetricsSource(), Clock())
        http = self.stub(metrics)
        response = self.successResultOf(
            http.post("http://127.0.0.1/send", data=b"x", headers={"X-Destination-Peer-Id": "zz"})
        )
        self.assertEqual(response.code, 400)
        got = samples(metrics.render().decode())
        self.assertEqual(got[("axl_send_requests_total", (("code", "400"),))], 1)
        self.assertEqual(got[("axl_messages_sent_total", ())], 0)
        response = self.successResultOf(http.get("http://127.0.0.1/metrics"))
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [CONTENT_TYPE_LATEST.encode()])
