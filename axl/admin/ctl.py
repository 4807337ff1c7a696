# -*- test-case-name: tests.test_admin_ctl -*-
"""
C{axl ctl}: a client for the admin socket, for people without C{yggdrasilctl}
(spec/yggdrasil-extras.md section 1.7). It sends the same request bytes and prints the same
tables as C{yggdrasilctl} v0.5.14 (box borders, or C{-borders=false}), or with C{-json} the
C{response} member. Unlike C{yggdrasilctl} it exits 1 when it cannot connect.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Sequence
from typing import Any

from axl.admin.address import AdminAddress
from axl.admin.codec import FIND_ERROR, AdminDecoder, RequestTooLarge, go_json

__all__ = [
    "AdminClientError",
    "admin_call",
    "parse_key_values",
    "format_bytes",
    "format_duration",
    "render",
    "render_table",
]

#: How long one request may take (getNodeInfo and the debug requests wait 6 s for the remote).
TIMEOUT = 15.0
#: The largest reply read (a getPeers of thousands of links is far below this).
MAX_REPLY = 16 * 1024 * 1024


class AdminClientError(Exception):
    """No usable answer: cannot connect, the connection broke, or the reply is not JSON."""


def admin_call(
    address: AdminAddress, request: str, arguments: dict[str, str], timeout: float = TIMEOUT
) -> dict[str, Any]:
    """
    Send one request (compact JSON and a newline, as yggdrasilctl does) and read one envelope.

    @raise AdminClientError: see the class.
    """
    body = json.dumps({"request": request, "arguments": arguments}, separators=(",", ":"))
    try:
        if address.is_unix:
            path = "\0" + address.path[1:] if address.path.startswith("@") else address.path
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(path)
        else:
            sock = socket.create_connection((address.host, address.port), timeout=timeout)
    except OSError as e:
        raise AdminClientError(f"cannot connect to {address.text}: {e.strerror or e}") from None
    decoder = AdminDecoder(max_len=MAX_REPLY)
    with sock:
        try:
            sock.sendall(body.encode("utf-8") + b"\n")
            while True:
                chunk = sock.recv(65536)
                values = decoder.feed(chunk) if chunk else decoder.eof()
                if values:
                    break
        except (OSError, RequestTooLarge) as e:
            raise AdminClientError(f"{address.text}: {e}") from None
    answer = values[0]
    if answer is FIND_ERROR or not isinstance(answer, dict):
        raise AdminClientError(f"{address.text} did not answer with a JSON object")
    return answer


# ---------------------------------------------------------------------------------------------
# Formatting, as yggdrasilctl v0.5.14 prints.


def format_bytes(n: int) -> str:
    """C{27B}, C{0.1KB} (from 100 bytes), C{1024.0KB}, C{1.0MB}, C{3.0GB}."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f}GB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f}MB"
    if n >= 100:
        return f"{n / 1024:.1f}KB"
    return f"{n}B"


