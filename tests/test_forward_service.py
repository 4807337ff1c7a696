"""
Tests for L{axl.forward.service.ForwardsService} on a L{MemoryReactorClock}: what it listens on,
the warning for listeners off loopback, closing on stop.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from axl.config import config_from_dict
from axl.forward.service import ForwardsService
from axl.forward.tcp import LocalTCPFactory, SocksFactory
from tests.forward_fakes import connected_end
from tests.test_forward_tcp import KEY_A, FakeIPv6


class ForwardsServiceTests(SynchronousTestCase):
    """Starting and stopping the forwards of a config."""

    def service(self, config: dict[str, object]) -> tuple[ForwardsService, MemoryReactorClock]:
        reactor = MemoryReactorClock()
        lookups: list[bytes] = []
        service = ForwardsService(config_from_dict(config), reactor, FakeIPv6(KEY_A), lookups.append,
                                  tcp=None, udp=None)  # type: ignore[arg-type]  # fmt: skip
        return service, reactor

    def test_listens(self) -> None:
        """SOCKS and local_tcp listen where the specs say (TCP and unix), in config order."""
        service, reactor = self.service({
            "socks": "127.0.0.1:1080",
            "local_tcp": ["[::1]:2222:[200:1234::1]:22", "unix:run/axl-test.sock:[200:1234::1]:80"],
        })
        with capturedLogs() as events:
            service.startService()
        [(port1, f1, _, host1), (port2, f2, _, host2)] = reactor.tcpServers
        self.assertEqual((port1, host1, type(f1)), (1080, "127.0.0.1", SocksFactory))
        self.assertEqual((port2, host2, type(f2)), (2222, "::1", LocalTCPFactory))
        [(path, f3, _, mode, want_pid)] = reactor.unixServers
        self.assertEqual((path, mode, want_pid, type(f3)), ("run/axl-test.sock", 0o600, True, LocalTCPFactory))
        self.assertEqual(len(service.ports), 3)
        text = [formatEvent(e) for e in events]
        self.assertTrue(text[0].startswith("socks 127.0.0.1:1080: listening on "), text[0])
        self.assertFalse(any("not loopback" in t for t in text))

    def test_public_listener_warns(self) -> None:
        """A listener off loopback logs a loud warning naming it."""
        service, reactor = self.service({"socks": "0.0.0.0:1080", "local_tcp": ["0.0.0.0:2222:[200:1234::1]:22"]})
        with capturedLogs() as events:
            service.startService()
        warnings = [formatEvent(e) for e in events if "not loopback" in formatEvent(e)]
        self.assertEqual(len(warnings), 2, warnings)
        self.assertTrue(warnings[0].startswith("socks 0.0.0.0:1080 listens on"))

    def test_nothing_configured(self) -> None:
        """Without forwards the service listens on nothing."""
        service, reactor = self.service({})
        service.startService()
        self.assertEqual((reactor.tcpServers, reactor.unixServers, service.ports), ([], [], []))

    def test_stop_closes(self) -> None:
        """Stopping stops listening and closes the open connections."""
        service, reactor = self.service({"socks": "1080"})
        service.startService()
        end, transport = connected_end()
        service.forwards[0].active.add(end)
        self.successResultOf(service.stopService())
        self.assertTrue(transport.disconnecting)
        self.assertEqual(service.ports, [])
