# -*- test-case-name: tests.test_admin_codec -*-
"""
The admin socket's wire format, sans-IO (spec/yggdrasil-extras.md sections 1.2-1.5).

The stream carries concatenated JSON values; L{AdminDecoder} splits it into values without
Twisted. L{parse_request} turns one value into an L{AdminRequest} (or the generic error it
deserves), and L{encode_envelope} writes the response envelope exactly as Go's
C{json.Encoder} with C{SetIndent} and a two-space indent does (member order, HTML escaping, float format,
one trailing newline). L{go_json} is that encoder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "MAX_REQUEST_BYTES",
    "AdminDecoder",
    "AdminError",
    "AdminRequest",
    "FIND_ERROR",
    "RequestTooLarge",
    "go_json",
    "json_type_name",
    "encode_envelope",
    "error_envelope",
    "parse_request",
]

#: The largest single JSON value we buffer; a longer one gets an error reply and the connection
#: closes (Go has no limit; nothing an admin client sends comes near it).
MAX_REQUEST_BYTES: Final = 1024 * 1024


class AdminError(Exception):
    """A command failed; the message is the envelope's C{error} string, verbatim."""


class RequestTooLarge(Exception):
    """A JSON value on the admin stream is longer than L{MAX_REQUEST_BYTES}."""


class _Invalid:
    """Marks input that is not a JSON value (or the end of the stream): "failed to find request"."""

    def __repr__(self) -> str:
        return "FIND_ERROR"


#: What L{AdminDecoder} yields for bytes that are not JSON, and at the end of the stream.
FIND_ERROR: Final = _Invalid()

_WS = b" \t\r\n"
_TOKEN_END = b" \t\r\n{}[]\",:"


