# -*- test-case-name: tests.test_session_proto -*-
"""
The Yggdrasil core above the sessions (spec/yggdrasil-wire.md sections 5.1-5.2).

L{Core} reads the session-type byte of every decrypted payload: 1 is an IPv6 packet (handed to
the IPv6 layer), 2 a proto message (handed to L{ProtoHandler}), anything else is ignored and
the session stays up.

L{ProtoHandler} answers the requests a real node (C{yggdrasilctl getNodeInfo},
C{debug_remoteGetSelf}/C{GetPeers}/C{GetTree}, crawlers) sends, and can send them itself.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

import axl
from axl.crypto.keys import short_key
from axl.errors import ConfigError, DecodeError
from axl.interfaces import ISessions
from axl.logs import observer as log_observer

__all__ = [
    "SESSION_DUMMY",
    "SESSION_TRAFFIC",
    "SESSION_PROTO",
    "CORE_MTU",
    "Core",
    "ProtoHandler",
    "ProtoTimeout",
    "node_info_json",
]

SESSION_DUMMY = 0
SESSION_TRAFFIC = 1
SESSION_PROTO = 2

CORE_MTU = 65535
"""C{min(65535, encrypted MTU - 1)}: the largest IPv6 packet the core carries."""

PROTO_DUMMY = 0x00
NODEINFO_REQUEST = 0x01
NODEINFO_RESPONSE = 0x02
PROTO_DEBUG = 0xFF
DEBUG_DUMMY = 0x00
GET_SELF_REQUEST = 0x01
GET_SELF_RESPONSE = 0x02
GET_PEERS_REQUEST = 0x03
GET_PEERS_RESPONSE = 0x04
GET_TREE_REQUEST = 0x05
GET_TREE_RESPONSE = 0x06

_DEBUG = 0x100  # marks debug answers in the pending-request table (their codes overlap)

NODEINFO_MAX = 16384
REQUEST_TIMEOUT = 6.0
"""How long our own requests wait for an answer (the admin API's 6 s)."""

_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386"}


class ProtoTimeout(Exception):
    """A remote node did not answer a proto request in time."""


def node_info_json(node_info: Mapping[str, Any], build: Mapping[str, str] | None = None) -> bytes:
    """
    The NodeInfo reply body: the configured map plus C{buildname}, C{buildversion},
    C{buildplatform} and C{buildarch}, as Go's C{json.Marshal} of a map writes it (sorted keys,
    compact, HTML characters escaped).

    @param build: the four build fields; ours (axl, its version, OS, architecture) if not given.
    @raise ConfigError: the result is larger than 16384 bytes.
    """
    if build is None:
        machine = platform.machine().lower()
        build = {
            "buildname": "axl",
            "buildversion": axl.__version__,
            "buildplatform": sys.platform,
            "buildarch": _GOARCH.get(machine, machine),
        }
    merged = dict(node_info)
    merged.update(build)
    text = json.dumps(merged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    data = text.encode("utf-8")
    if len(data) > NODEINFO_MAX:
        raise ConfigError(f"NodeInfo is {len(data)} bytes as JSON; the limit is {NODEINFO_MAX}")
    return data


class ProtoHandler:
    """
    Answers and sends proto messages (the payload after the session byte 2).

    @param sessions: where replies go (prefixed with the session byte 2).
    @param node_info: the NodeInfo JSON we answer with (see L{node_info_json}).
    @param peer_keys: the keys of the peers whose links are up.
    @param tree_keys: the keys of every entry in our spanning-tree view (C{infos}).
    @param routing_entries: C{len(infos)}; C{len(tree_keys())} if not given.
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        sessions: ISessions,
        our_key: bytes,
        clock: IReactorTime,
        node_info: bytes,
        peer_keys: Callable[[], Sequence[bytes]],
        tree_keys: Callable[[], Sequence[bytes]],
        routing_entries: Callable[[], int] | None = None,
        mtu: int = CORE_MTU,
    ) -> None:
        self._sessions = sessions
        self._our_key = our_key
        self._clock = clock
        self._node_info = node_info
        self._peer_keys = peer_keys
        self._tree_keys = tree_keys
        self._routing_entries = routing_entries or (lambda: len(self._tree_keys()))
        self._mtu = mtu
        self._pending: dict[tuple[bytes, int], list[tuple[Deferred[Any], IDelayedCall]]] = {}

    # -- receiving ------------------------------------------------------------------------

    def received(self, source_key: bytes, message: bytes) -> None:
        """One proto message (after the 02 byte) from C{source_key}; bad ones are dropped."""
        if not message:
            return
        kind = message[0]
        if kind == NODEINFO_REQUEST:
            self._reply(source_key, bytes((NODEINFO_RESPONSE,)) + self._node_info)
        elif kind == NODEINFO_RESPONSE:
            self._answered(source_key, NODEINFO_RESPONSE, message[1:])
        elif kind == PROTO_DEBUG and len(message) >= 2:
            self._debug(source_key, message[1], message[2:])

    def _debug(self, source: bytes, kind: int, body: bytes) -> None:
        if kind == GET_SELF_REQUEST:
            doc = {"key": self._our_key.hex(), "routing_entries": str(self._routing_entries())}
            text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            self._reply(source, bytes((PROTO_DEBUG, GET_SELF_RESPONSE)) + text)
        elif kind == GET_PEERS_REQUEST:
            self._reply(source, self._key_list(GET_PEERS_RESPONSE, self._peer_keys()))
        elif kind == GET_TREE_REQUEST:
            self._reply(source, self._key_list(GET_TREE_RESPONSE, self._tree_keys()))
        elif kind in (GET_SELF_RESPONSE, GET_PEERS_RESPONSE, GET_TREE_RESPONSE):
            self._answered(source, _DEBUG | kind, body)

    def _key_list(self, kind: int, keys: Sequence[bytes]) -> bytes:
        # Go keeps whole keys while the debug response (2 type bytes + keys) fits the MTU,
        # counting the session byte as part of that budget's slack.
        room = (self._mtu - 2) // 32
        return bytes((PROTO_DEBUG, kind)) + b"".join(bytes(k) for k in list(keys)[:room])

    def _reply(self, dest: bytes, message: bytes) -> None:
        self._sessions.send(dest, bytes((SESSION_PROTO,)) + message)

    # -- requesting -----------------------------------------------------------------------

    def request_node_info(self, key: bytes) -> Deferred[Any]:
        """Ask C{key} for its NodeInfo; fires with the decoded JSON object."""
        return self._request(key, bytes((NODEINFO_REQUEST,)), NODEINFO_RESPONSE)

    def request_self(self, key: bytes) -> Deferred[Any]:
        """C{debug_remoteGetSelf}: fires with C{{"key": hex, "routing_entries": "N"}}."""
        return self._request(
            key, bytes((PROTO_DEBUG, GET_SELF_REQUEST)), _DEBUG | GET_SELF_RESPONSE
        )

    def request_peers(self, key: bytes) -> Deferred[Any]:
        """C{debug_remoteGetPeers}: fires with the list of the remote's peer keys."""
        return self._request(
            key, bytes((PROTO_DEBUG, GET_PEERS_REQUEST)), _DEBUG | GET_PEERS_RESPONSE
        )

    def request_tree(self, key: bytes) -> Deferred[Any]:
        """C{debug_remoteGetTree}: fires with the list of keys in the remote's tree view."""
        return self._request(
            key, bytes((PROTO_DEBUG, GET_TREE_REQUEST)), _DEBUG | GET_TREE_RESPONSE
        )

    def _request(self, key: bytes, message: bytes, answer: int) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        slot = (bytes(key), answer)
        timer = self._clock.callLater(REQUEST_TIMEOUT, self._timed_out, slot, d)
        self._pending.setdefault(slot, []).append((d, timer))
        self._reply(key, message)
        return d

    def _timed_out(self, slot: tuple[bytes, int], d: Deferred[Any]) -> None:
        waiting = self._pending.get(slot, [])
        waiting[:] = [(w, t) for (w, t) in waiting if w is not d]
        if not waiting:
            self._pending.pop(slot, None)
        d.errback(ProtoTimeout(f"no answer from {short_key(slot[0])}"))

    def _answered(self, source: bytes, kind: int, body: bytes) -> None:
        waiting = self._pending.pop((source, kind), None)
        if not waiting:
            return
        try:
            result = _parse_answer(kind, body)
        except DecodeError as e:
            self.log.warn("bad proto answer from {key}: {err}", key=short_key(source), err=e)
            self._pending[(source, kind)] = waiting
            return
        for d, timer in waiting:
            timer.cancel()
            d.callback(result)

    def stop(self) -> None:
        """Cancel our outstanding requests."""
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            for d, timer in waiting:
                timer.cancel()
                d.cancel()


def _parse_answer(kind: int, body: bytes) -> Any:
    if kind in (_DEBUG | GET_PEERS_RESPONSE, _DEBUG | GET_TREE_RESPONSE):
        if len(body) % 32:
            raise DecodeError("a key list is not a multiple of 32 bytes")
        return [body[i : i + 32] for i in range(0, len(body), 32)]
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"not JSON: {e}") from None


class Core:
    """
    The session-type byte dispatch: C{received} is the session layer's C{deliver}.

    @ivar ipv6_received: C{(source_key, packet)} for type 1; set by the IPv6 layer.
    """

    log = Logger(observer=log_observer)

    def __init__(self, proto: ProtoHandler | None = None) -> None:
        self.proto = proto
        self.ipv6_received: Callable[[bytes, bytes], None] | None = None

    def received(self, source_key: bytes, payload: bytes) -> None:
        """
        Dispatch one decrypted payload from C{source_key} by its session-type byte (section 5.1):
        type 1 (IPv6) to C{ipv6_received}, type 2 (proto) to the L{ProtoHandler}, without the byte.
        An empty payload, another type or a type with no receiver set is ignored.
        """
        if not payload:
            return
        kind = payload[0]
        if kind == SESSION_TRAFFIC:
            if self.ipv6_received is not None:
                self.ipv6_received(source_key, payload[1:])
        elif kind == SESSION_PROTO:
            if self.proto is not None:
                self.proto.received(source_key, payload[1:])
