# -*- test-case-name: tests.test_admin_commands -*-
"""
The admin commands of Yggdrasil v0.5.14 (spec/yggdrasil-extras.md section 1.6), with the real
node's names, member order, types and units, answered from an L{AdminSource}: a narrow view of
the node that tests fake. L{AdminHandler.answer} takes one decoded JSON value and gives the
envelope bytes to send back and whether to keep reading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.admin.codec import (
    AdminError,
    AdminRequest,
    encode_envelope,
    error_envelope,
    json_type_name,
    parse_request,
)
from axl.crypto import addr_for_key, format_address, subnet_for_key
from axl.link.multicast import MulticastInterfaceInfo
from axl.logs import observer as log_observer

__all__ = [
    "COMMANDS",
    "AdminHandler",
    "AdminSource",
    "TablesSource",
    "PathRow",
    "PeerRow",
    "RemoteTimeout",
    "SessionRow",
    "TreeRow",
    "go_hex_decode",
    "sort_peers",
]


class RemoteTimeout(Exception):
    """A remote node did not answer a getNodeInfo / debug request in time (6 s)."""


@dataclass(frozen=True)
class PeerRow:
    """
    One link record for C{getPeers}: a configured peer (up or down) or an inbound link.

    @ivar remote: the link identity (URI without its query).
    @ivar key: the peer's key, b"" while down.
    @ivar uptime: seconds the link has been up (0 when down).
    @ivar latency: seconds (the SigReq/SigRes round trip), None when unknown.
    @ivar last_error_age: seconds since the last error, None when there is none.
    @ivar rate_recvd: bytes received in the last one-second sample.
    """

    remote: str
    up: bool
    inbound: bool
    key: bytes = b""
    port: int = 0
    priority: int = 0
    cost: int = 0
    bytes_recvd: int = 0
    bytes_sent: int = 0
    rate_recvd: int = 0
    rate_sent: int = 0
    uptime: float = 0.0
    latency: float | None = None
    last_error: str = ""
    last_error_age: float | None = None


@dataclass(frozen=True)
class TreeRow:
    """One spanning-tree entry: C{key}, its C{parent} (itself for the root), C{sequence}."""

    key: bytes
    parent: bytes
    sequence: int


@dataclass(frozen=True)
class PathRow:
    """One known path: the destination C{key}, its coords C{path}, its C{sequence}."""

    key: bytes
    path: Sequence[int]
    sequence: int


@dataclass(frozen=True)
class SessionRow:
    """One encrypted session: C{key}, byte counts, C{uptime} in seconds."""

    key: bytes
    bytes_recvd: int
    bytes_sent: int
    uptime: float


class TablesSource(Protocol):
    """The node's tables, as both the admin commands and C{/metrics} read them."""

    def peers(self) -> Sequence[PeerRow]:
        """One row per configured peer (up or down) and per inbound link that is up."""

    def tree(self) -> Sequence[TreeRow]:
        """One row per spanning-tree entry we hold, ourselves included."""

    def paths(self) -> Sequence[PathRow]:
        """One row per known path to a remote key."""

    def sessions(self) -> Sequence[SessionRow]:
        """One row per open encrypted session."""


class AdminSource(TablesSource, Protocol):
    """
    What the admin commands read from and do to the node. Remote requests return Deferreds
    that fail with L{RemoteTimeout} after 6 s; C{add_peer}/C{remove_peer} raise L{AdminError}
    with Go's message.

    @ivar public_key: our key.
    @ivar build_name: C{getSelf}'s C{build_name}.
    @ivar build_version: C{getSelf}'s C{build_version}.
    """

    public_key: bytes
    build_name: str
    build_version: str

    def routing_entries(self) -> int:
        """C{getSelf}'s C{routing_entries}: the number of tree entries we hold."""

    def multicast_interfaces(self) -> Sequence[MulticastInterfaceInfo]:
        """The multicast interfaces in use (empty without multicast)."""

    def request_node_info(self, key: bytes) -> Deferred[Any]:
        """Ask C{key} for its NodeInfo; fires with the remote's JSON object."""

    def request_self(self, key: bytes) -> Deferred[Any]:
        """Ask C{key} for its debug GetSelf; fires with the remote's JSON object."""

    def request_peers(self, key: bytes) -> Deferred[list[bytes]]:
        """Ask C{key} for its peers' keys (debug GetPeers)."""

    def request_tree(self, key: bytes) -> Deferred[list[bytes]]:
        """Ask C{key} for the keys of its tree entries (debug GetTree)."""

    def add_peer(self, uri: str, interface: str) -> None:
        """Configure and dial one more peer on the running node."""

    def remove_peer(self, uri: str, interface: str) -> None:
        """Forget a configured peer and close its link."""