class AdminDecoder:
    """
    Splits a byte stream of concatenated JSON values, like Go's C{json.Decoder}: whitespace
    between values is skipped, no delimiter is needed. The scan is incremental, so bytes
    arriving one at a time cost linear time.

    L{feed} returns the values completed so far (decoded), or L{FIND_ERROR} for a value that is
    not valid JSON (after which the decoder yields nothing more: the connection ends).
    """

    def __init__(self, max_len: int = MAX_REQUEST_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_len
        self._pos = 0  # scan position within _buf
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._kind = 0  # first byte of the current value, 0 before it starts
        self._failed = False

    def _reset(self, consumed: int) -> None:
        del self._buf[:consumed]
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._kind = 0

    def feed(self, data: bytes) -> list[Any]:
        """
        Add bytes; return the values they complete.

        @raise RequestTooLarge: the current value is longer than the limit.
        """
        if self._failed:
            return []
        self._buf += data
        out: list[Any] = []
        while True:
            end = self._scan(eof=False)
            if end is None:
                break
            out.append(self._take(end))
            if self._failed:
                break
        if not self._failed and len(self._buf) > self._max:
            self._failed = True
            raise RequestTooLarge(f"an admin request is longer than {self._max} bytes")
        return out

    def eof(self) -> list[Any]:
        """The stream ended: a final scalar value, then L{FIND_ERROR} (Go's decoder hits EOF)."""
        if self._failed:
            return []
        out: list[Any] = []
        end = self._scan(eof=True)
        if end is not None:
            out.append(self._take(end))
        if not self._failed:
            out.append(FIND_ERROR)
            self._failed = True
        return out

    def _take(self, end: int) -> Any:
        raw = bytes(self._buf[:end])
        self._reset(end)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self._failed = True
            return FIND_ERROR

    def _scan(self, eof: bool) -> int | None:
        """Where the first complete value in the buffer ends (exclusive), or None."""
        buf = self._buf
        n = len(buf)
        i = self._pos
        if self._kind == 0:
            while i < n and buf[i] in _WS:
                i += 1
            if i:
                del buf[:i]
                n -= i
                i = 0
            if n == 0:
                self._pos = 0
                return None
            self._kind = buf[0]
            if self._kind in b"{[":
                self._depth = 0
            elif self._kind == ord('"'):
                self._in_string = True
                i = 1
        kind = self._kind
        if kind in b"{[":
            depth, in_string, escape = self._depth, self._in_string, self._escape
            while i < n:
                c = buf[i]
                i += 1
                if in_string:
                    if escape:
                        escape = False
                    elif c == 0x5C:  # backslash
                        escape = True
                    elif c == 0x22:
                        in_string = False
                elif c == 0x22:
                    in_string = True
                elif c in b"{[":
                    depth += 1
                elif c in b"}]":
                    depth -= 1
                    if depth == 0:
                        return i
            self._depth, self._in_string, self._escape = depth, in_string, escape
            self._pos = i
            return None
        if kind == 0x22:
            escape = self._escape
            while i < n:
                c = buf[i]
                i += 1
                if escape:
                    escape = False
                elif c == 0x5C:
                    escape = True
                elif c == 0x22:
                    return i
            self._escape = escape
            self._pos = i
            return None
        # A bare token (number, true, null, or garbage): it ends at a delimiter or at EOF.
        while i < n:
            if buf[i] in _TOKEN_END:
                return max(i, 1)
            i += 1
        self._pos = i
        return n if eof and n else None


# ---------------------------------------------------------------------------------------------
# Requests.


@dataclass(frozen=True)
class AdminRequest:
    """
    One parsed request (section 1.3).

    @ivar name: C{request} as sent (matching is case-insensitive: see L{lower_name}).
    @ivar arguments: the C{arguments} value as sent; C{{}} when absent, None for JSON null.
    @ivar keepalive: serve more requests on this connection after this one.
    """

    name: str
    arguments: Any
    keepalive: bool = False

    @property
    def lower_name(self) -> str:
        """The name as the command table is keyed: lower case."""
        return self.name.lower()

    def echo(self) -> dict[str, Any]:
        """The C{request} member of the response envelope."""
        out: dict[str, Any] = {"request": self.name, "arguments": self.arguments}
        if self.keepalive:
            out["keepalive"] = True
        return out


_EMPTY_ECHO: Final = {"request": ""}


def parse_request(value: Any) -> AdminRequest | bytes:
    """
    Read one decoded JSON value as a request.

    @return: the request, or the whole error envelope to send back (the connection then ends,
        as the request's C{keepalive} could not be read).
    """
    if value is FIND_ERROR:
        return error_envelope("failed to find request", _EMPTY_ECHO)
    if not isinstance(value, dict):
        return error_envelope("failed to unmarshal request", _EMPTY_ECHO)
    name = value.get("request")
    keepalive = value.get("keepalive")
    if (name is not None and not isinstance(name, str)) or (
        keepalive is not None and not isinstance(keepalive, bool)
    ):
        return error_envelope("failed to unmarshal request", _EMPTY_ECHO)
    arguments = value["arguments"] if "arguments" in value else {}
    return AdminRequest(name or "", arguments, bool(keepalive))


# ---------------------------------------------------------------------------------------------
# Responses.


def error_envelope(error: str, echo: dict[str, Any]) -> bytes:
    """An error envelope: C{status}, C{error}, C{request} (the echo), C{response: null}."""
    return encode_envelope({"status": "error", "error": error, "request": echo, "response": None})


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """The envelope's bytes: Go's indented JSON and a newline."""
    return go_json(envelope).encode("utf-8") + b"\n"


def json_type_name(value: Any) -> str:
    """Go's name for a JSON value's type in unmarshal errors (C{number}, C{string}, ...)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


_HTML_ESCAPES: Final = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def _go_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    for char, escaped in _HTML_ESCAPES:
        if char in out:
            out = out.replace(char, escaped)
    return out


def _go_float(value: float) -> str:
    """Go's C{encoding/json} float: shortest round trip, no exponent for 1e-6 <= |x| < 1e21."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"cannot encode {value!r} as JSON")
    if value == 0:
        return "0"
    magnitude = abs(value)
    text = repr(value)
    if 1e-6 <= magnitude < 1e21:
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
        if text.endswith(".0"):
            text = text[:-2]
        return text
    # Go writes e.g. 1e-07 / 1e+21 with at least two exponent digits, as Python's repr does.
    mantissa, _, exponent = text.partition("e")
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    return f"{mantissa}e{exponent}"


def go_json(value: Any, indent: str = "  ", _level: str = "") -> str:
    """
    C{value} as Go's C{json.Encoder} with C{SetIndent("", indent)} writes it, without the final
    newline: C{": "} after keys, C{[]}/C{{}} for empty containers, the HTML characters (less-than, greater-than,
    ampersand) and U+2028/9 escaped as C{\\uXXXX},
    other non-ASCII raw. Dict members keep their insertion order.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    inner = _level + indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        members = [
            f"{inner}{_go_string(str(k))}: {go_json(v, indent, inner)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(members) + "\n" + _level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [f"{inner}{go_json(v, indent, inner)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + _level + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