def format_duration(seconds: float) -> str:
    """Go's C{time.Duration} string in whole seconds: C{0s}, C{59s}, C{1m1s}, C{48h0m5s}."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def render_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], borders: bool = True) -> str:
    """A table as yggdrasilctl draws it: headers centred, cells left-aligned, one space padding."""
    columns = len(header) if header is not None else (len(rows[0]) if rows else 0)
    widths = [0] * columns
    for row in ([header] if header is not None else []) + list(rows):
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def centre(text: str, width: int) -> str:
        pad = width - len(text)
        return " " * (pad // 2) + text + " " * (pad - pad // 2)

    def line(cells: Sequence[str]) -> str:
        parts = [f" {cell} " for cell in cells]
        if borders:
            return "│" + "│".join(parts) + "│"
        return "".join(parts)

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out: list[str] = []
    if borders:
        out.append(rule("┌", "┬", "┐"))
    if header is not None:
        out.append(line([centre(h, w) for h, w in zip(header, widths)]))
        if borders:
            out.append(rule("├", "┼", "┤"))
    for row in rows:
        out.append(line([cell.ljust(w) for cell, w in zip(row, widths)]))
    if borders:
        out.append(rule("└", "┴", "┘"))
    return "\n".join(out) + "\n"


def _list(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    rows = [
        [c["command"], ", ".join(f"{f}=..." for f in c.get("fields", [])), c["description"]]
        for c in r["list"]
    ]
    return ["Command", "Arguments", "Description"], rows


def _self(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    return None, [
        ["Build name:", r["build_name"]],
        ["Build version:", r["build_version"]],
        ["IPv6 address:", r["address"]],
        ["IPv6 subnet:", r["subnet"]],
        ["Routing table size:", str(r["routing_entries"])],
        ["Public key:", r["key"]],
    ]


def _peers(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    rows = []
    for p in r["peers"]:
        rate_in, rate_out = p.get("rate_recvd", 0), p.get("rate_sent", 0)
        latency = p.get("latency", 0)
        error = "-"
        if p.get("last_error"):
            age = format_duration(round(p.get("last_error_time", 0) / 1e9))
            error = f"{age} ago: {p['last_error']}"
        rows.append([
            p["remote"], "Up" if p["up"] else "Down", "In" if p["inbound"] else "Out",
            p.get("address", ""), format_duration(p.get("uptime", 0)),
            f"{latency / 1e6:.2f}ms" if latency else "-",
            format_bytes(p.get("bytes_recvd", 0)), format_bytes(p.get("bytes_sent", 0)),
            format_bytes(rate_in) + "/s" if rate_in else "-",
            format_bytes(rate_out) + "/s" if rate_out else "-",
            str(p["priority"]), str(p["cost"]), error,
        ])  # fmt: skip
    header = ["URI", "State", "Dir", "IP Address", "Uptime", "RTT", "RX", "TX", "Down", "Up",
              "Pr", "Cost", "Last Error"]  # fmt: skip
    return header, rows


def _tree(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    rows = [[t["key"], t["address"], t["parent"], str(t["sequence"])] for t in r["tree"]]
    return ["Public Key", "IP Address", "Parent", "Sequence"], rows


def _paths(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    rows = [
        [p["key"], p["address"], "[" + " ".join(str(x) for x in p["path"]) + "]", str(p["sequence"])]
        for p in r["paths"]
    ]
    return ["Public Key", "IP Address", "Path", "Seq"], rows


def _sessions(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    rows = [
        [s["key"], s["address"], format_duration(s["uptime"]), format_bytes(s["bytes_recvd"]),
         format_bytes(s["bytes_sent"])]
        for s in r["sessions"]
    ]  # fmt: skip
    return ["Public Key", "IP Address", "Uptime", "RX", "TX"], rows


def _multicast(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    def yes(flag: bool) -> str:
        return "Yes" if flag else "-"

    rows = [
        [m["name"], m["address"], yes(m["beacon"]), yes(m["listen"]), yes(m["password"])]
        for m in r["multicast_interfaces"]
    ]
    return ["Name", "Listen Address", "Beacon", "Listen", "Password"], rows


def _tun(r: Any) -> tuple[list[str] | None, list[list[str]]]:
    rows = [["TUN enabled:", "true" if r.get("enabled") else "false"]]
    if r.get("enabled"):
        rows += [["Interface name:", str(r.get("name", ""))], ["Interface MTU:", str(r.get("mtu", 0))]]
    return None, rows


_TABLES: dict[str, Callable[[Any], tuple[list[str] | None, list[list[str]]]]] = {
    "list": _list,
    "getself": _self,
    "getpeers": _peers,
    "gettree": _tree,
    "getpaths": _paths,
    "getsessions": _sessions,
    "getmulticastinterfaces": _multicast,
    "gettun": _tun,
}


def render(command: str, response: Any, borders: bool = True) -> str:
    """The table-mode output of C{command} for C{response}, as yggdrasilctl v0.5.14 prints it."""
    name = command.lower()
    if name in ("addpeer", "removepeer"):
        return ""
    if name == "getnodeinfo" and isinstance(response, dict):
        # yggdrasilctl prints the inner object's bytes as they sat in the envelope.
        return "".join(go_json(v, _level="    ") + "\n" for v in response.values())
    table = _TABLES.get(name)
    if table is None:
        return go_json(response, _level="  ") + "\n"
    header, rows = table(response)
    return render_table(header, rows, borders)


def parse_key_values(tokens: Sequence[str]) -> dict[str, str]:
    """C{k=v} tokens (split at the first C{=}); raise ValueError naming a token without one."""
    out: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {token!r} is not key=value")
        out[key] = value
    return out
