# -*- test-case-name: tests.test_link_uri -*-
"""
Peer and listen URIs (spec/yggdrasil-wire.md sections 2.1-2.2).

C{tls://host:port}, C{tcp://host:port} (IPv4 literal, C{[IPv6]} literal or host name) and
C{unix:///path}, with the query options C{key=} (dial, may repeat), C{priority=}, C{password=},
C{maxbackoff=} (dial) and C{sni=} (dial, TLS). Everything wrong is a L{ConfigError} naming the URI.
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
]

SCHEMES = ("tcp", "tls", "unix")
# Yggdrasil v0.5.14's floor for maxbackoff= (v0.5.12 had 30 s).
MIN_MAX_BACKOFF = 5.0
_GO_SCHEMES = ("quic", "ws", "wss", "socks", "sockstls")

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

    @property
    def link_uri(self) -> str:
        return self.text.split("?", 1)[0].split("#", 1)[0]

    @property
    def host_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            return False
        return True

    @property
    def is_ipv6(self) -> bool:
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


def _parse(text: str, listen: bool) -> PeerURI:
    if not isinstance(text, str) or not text:
        raise _err(str(text), "must be a non-empty string")
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise _err(text, str(e)) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        if scheme in _GO_SCHEMES:
            raise _err(text, f"scheme {scheme}:// is not supported by axl (use tls:// or tcp://)")
        raise _err(text, f"unknown scheme {scheme!r} (expected tls://, tcp:// or unix://)")
    host, port, path = "", 0, ""
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
        if parsed_port is None:
            raise _err(text, "a port is required (scheme://host:port)")
        port = parsed_port
        if parts.path not in ("", "/"):
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
        elif name == "sni" and not listen:
            sni = value or None
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
    )


def parse_peer_uri(text: str) -> PeerURI:
    """Parse a C{Peers} entry; raise L{ConfigError} with the reason."""
    return _parse(text, listen=False)


def parse_listen_uri(text: str) -> PeerURI:
    """Parse a C{Listen} entry (or C{--listen}); raise L{ConfigError} with the reason."""
    return _parse(text, listen=True)


def inbound_uri(scheme: str, host: str, port: int) -> str:
    """The URI of an inbound link: the listener's scheme with the remote address."""
    if scheme == "unix":
        return "unix://" + host
    if ":" in host:
        return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{host}:{port}"
