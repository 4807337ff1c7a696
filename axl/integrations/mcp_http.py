# -*- test-case-name: tests.test_integrations_mcp_http -*-
"""
Pure helpers for talking MCP Streamable HTTP to a service: which transport headers cross the
mesh, and how a service's reply body (plain JSON or a short C{text/event-stream}) becomes one
JSON value.

The mesh carries the MCP transport headers in the envelope's C{headers} object, under exactly
these spellings: C{Mcp-Session-Id}, C{MCP-Protocol-Version}, C{Mcp-Method} on requests;
C{Mcp-Session-Id} (and C{Content-Type}) on replies.
"""

from __future__ import annotations

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
    "parse_json_object",
    "decode_reply",
    "parse_sse_messages",
]

SESSION_HEADER = "Mcp-Session-Id"
REQUEST_HEADERS: tuple[str, ...] = (SESSION_HEADER, "MCP-Protocol-Version", "Mcp-Method")
REPLY_HEADERS: tuple[str, ...] = (SESSION_HEADER,)

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
