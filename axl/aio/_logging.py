# -*- test-case-name: tests.test_aio -*-
"""
Twisted's log events to the standard C{logging} module, for programs that embed a node: an
asyncio program configures C{logging}, not Twisted's log. Each event goes to the C{logging}
logger named by its Twisted namespace (C{axl.link.peers.PeerManager}, C{twisted.web...}), at the
matching level, with the failure's traceback when it has one.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from twisted.logger import (
    ILogObserver,
    LogLevel,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

__all__ = ["StdlibObserver", "forward_to_stdlib"]

_LEVELS = {
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR,
    LogLevel.critical: logging.CRITICAL,
}


@implementer(ILogObserver)
class StdlibObserver:
    """Passes each Twisted log event to C{logging.getLogger(<its namespace>)}."""

    def __call__(self, event: dict[str, Any]) -> None:
        logger = logging.getLogger(str(event.get("log_namespace") or "twisted"))
        level = _LEVELS.get(event.get("log_level", LogLevel.info), logging.INFO)
        if not logger.isEnabledFor(level):
            return
        failure = event.get("log_failure")
        exc_info = None
        if failure is not None:
            exc_info = (failure.type, failure.value, failure.getTracebackObject())
        logger.log(level, "%s", formatEvent(event), exc_info=exc_info)


_forwarding: list[StdlibObserver] = []


def forward_to_stdlib() -> None:
    """
    Once per process: when nothing has begun Twisted's logging yet, begin it with a
    L{StdlibObserver} only (standard I/O and C{warnings} stay as they are); otherwise (a program
    that set up Twisted logging itself) leave it alone.
    """
    if _forwarding:
        return
    observer = StdlibObserver()
    _forwarding.append(observer)
    if getattr(globalLogBeginner, "_temporaryObserver", None) is None:
        return  # logging already begun by the program: it chose where events go
    showwarning = warnings.showwarning
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    warnings.showwarning = showwarning
