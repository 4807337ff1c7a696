# -*- test-case-name: tests.test_admin_service -*-
"""
The C{AdminListen} setting (spec/yggdrasil-extras.md section 1.1), parsed without Twisted so
the config loader can check it.
"""

from __future__ import annotations

from dataclasses import dataclass

from axl.errors import ConfigError

__all__ = ["AdminAddress", "parse_admin_listen"]


@dataclass(frozen=True)
class AdminAddress:
    """
    A parsed C{AdminListen}: a UNIX socket C{path} (C{"@name"} is abstract) or TCP C{host},
    C{port}.
    """

    text: str
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        """Whether this is a UNIX socket (else TCP)."""
        return bool(self.path)


def parse_admin_listen(value: str) -> AdminAddress | None:
    """
    Read C{AdminListen} as Yggdrasil does (section 1.1): C{""}/C{"none"} is off,
    C{unix:///abs/path}, C{tcp://host:port}, anything else C{host:port}.

    @raise ConfigError: the value is none of these (the message has no file name).
    """
    text = value.strip()
    if text in ("", "none"):
        return None
    if text.startswith("unix://"):
        path = text[len("unix://") :]
        if not (path.startswith("/") or path.startswith("@")) or path in ("/", "@"):
            raise ConfigError(f"{value!r}: a UNIX socket is unix:///absolute/path")
        return AdminAddress(text, path=path)
    rest = text[len("tcp://") :] if text.startswith("tcp://") else text
    if "://" in rest:
        raise ConfigError(f"{value!r}: use unix:///path, tcp://host:port or none")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{value!r}: expected tcp://host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return AdminAddress(text, host=host or "127.0.0.1", port=int(port_text))
