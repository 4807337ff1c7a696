"""
The node's log level (config key C{log_level}, default C{info}).

Every axl module's C{Logger} publishes through L{observer}, which passes on to Twisted's global
log publisher only the events at or above the level: C{twistd} writes every level it is given,
debug included, and a debug line per link, connection or lookup would let a busy or hostile
mesh grow the log without bound. Set it with L{set_log_level}; the node does, from its config,
when it is built (the level is one per process, as twistd's log is).
"""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

__all__ = ["LOG_LEVELS", "observer", "set_log_level"]

#: The accepted names, lowest first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warn", "error", "critical")

_levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

#: The observer of every axl C{Logger}: events at or above the level go on to
#: the global log publisher.
observer = FilteringLogObserver(globalLogPublisher, [_levels])


def set_log_level(name: str) -> None:
    """
    Pass on events of level C{name} (one of L{LOG_LEVELS}) and above.

    @raise ValueError: C{name} is not a level.
    """
    if name not in LOG_LEVELS:
        raise ValueError(f"is not one of {', '.join(LOG_LEVELS)}: {name!r}")
    _levels.setLogLevelForNamespace("", LogLevel.levelWithName(name))  # "": the default
