# -*- test-case-name: tests.test_aio -*-
"""
Twisted's reactor on the caller's asyncio loop, for L{axl.aio.Node}.

Every layer of a node is a Twisted service driven by the one global reactor, so an embedded node
needs that reactor to be Twisted's C{AsyncioSelectorReactor} running on the asyncio loop of the
calling program. L{acquire} installs it when no reactor is installed yet (nothing has imported
C{twisted.internet.reactor}), accepts it when it is already installed on the running loop, and
refuses anything else with L{ReactorError}, whose message says what to change. It moves the
reactor onto the running loop from a loop that is not running: one that has closed (a second
C{asyncio.run()}), or the one C{asyncioreactor.install()} made when called before the program's
loop existed.

The reactor is marked running (C{startRunning} without signal handlers: the asyncio program owns
the signals) the first time a node needs it, so Twisted parts that wait for it (the thread pool
behind host-name resolution) work. When the last embedded node has stopped, L{release} stops the
thread pool and the reactor's pending wake-up timer, so nothing of ours stays on the loop.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from twisted.logger import Logger

from axl.logs import observer as log_observer

__all__ = ["ReactorError", "acquire", "release"]

log = Logger(observer=log_observer)


class ReactorError(RuntimeError):
    """The process's Twisted reactor cannot run on this asyncio loop (the message says why)."""


class _State:
    users = 0
    started_by_us = False


_state = _State()


def _installed() -> Any:
    """The installed reactor, or None when nothing has installed one yet."""
    return sys.modules.get("twisted.internet.reactor")


def _rebind(reactor: Any, old: asyncio.AbstractEventLoop, loop: asyncio.AbstractEventLoop) -> None:
    """
    Move the asyncio reactor from a loop that is not running (closed, or never run: the reactor
    was installed before C{asyncio.run()} made its loop) to C{loop}: its file descriptors (the
    waker, anything still registered) are watched by the new loop and its timers rescheduled.
    """
    from twisted.python.log import callWithLogger

    if not old.is_closed():
        for fd in list(reactor._readers.values()):
            old.remove_reader(fd)
        for fd in list(reactor._writers.values()):
            old.remove_writer(fd)
    if reactor._timerHandle is not None:
        reactor._timerHandle.cancel()
    reactor._asyncioEventloop = loop
    reactor._timerHandle = None
    reactor._scheduledAt = None
    for reader, fd in list(reactor._readers.items()):
        loop.add_reader(fd, callWithLogger, reader, reactor._readOrWrite, reader, True)
    for writer, fd in list(reactor._writers.items()):
        loop.add_writer(fd, callWithLogger, writer, reactor._readOrWrite, writer, False)
    reactor._reschedule()


def acquire(loop: asyncio.AbstractEventLoop) -> Any:
    """
    The reactor, installed on (or moved to) C{loop} and marked running; one more user.

    @raise ReactorError: another kind of reactor is installed, or the asyncio reactor runs on
        another loop (in another thread).
    """
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    reactor = _installed()
    if reactor is None:
        from twisted.internet import asyncioreactor

        asyncioreactor.install(loop)
        reactor = _installed()
    elif not isinstance(reactor, AsyncioSelectorReactor):
        name = f"{type(reactor).__module__}.{type(reactor).__qualname__}"
        raise ReactorError(
            f"axl.aio needs Twisted's asyncio reactor, but {name} is already installed "
            "(something imported twisted.internet.reactor before the first axl.aio.Node started); "
            "call twisted.internet.asyncioreactor.install() at the top of the program, "
            "before importing anything that uses Twisted"
        )
    bound = reactor._asyncioEventloop
    if bound is not loop:
        if bound.is_running():
            raise ReactorError(
                "Twisted's asyncio reactor runs on another asyncio event loop (in another "
                "thread); run every axl.aio.Node on that loop (one process has one reactor)"
            )
        _rebind(reactor, bound, loop)
    if not reactor._started:
        reactor.startRunning(installSignalHandlers=False)
        _state.started_by_us = True
    _state.users += 1
    return reactor


def release(reactor: Any) -> None:
    """
    One user fewer. After the last one, if we started the reactor: stop its thread pool (host
    name lookups) and cancel its wake-up timer when no Twisted timer is left.
    """
    _state.users -= 1
    if _state.users > 0 or not _state.started_by_us:
        return
    if reactor.threadpool is not None:
        reactor._stopThreadPool()
    if not reactor.getDelayedCalls() and reactor._timerHandle is not None:
        reactor._timerHandle.cancel()
        reactor._timerHandle = None
        reactor._scheduledAt = None


def users() -> int:
    """How many embedded nodes are using the reactor now (for tests)."""
    return _state.users
