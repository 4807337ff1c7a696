# -*- test-case-name: tests.test_integrations_router -*-
"""
The MCP router's registry: service name -> endpoint URL, with optional persistence to a JSON file.

Pure bookkeeping (no I/O except the optional state file, written atomically on every change).
The JSON form of one entry is AXL's: C{{"endpoint": url, "registered_at": ISO-8601 UTC,
"healthy": bool}}. C{healthy} records the outcome of the last forward; it is never used to route.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from axl.errors import ConfigError
from axl.logs import observer as log_observer

__all__ = ["ServiceEntry", "Registry", "RegistrationError", "validate_endpoint"]

log = Logger(observer=log_observer)


class RegistrationError(ValueError):
    """A registration request that cannot be accepted; the message is shown to the client."""


@dataclass(frozen=True)
class ServiceEntry:
    """One registered service: its URL, when it was registered, and the last forward's outcome."""

    endpoint: str
    registered_at: str
    healthy: bool = True

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON: C{endpoint}, C{registered_at}, C{healthy}."""
        return asdict(self)


def validate_endpoint(endpoint: str) -> str:
    """
    Check that C{endpoint} is an absolute http(s) URL with a host; return it unchanged.

    @raise RegistrationError: otherwise.
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistrationError("'endpoint' must be an absolute http:// or https:// URL")
    return endpoint


class Registry:
    """
    Registered MCP services, in registration order.

    @param clock: gives C{registered_at}.
    @param state_file: if given, registrations are loaded from it at construction and written to
        it (atomically) after every register/deregister.
    """

    def __init__(self, clock: IReactorTime, state_file: FilePath[str] | None = None) -> None:
        self._clock = clock
        self._state_file = state_file
        self._entries: dict[str, ServiceEntry] = {}
        if state_file is not None and state_file.exists():
            self._entries = _load(state_file)
            log.info(
                "loaded {n} registrations from {path}", n=len(self._entries), path=state_file.path
            )

    def register(self, service: str, endpoint: str) -> ServiceEntry:
        """Add or overwrite C{service}."""
        stamp = datetime.fromtimestamp(self._clock.seconds(), timezone.utc).isoformat()
        entry = ServiceEntry(endpoint=validate_endpoint(endpoint), registered_at=stamp)
        self._entries[service] = entry
        self._save()
        return entry

    def deregister(self, service: str) -> bool:
        """Remove C{service}; return whether it was registered."""
        if self._entries.pop(service, None) is None:
            return False
        self._save()
        return True

    def lookup(self, service: str) -> ServiceEntry | None:
        """The entry of C{service}, or None."""
        return self._entries.get(service)

    def mark(self, service: str, healthy: bool) -> None:
        """Record the outcome of the last forward to C{service} (not persisted)."""
        entry = self._entries.get(service)
        if entry is not None and entry.healthy != healthy:
            self._entries[service] = replace(entry, healthy=healthy)

    def names(self) -> list[str]:
        """The registered services' names, in registration order."""
        return list(self._entries)

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Every entry as JSON, by service name (C{GET /services})."""
        return {name: entry.to_json() for name, entry in self._entries.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def _save(self) -> None:
        if self._state_file is None:
            return
        data = json.dumps(self.to_json(), indent=2, sort_keys=True).encode("utf-8")
        self._state_file.setContent(data)


def _load(path: FilePath[str]) -> dict[str, ServiceEntry]:
    try:
        raw = json.loads(path.getContent())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path.path}: cannot read the router state file: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.path}: the router state file must hold a JSON object")
    entries: dict[str, ServiceEntry] = {}
    for name, item in raw.items():
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("endpoint"), str)
            or not isinstance(item.get("registered_at", ""), str)
        ):
            raise ConfigError(f"{path.path}: bad entry for service {name!r}")
        try:
            endpoint = validate_endpoint(item["endpoint"])
        except RegistrationError as e:
            raise ConfigError(f"{path.path}: service {name!r}: {e}") from e
        entries[name] = ServiceEntry(endpoint, item.get("registered_at", ""), True)
    return entries
