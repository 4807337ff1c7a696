# -*- test-case-name: tests.test_link_uri -*-
"""
Peer and listen URIs (spec/yggdrasil-wire.md sections 2.1-2.2, spec/yggdrasil-extras.md section 2).

C{tls://host:port}, C{tcp://host:port} (IPv4 literal, C{[IPv6]} literal or host name),
C{unix:///path}, C{quic://host:port}, C{ws://host:port/path}, C{wss://host:port/path} (dial
only), C{socks://[user[:pass]@]proxy:port/target:port} and C{sockstls://...} (dial only), with the
query options of extras section 2.2: C{key=} (dial, may repeat), C{priority=}, C{password=},
C{maxbackoff=} (dial), C{sni=} (dial; tls and sockstls use it, quic and wss ignore it) and
C{origin=} (ws listen, may repeat). Everything wrong is a L{ConfigError} naming the URI.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from axl.errors import ConfigError
from axl.link.meta import MAX_PASSWORD_LEN

__all__ = [
    "SCHEMES",
    "MIN_MAX_BACKOFF",
    "PeerURI",
    "parse_peer_uri",
    "parse_listen_uri",
    "parse_go_duration",
    "inbound_uri",
    "redact_uri",
]

SCHEMES = ("tcp", "tls", "unix", "quic", "ws", "wss", "socks", "sockstls")
# Yggdrasil v0.5.14's floor for maxbackoff= (v0.5.12 had 30 s).
MIN_MAX_BACKOFF = 5.0
# Schemes that cannot listen, with Yggdrasil's reason (extras 2.3, 4.4, 5).
_DIAL_ONLY = {
    "wss": "WSS listener not supported, use WS listener behind reverse proxy instead",
    "socks": "a SOCKS proxy can only be dialled through, not listened on",
    "sockstls": "a SOCKS proxy can only be dialled through, not listened on",
}
# WebSocket dials may leave the port out, as in any ws/wss URL.
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
# Options that only some transports use; elsewhere they are reported as ignored.
_SNI_SCHEMES = ("tls", "sockstls")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip


@dataclass(frozen=True)
class PeerURI:
    """
    A parsed peer or listen URI.

    @ivar text: the URI as configured.
    @ivar link_uri: the URI without its query: the link's identity, shown in C{/topology}.
    @ivar host: host name or IP literal (no brackets; may carry a C{%zone}); "" for unix and for
        "any address" listeners.
    @ivar keys: pinned remote keys (C{key=}); empty means any.
    @ivar max_backoff: C{maxbackoff=} in seconds, or None for the node's default.
    @ivar ignored: query options we do not use (for a warning).
    @ivar path: the socket path (unix) or the HTTP path (ws, wss; "" means C{/}).
    @ivar query: the raw query string (ws and wss send it in their request line).
    @ivar target_host: the host the SOCKS proxy is asked to reach (socks, sockstls).
    @ivar target_port: the port the SOCKS proxy is asked to reach.
    @ivar proxy_user: the SOCKS user name (RFC 1929), or None for no authentication.
    @ivar proxy_password: the SOCKS password ("" when only a user is given).
    @ivar origins: C{origin=} patterns a ws listener accepts besides its own host.
    """

    text: str
    scheme: str
    host: str
    port: int
    path: str = ""
    keys: frozenset[bytes] = frozenset()
    priority: int = 0
    password: bytes = b""
    max_backoff: float | None = None
    sni: str | None = None
    ignored: tuple[str, ...] = field(default=())
    query: str = ""
    target_host: str = ""
    target_port: int = 0
    proxy_user: str | None = None
    proxy_password: str = ""
    origins: tuple[str, ...] = ()

    @property
    def link_uri(self) -> str:
        """
        The URI without its query and fragment: how the peer table and C{removePeer} name a
        peer.
        """
        return self.text.split("?", 1)[0].split("#", 1)[0]

    @property
    def host_is_ip(self) -> bool:
        """Whether the host is an IP address (with or without a zone), not a name."""
        try:
            ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            return False
        return True

    @property
    def is_ipv6(self) -> bool:
        """Whether the host is an IPv6 address."""
        return ":" in self.host


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as C{30s}, C{1h8m16s} or C{1.5h}; raise ValueError."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


def _err(text: str, why: str) -> ConfigError:
    return ConfigError(f"peer URI {text!r}: {why}")


def _split_host_port(text: str, spec: str) -> tuple[str, int]:
    """C{host:port} or C{[v6]:port} (the SOCKS target); raise L{ConfigError}."""
    try:
        parts = urlsplit("//" + spec)
        port = parts.port
    except ValueError as e:
        raise _err(text, f"bad SOCKS target {spec!r} ({e})") from None
    host = unquote(parts.hostname or "")
    if not host or not port or parts.path or parts.username is not None:
        raise _err(text, f"the SOCKS target must be host:port, not {spec!r}")
    return host, port


def _parse(text: str, listen: bool) -> PeerURI:
    if not isinstance(text, str) or not text:
        raise _err(str(text), "must be a non-empty string")
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise _err(text, str(e)) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _err(text, f"unknown scheme {scheme!r} (expected one of "
                         f"{', '.join(s + '://' for s in SCHEMES)})")  # fmt: skip
    if listen and scheme in _DIAL_ONLY:
        raise _err(text, _DIAL_ONLY[scheme])
    host, port, path = "", 0, ""
    target_host, target_port, proxy_user, proxy_password = "", 0, None, ""
    if scheme == "unix":
        path = unquote(parts.path)
        if parts.netloc or not path:
            raise _err(text, "a unix URI is unix:///absolute/path")
    else:
        try:
            parsed_port = parts.port
        except ValueError as e:
            raise _err(text, f"bad port ({e})") from None
        host = unquote(parts.hostname or "")
        if parsed_port is None and not listen and scheme in _DEFAULT_PORTS:
            parsed_port = _DEFAULT_PORTS[scheme]
        if parsed_port is None:
            raise _err(text, "a port is required (scheme://host:port)")
        port = parsed_port
        if scheme in ("socks", "sockstls"):
            target = parts.path.strip("/").split("/", 1)[0]
            if not target:
                raise _err(text, f"a {scheme} URI is {scheme}://proxy:port/target:port")
            target_host, target_port = _split_host_port(text, target)
            if parts.username is not None:
                proxy_user = unquote(parts.username)
                proxy_password = unquote(parts.password or "")
                if len(proxy_user.encode()) > 255 or len(proxy_password.encode()) > 255:
                    raise _err(text, "SOCKS user name and password are at most 255 bytes each")
        elif scheme in ("ws", "wss"):
            path = parts.path
        elif parts.path not in ("", "/"):
            raise _err(text, f"unexpected path {parts.path!r}")
        if listen:
            if host:
                try:
                    ipaddress.ip_address(host.split("%", 1)[0])
                except ValueError:
                    raise _err(text, "a listen address must be an IP literal") from None
        else:
            if not host:
                raise _err(text, "a host is required")
            if port == 0:
                raise _err(text, "port 0 cannot be dialled")
    keys: set[bytes] = set()
    priority, password, max_backoff, sni = 0, b"", None, None
    origins: list[str] = []
    ignored: list[str] = []
    try:
        options = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError as e:
        raise _err(text, f"bad query ({e})") from None
    for name, value in options:
        if name == "key" and not listen:
            try:
                key = bytes.fromhex(value)
            except ValueError:
                key = b""
            if len(key) != 32:
                raise _err(text, "key= must be 64 hex digits")
            keys.add(key)
        elif name == "priority":
            if not value.isdigit() or int(value) > 255:
                raise _err(text, f"priority= must be 0..255, not {value!r}")
            priority = int(value)
        elif name == "password":
            password = value.encode("utf-8")
            if len(password) > MAX_PASSWORD_LEN:
                raise _err(text, f"password= is longer than {MAX_PASSWORD_LEN} bytes")
        elif name == "maxbackoff" and not listen:
            try:
                max_backoff = parse_go_duration(value)
            except ValueError:
                raise _err(text, f"maxbackoff= is not a duration: {value!r}") from None
            if max_backoff < MIN_MAX_BACKOFF:
                raise _err(text, f"maxbackoff= must be at least {MIN_MAX_BACKOFF:g}s")
        elif name == "sni" and not listen and scheme in _SNI_SCHEMES:
            sni = value or None
        elif name == "origin" and listen and scheme == "ws":
            origins.append(value)
        else:
            ignored.append(name)
    return PeerURI(
        text=text,
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        keys=frozenset(keys),
        priority=priority,
        password=password,
        max_backoff=max_backoff,
        sni=sni,
        ignored=tuple(ignored),
        query=parts.query,
        target_host=target_host,
        target_port=target_port,
        proxy_user=proxy_user,
        proxy_password=proxy_password,
        origins=tuple(origins),
    )


def parse_peer_uri(text: str) -> PeerURI:
    """Parse a C{Peers} entry; raise L{ConfigError} with the reason."""
    return _parse(text, listen=False)


def parse_listen_uri(text: str) -> PeerURI:
    """Parse a C{Listen} entry (or C{--listen}); raise L{ConfigError} with the reason."""
    return _parse(text, listen=True)


def redact_uri(text: str) -> str:
    """C{text} for logs: a password in its userinfo (SOCKS proxies) becomes C{***}."""
    scheme, sep, rest = text.partition("://")
    userinfo, at, tail = rest.partition("@")
    if not sep or not at or ":" not in userinfo or "/" in userinfo:
        return text
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{tail}"


def inbound_uri(scheme: str, host: str, port: int) -> str:
    """The URI of an inbound link: the listener's scheme with the remote address."""
    if scheme == "unix":
        return "unix://" + host
    if ":" in host:
        return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{host}:{port}"