# ---------------------------------------------------------------------------------------------
# Helpers with Go's semantics.


def _address(key: bytes) -> str:
    return format_address(addr_for_key(key))


def go_hex_decode(text: str) -> bytes:
    """
    Go's C{hex.DecodeString}, with its error strings (C{encoding/hex: invalid byte: U+007A 'z'},
    C{encoding/hex: odd length hex string}) raised as L{AdminError}.
    """
    data = text.encode("utf-8")
    for byte in data:
        if chr(byte) not in "0123456789abcdefABCDEF":
            char = chr(byte)
            shown = f" '{char}'" if char.isprintable() else ""
            raise AdminError(f"encoding/hex: invalid byte: U+{byte:04X}{shown}")
    if len(data) % 2:
        raise AdminError("encoding/hex: odd length hex string")
    return bytes.fromhex(text)


def sort_peers(rows: Sequence[PeerRow], how: str) -> list[PeerRow]:
    """
    C{getPeers}' order (section 1.6.3): default outbound first, then key, priority, cost,
    uptime; C{cost}: cost, key, priority, uptime; C{uptime}: uptime, key, priority, cost.
    Uptimes compare in whole seconds, as Go's integer-converted differences do.
    """
    def base(r: PeerRow) -> tuple[Any, ...]:
        return (r.key.hex(), r.priority)

    if how == "cost":
        return sorted(rows, key=lambda r: (r.cost, *base(r), int(r.uptime)))
    if how == "uptime":
        return sorted(rows, key=lambda r: (int(r.uptime), *base(r), r.cost))
    return sorted(rows, key=lambda r: (r.inbound, *base(r), r.cost, int(r.uptime)))


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _peer_json(row: PeerRow) -> dict[str, Any]:
    out: dict[str, Any] = {"remote": row.remote, "up": row.up, "inbound": row.inbound}
    if row.up:
        out["address"] = _address(row.key)
    out["key"] = row.key.hex()
    out["port"] = row.port if row.up else 0
    out["priority"] = row.priority if row.up else 0
    out["cost"] = row.cost if row.up else 0
    for name in ("bytes_recvd", "bytes_sent", "rate_recvd", "rate_sent"):
        value = getattr(row, name)
        if value:
            out[name] = value
    if row.uptime:
        out["uptime"] = row.uptime
    if row.latency:
        out["latency"] = _ns(row.latency)
    if row.last_error and not row.up:
        out["last_error_time"] = _ns(row.last_error_age or 0.0)
        out["last_error"] = row.last_error
    return out


# ---------------------------------------------------------------------------------------------
# The command table.

Handler = Callable[["AdminSource", dict[str, str]], Any]


@dataclass(frozen=True)
class Command:
    """
    One admin command.

    @ivar name: as registered (C{list} shows it lower-cased).
    @ivar fields: the argument names C{list} shows.
    @ivar go_type: Go's type name in "cannot unmarshal X into Go value of type T"; None for
        C{list}, which reads no arguments.
    @ivar struct: the struct name in "Go struct field S.f" ("" for Go's anonymous structs).
    """

    name: str
    description: str
    run: Handler
    fields: tuple[str, ...] = ()
    go_type: str | None = None
    struct: str = ""

    def arguments(self, raw: Any) -> dict[str, str]:
        """Read the arguments as Go's C{json.Unmarshal} into the request struct would."""
        if self.go_type is None or raw is None:
            return {}
        if not isinstance(raw, dict):
            raise AdminError(
                f"json: cannot unmarshal {json_type_name(raw)} into Go value of type {self.go_type}"
            )
        names = self.fields
        out: dict[str, str] = {}
        for key, value in raw.items():
            name = next((n for n in names if n == key), None) or next(
                (n for n in names if n.lower() == str(key).lower()), None
            )
            if name is None:
                continue
            if value is None:
                continue
            if not isinstance(value, str):
                raise AdminError(
                    f"json: cannot unmarshal {json_type_name(value)} into Go struct field "
                    f"{self.struct}.{name} of type string"
                )
            out[name] = value
        return out


