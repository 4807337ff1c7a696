# -*- test-case-name: tests.test_forward_socks -*-
"""
The SOCKS5 server handshake (RFC 1928) with optional user/password authentication (RFC 1929),
as a pure incremental codec: L{SocksServerCodec.feed} takes bytes and returns what to write,
the parsed CONNECT request, or why to close. L{check_target} maps a request to a mesh target
or to the reply code it must get at once. No Twisted here; the adapter is
L{axl.forward.tcp.SocksProtocol}.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from dataclasses import dataclass

from axl.forward.spec import OverlayTarget, parse_overlay_host

__all__ = [
    "SUCCEEDED",
    "GENERAL_FAILURE",
    "NOT_ALLOWED",
    "NETWORK_UNREACHABLE",
    "HOST_UNREACHABLE",
    "CONNECTION_REFUSED",
    "TTL_EXPIRED",
    "COMMAND_NOT_SUPPORTED",
    "ADDRESS_TYPE_NOT_SUPPORTED",
    "REPLY_TEXT",
    "CMD_CONNECT",
    "ATYP_IPV4",
    "ATYP_DOMAIN",
    "ATYP_IPV6",
    "Request",
    "Step",
    "SocksServerCodec",
    "encode_reply",
    "check_target",
]

SUCCEEDED = 0x00
GENERAL_FAILURE = 0x01
NOT_ALLOWED = 0x02
NETWORK_UNREACHABLE = 0x03
HOST_UNREACHABLE = 0x04
CONNECTION_REFUSED = 0x05
TTL_EXPIRED = 0x06
COMMAND_NOT_SUPPORTED = 0x07
ADDRESS_TYPE_NOT_SUPPORTED = 0x08

REPLY_TEXT = {
    SUCCEEDED: "succeeded",
    GENERAL_FAILURE: "general SOCKS server failure",
    NOT_ALLOWED: "connection not allowed by ruleset",
    NETWORK_UNREACHABLE: "network unreachable",
    HOST_UNREACHABLE: "host unreachable",
    CONNECTION_REFUSED: "connection refused",
    TTL_EXPIRED: "TTL expired",
    COMMAND_NOT_SUPPORTED: "command not supported",
    ADDRESS_TYPE_NOT_SUPPORTED: "address type not supported",
}

CMD_CONNECT, CMD_BIND, CMD_UDP_ASSOCIATE = 1, 2, 3
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 1, 3, 4
METHOD_NO_AUTH, METHOD_USERPASS, METHOD_NONE_ACCEPTABLE = 0x00, 0x02, 0xFF

_GREETING, _AUTH, _REQUEST, _DONE = range(4)
_ZERO_BIND = bytes((ATYP_IPV4,)) + bytes(6)


@dataclass(frozen=True)
class Request:
    """
    A whole SOCKS5 request.

    @ivar host: 4 bytes (IPv4), 16 bytes (IPv6) or the domain name as text.
    """

    command: int
    atyp: int
    host: bytes | str
    port: int


@dataclass
class Step:
    """
    What one L{SocksServerCodec.feed} asks for: write C{output}; then, if C{request} is set,
    act on it (C{rest} holds bytes that came after it); if C{close} is set, close after writing
    (its text says why, for the log).
    """

    output: bytes = b""
    request: Request | None = None
    rest: bytes = b""
    close: str | None = None


def encode_reply(code: int, address: bytes | None = None, port: int = 0) -> bytes:
    """A SOCKS5 reply: C{code}, bound to the IPv6 C{address}:C{port} (zeros when None)."""
    if address is None:
        return bytes((5, code, 0)) + _ZERO_BIND
    if len(address) != 16:
        raise ValueError("the bound address is a 16-byte IPv6 address")
    return bytes((5, code, 0, ATYP_IPV6)) + address + struct.pack("!H", port)


class SocksServerCodec:
    """
    One server-side handshake. The buffer never holds more than one handshake message (at most
    515 bytes) because each message is consumed as soon as it is whole.

    @param credentials: C{(username, password)} to require (RFC 1929), or None for no auth.
    """

    def __init__(self, credentials: tuple[bytes, bytes] | None = None) -> None:
        self._credentials = credentials
        self._buf = bytearray()
        self._state = _GREETING

    @property
    def done(self) -> bool:
        """Whether the handshake has ended (a request was returned or the codec closed)."""
        return self._state == _DONE

    def feed(self, data: bytes) -> Step:
        """Consume C{data}; return what to do. Feeding after L{done} is an error."""
        if self._state == _DONE:
            raise RuntimeError("the SOCKS handshake is over")
        self._buf += data
        step = Step()
        while self._state != _DONE:
            before = self._state
            self._advance(step)
            if self._state == before:
                break
        return step

    def _finish(self, step: Step, why: str, reply: bytes = b"") -> None:
        step.output += reply
        step.close = why
        self._state = _DONE
        self._buf.clear()

    def _advance(self, step: Step) -> None:
        buf = self._buf
        if self._state == _GREETING:
            if not buf:
                return
            if buf[0] != 5:
                self._finish(step, f"not a SOCKS5 greeting (version byte {buf[0]})")
                return
            if len(buf) < 2 or len(buf) < 2 + buf[1]:
                return
            methods = bytes(buf[2 : 2 + buf[1]])
            del buf[: 2 + buf[1]]
            wanted = METHOD_USERPASS if self._credentials is not None else METHOD_NO_AUTH
            if wanted not in methods:
                what = "user/password" if self._credentials is not None else "no authentication"
                self._finish(step, f"the client does not offer {what}",
                             bytes((5, METHOD_NONE_ACCEPTABLE)))  # fmt: skip
                return
            step.output += bytes((5, wanted))
            self._state = _AUTH if self._credentials is not None else _REQUEST
        elif self._state == _AUTH:
            self._auth(step)
        elif self._state == _REQUEST:
            self._request(step)

    def _auth(self, step: Step) -> None:
        buf = self._buf
        if not buf:
            return
        if buf[0] != 1:
            self._finish(step, f"bad user/password version {buf[0]}", b"\x01\x01")
            return
        if len(buf) < 2 or len(buf) < 3 + buf[1]:
            return
        ulen = buf[1]
        plen = buf[2 + ulen]
        if len(buf) < 3 + ulen + plen:
            return
        user, password = bytes(buf[2 : 2 + ulen]), bytes(buf[3 + ulen : 3 + ulen + plen])
        del buf[: 3 + ulen + plen]
        assert self._credentials is not None
        good_user, good_password = self._credentials
        ok = hmac.compare_digest(user, good_user) & hmac.compare_digest(password, good_password)
        if not ok:
            self._finish(step, "wrong user name or password", b"\x01\x01")
            return
        step.output += b"\x01\x00"
        self._state = _REQUEST

    def _request(self, step: Step) -> None:
        buf = self._buf
        if not buf:
            return
        if buf[0] != 5:
            self._finish(step, f"not a SOCKS5 request (version byte {buf[0]})",
                         encode_reply(GENERAL_FAILURE))  # fmt: skip
            return
        if len(buf) < 4:
            return
        command, atyp = buf[1], buf[3]
        if atyp == ATYP_IPV4:
            size = 4 + 4 + 2
        elif atyp == ATYP_IPV6:
            size = 4 + 16 + 2
        elif atyp == ATYP_DOMAIN:
            if len(buf) < 5:
                return
            size = 4 + 1 + buf[4] + 2
        else:
            self._finish(step, f"address type {atyp} not supported",
                         encode_reply(ADDRESS_TYPE_NOT_SUPPORTED))  # fmt: skip
            return
        if len(buf) < size:
            return
        host: bytes | str
        if atyp == ATYP_DOMAIN:
            raw = bytes(buf[5 : 5 + buf[4]])
            try:
                host = raw.decode("ascii")
            except UnicodeDecodeError:
                host = raw.decode("latin-1")
        else:
            host = bytes(buf[4 : size - 2])
        (port,) = struct.unpack_from("!H", buf, size - 2)
        rest = bytes(buf[size:])
        buf.clear()
        if command != CMD_CONNECT:
            self._finish(step, f"command {command} not supported (only CONNECT)",
                         encode_reply(COMMAND_NOT_SUPPORTED))  # fmt: skip
            return
        step.request = Request(command, atyp, host, port)
        step.rest = rest
        self._state = _DONE


def check_target(request: Request) -> OverlayTarget | int:
    """
    The mesh target of a CONNECT request, or the reply code it gets at once: IPv4 addresses and
    IPv6 addresses outside 200::/7 -> network unreachable; names other than
    C{<64 hex>.pk.ygg} or an IPv6 literal -> host unreachable; port 0 -> general failure.
    """
    host = request.host
    if request.atyp == ATYP_IPV4:
        return NETWORK_UNREACHABLE
    if request.atyp == ATYP_IPV6:
        assert isinstance(host, bytes)
        text = str(ipaddress.IPv6Address(host))
    else:
        assert isinstance(host, str)
        text = host
        try:
            if ipaddress.ip_address(text.strip("[]")).version == 4:
                return NETWORK_UNREACHABLE
        except ValueError:
            pass
    try:
        key, address = parse_overlay_host(text)
    except ValueError:
        is_literal = request.atyp == ATYP_IPV6 or ":" in text
        return NETWORK_UNREACHABLE if is_literal else HOST_UNREACHABLE
    if request.port == 0:
        return GENERAL_FAILURE
    return OverlayTarget(key, address, request.port)
