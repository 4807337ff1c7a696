# -*- test-case-name: tests.test_integrations_cli -*-
"""Validation of the command-line values shared by the router and A2A server entry points."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from twisted.python import usage

__all__ = ["check_port", "check_host", "check_url", "check_timeout"]


def check_port(port: int) -> None:
    """Refuse a port outside 0-65535 (0 picks a free one)."""
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"--port must be 0-65535, not {port}")


def check_host(host: str) -> None:
    """Refuse a host that is not an IP literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise usage.UsageError(f"--host must be an IPv4 or IPv6 address, not {host!r}") from None


def check_url(flag: str, url: str) -> None:
    """Refuse a C{flag} value that is not an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage.UsageError(f"{flag} must be an http:// or https:// URL, not {url!r}")


def check_timeout(seconds: float) -> None:
    """Refuse a timeout that is not positive."""
    if not seconds > 0:
        raise usage.UsageError(f"--timeout must be positive, not {seconds}")
