# -*- test-case-name: tests.test_integrations_mcp_http -*-
"""
Pure helpers for talking MCP Streamable HTTP to a service: which transport headers cross the
mesh, and how a service's reply body (plain JSON or a short C{text/event-stream}) becomes one
JSON value.

The mesh carries the MCP transport headers in the envelope's C{headers} object, under exactly
these spellings: C{Mcp-Session-Id}, C{MCP-Protocol-Version}, C{Mcp-Method} (and, if a caller
sends it, C{Mcp-Name}) on requests;
C{Mcp-Session-Id} (and C{Content-Type}) on replies.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REQUEST_HEADERS",
    "REPLY_HEADERS",
    "SESSION_HEADER",
    "ReplyError",
    "select_headers",
    "routing_headers",
    "parse_json_object",
    "decode_reply",
    "parse_sse_messages",
]

SESSION_HEADER = "Mcp-Session-Id"
REQUEST_HEADERS: tuple[str, ...] = (SESSION_HEADER, "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name")
REPLY_HEADERS: tuple[str, ...] = (SESSION_HEADER,)

#: Methods whose target is mirrored in the C{Mcp-Name} header, and the param that names it.
_NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_BASE64_SENTINEL = re.compile(r"=\?base64\?.*\?=")

_EVENT_SPLIT = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_SPLIT = re.compile(rb"\r\n|\n|\r")


class ReplyError(ValueError):
    """A service reply body that does not yield a JSON-RPC message."""


def select_headers(headers: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """
    Pick the C{allowed} headers out of C{headers} (names matched case-insensitively), returning
    them under their canonical spelling. Non-string or empty values are left out.
    """
    if not headers:
        return {}
    by_lower = {name.lower(): name for name in allowed}
    out: dict[str, str] = {}
    for name, value in headers.items():
        canonical = by_lower.get(name.lower()) if isinstance(name, str) else None
        if canonical is not None and isinstance(value, str) and value:
            out[canonical] = value
    return out


def _header_value(value: str) -> str:
    """MCP's header encoding: printable ASCII as is, anything else as C{=?base64?...?=}."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _BASE64_SENTINEL.fullmatch(value):
        return value
    return "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def routing_headers(message: Any) -> dict[str, str]:
    """
    The MCP routing headers that mirror a JSON-RPC request body: C{Mcp-Method}, C{Mcp-Name}
    (for C{tools/call}, C{prompts/get}, C{resources/read}) and, when the body carries the
    per-request protocol version in C{params._meta} (MCP 2026-07-28 and later), C{MCP-Protocol-
    Version}. Servers of that revision reject requests whose headers do not match the body, so
    the router re-derives them instead of relying on every hop to carry them.
    """
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return {}
    method = message["method"]
    out = {"Mcp-Method": _header_value(method)}
    params = message.get("params")
    if isinstance(params, dict):
        name = params.get(_NAME_PARAMS.get(method, ""))
        if isinstance(name, str):
            out["Mcp-Name"] = _header_value(name)
        meta = params.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(_PROTOCOL_VERSION_META), str):
            out["MCP-Protocol-Version"] = meta[_PROTOCOL_VERSION_META]
    return out


def parse_json_object(body: bytes) -> dict[str, Any]:
    """
    Decode a request body that must be a JSON object.

    @raise ValueError: with a message for the client (invalid JSON, or not an object).
    """
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(str(e)) from e
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def parse_sse_messages(body: bytes) -> list[Any]:
    """
    The JSON values carried by the C{message} events of a complete C{text/event-stream} body, in
    order. Events with no data (priming events, keep-alives) are skipped.

    @raise ReplyError: if an event's data is not JSON.
    """
    out: list[Any] = []
    for block in _EVENT_SPLIT.split(body):
        event, data = b"message", []
        for line in _LINE_SPLIT.split(block):
            if not line or line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"event":
                event = value
            elif field == b"data":
                data.append(value)
        if event != b"message" or not data or data == [b""]:
            continue
        try:
            out.append(json.loads(b"\n".join(data)))
        except (ValueError, UnicodeDecodeError) as e:
            raise ReplyError(f"event-stream data is not JSON: {e}") from e
    return out


def _is_response(message: Any) -> bool:
    return isinstance(message, dict) and "id" in message and ("result" in message or "error" in message)


def decode_reply(content_type: str | None, body: bytes) -> Any:
    """
    Turn a service's C{200} reply into one JSON value: the body itself for JSON, or, for an event
    stream, the first JSON-RPC response in it (server notifications sent before it are dropped;
    a stream with a single message yields that message).

    @raise ReplyError: empty or non-JSON body, or an event stream without a message.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "text/event-stream":
        messages = parse_sse_messages(body)
        for message in messages:
            if _is_response(message):
                return message
        if len(messages) == 1:
            return messages[0]
        raise ReplyError(f"event stream carried {len(messages)} messages and no JSON-RPC response")
    if not body.strip():
        raise ReplyError("empty reply body")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ReplyError(f"reply is not JSON ({media or 'no content type'}): {e}") from e
