# -*- test-case-name: tests.test_link_peers -*-
"""
The peer manager: every link the node has, and the services that make them.

 - One Twisted C{ClientService} per configured peer (C{Peers}), redialling forever with
   exponential back-off and jitter: after the n-th consecutive failure it waits about
   C{min(2**n s, cap)} (cap = C{maxbackoff=} or the node's C{peer_max_backoff_secs}, 60 s by
   default); n resets to 0 only after a successful handshake (spec/yggdrasil-wire.md 2.5).
 - One listener per C{Listen} URI; inbound links appear in the table while they exist.
 - The peer table behind C{/topology.peers} (spec/axl-node.md 5.1) and spec section 6.
 - Fair admission of inbound links (issue 12): at most L{MAX_HANDSHAKING_INBOUND} handshakes at
   once in all, C{max_handshakes_per_source} from one address (when the global cap is full, the
   address holding the most slots gives its oldest one up to a newcomer), C{max_inbound_per_source}
   inbound links (handshaking or up) per address, C{max_inbound_per_key} up links per key,
   C{max_inbound_links} inbound links up at once in all (outbound links, configured or
   multicast, are the operator's choice and not counted), and new connections from one address
   at most L{SOURCE_RATE} per second (burst L{SOURCE_BURST}). A link dropped for flooding (L{axl.errors.PeerFlooding}) gets its address
   and key refused for L{BAN_MIN} s, doubling per offence up to L{BAN_MAX} s. Refusals and
   failed inbound handshakes are logged through L{AggregatedLog}: a few lines per minute
   whatever the number.

A configured peer that turns out to be ourselves is not redialled (as Yggdrasil v0.5.14).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Sequence

from zope.interface import implementer

from twisted.application.internet import ClientService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from axl.crypto import Identity, short_key
from axl.interfaces import ILink, ILinkHandler
from axl.link.core import (
    DEFAULT_WRITE_BUDGET,
    DEFAULT_WRITE_BUFFER_MAX,
    LinkCore,
    NullLinkHandler,
    WriteBudget,
)
from axl.config import MulticastInterface
from axl.link.endpoints import client_endpoint, server_endpoint
from axl.link.multicast import MulticastInterfaceInfo, MulticastService
from axl.link.protocol import LinkFactory
from axl.link.tls import LinkTLS
from axl.link.uri import PeerURI, inbound_uri, parse_listen_uri, parse_peer_uri, redact_uri
from axl.logs import observer as log_observer
from axl.ratelimit import AggregatedLog, KeyedLimiter

__all__ = [
    "BAN_MAX",
    "BAN_MIN",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_INBOUND_LINKS",
    "JITTER",
    "MAX_EPHEMERAL",
    "MAX_HANDSHAKING_INBOUND",
    "SOURCE_BURST",
    "SOURCE_RATE",
    "PeerEntry",
    "PeerManager",
]

DEFAULT_MAX_BACKOFF = 60.0
#: Inbound links up at once in all (C{max_inbound_links}); see the README's peering section.
DEFAULT_MAX_INBOUND_LINKS = 64
# Inbound connections still in their (at most 6 s) handshake; more are refused at accept, so a
# flood of silent connections cannot pile up.
MAX_HANDSHAKING_INBOUND = 64
#: New inbound connections per second from one address (after a burst of L{SOURCE_BURST}).
SOURCE_RATE = 2.0
SOURCE_BURST = 32.0
#: A flooding peer's address and key are refused for BAN_MIN s, doubling per offence up to BAN_MAX.
BAN_MIN = 10.0
BAN_MAX = 600.0
# Tables keyed by remote address are trimmed past this many entries.
_TABLE_MAX = 4096
# Multicast links (dialling or up) at once: beacons from ever new keys cannot grow the table past it.
MAX_EPHEMERAL = 64
# Each wait is shortened by up to this fraction, at random, so that peers do not redial in step.
JITTER = 0.25


@dataclass(eq=False)
class PeerEntry:
    """
    One row of the peer table: a configured peer (up or not) or a current inbound link.

    @ivar uri: the link URI (no query); for inbound links C{scheme://remote-ip:port}.
    @ivar config: the parsed configured URI (for inbound links, the listener's).
    @ivar link: the current link, handshaking or up; None when there is none.
    @ivar failures: consecutive failures since the last successful handshake (back-off state).
    @ivar retry_delay: the current wait before the next dial, if one is scheduled.
    @ivar is_self: the peer turned out to be ourselves; it is not redialled.
    @ivar ephemeral: dialled once (a multicast beacon's sender); gone when its link ends.
    @ivar local: accepted on a multicast listener: C{AllowedPublicKeys} does not apply.
    """

    uri: str
    inbound: bool
    config: PeerURI
    link: LinkCore | None = None
    last_error: str = ""
    last_error_time: float | None = None
    failures: int = 0
    retry_delay: float | None = None
    is_self: bool = False
    service: ClientService | None = None
    ephemeral: bool = False
    local: bool = False

    @property
    def up(self) -> bool:
        """Whether this entry has a link whose handshake succeeded."""
        return self.link is not None and self.link.is_up


@implementer(ILinkHandler)
class _Forward:
    """Passes link events to whatever handler the manager has now (the router comes later)."""

    def __init__(self, manager: PeerManager) -> None:
        self._manager = manager

    def link_up(self, link: ILink) -> None:
        self._manager.handler.link_up(link)

    def frame_received(self, link: ILink, frame_type: int, payload: bytes) -> None:
        self._manager.handler.frame_received(link, frame_type, payload)

    def link_down(self, link: ILink) -> None:
        self._manager.handler.link_down(link)


@implementer(IStreamClientEndpoint)
class _ObservedEndpoint:
    """Records why a dial failed on the peer's entry (for the table and the retry log line)."""

    def __init__(self, wrapped: IStreamClientEndpoint, manager: PeerManager, entry: PeerEntry):
        self._wrapped, self._manager, self._entry = wrapped, manager, entry

    def __repr__(self) -> str:
        return f"<peer {redact_uri(self._entry.uri)}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        d = self._wrapped.connect(protocolFactory)

        def failed(failure: Failure) -> Failure:
            self._manager._record_error(self._entry, f"dial failed: {failure.getErrorMessage()}")
            return failure

        return d.addErrback(failed)


class PeerManager(MultiService):
    """
    The link layer's service: outbound peers, listeners, and the peer table.

    @ivar handler: the L{ILinkHandler} that receives links and frames (the router); a
        L{NullLinkHandler} until one is set. It may be replaced before the service starts.
    @ivar port_for_key: C{key -> ironwood port} (0 when unknown), for the table; set by the router.
    @ivar root_for_key: C{key -> root key or None}, for the table.
    @ivar coords_for_key: C{key -> list of ports or None}, for the table.
    @ivar latency_for_key: C{key -> seconds or None}, for the table.
    """

    log = Logger(observer=log_observer)
    name = "axl-links"

    def __init__(
        self,
        identity: Identity,
        reactor: Any,
        *,
        peers: Iterable[str | PeerURI] = (),
        listen: Iterable[str | PeerURI] = (),
        allowed_keys: Iterable[bytes] = (),
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        handler: ILinkHandler | None = None,
        tls: LinkTLS | None = None,
        dial: Callable[[PeerURI], IStreamClientEndpoint] | None = None,
        listen_endpoint: Callable[[PeerURI], IStreamServerEndpoint] | None = None,
        rng: random.Random | None = None,
        port_for_key: Callable[[bytes], int] | None = None,
        root_for_key: Callable[[bytes], bytes | None] | None = None,
        coords_for_key: Callable[[bytes], Sequence[int] | None] | None = None,
        latency_for_key: Callable[[bytes], float | None] | None = None,
        max_handshakes_per_source: int = 8,
        max_inbound_per_source: int = 32,
        max_inbound_per_key: int = 8,
        max_inbound_links: int = DEFAULT_MAX_INBOUND_LINKS,
        write_buffer_max: int = DEFAULT_WRITE_BUFFER_MAX,
        write_budget: int = DEFAULT_WRITE_BUDGET,
        multicast: tuple[MulticastInterface, ...] = (),
    ) -> None:
        """
        @param peers: C{Peers} entries (strings are parsed; a bad one raises L{ConfigError}).
        @param listen: C{Listen} entries, C{--listen} first.
        @param allowed_keys: C{AllowedPublicKeys}: if not empty, only these keys may peer inbound.
        @param max_backoff: the longest wait between redials, unless a URI says C{maxbackoff=}.
        @param dial: makes the client endpoint for a peer (tests pass in-memory ones).
        @param listen_endpoint: makes the server endpoint for a listener.
        @param max_handshakes_per_source: inbound handshakes at once from one address.
        @param max_inbound_per_source: inbound links (handshaking or up) from one address.
        @param max_inbound_per_key: inbound links that are up with one remote key.
        @param max_inbound_links: inbound links up at once in all.
        @param write_buffer_max: each link's write-buffer bound (L{LinkCore}).
        @param write_budget: the bound shared by all the links (L{WriteBudget}).
        @param multicast: C{MulticastInterfaces} entries; when one has Beacon or Listen, a
            L{MulticastService} runs as a child service (C{self.multicast}).
        """
        super().__init__()  # type: ignore[no-untyped-call]
        if max_backoff <= 0:
            raise ValueError("max_backoff must be positive")
        self.identity = identity
        self._reactor = reactor
        self.handler: ILinkHandler = handler if handler is not None else NullLinkHandler()
        self.allowed_keys = frozenset(allowed_keys)
        self.max_backoff = max_backoff
        self._rng = rng if rng is not None else random.Random()
        self.port_for_key = port_for_key
        self.root_for_key = root_for_key
        self.coords_for_key = coords_for_key
        self.latency_for_key = latency_for_key
        self._forward = _Forward(self)
        if dial is None or listen_endpoint is None:
            link_tls = tls if tls is not None else LinkTLS(identity)
            dial = dial or partial(client_endpoint, reactor, tls=link_tls)
            listen_endpoint = listen_endpoint or partial(server_endpoint, reactor, tls=link_tls)
        self._dial: Callable[[PeerURI], IStreamClientEndpoint] = dial
        self._listen_endpoint: Callable[[PeerURI], IStreamServerEndpoint] = listen_endpoint
        self._configured: list[PeerEntry] = []
        self._inbound: list[PeerEntry] = []
        self._ephemeral: list[PeerEntry] = []
        self._refused_ephemeral = 0
        self._listeners = [u if isinstance(u, PeerURI) else parse_listen_uri(u) for u in listen]
        self._ports: list[tuple[PeerURI, IListeningPort]] = []
        self._stopping = False
        self.max_handshakes_per_source = max_handshakes_per_source
        self.max_inbound_per_source = max_inbound_per_source
        self.max_inbound_per_key = max_inbound_per_key
        self.max_inbound_links = max_inbound_links
        self._write_buffer_max = write_buffer_max
        self.write_budget = WriteBudget(write_budget)
        self._source_rate = KeyedLimiter(reactor, SOURCE_RATE, SOURCE_BURST, max_keys=_TABLE_MAX)
        self._bans: dict[object, tuple[float, int]] = {}  # address or key -> (until, offences)
        self._host_of: dict[int, str] = {}  # id(inbound entry) -> remote address
        self.refusals = AggregatedLog(reactor, self.log, "refused", "inbound connections")
        self.failed_handshakes = AggregatedLog(reactor, self.log, "dropped", "inbound handshakes")
        # Inbound links come and go at the peers' will: their up/down lines are aggregated too.
        self.inbound_up = AggregatedLog(reactor, self.log, "accepted", "inbound links", level=LogLevel.info)
        self.inbound_down = AggregatedLog(reactor, self.log, "lost", "inbound links", level=LogLevel.info)
        seen: set[str] = set()
        for item in peers:
            uri = item if isinstance(item, PeerURI) else parse_peer_uri(item)
            if uri.link_uri in seen:
                self.log.warn("peer {uri} is configured twice; using the first entry",
                              uri=redact_uri(uri.link_uri))  # fmt: skip
                continue
            seen.add(uri.link_uri)
            self._add_configured(uri)
        self.multicast: MulticastService | None = None
        if any(e.beacon or e.listen for e in multicast):
            self.multicast = MulticastService(identity.public_key, multicast, self, reactor)
            self.multicast.setServiceParent(self)  # type: ignore[no-untyped-call]

    # -- building --------------------------------------------------------------------------

    def _add_configured(self, uri: PeerURI) -> None:
        entry = PeerEntry(uri=uri.link_uri, inbound=False, config=uri)
        factory = LinkFactory(lambda addr: self._new_core(entry))
        service = ClientService(
            _ObservedEndpoint(self._dial(uri), self, entry),
            factory,
            retryPolicy=lambda attempt: self._next_delay(entry),
            clock=self._reactor,
        )
        service.setServiceParent(self)
        entry.service = service
        self._configured.append(entry)

    def _new_core(self, entry: PeerEntry) -> LinkCore:
        config = entry.config
        core = LinkCore(
            identity=self.identity,
            clock=self._reactor,
            handler=self._forward,
            uri=redact_uri(entry.uri),
            inbound=entry.inbound,
            priority=config.priority,
            password=config.password,
            pinned_keys=() if entry.inbound else config.keys,
            allowed_keys=self.allowed_keys if entry.inbound and not entry.local else (),
            on_up=lambda link: self._link_up(entry, link),
            on_down=lambda link, reason: self._link_down(entry, link, reason),
            write_buffer_max=self._write_buffer_max,
            write_budget=self.write_budget,
        )
        entry.link = core
        return core

    def _accept(
        self, listener: PeerURI, addr: IAddress | None, local: bool = False
    ) -> LinkCore | None:
        host = getattr(addr, "host", None)
        port = getattr(addr, "port", 0)
        uri = inbound_uri(listener.scheme, host, port) if host else listener.link_uri
        if host and listener.scheme == "ws" and listener.path not in ("", "/"):
            uri += listener.path  # the listener's own path, never the client's (extras 2.1)
        source = str(host) if host else uri
        refusal = self._admission(source)
        if refusal:
            self.refusals.event(source, refusal)
            return None
        entry = PeerEntry(uri=uri, inbound=True, config=listener, local=local)
        self._inbound.append(entry)
        self._host_of[id(entry)] = source
        return self._new_core(entry)

    def _admission(self, source: str) -> str:
        """Why a new inbound connection from C{source} is refused ("" to admit it)."""
        now = self._reactor.seconds()
        if self._banned(source, now):
            return "address refused for flooding"
        if not self._source_rate.allow(source):
            return f"more than {SOURCE_RATE:g} new connections per second"
        pending: dict[str, list[PeerEntry]] = {}
        inbound = up = 0
        for e in self._inbound:
            host = self._host_of.get(id(e))
            if host == source:
                inbound += 1
            if e.link is not None and e.link.is_up:
                up += 1
            elif e.link is not None and host is not None:
                pending.setdefault(host, []).append(e)
        if up >= self.max_inbound_links and self._hog_of_links(source) is None:
            return f"{up} inbound links up already (max_inbound_links)"
        mine = len(pending.get(source, ()))
        if mine >= self.max_handshakes_per_source:
            return f"{mine} handshakes from this address already in progress"
        if inbound >= self.max_inbound_per_source:
            return f"{inbound} inbound links from this address already"
        total = sum(len(v) for v in pending.values())
        if total >= MAX_HANDSHAKING_INBOUND:
            # Fair share: the address holding the most slots gives up its oldest one.
            hog, held = max(pending.items(), key=lambda kv: len(kv[1]))
            if len(held) <= mine + 1:
                return f"{total} inbound handshakes already in progress"
            victim = held[0]
            if victim.link is not None:
                victim.link.close(f"handshake slot given to another address ({hog} held {len(held)})")
        return ""

    def _hog_of_links(self, source: str, exclude: PeerEntry | None = None) -> PeerEntry | None:
        """
        At the C{max_inbound_links} cap: the newest up link of the address holding the most, if
        it holds at least two more than C{source} (so one address cannot keep others out, and
        addresses holding one link each are never displaced); else None.
        """
        by_host: dict[str, list[PeerEntry]] = {}
        for e in self._inbound:
            if e is not exclude and e.link is not None and e.link.is_up:
                by_host.setdefault(self._host_of.get(id(e), e.uri), []).append(e)
        if not by_host:
            return None
        hog, held = max(by_host.items(), key=lambda kv: len(kv[1]))
        if hog == source or len(held) < len(by_host.get(source, ())) + 2:
            return None
        return held[-1]

    def _banned(self, what: object, now: float) -> bool:
        ban = self._bans.get(what)
        return ban is not None and ban[0] > now

    def _ban(self, what: object, now: float) -> float:
        _, offences = self._bans.get(what, (0.0, 0))
        duration = min(BAN_MAX, BAN_MIN * 2.0 ** min(offences, 32))
        if len(self._bans) >= _TABLE_MAX:
            self._bans = {k: v for k, v in self._bans.items() if v[0] > now}
        self._bans[what] = (now + duration, offences + 1)
        return duration

    # -- link events -----------------------------------------------------------------------

    def _link_up(self, entry: PeerEntry, link: LinkCore) -> None:
        if entry.inbound:
            source = self._host_of.get(id(entry), entry.uri)
            key = link.remote_key
            if self._banned(key, self._reactor.seconds()):
                self.refusals.event(source, f"key {short_key(key)} refused for flooding")
                link.close("key refused for flooding")
                return
            others = [e.link for e in self._inbound
                      if e is not entry and e.link is not None and e.link.is_up]  # fmt: skip
            if len(others) >= self.max_inbound_links:
                # Handshakes admitted while there was room may finish after it is gone; a
                # newcomer may take the place of a link of an address holding more than its share.
                victim = self._hog_of_links(source, exclude=entry)
                if victim is None:
                    self.refusals.event(source, f"{len(others)} inbound links up already (max_inbound_links)")
                    link.close(f"{len(others)} inbound links up already")
                    return
                hog = self._host_of.get(id(victim), victim.uri)
                self.refusals.event(hog, "inbound link closed for another address (max_inbound_links)")
                assert victim.link is not None  # only up links are candidates
                victim.link.close(f"inbound link given to another address ({hog} held the most)")
            same_key = sum(1 for other in others if other.remote_key == key)
            if same_key >= self.max_inbound_per_key:
                self.refusals.event(source, f"{same_key} inbound links with key {short_key(key)}")
                link.close(f"{same_key} inbound links with this key already")
                return
        entry.failures = 0
        entry.retry_delay = None
        if entry.inbound:
            self.inbound_up.event(self._host_of.get(id(entry), entry.uri),
                                  f"peer {short_key(link.remote_key)} up on {entry.uri}, "
                                  f"priority {link.priority}")  # fmt: skip
        else:
            self.log.info("peer {key} up: outbound {uri}, priority {priority}",
                          key=short_key(link.remote_key), uri=redact_uri(entry.uri),
                          priority=link.priority)  # fmt: skip

    def _link_down(self, entry: PeerEntry, link: LinkCore, reason: str) -> None:
        if entry.link is link:
            entry.link = None
        self._record_error(entry, link.last_error or reason)
        if link.remote_key and link.up_since is not None and not self._stopping:
            if entry.inbound:
                self.inbound_down.event(self._host_of.get(id(entry), entry.uri),
                                        f"peer {short_key(link.remote_key)} down on {entry.uri} ({reason})")  # fmt: skip
            else:
                self.log.info("peer {key} down: {uri} ({reason})",
                              key=short_key(link.remote_key), uri=redact_uri(entry.uri), reason=reason)  # fmt: skip
        if entry.inbound:
            source = self._host_of.pop(id(entry), entry.uri)
            if link.flooded:
                now = self._reactor.seconds()
                duration = self._ban(source, now)
                self._ban(link.remote_key, now)
                self.log.warn("refusing {source} and key {key} for {secs:g} s: {reason}",
                              source=source, key=short_key(link.remote_key), secs=duration,
                              reason=link.last_error)  # fmt: skip
            elif link.up_since is None and link.last_error and not self._stopping:
                self.failed_handshakes.event(source, link.last_error)
            if entry in self._inbound:
                self._inbound.remove(entry)
        elif entry.ephemeral:
            if entry in self._ephemeral:
                self._ephemeral.remove(entry)
        elif link.is_self and entry.service is not None:
            entry.is_self = True
            self.log.warn("peer {uri} is this node itself; not redialling it", uri=redact_uri(entry.uri))
            entry.service.stopService()

    # -- multicast (spec/yggdrasil-extras.md section 7) ------------------------------------

    def add_local_listener(self, uri: str) -> Deferred[IListeningPort]:
        """
        Listen on C{uri} now (a multicast beacon listener): inbound links on it are "local",
        so C{AllowedPublicKeys} does not apply. The caller stops the returned port.
        """
        listener = parse_listen_uri(uri)
        factory = LinkFactory(partial(self._accept, listener, local=True))
        return maybeDeferred(self._listen_endpoint(listener).listen, factory)

    def dial_ephemeral(self, uri: str) -> bool:
        """
        Dial C{uri} once (a beacon's sender), unless a link record with its identity exists
        (Yggdrasil's "peer is already configured"). The entry goes away when the dial fails or
        the link ends; it is never redialled. Return whether a dial started.
        """
        parsed = parse_peer_uri(uri)
        if self._stopping or any(e.uri == parsed.link_uri for e in self.entries()):
            self.log.debug("not dialling {uri}: peer is already configured", uri=redact_uri(parsed.link_uri))
            return False
        if len(self._ephemeral) >= MAX_EPHEMERAL:
            self._refused_ephemeral += 1
            if self._refused_ephemeral == 1 or self._refused_ephemeral % 100 == 0:
                self.log.warn("not dialling multicast peer {uri}: {n} multicast links already "
                              "({count} refused so far)", uri=redact_uri(parsed.link_uri), n=MAX_EPHEMERAL,
                              count=self._refused_ephemeral)  # fmt: skip
            return False
        entry = PeerEntry(uri=parsed.link_uri, inbound=False, config=parsed, ephemeral=True)
        self._ephemeral.append(entry)
        d = self._dial(parsed).connect(LinkFactory(lambda addr: self._new_core(entry)))

        def failed(failure: Failure) -> None:
            self.log.debug("multicast peer {uri} not reached: {err}",
                          uri=redact_uri(entry.uri), err=failure.getErrorMessage())  # fmt: skip
            if entry in self._ephemeral and not entry.up:
                self._ephemeral.remove(entry)

        d.addErrback(failed)
        return True

    def multicast_interfaces(self) -> list[MulticastInterfaceInfo]:
        """C{getMulticastInterfaces} rows (extras 1.6.9): [] when multicast is off."""
        return self.multicast.multicast_interfaces() if self.multicast is not None else []

    def _record_error(self, entry: PeerEntry, error: str) -> None:
        entry.last_error = error
        entry.last_error_time = self._reactor.seconds()

    def _next_delay(self, entry: PeerEntry) -> float:
        """ClientService's retry policy for one peer: our own failure count, not its own."""
        entry.failures += 1
        cap = entry.config.max_backoff or self.max_backoff
        base = min(cap, 2.0 ** min(entry.failures, 64))
        delay = base * (1.0 - JITTER * self._rng.random())
        entry.retry_delay = delay
        self.log.warn("peer {uri} unavailable ({error}); redial {n} in {delay:.1f} s (cap {cap:g} s)",
                      uri=redact_uri(entry.uri), error=entry.last_error or "connection closed",
                      n=entry.failures, delay=delay, cap=cap)  # fmt: skip
        return delay

    # -- service ---------------------------------------------------------------------------

    def startService(self) -> None:
        # Listen first, then start the reconnecting clients (MultiService.startService, split).
        Service.startService(self)
        for uri in self._listeners:
            factory = LinkFactory(partial(self._accept, uri))
            d = maybeDeferred(self._listen_endpoint(uri).listen, factory)
            d.addCallbacks(
                lambda port, uri=uri: self._listening(uri, port),
                lambda failure, uri=uri: self.log.error(
                    "cannot listen for peers on {uri}: {err}",
                    uri=redact_uri(uri.link_uri), err=failure.getErrorMessage(),
                ),
            )
        for service in self:
            service.startService()

    def _listening(self, uri: PeerURI, port: IListeningPort) -> None:
        if not self.running:
            port.stopListening()
            return
        self._ports.append((uri, port))
        host = port.getHost()
        self.log.info("listening for peers on {uri} ({address})",
                      uri=redact_uri(uri.link_uri), address=getattr(host, "port", host))  # fmt: skip

    def stopService(self) -> Deferred[Any]:
        self._stopping = True
        waits: list[Deferred[Any]] = []
        for _, port in self._ports:
            waits.append(maybeDeferred(port.stopListening))
        self._ports = []
        # Links are closed through their cores (which let go of the transport's producer slot:
        # TLS would otherwise wait for it) before ClientService drops the outbound ones.
        for entry in self._configured + self._inbound + self._ephemeral:
            if entry.link is not None:
                entry.link.close("node stopping")
        self.refusals.stop()
        self.failed_handshakes.stop()
        self.inbound_up.stop()
        self.inbound_down.stop()
        waits.append(maybeDeferred(super().stopService))

        def stopped(_: object) -> None:
            self._stopping = False

        return DeferredList(waits).addCallback(stopped)

    # -- run-time changes (the admin socket's addPeer / removePeer) --------------------------

    def add_peer(self, uri: PeerURI) -> bool:
        """
        Configure one more outbound peer on the running node (not in the config file); it is
        dialled at once if the manager is running.

        @return: False if a peer with the same link URI (query ignored) is already configured.
        """
        if any(entry.uri == uri.link_uri for entry in self._configured):
            return False
        self._add_configured(uri)
        self.log.info("peer {uri} added", uri=uri.link_uri)
        return True

    def remove_peer(self, link_uri: str) -> bool:
        """
        Stop redialling a configured peer and close its link, if any.

        @return: False if no configured peer has this link URI.
        """
        entry = next((e for e in self._configured if e.uri == link_uri), None)
        if entry is None:
            return False
        self._configured.remove(entry)
        if entry.link is not None:
            entry.link.close("peer removed")
        if entry.service is not None:
            entry.service.disownServiceParent()
        self.log.info("peer {uri} removed", uri=link_uri)
        return True

    # -- queries ---------------------------------------------------------------------------

    def listening_ports(self) -> list[tuple[PeerURI, IListeningPort]]:
        """The listeners that are bound, with their URIs."""
        return list(self._ports)

    def entries(self) -> list[PeerEntry]:
        """Configured peers (in config order), then multicast peers, then inbound links."""
        return self._configured + self._ephemeral + self._inbound

    def links(self) -> list[LinkCore]:
        """Every link that is up."""
        return [e.link for e in self.entries() if e.link is not None and e.link.is_up]

    def peers_info(self) -> list[dict[str, Any]]:
        """
        The C{/topology} C{peers} entries: AXL's fields (C{uri up inbound public_key root port
        coords}) then ours (C{priority rx_bytes tx_bytes uptime latency last_error}).
        """
        out = []
        for entry in self.entries():
            link = entry.link if entry.up else None
            key = link.remote_key if link is not None else b""
            root = self.root_for_key(key) if key and self.root_for_key else None
            coords = self.coords_for_key(key) if key and self.coords_for_key else None
            latency = self.latency_for_key(key) if key and self.latency_for_key else None
            out.append(
                {
                    "uri": entry.uri,
                    "up": link is not None,
                    "inbound": entry.inbound,
                    "public_key": key.hex(),
                    "root": root.hex() if root else "",
                    "port": self.port_for_key(key) if key and self.port_for_key else 0,
                    "coords": list(coords) if coords is not None else None,
                    "priority": link.priority if link is not None else entry.config.priority,
                    "rx_bytes": link.rx_bytes if link is not None else 0,
                    "tx_bytes": link.tx_bytes if link is not None else 0,
                    "uptime": link.uptime() if link is not None else 0.0,
                    "latency": latency or 0.0,
                    "last_error": entry.last_error,
                }
            )
        return out
