# -*- test-case-name: tests.test_bridge_metrics -*-
"""
C{GET /metrics}: the node's state and counters in Prometheus' text format (prometheus-client),
one registry per node (so several nodes can run in one process).

Two kinds of series:

 - read at scrape time from a L{MetricsSource} (peers, links, bytes, tree, sessions, paths,
   lookups, drops, TCP segments, the C{/recv} queue): nothing is kept twice;
 - counted by the bridge as requests finish (C{/send} outcomes by status code, messages handed
   to the app by C{/recv}, C{/mcp} and C{/a2a} latency histograms).

Names follow Prometheus' conventions: C{axl_} prefix, C{_total} on counters, seconds and bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request

from axl.admin.commands import TablesSource
from axl.bridge.http import WrappedLeaf

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS", "MetricsSource", "NodeMetrics", "ObservedResource"]

#: The C{code} label of a C{/send} whose client closed the connection before the answer.
CLIENT_CLOSED = 499

#: Histogram buckets (seconds) for /mcp and /a2a round trips: 1 ms to the 30 s default timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsSource(TablesSource, Protocol):
    """What C{/metrics} reads from the node at scrape time: the tables, and these."""

    def root_and_depth(self) -> tuple[bytes, int]:
        """The root key as we see it and our hops from it."""

    def lookups(self) -> tuple[int, int]:
        """Path lookups we started, and lookups for us we answered."""

    def drops(self) -> Mapping[str, int]:
        """Packets dropped so far, by reason."""

    def tcp_stats(self) -> Mapping[str, int]:
        """The overlay TCP stack's counters (C{in}, C{out}, C{rst_sent}, C{dropped}, ...)."""

    def recv_queue(self) -> tuple[int, int]:
        """Messages and payload bytes waiting for C{/recv}."""


