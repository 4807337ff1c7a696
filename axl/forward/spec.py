# -*- test-case-name: tests.test_forward_spec -*-
"""
The forward specs of the C{socks}, C{local_tcp}, C{remote_tcp}, C{local_udp} and C{remote_udp}
config keys (and their twistd options), parsed into frozen values. Pure: no Twisted, and no
other axl module (it sits at the base level beside L{axl.config}, which reads the keys with it).

Syntax (README "Forwards and the SOCKS proxy")::

    socks       [USER:PASS@][HOST:]PORT | unix:/path          (HOST defaults to 127.0.0.1)
    local_tcp   [BIND:]LPORT:REMOTE:RPORT | unix:/path:REMOTE:RPORT
    remote_tcp  OPORT:HOST:PORT | OPORT:unix:/path
    local_udp   [BIND:]LPORT:REMOTE:RPORT
    remote_udp  OPORT:HOST:PORT

REMOTE is C{[ipv6]} (an address in 200::/7; one in a node's 300::/64 names that node) or
C{<64 hex>.pk.ygg}. Every spec may end in C{?name=value&...} options: C{max_conns=N} (for UDP:
flows), C{idle=SECONDS}, and for C{remote_tcp} C{proxy=v2}. Every error is a C{ValueError}
whose message quotes the bad spec.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "HostPort",
    "UnixPath",
    "OverlayTarget",
    "SocksSpec",
    "LocalForwardSpec",
    "RemoteForwardSpec",
    "parse_overlay_host",
    "HOSTNAME",
    "ip_or_hostname",
    "parse_socks",
    "parse_local",
    "parse_remote",
    "parse_list",
    "option_changes",
    "FORWARD_KEYS",
    "DEFAULT_MAX_CONNS",
    "DEFAULT_TCP_IDLE",
    "DEFAULT_UDP_IDLE",
    "DEFAULT_MAX_FLOWS",
]

DEFAULT_MAX_CONNS = 128
"""Simultaneous connections per TCP forward or SOCKS proxy unless C{?max_conns=} says otherwise."""
DEFAULT_TCP_IDLE = 900.0
"""Seconds a forwarded TCP connection may carry no byte either way before it is closed."""
DEFAULT_MAX_FLOWS = 256
"""Simultaneous UDP flows per UDP forward."""
DEFAULT_UDP_IDLE = 60.0
"""Seconds a UDP flow may carry no datagram before it is forgotten."""

_T = TypeVar("_T")
_YGGDRASIL = ipaddress.IPv6Network("200::/7")
HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")
"""A DNS host name (labels of letters, digits and inner hyphens), as config values accept it."""
_KEY_NAME = re.compile(r"^([0-9a-fA-F]{64})\.pk\.ygg\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


@dataclass(frozen=True)
class HostPort:
    """A kernel socket address: an IP literal (no brackets) or a host name, and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixPath:
    """A unix socket path."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class OverlayTarget:
    """
    Where on the mesh: a node's full key (from C{<key>.pk.ygg}) or a 16-byte address in
    200::/7 (the key behind it is looked up), and a port.
    """

    key: bytes | None
    address: bytes | None
    port: int

    def __str__(self) -> str:
        if self.key is not None:
            return f"{self.key.hex()[:8]}….pk.ygg:{self.port}"
        assert self.address is not None
        return f"[{ipaddress.IPv6Address(self.address)}]:{self.port}"


@dataclass(frozen=True)
class SocksSpec:
    """The SOCKS5 proxy: where it listens, optional RFC 1929 credentials, caps."""

    listen: HostPort | UnixPath
    username: bytes | None = field(default=None, repr=False)
    password: bytes | None = field(default=None, repr=False)
    max_conns: int = DEFAULT_MAX_CONNS
    idle: float = DEFAULT_TCP_IDLE

    def __str__(self) -> str:
        return f"socks {self.listen}"


@dataclass(frozen=True)
class LocalForwardSpec:
    """C{local_tcp}/C{local_udp}: listen locally, forward to C{remote} over the overlay."""

    proto: str
    listen: HostPort | UnixPath
    remote: OverlayTarget
    max_conns: int
    idle: float

    def __str__(self) -> str:
        return f"local_{self.proto} {self.listen} -> {self.remote}"


@dataclass(frozen=True)
class RemoteForwardSpec:
    """C{remote_tcp}/C{remote_udp}: overlay port C{overlay_port} of this node -> C{target}."""

    proto: str
    overlay_port: int
    target: HostPort | UnixPath
    max_conns: int
    idle: float
    proxy_v2: bool = False

    def __str__(self) -> str:
        return f"remote_{self.proto} overlay port {self.overlay_port} -> {self.target}"


class _Bad(ValueError):
    pass


def _port(text: str, what: str, allow_zero: bool = False) -> int:
    if not _PORT.match(text):
        raise _Bad(f"{what} {text!r} is not a port number")
    value = int(text)
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise _Bad(f"{what} {value} is out of range 1-65535")
    return value


def parse_overlay_host(text: str) -> tuple[bytes | None, bytes | None]:
    """
    A mesh host as C{(key, None)} for C{<64 hex>.pk.ygg} or C{(None, address)} for an IPv6
    literal in 200::/7 (brackets optional).

    @raise ValueError: anything else (the message says why).
    """
    m = _KEY_NAME.match(text)
    if m:
        return bytes.fromhex(m.group(1)), None
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an [ipv6] address in 200::/7 nor a <64 hex key>.pk.ygg name"
        ) from None
    if ip.version != 6 or ip not in _YGGDRASIL:
        raise ValueError(f"{text!r} is not a Yggdrasil address (200::/7)")
    return None, ip.packed


def _split_options(spec: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    body, sep, query = spec.partition("?")
    options: dict[str, str] = {}
    if sep:
        for item in query.split("&"):
            name, eq, value = item.partition("=")
            if not eq or not name or not value:
                raise _Bad(f"option {item!r} is not name=value")
            if name not in allowed:
                raise _Bad(f"unknown option {name!r} (allowed here: {', '.join(allowed)})")
            if name in options:
                raise _Bad(f"option {name!r} given twice")
            options[name] = value
    return body, options


def _limits(options: dict[str, str], max_conns: int, idle: float) -> tuple[int, float]:
    if "max_conns" in options:
        text = options["max_conns"]
        if not text.isdigit() or int(text) < 1:
            raise _Bad(f"max_conns={text!r} must be a whole number greater than 0")
        max_conns = int(text)
    if "idle" in options:
        text = options["idle"]
        try:
            idle = float(text)
        except ValueError:
            raise _Bad(f"idle={text!r} must be a number of seconds") from None
        if not idle > 0 or idle != idle or idle == float("inf"):
            raise _Bad(f"idle={text!r} must be greater than 0")
    return max_conns, idle


def _split_host_port(text: str, what: str) -> tuple[str, str]:
    """C{host:port} or C{[v6]:port} -> (host without brackets, port text)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise _Bad(f"{what} {text!r} must be [ipv6]:port")
        return text[1:end], text[end + 2 :]
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise _Bad(f"{what} {text!r} must be host:port")
    if ":" in host:
        raise _Bad(f"{what} {text!r}: put an IPv6 address in brackets, [addr]:port")
    return host, port


