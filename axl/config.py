# -*- test-case-name: tests.test_config -*-
"""
The node's configuration: AXL's C{node-config.json}, read into one frozen L{NodeConfig}.

The file is plain JSON (not HJSON). It holds Yggdrasil's capitalised keys (C{PrivateKeyPath},
C{PrivateKey}, C{Peers}, C{Listen}, C{AllowedPublicKeys}, C{NodeInfo}, and some we ignore with a
warning) and the node's lower-case keys (spec/axl-node.md section 2). As in AXL, key names match
case-insensitively, a node key given as 0 (or C{""} or C{null}) takes its default, and relative
paths resolve against the current directory. Unlike AXL, a wrong type or an out-of-range value is
a L{ConfigError} naming the file and the key, and every key is honoured (C{a2a_port} included).

Adding a node key (later layers do this): add one field with its default to L{NodeConfig} and
one L{NodeKey} line to L{NODE_KEYS}, e.g.::

    NodeKey("peer_max_backoff_secs", float, positive, "longest wait between peer redials"),
    ...
    peer_max_backoff_secs: float = 60.0

and one row to the README's config reference.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit
import json
import os
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from axl.errors import ConfigError
from axl.logs import LOG_LEVELS
from axl.forward.spec import HOSTNAME as _HOSTNAME
from axl.forward.spec import ip_or_hostname
from axl.forward.spec import (
    LocalForwardSpec,
    RemoteForwardSpec,
    SocksSpec,
    parse_list,
    parse_local,
    parse_remote,
    parse_socks,
)

__all__ = [
    "NodeConfig",
    "NodeKey",
    "NODE_KEYS",
    "YGGDRASIL_IGNORED_KEYS",
    "DEFAULT_SOURCE",
    "load_config",
    "default_config",
    "add_listeners",
    "config_from_dict",
    "port",
    "positive",
    "non_negative",
    "size32",
    "bridge_host",
    "base_url",
    "service_url",
    "is_loopback_host",
]

DEFAULT_SOURCE = "<default>"


# ---------------------------------------------------------------------------------------------
# Validators for node keys: take the decoded value (already of the key's type), return the value
# to store, or raise ValueError with a short reason (the caller adds the file and the key).


def port(value: int) -> int:
    """A TCP port, 1-65535."""
    if not 1 <= value <= 65535:
        raise ValueError(f"must be a port number 1-65535, got {value}")
    return value


def positive(value: int | float) -> int | float:
    """A number greater than 0."""
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def non_negative(value: int | float) -> int | float:
    """A number of at least 0 (for keys declared with C{zero_is_default=False})."""
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def size32(value: int) -> int:
    """A byte count that fits AXL's 32-bit length prefix: 1 to 2**32 - 1."""
    if not 1 <= value <= 0xFFFFFFFF:
        raise ValueError(f"must be 1-4294967295 bytes, got {value}")
    return value




def log_level(value: str) -> str:
    """One of L{axl.logs.LOG_LEVELS} (any case)."""
    name = value.lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return name


def bridge_host(value: str) -> str:
    """
    A bare host to bind: an IPv4 or IPv6 literal (C{[::1]} brackets are removed) or a host name.
    A port does not belong here (that is C{api_port}).
    """
    if "://" in value:
        raise ValueError(f"must be a bare host, not a URL, got {value!r}")
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    checked = ip_or_hostname(host)
    if checked is not None:
        return checked
    if ":" in host and _HOSTNAME.match(host.rpartition(":")[0]):
        raise ValueError(f"must be a bare host without a port (set the port with api_port), got {value!r}")
    raise ValueError(f"must be an IPv4 or IPv6 address or a host name, got {value!r}")


