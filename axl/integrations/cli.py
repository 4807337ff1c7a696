# -*- test-case-name: tests.test_integrations_cli -*-
"""
Console scripts with AXL's names and flags: C{mcp-router --port N} and
C{a2a-server --port N --router URL --node-url URL}. Each runs one service on the global reactor
until SIGINT/SIGTERM, logging to stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from twisted.application.service import IService
from twisted.python import usage

from axl.errors import ConfigError, StartupError

__all__ = ["mcp_router_main", "a2a_server_main", "run"]


def run(
    prog: str,
    options: usage.Options,
    make_service: Callable[[Any], IService],
    argv: Sequence[str] | None = None,
    stderr: TextIO | None = None,
) -> NoReturn:
    """Parse C{argv}, start the service on the global reactor and run it; exit with a status."""
    stderr = sys.stderr if stderr is None else stderr
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        stderr.write(f"{prog}: {e}\n{options}")
        raise SystemExit(2) from None
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    try:
        service = make_service(options)
        service.startService()
    except (ConfigError, StartupError) as e:
        stderr.write(f"{prog}: {e}\n")
        raise SystemExit(1) from None
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    raise SystemExit(0)


def mcp_router_main(argv: Sequence[str] | None = None, stderr: TextIO | None = None) -> NoReturn:
    """The C{mcp-router} console script."""
    from axl.integrations import router_tap

    run("mcp-router", router_tap.Options(), router_tap.makeService, argv, stderr)  # type: ignore[no-untyped-call]


def a2a_server_main(argv: Sequence[str] | None = None, stderr: TextIO | None = None) -> NoReturn:
    """The C{a2a-server} console script."""
    from axl.integrations import a2a_tap

    run("a2a-server", a2a_tap.Options(), a2a_tap.makeService, argv, stderr)  # type: ignore[no-untyped-call]