def _bind_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise _Bad(f"bind address {host!r} must be an IPv4 or [IPv6] literal or localhost") from None


def ip_or_hostname(host: str) -> str | None:
    """C{host} as a normalised IP literal, or unchanged if it is a host name; else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return host if HOSTNAME.match(host) and len(host) <= 253 else None


def _target_host(host: str) -> str:
    checked = ip_or_hostname(host)
    if checked is None:
        raise _Bad(f"host {host!r} is not an IP address or a host name")
    return checked


def _udp_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise _Bad(f"a UDP target must be an IP literal or localhost, got {host!r}") from None


def _unix(text: str) -> UnixPath:
    path = text[len("unix:") :]
    if not path:
        raise _Bad("unix: needs a socket path, e.g. unix:/run/app.sock")
    if "\x00" in path:
        raise _Bad("a unix socket path may not contain NUL")
    return UnixPath(path)


def _local_listen(text: str, proto: str) -> HostPort | UnixPath:
    if text.startswith("unix:"):
        if proto != "tcp":
            raise _Bad("unix sockets are supported by TCP forwards only")
        return _unix(text)
    if _PORT.match(text):
        return HostPort("127.0.0.1", _port(text, "local port", allow_zero=True))
    host, port = _split_host_port(text, "listen address")
    return HostPort(_bind_host(host), _port(port, "local port", allow_zero=True))


def _error(spec: str, e: ValueError) -> ValueError:
    return ValueError(f"{spec!r}: {e}")


def parse_socks(spec: str) -> SocksSpec:
    """Parse a C{socks} value. @raise ValueError: naming C{spec}."""
    try:
        body, options = _split_options(spec, ("max_conns", "idle"))
        max_conns, idle = _limits(options, DEFAULT_MAX_CONNS, DEFAULT_TCP_IDLE)
        username = password = None
        creds, at, rest = body.rpartition("@")
        if at:
            user, colon, pw = creds.partition(":")
            if not colon or not user or not pw:
                raise _Bad("credentials must be USER:PASSWORD@ (both non-empty)")
            username, password = user.encode(), pw.encode()
            if len(username) > 255 or len(password) > 255:
                raise _Bad("RFC 1929 user names and passwords are at most 255 bytes")
            body = rest
        if not body:
            raise _Bad("needs [HOST:]PORT or unix:/path")
        return SocksSpec(_local_listen(body, "tcp"), username, password, max_conns, idle)
    except ValueError as e:
        raise _error(_redact(spec), e) from None


def _redact(spec: str) -> str:
    """C{spec} with the password replaced by C{***} (for error messages)."""
    creds, at, rest = spec.rpartition("@")
    return f"{creds.partition(':')[0]}:***@{rest}" if at else spec


def parse_local(spec: str, proto: str) -> LocalForwardSpec:
    """
    Parse a C{local_tcp}/C{local_udp} value (C{proto} is C{"tcp"} or C{"udp"}).

    @raise ValueError: naming C{spec}.
    """
    try:
        body, options = _split_options(spec, ("max_conns", "idle"))
        default_idle = DEFAULT_TCP_IDLE if proto == "tcp" else DEFAULT_UDP_IDLE
        default_cap = DEFAULT_MAX_CONNS if proto == "tcp" else DEFAULT_MAX_FLOWS
        max_conns, idle = _limits(options, default_cap, default_idle)
        head, sep, rport = body.rpartition(":")
        if not sep:
            raise _Bad("must be [BIND:]LPORT:REMOTE:RPORT")
        port = _port(rport, "remote port")
        if head.endswith("]"):
            start = head.rfind("[")
            if start < 0:
                raise _Bad("unbalanced ] in the remote address")
            remote_text, listen_text = head[start:], head[:start]
        else:
            listen_text, _, remote_text = head.rpartition(":")
            listen_text += ":" if listen_text else ""
        if not listen_text.endswith(":") or len(listen_text) < 2:
            raise _Bad("must be [BIND:]LPORT:REMOTE:RPORT (the local port is missing)")
        remote_key, remote_addr = parse_overlay_host(remote_text)
        listen = _local_listen(listen_text[:-1], proto)
        return LocalForwardSpec(
            proto, listen, OverlayTarget(remote_key, remote_addr, port), max_conns, idle
        )
    except ValueError as e:
        raise _error(spec, e) from None


def parse_remote(spec: str, proto: str) -> RemoteForwardSpec:
    """
    Parse a C{remote_tcp}/C{remote_udp} value (C{proto} is C{"tcp"} or C{"udp"}).

    @raise ValueError: naming C{spec}.
    """
    try:
        allowed = ("max_conns", "idle", "proxy") if proto == "tcp" else ("max_conns", "idle")
        body, options = _split_options(spec, allowed)
        default_idle = DEFAULT_TCP_IDLE if proto == "tcp" else DEFAULT_UDP_IDLE
        default_cap = DEFAULT_MAX_CONNS if proto == "tcp" else DEFAULT_MAX_FLOWS
        max_conns, idle = _limits(options, default_cap, default_idle)
        proxy = options.get("proxy")
        if proxy is not None and proxy != "v2":
            raise _Bad(f"proxy={proxy!r}: only proxy=v2 is supported")
        oport, sep, rest = body.partition(":")
        if not sep or not rest:
            raise _Bad("must be OPORT:HOST:PORT or OPORT:unix:/path")
        overlay_port = _port(oport, "overlay port")
        target: HostPort | UnixPath
        if rest.startswith("unix:"):
            if proto != "tcp":
                raise _Bad("unix sockets are supported by TCP forwards only")
            target = _unix(rest)
        else:
            host, port = _split_host_port(rest, "target")
            if proto == "udp":
                host = _bind_host(host) if host == "localhost" else _udp_host(host)
            target = HostPort(_target_host(host), _port(port, "target port"))
        return RemoteForwardSpec(proto, overlay_port, target, max_conns, idle, proxy == "v2")
    except ValueError as e:
        raise _error(spec, e) from None


def parse_list(value: object, parse: Callable[[str], _T]) -> tuple[_T, ...]:
    """Parse a list of spec strings (a config value) with C{parse}. @raise ValueError."""
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of strings")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"must be a list of strings, found {item!r}")
        out.append(parse(item))
    return tuple(out)


#: config key -> (twistd option, parser of one spec)
FORWARD_KEYS: dict[str, tuple[str, Callable[[str], object]]] = {
    "local_tcp": ("--local-tcp", lambda s: parse_local(s, "tcp")),
    "remote_tcp": ("--remote-tcp", lambda s: parse_remote(s, "tcp")),
    "local_udp": ("--local-udp", lambda s: parse_local(s, "udp")),
    "remote_udp": ("--remote-udp", lambda s: parse_remote(s, "udp")),
}


def option_changes(config: Any, socks: str | None, lists: dict[str, list[str]]) -> dict[str, Any]:
    """
    The config fields the twistd options change: C{--socks} replaces C{socks}; each
    C{--local-tcp} etc. is added after the config's list (as C{--listen} adds listeners).

    @param lists: config key (C{local_tcp}, ...) -> the option's values.
    @raise ValueError: naming the option and the bad spec.
    """
    changes: dict[str, Any] = {}
    if socks:
        try:
            changes["socks"] = parse_socks(socks)
        except ValueError as e:
            raise ValueError(f"--socks {e}") from None
    for key, values in lists.items():
        option, parse = FORWARD_KEYS[key]
        if values:
            try:
                parsed = tuple(parse(v) for v in values)
            except ValueError as e:
                raise ValueError(f"{option} {e}") from None
            changes[key] = tuple(getattr(config, key)) + parsed
    return changes