def base_url(value: str) -> str:
    """
    The base URL of a companion service (C{router_addr}, C{a2a_addr}), normalised to
    C{scheme://host[:port]}. AXL needs exactly C{http://host}; here a bare host (C{127.0.0.1},
    C{localhost}, C{::1} or C{[::1]}) gets C{http://}, a port may be given (it then wins over
    C{router_port}/C{a2a_port}) and trailing slashes are removed. A path, query or another
    scheme is an error.
    """
    text = value.strip()
    if not text:
        return ""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
    rest = rest.rstrip("/")
    try:
        if ipaddress.ip_address(rest.split("%", 1)[0]).version == 6:
            rest = f"[{rest}]"
    except ValueError:
        pass
    parts = urlsplit(f"{scheme}://{rest}")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"must be scheme://host[:port] with no path, got {value!r}")
    try:
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ValueError(f"has a bad host or port: {value!r}") from None
    if not host or (port is not None and not 1 <= port <= 65535):
        raise ValueError(f"has a bad host or port: {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def service_url(base: str, port: int, path: str = "") -> str:
    """
    C{base} (a L{base_url}) with C{port} unless it names its own port, then C{path}; C{""} for
    an empty C{base} (the service is off).
    """
    if not base:
        return ""
    parts = urlsplit(base)
    netloc = parts.netloc if parts.port is not None else f"{parts.netloc}:{port}"
    return f"{parts.scheme}://{netloc}{path}"


def is_loopback_host(host: str) -> bool:
    """Whether a (validated) bridge host is a loopback address or C{localhost}."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host.rstrip(".").lower() in ("localhost", "localhost.localdomain")


# ---------------------------------------------------------------------------------------------
# The node keys (lower-case).


@dataclass(frozen=True)
class NodeKey:
    """
    How one lower-case node key is read. Its default is the default of the L{NodeConfig} field
    of the same name.

    @ivar name: the JSON key and the L{NodeConfig} field (matched case-insensitively in files).
    @ivar kind: C{int}, C{float} (ints accepted), C{str}, C{bool} or C{list} (stored as a tuple).
    @ivar check: validates and normalises a value of that kind; raises C{ValueError(reason)}.
    @ivar doc: one line for the README's config reference.
    @ivar zero_is_default: as in AXL, C{0} (or C{""}) means "use the default".
    """

    name: str
    kind: type
    check: Callable[[Any], Any] | None = None
    doc: str = ""
    zero_is_default: bool = True


NODE_KEYS: tuple[NodeKey, ...] = (
    NodeKey("api_port", int, port, "HTTP bridge port"),
    NodeKey("log_level", str, log_level, "lowest level logged: debug, info, warn, error or critical"),
    NodeKey("bridge_addr", str, bridge_host, "HTTP bridge host: IPv4/IPv6 literal or name"),
    NodeKey("tcp_port", int, port, "overlay port of the message listener (dialled on peers too)"),
    NodeKey("router_addr", str, base_url, "MCP router base URL, e.g. http://127.0.0.1; empty = MCP off"),
    NodeKey("router_port", int, port, "MCP router port"),
    NodeKey("a2a_addr", str, base_url, "A2A server base URL, e.g. http://127.0.0.1; empty = A2A off"),
    NodeKey("a2a_port", int, port, "A2A server port"),
    NodeKey("max_message_size", int, size32, "largest message accepted, in bytes"),
    NodeKey("max_concurrent_conns", int, positive, "cap on simultaneous inbound overlay connections"),
    NodeKey("conn_read_timeout_secs", float, positive, "time allowed to receive one whole message"),
    NodeKey("conn_idle_timeout_secs", float, positive, "time allowed between messages on a connection"),
    NodeKey("peer_max_backoff_secs", float, positive, "longest wait between redials of a configured peer"),
    NodeKey("connect_timeout_secs", float, positive, "time an overlay TCP connect may take before failing"),
    NodeKey(
        "tcp_rcv_budget_bytes", int, positive,
        "bytes the overlay TCP holds in all for data not yet read by the application: "
        "paused apps and out-of-order segments",
    ),
    NodeKey("max_conns_per_peer", int, positive, "cap on simultaneous inbound message connections from one peer"),
    NodeKey("send_idle_close_secs", float, positive, "idle time before a /send connection to a peer is closed"),
    NodeKey("send_timeout_secs", float, positive, "time /send waits for the peer to take a message (then 503)"),
    NodeKey("request_timeout_secs", float, positive, "end-to-end deadline of one /mcp or /a2a call"),
    NodeKey("stream_timeout_secs", float, positive, "time our router / A2A server may take for a remote caller"),
    NodeKey("recv_queue_max_messages", int, positive, "most messages held for /recv (then senders are paused)"),
    NodeKey("recv_queue_max_bytes", int, size32, "most payload bytes held for /recv (then senders are paused)"),
    NodeKey("recv_wait_max_secs", float, positive, "longest /recv?wait=S long-poll"),
    NodeKey("mcp_session_ttl_secs", float, positive, "an unused /mcp session expires after this long"),
    NodeKey("max_handshakes_per_source", int, positive, "inbound peer handshakes at once from one address"),
    NodeKey("max_inbound_per_source", int, positive, "inbound peer links (handshaking or up) from one address"),
    NodeKey("max_inbound_per_key", int, positive, "inbound peer links up at once with one public key"),
    NodeKey("link_write_buffer_bytes", int, size32, "bytes a peer link queues while the peer does not read"),
    NodeKey("link_write_budget_bytes", int, size32, "bytes all peer links together queue for peers not reading"),
    NodeKey("max_inbound_links", int, positive, "inbound peer links up at once in all"),
    NodeKey("bridge_header_timeout_secs", float, positive, "time a bridge client has to send a whole request head"),
    NodeKey("bridge_body_timeout_secs", float, positive, "time a bridge client has to send a whole request body"),
    NodeKey("bridge_max_connections", int, positive, "simultaneous bridge connections (then 503)"),
    NodeKey("bridge_max_requests", int, positive, "bridge requests handled at once (then 503)"),
    NodeKey("bridge_max_background", int, positive, "background /mcp forwards at once (then 503)"),
    NodeKey("bridge_max_inflight_bytes", int, size32, "message bytes the bridge is delivering at once (then 503)"),
    NodeKey("mcp_allowed_peers", list, lambda v: _allowed_keys(list(v)), "peers allowed to call our MCP services"),
    NodeKey("a2a_allowed_peers", list, lambda v: _allowed_keys(list(v)), "peers allowed to call our A2A server"),
    NodeKey("socks", str, parse_socks, "SOCKS5 proxy to the mesh: [USER:PASS@][HOST:]PORT; empty = off"),
    NodeKey("local_tcp", list, lambda v: parse_list(v, lambda s: parse_local(s, "tcp")),
            "[BIND:]LPORT:REMOTE:RPORT forwards from here to the mesh"),
    NodeKey("remote_tcp", list, lambda v: parse_list(v, lambda s: parse_remote(s, "tcp")),
            "OPORT:HOST:PORT forwards from our overlay port to a local service"),
    NodeKey("local_udp", list, lambda v: parse_list(v, lambda s: parse_local(s, "udp")),
            "UDP forwards from here to the mesh"),
    NodeKey("remote_udp", list, lambda v: parse_list(v, lambda s: parse_remote(s, "udp")),
            "UDP forwards from our overlay port to a local service"),
)


# ---------------------------------------------------------------------------------------------
# The config object.


@dataclass(frozen=True)
class MulticastInterface:
    """
    One C{MulticastInterfaces} entry (spec/yggdrasil-extras.md section 7.1).

    @ivar regex: searched (unanchored) in interface names.
    @ivar beacon: run a TLS listener on the interface and send beacons.
    @ivar listen: accept beacons and dial their senders.
    @ivar port: TCP port of the beacon listener (0: ephemeral).
    @ivar priority: link priority of multicast links on the interface.
    @ivar password: keys the beacon hash and the links' meta (at most 64 bytes).
    """

    regex: str = ".*"
    beacon: bool = True
    listen: bool = True
    port: int = 0
    priority: int = 0
    password: str = ""


@dataclass(frozen=True)
class NodeConfig:
    """
    Everything the node was configured with. Build it with L{load_config}, L{default_config} or
    L{config_from_dict}; change it with C{dataclasses.replace}.

    @ivar source: the config file's path, or C{"<default>"} for the embedded default.
    @ivar private_key_path: absolute path of the PEM key file (C{PrivateKeyPath}), or None.
    @ivar private_key: Yggdrasil's 64-byte private key (C{PrivateKey}), or None.
    @ivar peers: outbound peer URIs (C{Peers}).
    @ivar listen: listen URIs (C{Listen}, plus C{--listen} in front).
    @ivar allowed_public_keys: 32-byte keys from C{AllowedPublicKeys}.
    @ivar node_info: the C{NodeInfo} object.
    @ivar multicast_interfaces: the C{MulticastInterfaces} entries (none: no LAN discovery).
    @ivar admin_listen: C{AdminListen}: C{unix:///path}, C{tcp://host:port}, or "" (off).
    @ivar warnings: things worth telling the operator (unknown or ignored keys, a public bridge).
    """

    source: str = DEFAULT_SOURCE
    # Yggdrasil's keys.
    private_key_path: str | None = None
    private_key: bytes | None = field(default=None, repr=False)
    peers: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    allowed_public_keys: tuple[bytes, ...] = ()
    node_info: dict[str, Any] = field(default_factory=dict, hash=False)
    multicast_interfaces: tuple[MulticastInterface, ...] = ()
    admin_listen: str = ""
    # The node's keys (one NodeKey each in NODE_KEYS).
    api_port: int = 9002
    log_level: str = "info"
    bridge_addr: str = "127.0.0.1"
    tcp_port: int = 7000
    router_addr: str = ""
    router_port: int = 9003
    a2a_addr: str = ""
    a2a_port: int = 9004
    max_message_size: int = 16 * 1024 * 1024
    max_concurrent_conns: int = 128
    conn_read_timeout_secs: float = 60.0
    conn_idle_timeout_secs: float = 300.0
    peer_max_backoff_secs: float = 60.0
    connect_timeout_secs: float = 10.0
    tcp_rcv_budget_bytes: int = 8 * 1024 * 1024
    max_conns_per_peer: int = 32
    send_idle_close_secs: float = 5.0
    send_timeout_secs: float = 30.0
    request_timeout_secs: float = 30.0
    stream_timeout_secs: float = 25.0
    recv_queue_max_messages: int = 1000
    recv_queue_max_bytes: int = 16 * 1024 * 1024
    recv_wait_max_secs: float = 60.0
    mcp_session_ttl_secs: float = 3600.0
    max_handshakes_per_source: int = 8
    max_inbound_per_source: int = 32
    max_inbound_per_key: int = 8
    link_write_buffer_bytes: int = 1024 * 1024
    link_write_budget_bytes: int = 2 * 1024 * 1024
    max_inbound_links: int = 24
    bridge_header_timeout_secs: float = 10.0
    bridge_body_timeout_secs: float = 60.0
    bridge_max_connections: int = 64
    bridge_max_requests: int = 32
    bridge_max_background: int = 256
    bridge_max_inflight_bytes: int = 16 * 1024 * 1024
    mcp_allowed_peers: tuple[bytes, ...] = ()
    a2a_allowed_peers: tuple[bytes, ...] = ()
    socks: SocksSpec | None = None
    local_tcp: tuple[LocalForwardSpec, ...] = ()
    remote_tcp: tuple[RemoteForwardSpec, ...] = ()
    local_udp: tuple[LocalForwardSpec, ...] = ()
    remote_udp: tuple[RemoteForwardSpec, ...] = ()
    # Not from the file.
    warnings: tuple[str, ...] = field(default=(), compare=False)


_FIELD_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(NodeConfig) if f.default is not MISSING
}


def _check_table() -> None:
    # Catch a key added to one place but not the other at import time, not in production.
    for key in NODE_KEYS:
        if key.name not in _FIELD_DEFAULTS:
            raise RuntimeError(f"NodeKey {key.name!r} has no NodeConfig field with a default")
        if key.name != key.name.lower():
            raise RuntimeError(f"NodeKey {key.name!r} must be lower-case")
        if key.kind not in (int, float, str, bool, list):
            raise RuntimeError(f"NodeKey {key.name!r} has an unsupported kind {key.kind!r}")


_check_table()

# ---------------------------------------------------------------------------------------------
# Yggdrasil's keys.

#: Yggdrasil keys axl accepts but does not act on (no TUN).
YGGDRASIL_IGNORED_KEYS = (
    "InterfacePeers",
    "IfName",
    "IfMTU",
    "NodeInfoPrivacy",
    "LogLookups",
)

_HEX = re.compile(r"^[0-9a-fA-F]*$")


def _hex_bytes(value: str, length: int, what: str) -> bytes:
    if not _HEX.match(value) or len(value) != 2 * length:
        raise ValueError(f"must be {2 * length} hex digits ({what}), got {len(value)} characters")
    return bytes.fromhex(value)


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a list of strings, got {_json_type(value)}")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"must be a list of strings, found {_json_type(item)} {item!r}")
    return value


def _uri_list(value: Any) -> tuple[str, ...]:
    uris = _string_list(value)
    for uri in uris:
        scheme, sep, rest = uri.partition("://")
        if not sep or not scheme or not rest:
            raise ValueError(f"{uri!r} is not a URI such as tls://host:port")
    return tuple(uris)


def _private_key_path(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be a file path string, got {_json_type(value)}")
    return os.path.abspath(value)


def _private_key(value: Any) -> bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be a hex string, got {_json_type(value)}")
    return _hex_bytes(value, 64, "32-byte seed then 32-byte public key")


def _allowed_keys(value: Any) -> tuple[bytes, ...]:
    return tuple(_hex_bytes(k, 32, "an ed25519 public key") for k in _string_list(value))


_MULTICAST_FIELDS = {"regex": "Regex", "beacon": "Beacon", "listen": "Listen", "port": "Port",
                     "priority": "Priority", "password": "Password"}  # fmt: skip


def _multicast_interfaces(value: Any) -> tuple[MulticastInterface, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"must be a list of objects, got {_json_type(value)}")
    out = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"entry {n} must be an object, got {_json_type(item)}")
        given = {k.lower(): v for k, v in item.items()}
        unknown = sorted(set(given) - set(_MULTICAST_FIELDS))
        if unknown:
            raise ValueError(f"entry {n} has unknown field(s) {', '.join(unknown)}")
        entry = MulticastInterface()
        values: dict[str, Any] = {}
        for name, label in _MULTICAST_FIELDS.items():
            v = given.get(name, getattr(entry, name))
            kind = type(getattr(entry, name))
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise ValueError(f"entry {n}: {label} must be {_KIND_NAMES[kind]}, got {_json_type(v)}")
            values[name] = v
        try:
            re.compile(values["regex"])
        except re.error as e:
            raise ValueError(f"entry {n}: Regex {values['regex']!r} is invalid ({e})") from None
        if not 0 <= values["port"] <= 65535:
            raise ValueError(f"entry {n}: Port must be 0..65535")
        if not 0 <= values["priority"] <= 255:
            raise ValueError(f"entry {n}: Priority must be 0..255")
        if len(values["password"].encode()) > 64:
            raise ValueError(f"entry {n}: Password is longer than 64 bytes")
        out.append(MulticastInterface(**values))
    return tuple(out)


def _node_info(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {_json_type(value)}")
    return value


def _admin_listen(value: Any) -> str:
    """The string; its form is checked where the admin socket is built (L{axl.admin})."""
    if value is None or value == "none":
        return ""
    if not isinstance(value, str):
        raise ValueError(f"must be a string such as tcp://127.0.0.1:9001, got {_json_type(value)}")
    return value.strip()


#: JSON key -> (NodeConfig field, parser) for the Yggdrasil keys axl uses.
_YGGDRASIL_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "PrivateKeyPath": ("private_key_path", _private_key_path),
    "PrivateKey": ("private_key", _private_key),
    "Peers": ("peers", _uri_list),
    "Listen": ("listen", _uri_list),
    "AllowedPublicKeys": ("allowed_public_keys", _allowed_keys),
    "NodeInfo": ("node_info", _node_info),
    "MulticastInterfaces": ("multicast_interfaces", _multicast_interfaces),
    "AdminListen": ("admin_listen", _admin_listen),
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_empty(value: Any) -> bool:
    return value in (None, "", 0, False, [], {}, "none")


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean", list: "a list"}


def _node_value(key: NodeKey, value: Any) -> Any:
    default = _FIELD_DEFAULTS[key.name]
    if value is None:
        return default
    kind = key.kind
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ValueError(f"must be {_KIND_NAMES[kind]}, got {_json_type(value)} {json.dumps(value)}")
    if key.zero_is_default and kind in (int, float, str) and not value:
        return default
    if kind is list:
        value = tuple(value)
    return key.check(value) if key.check is not None else value


# ---------------------------------------------------------------------------------------------
# Entry points.

_NODE_KEYS_BY_LOWER = {k.name: k for k in NODE_KEYS}
_YGG_BY_LOWER = {k.lower(): k for k in _YGGDRASIL_KEYS}
_IGNORED_BY_LOWER = {k.lower(): k for k in YGGDRASIL_IGNORED_KEYS}


def config_from_dict(data: Mapping[str, Any], source: str = DEFAULT_SOURCE) -> NodeConfig:
    """
    Validate a decoded config object.

    @param source: the file it came from, for messages.
    @raise ConfigError: a value has the wrong type or range; the message names C{source} and the key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a JSON object, got {_json_type(data)}")
    values: dict[str, Any] = {}
    warnings: list[str] = []
    seen: dict[str, str] = {}
    for raw_key, value in data.items():
        lower = raw_key.lower()
        if lower in seen:
            raise ConfigError(f"{source}: keys {seen[lower]!r} and {raw_key!r} name the same setting")
        seen[lower] = raw_key
        try:
            if lower in _NODE_KEYS_BY_LOWER:
                key = _NODE_KEYS_BY_LOWER[lower]
                values[key.name] = _node_value(key, value)
            elif lower in _YGG_BY_LOWER:
                name, parse = _YGGDRASIL_KEYS[_YGG_BY_LOWER[lower]]
                values[name] = parse(value)
            elif lower in _IGNORED_BY_LOWER:
                if not _is_empty(value):
                    warnings.append(
                        f"{source}: key {raw_key!r} is a Yggdrasil setting axl ignores "
                        "(no TUN)"
                    )
            else:
                warnings.append(f"{source}: unknown key {raw_key!r} ignored")
        except ValueError as e:
            raise ConfigError(f"{source}: key {raw_key!r} {e}") from None
    bridge = values.get("bridge_addr", _FIELD_DEFAULTS["bridge_addr"])
    if not is_loopback_host(bridge):
        warnings.append(
            f"{source}: bridge_addr {bridge!r} is not loopback: anyone who can reach it can send, "
            "receive and call services as this node (the bridge has no authentication)"
        )
    return NodeConfig(source=source, warnings=tuple(warnings), **values)


def default_config() -> NodeConfig:
    """The embedded default: ephemeral key, no peers, no listeners, bridge on 127.0.0.1:9002."""
    return NodeConfig()


def add_listeners(config: NodeConfig, uris: list[str] | tuple[str, ...]) -> NodeConfig:
    """
    The config with extra listen URIs in front of C{Listen} (AXL's C{-listen} adds, it does not
    replace).

    @raise ConfigError: a URI is malformed.
    """
    try:
        extra = _uri_list(list(uris))
    except ValueError as e:
        raise ConfigError(f"--listen {e}") from None
    return replace(config, listen=extra + config.listen)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(Exception):
    pass


_COMMENT = re.compile(r"^\s*(#|//|/\*)", re.MULTILINE)


def load_config(path: str) -> NodeConfig:
    """
    Read and validate a config file.

    @raise ConfigError: the file is missing or unreadable, is not JSON (the message gives line
        and column), or a value is wrong (the message names the key).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: config file is not UTF-8 text (offset {e.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        hint = ""
        if _COMMENT.search(text):
            hint = " (comments are not allowed: the file must be plain JSON, not HJSON)"
        raise ConfigError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}{hint}"
        ) from None
    except _DuplicateKey as e:
        raise ConfigError(f"{path}: key {e.args[0]!r} appears twice") from None
    except ValueError as e:
        raise ConfigError(f"{path}: invalid JSON: {e}") from None
    return config_from_dict(data, source=path)
