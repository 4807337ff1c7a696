# -*- test-case-name: tests.test_tap -*-
"""
The twistd entry points: C{twistd -n axl --config FILE [--listen URI]} (this module's L{Options}
and L{makeService}, found through C{twisted/plugins/axl_plugin.py}) and C{twistd -ny axl.tac}
(L{make_application}).

Without C{--config} the config is C{$AXL_CONFIG}, else C{./node-config.json} if it exists, else
the embedded default. A config error or a bridge port already taken ends twistd with exit status
1 and one line on stderr, without a traceback; SIGTERM and SIGINT stop the node with status 0.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, TextIO

from twisted.application.service import Application, IService, MultiService
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.components import Componentized

from axl.config import NodeConfig, add_listeners, default_config, load_config
from axl.errors import ConfigError, StartupError
from axl.forward.spec import FORWARD_KEYS, option_changes
from axl.logs import observer as log_observer

if TYPE_CHECKING:  # axl.service imports every layer: loaded only when a node is built
    from axl.service import NodeService

__all__ = ["Options", "makeService", "make_application", "find_config", "build_config", "NodeRunner", "node_runner"]

log = Logger(observer=log_observer)

DEFAULT_CONFIG_NAME = "node-config.json"


class Options(usage.Options):
    """Options of C{twistd axl}."""

    synopsis = "[--config FILE] [--listen URI ...] [--socks SPEC] [--local-tcp SPEC ...] ..."
    longdesc = (
        "Run an axl node: a Yggdrasil v0.5 mesh node with AXL's local HTTP bridge. Without "
        "--config the config is $AXL_CONFIG, else ./node-config.json if present, else the "
        "embedded default (ephemeral key, no peers, bridge on 127.0.0.1:9002)."
    )
    optParameters = [
        ["config", "c", None, "The node-config.json file (AXL's -config)."],
        ["socks", None, None, "SOCKS5 proxy to the mesh, [USER:PASS@][HOST:]PORT (replaces the config's socks)."],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []
        for key in FORWARD_KEYS:
            self[key] = []

    def opt_local_tcp(self, spec: str) -> None:
        """[BIND:]LPORT:REMOTE:RPORT or unix:/path:REMOTE:RPORT, added to local_tcp (repeatable)."""
        self["local_tcp"].append(spec)

    def opt_remote_tcp(self, spec: str) -> None:
        """OPORT:HOST:PORT or OPORT:unix:/path [?proxy=v2], added to remote_tcp (repeatable)."""
        self["remote_tcp"].append(spec)

    def opt_local_udp(self, spec: str) -> None:
        """[BIND:]LPORT:REMOTE:RPORT, added to local_udp (repeatable)."""
        self["local_udp"].append(spec)

    def opt_remote_udp(self, spec: str) -> None:
        """OPORT:HOST:PORT, added to remote_udp (repeatable)."""
        self["remote_udp"].append(spec)

    def opt_listen(self, uri: str) -> None:
        """Extra peering listen URI (e.g. tls://0.0.0.0:9001) put before the config's Listen."""
        self["listen"].append(uri)

    opt_l = opt_listen


def find_config(explicit: str | None, environ: Mapping[str, str], cwd: str = ".") -> str | None:
    """
    Which config file to read: C{explicit}, else C{$AXL_CONFIG}, else C{./node-config.json} if
    it exists; None means the embedded default.
    """
    if explicit:
        return explicit
    from_env = environ.get("AXL_CONFIG")
    if from_env:
        return from_env
    candidate = os.path.join(cwd, DEFAULT_CONFIG_NAME)
    if os.path.isfile(candidate):
        return DEFAULT_CONFIG_NAME if cwd == "." else candidate
    return None


def build_config(path: str | None, listen: list[str] | tuple[str, ...] = (),
                 options: Mapping[str, Any] | None = None) -> NodeConfig:  # fmt: skip
    """
    Load C{path} (or the embedded default when None) and add the C{--listen} URIs and the
    forward options (C{--socks}, C{--local-tcp}, ... from C{options}).

    @raise ConfigError: the file or a value is unusable.
    """
    config = load_config(path) if path is not None else default_config()
    if listen:
        config = add_listeners(config, listen)
    if options is not None:
        try:
            changes = option_changes(config, options.get("socks"),
                                     {key: list(options.get(key) or []) for key in FORWARD_KEYS})  # fmt: skip
        except ValueError as e:
            raise ConfigError(str(e)) from None
        config = replace(config, **changes)
    return config


def _fail(message: str, stderr: TextIO | None) -> NoReturn:
    # sys.__stderr__: once twistd's logging has begun, sys.stderr is redirected into the log.
    stream = stderr if stderr is not None else (sys.__stderr__ or sys.stderr)
    stream.write(f"axl: error: {message}\n")
    stream.flush()
    raise SystemExit(1)


class NodeRunner(MultiService):
    """
    The node's top service under twistd: turns a L{StartupError} into exit status 1 (one line,
    no traceback), and makes a SIGTERM/SIGINT shutdown exit with status 0 rather than
    re-raising the signal as twistd otherwise does.
    """

    def __init__(
        self, node_service: NodeService, reactor: Any, stderr: TextIO | None = None
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._reactor = reactor
        self._stderr = stderr
        self.node = node_service.node
        node_service.setServiceParent(self)  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        # A second SIGTERM during shutdown (e.g. from `timeout`, which signals its whole process
        # group) sets the exit signal again after stopService: clear it once more at the very end.
        self._reactor.addSystemEventTrigger("after", "shutdown", self._clear_exit_signal)
        try:
            super().startService()  # type: ignore[no-untyped-call]
        except StartupError as e:
            log.critical("Cannot start: {error}", error=str(e))
            _fail(str(e), self._stderr)

    def stopService(self) -> Any:
        self._clear_exit_signal()
        return super().stopService()  # type: ignore[no-untyped-call]

    def _clear_exit_signal(self) -> None:
        # twistd re-raises the signal that stopped the reactor (Twisted's reactor records it as
        # _exitSignal), which makes the exit status 128 + signal; a requested stop is a success.
        if getattr(self._reactor, "_exitSignal", None) in (signal.SIGTERM, signal.SIGINT):
            self._reactor._exitSignal = None


#: glibc's C{M_MMAP_THRESHOLD} for C{mallopt}.
_M_MMAP_THRESHOLD = -3


def limit_heap_fragmentation(threshold: int = 1024 * 1024) -> bool:
    """
    Make glibc serve allocations of C{threshold} bytes or more with C{mmap}, returned to the
    system when freed (issue 12). By default glibc raises its threshold to the largest block
    freed (up to 32 MiB), after which 16 MiB message buffers come from the heap and leave it
    fragmented: ~1 GB of RSS after bulk transfers instead of ~90 MB. Only the node process
    calls this (twistd); on other C libraries it does nothing and returns False.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def node_runner(
    path: str | None, listen: list[str] | tuple[str, ...], reactor: Any, stderr: TextIO | None = None,
    options: Mapping[str, Any] | None = None,
) -> NodeRunner:
    """
    Build the node from the config file C{path} (None: the embedded default) under a
    L{NodeRunner}; on a config error, write one line to C{stderr} and exit with status 1.
    """
    from axl.service import make_node_service

    limit_heap_fragmentation()
    try:
        config = build_config(path, listen, options)
        return NodeRunner(make_node_service(config, reactor), reactor, stderr)
    except ConfigError as e:
        _fail(str(e), stderr)


def makeService(options: Options) -> IService:
    """The twistd plugin's service (exits with status 1 on a config error)."""
    from twisted.internet import reactor

    path = find_config(options["config"], os.environ)
    return node_runner(path, options["listen"], reactor, options=options)


def make_application(environ: Mapping[str, str] | None = None) -> Componentized:
    """The C{application} of C{axl.tac} (exits with status 1 on a config error)."""
    from twisted.internet import reactor

    path = find_config(None, os.environ if environ is None else environ)
    application: Componentized = Application("axl")
    node_runner(path, [], reactor).setServiceParent(application)  # type: ignore[no-untyped-call]
    return application
