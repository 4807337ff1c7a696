"""
The most memory a node's configuration lets remote parties (peers, overlay senders, bridge
clients) make it hold, term by term (issue 12; README "Limits", "Worst-case memory").

Each term is a bound that some part of the node enforces; the per-connection figures are
measured (C{bench/bench_link_memory.py}, C{bench/attack.py}) and rounded up. The node logs the
total at start, and C{tests/test_worstcase.py} holds the defaults to the README's figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from axl.bridge.app import SMALL_MESSAGE
from axl.config import NodeConfig
from axl.link.peers import MAX_EPHEMERAL
from axl.link.quic import MAX_CONNECTIONS as QUIC_MAX_CONNECTIONS
from axl.mesh.paths import MAX_HELD_BYTES, MAX_PATHS, MAX_RECENT_BYTES, MAX_RUMORS
from axl.mesh.tree import MAX_ENTRIES_PER_PEER, MAX_FORMER_PEERS, MAX_TREE_ENTRIES
from axl.session.manager import MAX_BUFFERED_BYTES, MAX_PENDING, MAX_SESSIONS
from axl.streams.framing import ACKED_OVERHEAD, HEADER_SIZE
from axl.tcp.connection import DELIVERY_PIECE

__all__ = [
    "BRIDGE_CONNECTION_BYTES",
    "LINK_BYTES",
    "QUIC_LINK_BYTES",
    "QUIC_PENDING_BYTES",
    "ROUTING_ENTRY_BYTES",
    "ROUTING_FIXED_BYTES",
    "TABLE_ENTRIES",
    "TREE_ENTRIES",
    "TREE_ENTRY_BYTES",
    "Term",
    "worst_case",
    "worst_case_total",
]

#: A stream link (tls, tcp, unix, ws, socks) at worst: ~272 KiB measured with a peer that sent
#: 126 KiB of a maximal frame and stopped reading, plus what Twisted may buffer before it pauses
#: the link (64 KiB) and a frame of up to 128 KiB.
LINK_BYTES = 460 * 1024
#: A QUIC link at worst: aioquic's connection state, 1 MiB unacknowledged, 1 MiB out of order.
QUIC_LINK_BYTES = 2560 * 1024
#: A QUIC connection that has no link yet (its receive windows are 64 KiB until then).
QUIC_PENDING_BYTES = 128 * 1024
#: A bridge connection at worst: 16 KiB reads and write-buffer mark, 16 KiB of pipelined requests,
#: a request head and its objects (~75 KB each measured with 255 connections pipelining
#: without reading, C{bench/attack.py pipeline}).
BRIDGE_CONNECTION_BYTES = 96 * 1024
#: A tree entry (1,695 B measured with tracemalloc, C{bench/bench_tree_flood.py}).
TREE_ENTRY_BYTES = 1792
#: A session, a remote waiting for one, a path entry or a rumor (2.2 to 2.5 KB measured, the
#: last two with a 200-byte packet, C{bench/bench_tree_flood.py}).
ROUTING_ENTRY_BYTES = 2560
#: The packets held for lookups and for sessions, those kept for re-sending, and the keyed
#: caches (measured with tracemalloc: path and next-hop caches full of 63-port paths 3 MiB at
#: 4096 entries each, so 0.75 MiB at L{axl.mesh.forward.CACHE_LIMIT} 1024; the init limiter's 4096 keys 0.5 MiB,
#: the X25519 key cache 0.8 MiB, reverse paths 0.3 MiB), rounded up to 3 MiB.
ROUTING_FIXED_BYTES = MAX_HELD_BYTES + MAX_BUFFERED_BYTES + MAX_RECENT_BYTES + 3 * 1024 * 1024
#: Tree entries besides the peers' own: those charged to peers, ours, former peers' own, and a
#: former ancestry of ours (L{axl.mesh.tree}).
TREE_ENTRIES = MAX_TREE_ENTRIES + 1 + MAX_FORMER_PEERS + MAX_ENTRIES_PER_PEER
#: Sessions, remotes waiting for one, path entries and rumors at most.
TABLE_ENTRIES = MAX_SESSIONS + MAX_PENDING + MAX_PATHS + MAX_RUMORS


@dataclass(frozen=True)
class Term:
    """One part of the bound: what holds the bytes, the formula over config keys, the bytes."""

    what: str
    formula: str
    bytes: int


def _schemes(config: NodeConfig) -> set[str]:
    return {urlsplit(uri).scheme for uri in config.listen}


def worst_case(config: NodeConfig) -> tuple[Term, ...]:
    """The terms of the bound for C{config}."""
    listening = bool(config.listen) or bool(config.multicast_interfaces)
    inbound = config.max_inbound_links if listening else 0
    outbound = len(config.peers) + (MAX_EPHEMERAL if config.multicast_interfaces else 0)
    quic = "quic" in _schemes(config)
    per_link = QUIC_LINK_BYTES if quic else LINK_BYTES
    message = config.max_message_size + ACKED_OVERHEAD + HEADER_SIZE
    terms = [
        Term("messages on port 7000/7001 and the /recv queue",
             "max(recv_queue_max_bytes, max_message_size) + one 64 KiB read",
             max(config.recv_queue_max_bytes, message) + DELIVERY_PIECE),
        Term("overlay TCP data not yet read (paused applications, out of order)",
             "tcp_rcv_budget_bytes", config.tcp_rcv_budget_bytes),
        Term("bridge request bodies and messages being delivered",
             "max(bridge_max_inflight_bytes, max_message_size) + bridge_max_requests x 64 KiB",
             max(config.bridge_max_inflight_bytes, config.max_message_size)
             + config.bridge_max_requests * SMALL_MESSAGE),
        Term("bridge connections", "bridge_max_connections x 96 KiB",
             config.bridge_max_connections * BRIDGE_CONNECTION_BYTES),
        Term("what links to peers that do not read have queued", "2 x link_write_budget_bytes",
             2 * config.link_write_budget_bytes),
        Term("the links themselves",
             f"(max_inbound_links + outbound links) x {per_link // 1024} KiB",
             (inbound + outbound) * per_link),
    ]  # fmt: skip
    links = inbound + outbound
    terms.append(Term(
        "routing state remote parties create (tree entries, sessions, paths, lookups, held packets)",
        f"({TREE_ENTRIES} + max_inbound_links + outbound links) x 1.75 KiB "
        f"+ {TABLE_ENTRIES} x 2.5 KiB + {ROUTING_FIXED_BYTES / 2**20:g} MiB",
        (TREE_ENTRIES + links) * TREE_ENTRY_BYTES + TABLE_ENTRIES * ROUTING_ENTRY_BYTES
        + ROUTING_FIXED_BYTES,
    ))  # fmt: skip
    if quic:
        terms.append(Term("QUIC connections without a link", f"{QUIC_MAX_CONNECTIONS} x 128 KiB",
                          QUIC_MAX_CONNECTIONS * QUIC_PENDING_BYTES))  # fmt: skip
    return tuple(terms)


def worst_case_total(config: NodeConfig) -> int:
    """The bound for C{config}, in bytes."""
    return sum(term.bytes for term in worst_case(config))