def _list(source: AdminSource, args: dict[str, str]) -> Any:
    rows = []
    for command in sorted(COMMANDS.values(), key=lambda c: c.name.lower()):
        row: dict[str, Any] = {"command": command.name.lower(), "description": command.description}
        if command.fields:
            row["fields"] = list(command.fields)
        rows.append(row)
    return {"list": rows}


def _get_self(source: AdminSource, args: dict[str, str]) -> Any:
    key = source.public_key
    return {
        "build_name": source.build_name,
        "build_version": source.build_version,
        "key": key.hex(),
        "address": _address(key),
        "routing_entries": source.routing_entries(),
        "subnet": format_address(subnet_for_key(key)),
    }


def _get_peers(source: AdminSource, args: dict[str, str]) -> Any:
    rows = sort_peers(source.peers(), args.get("sort", ""))
    return {"peers": [_peer_json(r) for r in rows]}


_Row = TypeVar("_Row", TreeRow, PathRow, SessionRow)


def _by_key(rows: Sequence[_Row], rest: Callable[[_Row], dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by hex key, each C{address}, C{key}, then its own members."""
    return [
        {"address": _address(r.key), "key": r.key.hex(), **rest(r)}
        for r in sorted(rows, key=lambda r: r.key.hex())
    ]


def _get_tree(source: AdminSource, args: dict[str, str]) -> Any:
    return {"tree": _by_key(source.tree(), lambda r: {"parent": r.parent.hex(), "sequence": r.sequence})}


def _get_paths(source: AdminSource, args: dict[str, str]) -> Any:
    return {"paths": _by_key(source.paths(), lambda r: {"path": list(r.path), "sequence": r.sequence})}


def _get_sessions(source: AdminSource, args: dict[str, str]) -> Any:
    return {
        "sessions": _by_key(source.sessions(), lambda r: {
            "bytes_recvd": r.bytes_recvd, "bytes_sent": r.bytes_sent, "uptime": r.uptime})
    }  # fmt: skip


def _get_node_info(source: AdminSource, args: dict[str, str]) -> Any:
    text = args.get("key", "")
    if not text:
        raise AdminError("no remote public key supplied")
    try:
        key = go_hex_decode(text)
    except AdminError as e:
        raise AdminError(f"failed to decode public key: {e}") from None
    if len(key) != 32:
        raise AdminError("invalid public key length")

    def got(info: Any) -> Any:
        return {key.hex(): info}

    def failed(failure: Failure) -> Any:
        failure.trap(RemoteTimeout)
        raise AdminError("timed out waiting for response")

    return source.request_node_info(key).addCallbacks(got, failed)


def _debug_key(args: dict[str, str]) -> bytes:
    key = go_hex_decode(args.get("key", ""))
    if len(key) != 32:
        raise AdminError("invalid public key length")
    return key


def _debug_timeout(failure: Failure) -> Any:
    failure.trap(RemoteTimeout)
    raise AdminError("timeout")


def _debug_self(source: AdminSource, args: dict[str, str]) -> Any:
    key = _debug_key(args)
    d = source.request_self(key)
    return d.addCallbacks(lambda info: {_address(key): info}, _debug_timeout)


def _keys_answer(key: bytes, keys: list[bytes]) -> Any:
    return {_address(key): {"keys": [k.hex() for k in keys]} if keys else {}}


def _debug_peers(source: AdminSource, args: dict[str, str]) -> Any:
    key = _debug_key(args)
    return source.request_peers(key).addCallbacks(lambda ks: _keys_answer(key, ks), _debug_timeout)


def _debug_tree(source: AdminSource, args: dict[str, str]) -> Any:
    key = _debug_key(args)
    return source.request_tree(key).addCallbacks(lambda ks: _keys_answer(key, ks), _debug_timeout)


def _add_peer(source: AdminSource, args: dict[str, str]) -> Any:
    source.add_peer(args.get("uri", ""), args.get("interface", ""))
    return {}


def _remove_peer(source: AdminSource, args: dict[str, str]) -> Any:
    source.remove_peer(args.get("uri", ""), args.get("interface", ""))
    return {}


def _multicast(source: AdminSource, args: dict[str, str]) -> Any:
    rows = sorted(source.multicast_interfaces(), key=lambda r: r.name)
    return {
        "multicast_interfaces": [
            {"name": r.name, "address": r.address, "beacon": r.beacon, "listen": r.listen,
             "password": r.password}
            for r in rows
        ]
    }  # fmt: skip


def _get_tun(source: AdminSource, args: dict[str, str]) -> Any:
    return {"enabled": False}


_DEBUG: Final = "Debug use only"
_URI_FIELDS: Final = ("uri", "interface")

#: Every v0.5.14 command by lower-case name (C{lookups} is absent: C{LogLookups} is not used).
COMMANDS: Final[dict[str, Command]] = {
    c.name.lower(): c
    for c in (
        Command("list", "List available commands", _list),
        Command("getSelf", "Show details about this node", _get_self,
                go_type="admin.GetSelfRequest"),
        Command("getPeers", "Show directly connected peers", _get_peers, ("sort",),
                go_type="admin.GetPeersRequest"),
        Command("getTree", "Show known Tree entries", _get_tree, go_type="admin.GetTreeRequest"),
        Command("getPaths", "Show established paths through this node", _get_paths,
                go_type="admin.GetPathsRequest"),
        Command("getSessions", "Show established traffic sessions with remote nodes",
                _get_sessions, go_type="admin.GetSessionsRequest"),
        Command("getNodeInfo", "Request nodeinfo from a remote node by its public key",
                _get_node_info, ("key",), "core.GetNodeInfoRequest", "GetNodeInfoRequest"),
        Command("debug_remoteGetSelf", _DEBUG, _debug_self, ("key",),
                "core.DebugGetSelfRequest", "DebugGetSelfRequest"),
        Command("debug_remoteGetPeers", _DEBUG, _debug_peers, ("key",),
                "core.DebugGetPeersRequest", "DebugGetPeersRequest"),
        Command("debug_remoteGetTree", _DEBUG, _debug_tree, ("key",),
                "core.DebugGetTreeRequest", "DebugGetTreeRequest"),
        Command("addPeer", "Add a peer to the peer list", _add_peer, _URI_FIELDS,
                go_type="admin.AddPeerRequest"),
        Command("removePeer", "Remove a peer from the peer list", _remove_peer, _URI_FIELDS,
                go_type="admin.RemovePeerRequest"),
        Command("getMulticastInterfaces", "Show which interfaces multicast is enabled on",
                _multicast, go_type="multicast.GetMulticastInterfacesRequest"),
        Command("getTun", "Show information about the node's TUN interface", _get_tun,
                go_type="tun.GetTUNRequest"),
    )
}  # fmt: skip


class AdminHandler:
    """
    Answers admin requests from an L{AdminSource}; one per node, shared by its connections.
    """

    log = Logger(observer=log_observer)

    def __init__(self, source: AdminSource) -> None:
        self.source = source

    def answer(self, value: Any) -> Deferred[tuple[bytes, bool]]:
        """
        Serve one decoded JSON value (or L{axl.admin.codec.FIND_ERROR}).

        @return: a Deferred firing with the envelope bytes and whether the connection stays
            open for another request. It never fails.
        """
        request = parse_request(value)
        if isinstance(request, bytes):
            return succeed((request, False))
        keep = request.keepalive
        if not request.name:
            echo = {"request": "", "arguments": request.arguments}
            return succeed((error_envelope("no request specified", echo), keep))
        command = COMMANDS.get(request.lower_name)
        if command is None:
            message = f"unknown action '{request.lower_name}', try 'list' for help"
            return succeed((error_envelope(message, request.echo()), keep))
        d = maybeDeferred(self._run, command, request)
        d.addCallbacks(
            lambda response: self._success(request, response),
            lambda failure: self._failure(request, failure),
        )
        return d.addCallback(lambda envelope: (envelope, keep))

    def _run(self, command: Command, request: AdminRequest) -> Any:
        return command.run(self.source, command.arguments(request.arguments))

    @staticmethod
    def _success(request: AdminRequest, response: Any) -> bytes:
        return encode_envelope(
            {"status": "success", "request": request.echo(), "response": response}
        )

    def _failure(self, request: AdminRequest, failure: Failure) -> bytes:
        if failure.check(AdminError):
            message = str(failure.value)
        else:
            self.log.failure("admin command {name} failed", failure, name=request.name)
            message = f"internal error: {failure.getErrorMessage()}"
        return error_envelope(message, request.echo())