class _StateCollector:
    """A prometheus-client collector that reads the node when scraped."""

    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        s = self._source
        peers = s.peers()
        up = [p for p in peers if p.up]
        yield _gauge("axl_peers_up", "Distinct peer keys with at least one link up.",
                     len({p.key for p in up}))  # fmt: skip
        links = GaugeMetricFamily("axl_links", "Links up, by direction.", labels=["direction"])
        links.add_metric(["inbound"], sum(1 for p in up if p.inbound))
        links.add_metric(["outbound"], sum(1 for p in up if not p.inbound))
        yield links
        configured = GaugeMetricFamily("axl_peer_up", "1 if the peer entry's link is up.",
                                       labels=["remote", "key"])  # fmt: skip
        rx = CounterMetricFamily("axl_peer_received_bytes", "Bytes received on a link.",
                                 labels=["remote", "key"])  # fmt: skip
        tx = CounterMetricFamily("axl_peer_sent_bytes", "Bytes sent on a link.", labels=["remote", "key"])
        latency = GaugeMetricFamily("axl_peer_latency_seconds", "Signature round trip on a link.",
                                    labels=["remote", "key"])  # fmt: skip
        for p in peers:
            labels = [p.remote, p.key.hex()]
            configured.add_metric(labels, 1 if p.up else 0)
            if p.up:
                rx.add_metric(labels, p.bytes_recvd)
                tx.add_metric(labels, p.bytes_sent)
                if p.latency is not None:
                    latency.add_metric(labels, p.latency)
        yield configured
        yield rx
        yield tx
        yield latency
        root, depth = s.root_and_depth()
        root_info = GaugeMetricFamily("axl_tree_root_info", "The spanning tree's root key.", labels=["root"])
        root_info.add_metric([root.hex()], 1)
        yield root_info
        yield _gauge("axl_tree_depth", "Our hops from the root (0 when we are the root).", depth)
        yield _gauge("axl_tree_entries", "Spanning-tree entries we hold.", len(s.tree()))
        sessions = s.sessions()
        yield _gauge("axl_sessions", "Encrypted sessions open.", len(sessions))
        session_rx = CounterMetricFamily("axl_session_received_bytes",
                                         "Bytes received in an open session.", labels=["key"])  # fmt: skip
        session_tx = CounterMetricFamily("axl_session_sent_bytes", "Bytes sent in an open session.",
                                         labels=["key"])  # fmt: skip
        for x in sessions:
            session_rx.add_metric([x.key.hex()], x.bytes_recvd)
            session_tx.add_metric([x.key.hex()], x.bytes_sent)
        yield session_rx
        yield session_tx
        yield _gauge("axl_paths", "Known paths to remote keys.", len(s.paths()))
        sent, answered = s.lookups()
        yield _counter("axl_lookups_sent", "Path lookups this node started.", sent)
        yield _counter("axl_lookups_answered", "Lookups for this node answered with a notify.", answered)
        drops = CounterMetricFamily("axl_packets_dropped", "Packets dropped, by reason.", labels=["reason"])
        for reason, count in sorted(s.drops().items()):
            drops.add_metric([reason], count)
        yield drops
        tcp = s.tcp_stats()
        yield _counter("axl_tcp_segments_received", "Overlay TCP segments received.", tcp.get("in", 0))
        yield _counter("axl_tcp_segments_sent", "Overlay TCP segments sent.", tcp.get("out", 0))
        yield _counter("axl_tcp_resets_sent", "RSTs sent for segments of no connection.",
                       tcp.get("rst_sent", 0))  # fmt: skip
        if "retransmits" in tcp:
            yield _counter("axl_tcp_retransmissions", "Overlay TCP segments retransmitted.",
                           tcp["retransmits"])  # fmt: skip
        messages, size = s.recv_queue()
        yield _gauge("axl_recv_queue_messages", "Messages waiting for /recv.", messages)
        yield _gauge("axl_recv_queue_bytes", "Payload bytes waiting for /recv.", size)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class NodeMetrics:
    """
    One node's metrics: the scrape-time collector plus the bridge's request counters.

    @ivar registry: the node's own prometheus-client C{CollectorRegistry}.
    """

    def __init__(self, source: MetricsSource | None, clock: IReactorTime) -> None:
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=False)
        if source is not None:
            self.registry.register(_StateCollector(source))
        self.send_requests = Counter(
            "axl_send_requests", "/send requests by response status code.", ["code"],
            registry=self.registry,
        )  # fmt: skip
        self.messages_sent = Counter(
            "axl_messages_sent", "Messages /send delivered (answered 200).", registry=self.registry
        )
        self.messages_received = Counter(
            "axl_messages_received", "Messages handed to the app by /recv.", registry=self.registry
        )
        self.request_seconds = Histogram(
            "axl_request_duration_seconds", "/mcp and /a2a request latency.", ["api"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def observe(self, request: IRequest) -> None:
        """Count C{request} (a C{/send}, C{/recv}, C{/mcp/...} or C{/a2a/...}) when it finishes."""
        path = bytes(request.path)
        method = bytes(request.method)
        started = self._clock.seconds()

        def finished(outcome: object) -> None:
            # A request whose client went away before the answer: nginx's 499, never a 200.
            closed = isinstance(outcome, Failure)
            code = CLIENT_CLOSED if closed else int(getattr(request, "code", 200) or 200)
            if path == b"/send" and method == b"POST":
                self.send_requests.labels(code=str(code)).inc()
                if code == 200:
                    self.messages_sent.inc()
            elif path == b"/recv" and method == b"GET" and code == 200:
                self.messages_received.inc()
            elif path.startswith(b"/mcp/") or path.startswith(b"/a2a/"):
                api = "mcp" if path.startswith(b"/mcp/") else "a2a"
                self.request_seconds.labels(api=api).observe(self._clock.seconds() - started)

        # Also on a failed finish (the client went away): the outcome is recorded as 499.
        # IRequest does not declare notifyFinish; Site's requests have it.
        cast(Request, request).notifyFinish().addBoth(finished)

    def render(self) -> bytes:
        """The text exposition of every series."""
        return generate_latest(self.registry)


class ObservedResource(WrappedLeaf):
    """
    Wraps the bridge's Klein resource (a leaf) so that every request is handed to
    L{NodeMetrics.observe} before it is served.
    """

    def __init__(self, inner: IResource, metrics: NodeMetrics) -> None:
        super().__init__(inner)
        self._metrics = metrics

    def render(self, request: IRequest) -> object:
        self._metrics.observe(request)
        return self._inner.render(request)
