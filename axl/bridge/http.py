# -*- test-case-name: tests.test_bridge_messaging -*-
"""
The bridge's HTTP vocabulary (spec/axl-node.md section 5): peer ids in paths and headers, Go's
C{http.Error}-style text errors, sized JSON bodies, JSON-RPC errors, and the authority and
agent-card URLs of C{/a2a} (section 13: a remote card's relative interface URLs become ours).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from zope.interface import implementer

from axl.streams.envelope import dumps

__all__ = [
    "absolute_card_urls",
    "bridge_authority",
    "header",
    "json_response",
    "jsonrpc_error",
    "method_not_allowed",
    "parse_peer_id",
    "sized",
    "text_response",
]

_PEER_ID = re.compile(r"[0-9a-fA-F]{64}")

# A Host header we are willing to put into a URL: a bracketed IPv6 literal or a plain
# reg-name/IPv4 (RFC 3986 unreserved characters and %-escapes), with an optional port.
_HOST_HEADER = re.compile(r"(\[[0-9A-Za-z:.%_~-]+\]|[0-9A-Za-z._~%-]+)(:[0-9]{1,5})?")


def parse_peer_id(text: str | bytes | None) -> bytes | None:
    """A 64-hex-digit peer id (either case) as 32 bytes, or None if it is not one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if text is None or not _PEER_ID.fullmatch(text):
        return None
    return bytes.fromhex(text)


def bridge_authority(
    host_header: str | None, bridge_addr: str, api_port: int, local_host: str | None = None
) -> str:
    """
    The C{host:port} under which a client reached the bridge: its C{Host} header when that is a
    well-formed authority, else the configured C{bridge_addr:api_port} (or C{local_host}, the
    socket's own address, when C{bridge_addr} is a wildcard). IPv6 literals are bracketed.
    """
    if host_header is not None:
        host_header = host_header.strip()
        if _HOST_HEADER.fullmatch(host_header):
            return host_header
    host = bridge_addr
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified and local_host:
            host = local_host
    except ValueError:
        pass  # a host name
    if ":" in host:
        return f"[{host.replace('%', '%25')}]:{api_port}"
    return f"{host}:{api_port}"


def _is_relative_url(value: Any) -> bool:
    """True for a non-empty string with neither a scheme nor a host (e.g. C{/a2a/<key>})."""
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


def absolute_card_urls(card: dict[str, Any], url: str) -> dict[str, Any] | None:
    """
    A copy of an agent card whose relative interface URLs (C{supportedInterfaces[*].url}, the
    v0.3 top-level C{url} and C{additionalInterfaces[*].url}) are replaced by C{url}; None if
    there was none (the card is then served unchanged). Absolute URLs are left alone.
    """
    changed = False
    new = dict(card)
    if _is_relative_url(new.get("url")):
        new["url"] = url
        changed = True
    for field in ("supportedInterfaces", "additionalInterfaces"):
        interfaces = new.get(field)
        if not isinstance(interfaces, list):
            continue
        rewritten = []
        for interface in interfaces:
            if isinstance(interface, dict) and _is_relative_url(interface.get("url")):
                interface = {**interface, "url": url}
                changed = True
            rewritten.append(interface)
        new[field] = rewritten
    return new if changed else None


def sized(request: IRequest, body: bytes) -> bytes:
    """The body, with its Content-Length set (rather than chunked encoding)."""
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def text_response(request: IRequest, code: int, message: str) -> bytes:
    """An error response in Go's C{http.Error} style."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return sized(request, message.encode("utf-8") + b"\n")


def method_not_allowed(request: IRequest, allowed: bytes) -> bytes:
    """A 405 naming the C{allowed} methods in C{Allow}."""
    request.setHeader(b"Allow", allowed)
    return text_response(request, 405, "Method not allowed")


def json_response(request: IRequest, body: bytes, code: int = 200) -> bytes:
    """A JSON body with status C{code}, sized."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return sized(request, body)


def header(request: IRequest, name: bytes) -> str | None:
    """The request header C{name} as text, or None if absent."""
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def jsonrpc_error(request_id: Any, message: str) -> bytes:
    """A JSON-RPC 2.0 error reply (code -32603, internal error) to C{request_id}."""
    return (
        dumps(
            {
                "error": {"code": -32603, "message": message},
                "id": request_id,
                "jsonrpc": "2.0",
            }
        )
        + b"\n"
    )


@implementer(IResource)
class WrappedLeaf:
    """
    A leaf resource in front of the bridge's Klein resource C{inner} (also a leaf); subclasses
    decide in C{render} what to do before or instead of handing a request to C{inner}.
    """

    isLeaf = True

    def __init__(self, inner: IResource) -> None:
        self._inner = inner

    def getChildWithDefault(self, name: bytes, request: IRequest) -> IResource:
        child: IResource = self._inner.getChildWithDefault(name, request)
        return child

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError("the bridge's routes are its Klein app's")

    def render(self, request: IRequest) -> object:
        return self._inner.render(request)
