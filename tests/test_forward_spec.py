"""
Tests for L{axl.forward.spec}: the forward specs of the config keys and twistd options; every bad
spec gets an error quoting it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from axl.config import config_from_dict, load_config
from axl.errors import ConfigError
from axl.forward.spec import (
    DEFAULT_MAX_CONNS,
    DEFAULT_MAX_FLOWS,
    DEFAULT_TCP_IDLE,
    DEFAULT_UDP_IDLE,
    HostPort,
    LocalForwardSpec,
    OverlayTarget,
    RemoteForwardSpec,
    SocksSpec,
    UnixPath,
    parse_local,
    parse_remote,
    parse_socks,
)
from axl.tap import Options, build_config

KEY = "ab" * 32
ADDR = ipaddress.IPv6Address("200:1234::1").packed
SUBNET_ADDR = ipaddress.IPv6Address("300:1234:5678:9abc::1").packed


def assert_bad(test: SynchronousTestCase, parse: Any, spec: str, proto: str, why: str) -> None:
    """C{parse(spec, proto)} raises a ValueError quoting C{spec} and saying C{why}."""
    with test.assertRaises(ValueError, msg=spec) as cm:
        parse(spec, proto)
    test.assertIn(repr(spec), str(cm.exception))
    test.assertIn(why, str(cm.exception), spec)


class SocksSpecTests(SynchronousTestCase):
    """C{socks}."""

    def test_port_only(self) -> None:
        """A bare port listens on 127.0.0.1."""
        self.assertEqual(parse_socks("1080"), SocksSpec(HostPort("127.0.0.1", 1080)))

    def test_host_port(self) -> None:
        """IPv4 and bracketed IPv6 bind addresses; localhost is 127.0.0.1."""
        self.assertEqual(parse_socks("[::1]:1080").listen, HostPort("::1", 1080))
        self.assertEqual(parse_socks("0.0.0.0:1080").listen, HostPort("0.0.0.0", 1080))
        self.assertEqual(parse_socks("localhost:1080").listen, HostPort("127.0.0.1", 1080))

    def test_credentials(self) -> None:
        """USER:PASS@ sets RFC 1929 credentials (the password may contain ':')."""
        spec = parse_socks("alice:se:cret@127.0.0.1:1080")
        self.assertEqual((spec.username, spec.password), (b"alice", b"se:cret"))
        self.assertNotIn("se:cret", repr(spec))

    def test_options(self) -> None:
        """max_conns and idle options."""
        spec = parse_socks("1080?max_conns=5&idle=2.5")
        self.assertEqual((spec.max_conns, spec.idle), (5, 2.5))
        self.assertEqual((parse_socks("1").max_conns, parse_socks("1").idle), (DEFAULT_MAX_CONNS, DEFAULT_TCP_IDLE))

    def test_unix(self) -> None:
        """The proxy may listen on a unix socket."""
        self.assertEqual(parse_socks("unix:run/s.sock").listen, UnixPath("run/s.sock"))

    def test_bad(self) -> None:
        """Every bad socks spec is an error quoting it (password hidden)."""
        for spec, why in [
            ("", "needs"),
            ("x", "host:port"),
            ("99999", "out of range"),
            ("example.com:1080", "bind address"),
            ("::1:1080", "brackets"),
            ("[::1:1080", "[ipv6]:port"),
            ("alice@1080", "USER:PASSWORD"),
            (":pw@1080", "USER:PASSWORD"),
            ("1080?max_conns=0", "max_conns"),
            ("1080?idle=-1", "idle"),
            ("1080?idle=nan", "idle"),
            ("1080?proxy=v2", "unknown option"),
            ("1080?max_conns", "name=value"),
            ("1080?idle=1&idle=2", "twice"),
            ("unix:", "socket path"),
        ]:
            with self.assertRaises(ValueError, msg=spec) as cm:
                parse_socks(spec)
            self.assertIn(why, str(cm.exception), spec)
            self.assertTrue(str(cm.exception).startswith("'"), str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            parse_socks("alice:secret@nothere")
        self.assertNotIn("secret", str(cm.exception))
        self.assertIn("alice:***@nothere", str(cm.exception))


class LocalSpecTests(SynchronousTestCase):
    """C{local_tcp} / C{local_udp}."""

    def test_forms(self) -> None:
        """[BIND:]LPORT:REMOTE:RPORT with an address, a subnet address or a key name."""
        self.assertEqual(
            parse_local("8080:[200:1234::1]:80", "tcp"),
            LocalForwardSpec("tcp", HostPort("127.0.0.1", 8080), OverlayTarget(None, ADDR, 80),
                             DEFAULT_MAX_CONNS, DEFAULT_TCP_IDLE),  # fmt: skip
        )
        spec = parse_local(f"[::1]:8080:{KEY}.pk.ygg:22", "tcp")
        self.assertEqual((spec.listen, spec.remote), (HostPort("::1", 8080), OverlayTarget(bytes.fromhex(KEY), None, 22)))
        spec = parse_local("0.0.0.0:53:[300:1234:5678:9abc::1]:53", "udp")
        self.assertEqual((spec.listen, spec.remote.address), (HostPort("0.0.0.0", 53), SUBNET_ADDR))
        self.assertEqual((spec.max_conns, spec.idle), (DEFAULT_MAX_FLOWS, DEFAULT_UDP_IDLE))

    def test_unix(self) -> None:
        """unix:/path in place of [BIND:]LPORT (paths may contain ':')."""
        spec = parse_local("unix:run/a:b.sock:[200:1234::1]:80", "tcp")
        self.assertEqual(spec.listen, UnixPath("run/a:b.sock"))
        self.assertEqual(spec.remote, OverlayTarget(None, ADDR, 80))

    def test_bad(self) -> None:
        """Every bad local spec is an error quoting it."""
        for spec, proto, why in [
            ("8080", "tcp", "[BIND:]LPORT:REMOTE:RPORT"),
            ("[200:1234::1]:80", "tcp", "local port is missing"),
            ("8080:[200:1234::1]:0", "tcp", "out of range"),
            ("8080:[200:1234::1]:x", "tcp", "not a port"),
            ("8080:[2001:db8::1]:80", "tcp", "200::/7"),
            ("8080:10.0.0.1:80", "tcp", "200::/7"),
            ("8080:example.com:80", "tcp", "neither"),
            ("8080:abcd.pk.ygg:80", "tcp", "neither"),
            ("8080:200:1234::1]:80", "tcp", "unbalanced"),
            ("99999:[200:1234::1]:80", "tcp", "out of range"),
            ("host:8080:[200:1234::1]:80", "tcp", "bind address"),
            ("unix:/tmp/s:[200:1234::1]:80", "udp", "TCP forwards only"),
            ("8080:[200:1234::1]:80?proxy=v2", "tcp", "unknown option"),
        ]:
            assert_bad(self, parse_local, spec, proto, why)


class RemoteSpecTests(SynchronousTestCase):
    """C{remote_tcp} / C{remote_udp}."""

    def test_forms(self) -> None:
        """OPORT:HOST:PORT with IP literals, names, unix sockets, proxy=v2."""
        self.assertEqual(
            parse_remote("80:127.0.0.1:8000", "tcp"),
            RemoteForwardSpec("tcp", 80, HostPort("127.0.0.1", 8000), DEFAULT_MAX_CONNS, DEFAULT_TCP_IDLE),
        )
        self.assertEqual(parse_remote("80:[::1]:8000", "tcp").target, HostPort("::1", 8000))
        self.assertEqual(parse_remote("80:localhost:8000", "tcp").target, HostPort("localhost", 8000))
        spec = parse_remote("80:unix:/run/app.sock?proxy=v2&max_conns=3", "tcp")
        self.assertEqual((spec.target, spec.proxy_v2, spec.max_conns), (UnixPath("/run/app.sock"), True, 3))
        self.assertEqual(parse_remote("53:127.0.0.1:53?idle=5", "udp").idle, 5.0)

    def test_bad(self) -> None:
        """Every bad remote spec is an error quoting it."""
        for spec, proto, why in [
            ("80", "tcp", "OPORT:HOST:PORT"),
            ("80:", "tcp", "OPORT:HOST:PORT"),
            ("0:127.0.0.1:80", "tcp", "out of range"),
            ("x:127.0.0.1:80", "tcp", "not a port"),
            ("80:127.0.0.1", "tcp", "host:port"),
            ("80:127.0.0.1:0", "tcp", "out of range"),
            ("80:::1:80", "tcp", "brackets"),
            ("80:bad_host!:80", "tcp", "not an IP address or a host name"),
            ("80:127.0.0.1:80?proxy=v1", "tcp", "only proxy=v2"),
            ("53:127.0.0.1:53?proxy=v2", "udp", "unknown option"),
            ("53:unix:/tmp/s", "udp", "TCP forwards only"),
            ("80:unix:", "tcp", "socket path"),
        ]:
            assert_bad(self, parse_remote, spec, proto, why)


class ConfigKeyTests(SynchronousTestCase):
    """The keys in node-config.json and the twistd options."""

    def test_defaults_off(self) -> None:
        """All forwards are off by default."""
        config = config_from_dict({})
        self.assertEqual((config.socks, config.local_tcp, config.remote_tcp, config.local_udp,
                          config.remote_udp), (None, (), (), (), ()))  # fmt: skip

    def test_file(self) -> None:
        """A config file's forward keys are parsed; an empty socks is off."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"socks": "", "local_tcp": ["8080:[200:1234::1]:80"], "remote_udp": ["53:127.0.0.1:53"]}, f)
        config = load_config(path)
        self.assertIsNone(config.socks)
        self.assertEqual(config.local_tcp[0].listen, HostPort("127.0.0.1", 8080))
        self.assertEqual(config.remote_udp[0].overlay_port, 53)

    def test_bad_file_names_key_and_file(self) -> None:
        """A bad spec in the file names the file, the key and the spec."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"remote_tcp": ["80:127.0.0.1:80", "bad"]}, f)
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertIn(path, str(cm.exception))
        self.assertIn("'remote_tcp'", str(cm.exception))
        self.assertIn("'bad'", str(cm.exception))

    def test_wrong_types(self) -> None:
        """A list key given a string, or a list with a number, is an error naming the key."""
        for value in ("8080:[200::1]:80", [8080]):
            with self.assertRaises(ConfigError) as cm:
                config_from_dict({"local_tcp": value}, source="c.json")
            self.assertIn("'local_tcp'", str(cm.exception))
        with self.assertRaises(ConfigError):
            config_from_dict({"socks": 1080}, source="c.json")

    def test_options_add(self) -> None:
        """--local-tcp etc. add to the config's lists; --socks replaces socks."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"socks": "1080", "local_tcp": ["1:[200:1234::1]:1"]}, f)
        options = Options()
        options.parseOptions(["--socks", "1081", "--local-tcp", "2:[200:1234::1]:2",
                              "--remote-tcp", "80:127.0.0.1:8000", "--local-udp", "3:[200:1234::1]:3",
                              "--remote-udp", "53:127.0.0.1:53"])  # fmt: skip
        config = build_config(path, [], options)
        self.assertEqual(config.socks, parse_socks("1081"))
        self.assertEqual([s.listen.port for s in config.local_tcp], [1, 2])  # type: ignore[union-attr]
        self.assertEqual(len(config.remote_tcp) + len(config.local_udp) + len(config.remote_udp), 3)

    def test_bad_option_names_it(self) -> None:
        """A bad option value is a ConfigError naming the option and the spec."""
        for option in ("--socks", "--local-tcp", "--remote-tcp", "--local-udp", "--remote-udp"):
            options = Options()
            options.parseOptions([option, "nonsense"])
            with self.assertRaises(ConfigError) as cm:
                build_config(None, [], options)
            self.assertIn(f"{option} 'nonsense'", str(cm.exception))

    def test_readme_examples_parse(self) -> None:
        """Every spec in the README's forward examples parses."""
        readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        start = text.index("## Forwards and the SOCKS proxy")
        block = text[start : text.index("\n## ", start + 5)]
        examples = [line.split("#", 1)[0].split() for line in block.splitlines() if "twistd -n axl" in line]
        seen = 0
        for words in examples:
            for option, value in zip(words, words[1:]):
                if option in ("--socks", "--local-tcp", "--remote-tcp", "--local-udp", "--remote-udp"):
                    options = Options()
                    options.parseOptions([option, value.strip("'\"")])
                    build_config(None, [], options)
                    seen += 1
        self.assertGreaterEqual(seen, 5)
