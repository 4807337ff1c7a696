# -*- test-case-name: tests.test_config -*-
"""
Tests for L{axl.config}: reading C{node-config.json} into L{NodeConfig}.
"""

from __future__ import annotations

import json
import os
from dataclasses import FrozenInstanceError, fields, replace

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.config import (
    DEFAULT_SOURCE,
    NODE_KEYS,
    MulticastInterface,
    NodeConfig,
    add_listeners,
    bridge_host,
    config_from_dict,
    default_config,
    is_loopback_host,
    load_config,
)
from axl.errors import ConfigError

KEY_A = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
PRIV_A = "00" * 32 + KEY_A


class ConfigFileMixin:
    def write(self, text: str | bytes) -> str:
        path = self.mktemp()  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path

    def load(self, obj: object) -> NodeConfig:
        return load_config(self.write(json.dumps(obj)))

    def error(self, obj: object) -> str:
        path = self.write(json.dumps(obj))
        with self.assertRaises(ConfigError) as cm:  # type: ignore[attr-defined]
            load_config(path)
        return str(cm.exception).replace(path, "FILE")


class DefaultTests(SynchronousTestCase):
    """The embedded default and the defaults of every key (spec/axl-node.md section 2)."""

    def test_default_config(self) -> None:
        """The embedded default: no key, no peers or listeners, bridge on 127.0.0.1:9002, AXL's limits."""
        c = default_config()
        self.assertEqual(c.source, DEFAULT_SOURCE)
        self.assertIsNone(c.private_key_path)
        self.assertIsNone(c.private_key)
        self.assertEqual((c.peers, c.listen, c.allowed_public_keys, c.node_info), ((), (), (), {}))
        self.assertEqual((c.bridge_addr, c.api_port, c.tcp_port), ("127.0.0.1", 9002, 7000))
        self.assertEqual((c.router_addr, c.router_port, c.a2a_addr, c.a2a_port), ("", 9003, "", 9004))
        self.assertEqual(c.max_message_size, 16777216)
        self.assertEqual(c.max_concurrent_conns, 128)
        self.assertEqual((c.conn_read_timeout_secs, c.conn_idle_timeout_secs), (60.0, 300.0))
        self.assertEqual(c.warnings, ())

    def test_empty_object(self) -> None:
        """An empty JSON object gives the defaults (with the file as source)."""
        c = config_from_dict({}, "x.json")
        self.assertEqual(replace(c, source=DEFAULT_SOURCE), default_config())

    def test_frozen(self) -> None:
        """NodeConfig is immutable."""
        c = default_config()
        with self.assertRaises(FrozenInstanceError):
            c.api_port = 1  # type: ignore[misc]

    def test_table_matches_fields(self) -> None:
        """Every node key of the table is a NodeConfig field (the loader relies on it)."""
        names = {f.name for f in fields(NodeConfig)}
        for key in NODE_KEYS:
            self.assertIn(key.name, names)
            self.assertTrue(key.doc)

    def test_readme_documents_every_key(self) -> None:
        """Every node key has a row in the README's configuration reference."""
        readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
        if not os.path.exists(readme):
            raise self.skipTest("README.md not next to tests/")  # type: ignore[misc]
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        for key in NODE_KEYS:
            self.assertIn(f"| `{key.name}` |", text, f"add a README config row for {key.name}")

    def test_all_axl_node_keys(self) -> None:
        """The table holds at least every node key of spec/axl-node.md section 2.3."""
        names = {k.name for k in NODE_KEYS}
        for name in (
            "api_port", "bridge_addr", "tcp_port", "router_addr", "router_port", "a2a_addr",
            "a2a_port", "max_message_size", "max_concurrent_conns", "conn_read_timeout_secs",
            "conn_idle_timeout_secs",
        ):
            self.assertIn(name, names)


class GoodFileTests(ConfigFileMixin, SynchronousTestCase):
    """Files that load."""

    def test_all_keys(self) -> None:
        """Every key of section 2 is read into its field (a2a_port included)."""
        c = self.load(
            {
                "PrivateKey": PRIV_A,
                "Peers": ["tls://127.0.0.1:9001", "tcp://[::1]:9002?key=" + KEY_A],
                "Listen": ["tls://0.0.0.0:9001"],
                "AllowedPublicKeys": [KEY_A.upper()],
                "NodeInfo": {"name": "n"},
                "api_port": 9012,
                "bridge_addr": "localhost",
                "tcp_port": 7001,
                "router_addr": "http://127.0.0.1/",
                "router_port": 9013,
                "a2a_addr": "http://127.0.0.1//",
                "a2a_port": 9014,
                "max_message_size": 1024,
                "max_concurrent_conns": 4,
                "conn_read_timeout_secs": 5,
                "conn_idle_timeout_secs": 2.5,
            }
        )
        self.assertEqual(c.private_key, bytes.fromhex(PRIV_A))
        self.assertEqual(c.peers, ("tls://127.0.0.1:9001", "tcp://[::1]:9002?key=" + KEY_A))
        self.assertEqual(c.listen, ("tls://0.0.0.0:9001",))
        self.assertEqual(c.allowed_public_keys, (bytes.fromhex(KEY_A),))
        self.assertEqual(c.node_info, {"name": "n"})
        self.assertEqual((c.api_port, c.bridge_addr, c.tcp_port), (9012, "localhost", 7001))
        self.assertEqual((c.router_addr, c.router_port), ("http://127.0.0.1", 9013))
        self.assertEqual((c.a2a_addr, c.a2a_port), ("http://127.0.0.1", 9014))
        self.assertEqual((c.max_message_size, c.max_concurrent_conns), (1024, 4))
        self.assertEqual((c.conn_read_timeout_secs, c.conn_idle_timeout_secs), (5.0, 2.5))
        self.assertEqual(c.warnings, ())

    def test_source_is_path(self) -> None:
        """The config's source is the path it was loaded from."""
        path = self.write("{}")
        self.assertEqual(load_config(path).source, path)

    def test_zero_means_default(self) -> None:
        """As in AXL, a node key given as 0, "" or null takes its default."""
        c = self.load(
            {"api_port": 0, "bridge_addr": "", "tcp_port": None, "max_message_size": 0,
             "max_concurrent_conns": 0, "conn_read_timeout_secs": 0, "conn_idle_timeout_secs": 0.0}
        )
        self.assertEqual(replace(c, source=DEFAULT_SOURCE), default_config())

    def test_case_insensitive_keys(self) -> None:
        """Key names match case-insensitively, as Go's JSON decoder does."""
        c = self.load({"API_PORT": 9100, "peers": ["tls://h:1"], "privatekey": PRIV_A})
        self.assertEqual((c.api_port, c.peers, c.private_key), (9100, ("tls://h:1",), bytes.fromhex(PRIV_A)))

    def test_relative_key_path(self) -> None:
        """A relative PrivateKeyPath resolves against the current directory, not the config's."""
        c = self.load({"PrivateKeyPath": "private.pem"})
        self.assertEqual(c.private_key_path, os.path.join(os.getcwd(), "private.pem"))

    def test_empty_identity_keys(self) -> None:
        """Empty PrivateKeyPath and PrivateKey mean "not set"."""
        c = self.load({"PrivateKeyPath": "", "PrivateKey": ""})
        self.assertEqual((c.private_key_path, c.private_key), (None, None))

    def test_null_lists(self) -> None:
        """null Peers, Listen, AllowedPublicKeys and NodeInfo are empty."""
        c = self.load({"Peers": None, "Listen": None, "AllowedPublicKeys": None, "NodeInfo": None})
        self.assertEqual((c.peers, c.listen, c.allowed_public_keys, c.node_info), ((), (), (), {}))

    def test_utf8_bom(self) -> None:
        """A UTF-8 byte order mark is accepted."""
        c = load_config(self.write(b'\xef\xbb\xbf{"api_port": 9100}'))
        self.assertEqual(c.api_port, 9100)

    def test_bridge_ipv6(self) -> None:
        """bridge_addr accepts IPv6 literals, bare or bracketed (AXL cannot bind ::1)."""
        self.assertEqual(self.load({"bridge_addr": "::1"}).bridge_addr, "::1")
        self.assertEqual(self.load({"bridge_addr": "[::1]"}).bridge_addr, "::1")
        self.assertEqual(self.load({"bridge_addr": "[0:0::1]"}).bridge_addr, "::1")

    def test_add_listeners(self) -> None:
        """--listen URIs go in front of the config's Listen list (AXL's -listen adds)."""
        c = add_listeners(self.load({"Listen": ["tls://0.0.0.0:1"]}), ["tcp://127.0.0.1:2"])
        self.assertEqual(c.listen, ("tcp://127.0.0.1:2", "tls://0.0.0.0:1"))

    def test_add_listeners_bad(self) -> None:
        """A malformed --listen URI is a ConfigError naming --listen."""
        with self.assertRaises(ConfigError) as cm:
            add_listeners(default_config(), ["0.0.0.0:9001"])
        self.assertEqual(str(cm.exception), "--listen '0.0.0.0:9001' is not a URI such as tls://host:port")


class WarningTests(ConfigFileMixin, SynchronousTestCase):
    """Things that load but deserve a warning."""

    def test_unknown_key(self) -> None:
        """An unknown key is ignored with a warning naming it and the file."""
        path = self.write('{"api_prot": 1}')
        self.assertEqual(load_config(path).warnings, (f"{path}: unknown key 'api_prot' ignored",))

    def test_ignored_yggdrasil_keys(self) -> None:
        """Yggdrasil keys axl does not act on warn when set, and are silent when empty."""
        path = self.write(
            json.dumps({"LogLookups": True,
                        "IfName": "none", "IfMTU": 65535, "InterfacePeers": {},
                        "NodeInfoPrivacy": True})
        )
        warnings = load_config(path).warnings
        self.assertEqual(len(warnings), 3)
        for key in ("LogLookups", "IfMTU", "NodeInfoPrivacy"):
            self.assertIn(
                f"{path}: key '{key}' is a Yggdrasil setting axl ignores (no TUN)",
                warnings,
            )

    def test_multicast_interfaces(self) -> None:
        """MulticastInterfaces entries are read with Yggdrasil's defaults (Beacon and Listen
        true, Port and Priority 0, no Password); field names match case-insensitively."""
        config = self.load({"MulticastInterfaces": [
            {"Regex": "^v", "Beacon": False, "Port": 12345, "Priority": 3, "Password": "secret"},
            {"regex": "eth"}]})  # fmt: skip
        self.assertEqual(config.multicast_interfaces, (
            MulticastInterface("^v", False, True, 12345, 3, "secret"), MulticastInterface("eth")))  # fmt: skip
        self.assertEqual(config.warnings, ())
        self.assertEqual(self.load({}).multicast_interfaces, ())

    def test_multicast_interfaces_errors(self) -> None:
        """A bad MulticastInterfaces entry is a config error naming the key and the field."""
        cases = [
            ({"Regex": "("}, "Regex"), ({"Beacon": "yes"}, "Beacon"), ({"Port": 70000}, "Port"),
            ({"Priority": 256}, "Priority"), ({"Password": "x" * 65}, "Password"),
            ({"Bogus": 1}, "bogus"), ("eth0", "object"),
        ]  # fmt: skip
        for entry, word in cases:
            with self.subTest(entry=entry):
                path = self.write(json.dumps({"MulticastInterfaces": [entry]}))
                e = self.assertRaises(ConfigError, load_config, path)
                self.assertIn("'MulticastInterfaces'", str(e))
                self.assertIn(word, str(e))
                self.assertIn(path, str(e))

    def test_public_bridge(self) -> None:
        """A non-loopback bridge_addr loads but gives a loud warning."""
        for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
            warnings = self.load({"bridge_addr": host}).warnings
            self.assertEqual(len(warnings), 1, host)
            self.assertIn(f"bridge_addr {host!r} is not loopback", warnings[0])
            self.assertIn("no authentication", warnings[0])

    def test_loopback_bridge(self) -> None:
        """Loopback addresses and localhost give no warning."""
        for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
            self.assertEqual(self.load({"bridge_addr": host}).warnings, (), host)
        self.assertTrue(is_loopback_host("LOCALHOST."))


class BadFileTests(ConfigFileMixin, SynchronousTestCase):
    """Files that do not load: each gives one exact message naming the file and the key."""

    def test_missing_file(self) -> None:
        """A missing file is named as not found."""
        path = self.mktemp()
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: config file not found")

    def test_directory(self) -> None:
        """A directory cannot be read as a config file."""
        path = self.mktemp()
        os.mkdir(path)
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: cannot read config file: Is a directory")

    def test_syntax_error_line_column(self) -> None:
        """JSON that does not parse gives the line and the column."""
        path = self.write('{\n  "api_port": 9002,\n  "tcp_port": ,\n}')
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: invalid JSON at line 3, column 15: Expecting value")

    def test_hjson_comments(self) -> None:
        """HJSON comments are a syntax error, with a hint that the file must be plain JSON."""
        path = self.write('{\n  # the bridge\n  "api_port": 9002\n}')
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(
            str(cm.exception),
            f"{path}: invalid JSON at line 2, column 3: Expecting property name enclosed in double quotes"
            " (comments are not allowed: the file must be plain JSON, not HJSON)",
        )

    def test_empty_file(self) -> None:
        """An empty file is invalid JSON at line 1, column 1."""
        path = self.write("")
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: invalid JSON at line 1, column 1: Expecting value")

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 is rejected."""
        path = self.write(b'{"a": "\xff"}')
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: config file is not UTF-8 text (offset 7)")

    def test_nan(self) -> None:
        """NaN and Infinity are not JSON."""
        path = self.write('{"conn_read_timeout_secs": NaN}')
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: invalid JSON: NaN is not valid JSON")

    def test_duplicate_key(self) -> None:
        """A key given twice is an error rather than a silent last-wins."""
        path = self.write('{"api_port": 1, "api_port": 2}')
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: key 'api_port' appears twice")

    def test_duplicate_key_other_case(self) -> None:
        """Two spellings of one key are an error naming both."""
        self.assertEqual(
            self.error({"api_port": 1, "API_PORT": 2}),
            "FILE: keys 'api_port' and 'API_PORT' name the same setting",
        )

    def test_top_level_not_object(self) -> None:
        """The top level must be an object."""
        self.assertEqual(self.error([1]), "FILE: the config must be a JSON object, got a list")

    def test_wrong_types(self) -> None:
        """A value of the wrong type names the key, the expected type and the value."""
        cases = [
            ({"api_port": "9012"}, "key 'api_port' must be an integer, got a string \"9012\""),
            ({"api_port": 9012.5}, "key 'api_port' must be an integer, got a number 9012.5"),
            ({"api_port": True}, "key 'api_port' must be an integer, got a boolean true"),
            ({"tcp_port": [7000]}, "key 'tcp_port' must be an integer, got a list [7000]"),
            ({"bridge_addr": 127}, "key 'bridge_addr' must be a string, got an integer 127"),
            ({"router_addr": {}}, "key 'router_addr' must be a string, got an object {}"),
            ({"conn_read_timeout_secs": "60"}, "key 'conn_read_timeout_secs' must be a number, got a string \"60\""),
            ({"max_message_size": False}, "key 'max_message_size' must be an integer, got a boolean false"),
            ({"Peers": "tls://h:1"}, "key 'Peers' must be a list of strings, got a string"),
            ({"Listen": [9001]}, "key 'Listen' must be a list of strings, found an integer 9001"),
            ({"PrivateKeyPath": 5}, "key 'PrivateKeyPath' must be a file path string, got an integer"),
            ({"PrivateKey": ["ab"]}, "key 'PrivateKey' must be a hex string, got a list"),
            ({"NodeInfo": "me"}, "key 'NodeInfo' must be a JSON object, got a string"),
            ({"AllowedPublicKeys": KEY_A}, "key 'AllowedPublicKeys' must be a list of strings, got a string"),
        ]
        for obj, message in cases:
            self.assertEqual(self.error(obj), "FILE: " + message, obj)

    def test_out_of_range(self) -> None:
        """Values AXL would wrap, crash on or misuse are rejected with the allowed range."""
        cases = [
            ({"api_port": -1}, "key 'api_port' must be a port number 1-65535, got -1"),
            ({"api_port": 65536}, "key 'api_port' must be a port number 1-65535, got 65536"),
            ({"tcp_port": 70000}, "key 'tcp_port' must be a port number 1-65535, got 70000"),
            ({"router_port": -9003}, "key 'router_port' must be a port number 1-65535, got -9003"),
            ({"a2a_port": 100000}, "key 'a2a_port' must be a port number 1-65535, got 100000"),
            ({"max_message_size": -1}, "key 'max_message_size' must be 1-4294967295 bytes, got -1"),
            ({"max_message_size": 4294967296}, "key 'max_message_size' must be 1-4294967295 bytes, got 4294967296"),
            ({"max_concurrent_conns": -5}, "key 'max_concurrent_conns' must be greater than 0, got -5"),
            ({"conn_read_timeout_secs": -1}, "key 'conn_read_timeout_secs' must be greater than 0, got -1.0"),
            ({"conn_idle_timeout_secs": -0.5}, "key 'conn_idle_timeout_secs' must be greater than 0, got -0.5"),
        ]
        for obj, message in cases:
            self.assertEqual(self.error(obj), "FILE: " + message, obj)

    def test_bad_bridge_addr(self) -> None:
        """bridge_addr must be a bare host: not a URL, not host:port, not garbage."""
        cases = [
            ("127.0.0.1:9002", "must be a bare host without a port (set the port with api_port), got '127.0.0.1:9002'"),
            ("localhost:9002", "must be a bare host without a port (set the port with api_port), got 'localhost:9002'"),
            ("http://127.0.0.1", "must be a bare host, not a URL, got 'http://127.0.0.1'"),
            ("bad host", "must be an IPv4 or IPv6 address or a host name, got 'bad host'"),
            ("-x", "must be an IPv4 or IPv6 address or a host name, got '-x'"),
        ]
        for value, message in cases:
            self.assertEqual(self.error({"bridge_addr": value}), f"FILE: key 'bridge_addr' {message}", value)
        self.assertEqual(bridge_host("Example.ORG"), "Example.ORG")

    def test_bad_private_key(self) -> None:
        """PrivateKey must be 128 hex digits."""
        cases = [
            (PRIV_A[:64], "must be 128 hex digits (32-byte seed then 32-byte public key), got 64 characters"),
            (PRIV_A[:-1] + "g", "must be 128 hex digits (32-byte seed then 32-byte public key), got 128 characters"),
            (" " + PRIV_A, "must be 128 hex digits (32-byte seed then 32-byte public key), got 129 characters"),
        ]
        for value, message in cases:
            self.assertEqual(self.error({"PrivateKey": value}), f"FILE: key 'PrivateKey' {message}")

    def test_bad_allowed_key(self) -> None:
        """AllowedPublicKeys entries must be 64 hex digits."""
        self.assertEqual(
            self.error({"AllowedPublicKeys": [KEY_A[:62]]}),
            "FILE: key 'AllowedPublicKeys' must be 64 hex digits (an ed25519 public key), got 62 characters",
        )

    def test_bad_peer_uri(self) -> None:
        """Peer and listen entries must look like scheme://rest."""
        self.assertEqual(
            self.error({"Peers": ["127.0.0.1:9001"]}),
            "FILE: key 'Peers' '127.0.0.1:9001' is not a URI such as tls://host:port",
        )
        self.assertEqual(
            self.error({"Listen": ["tls://"]}),
            "FILE: key 'Listen' 'tls://' is not a URI such as tls://host:port",
        )

    def test_source_in_dict_errors(self) -> None:
        """config_from_dict names the source it is given."""
        with self.assertRaises(ConfigError) as cm:
            config_from_dict({"api_port": "x"}, "conf/n.json")
        self.assertTrue(str(cm.exception).startswith("conf/n.json: key 'api_port' "))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
_KEYS = st.sampled_from(
    [k.name for k in NODE_KEYS] + [k.upper() for k in ("api_port", "bridge_addr")]
    + ["PrivateKeyPath", "PrivateKey", "Peers", "Listen", "AllowedPublicKeys", "NodeInfo", "IfName", "x"]
)


class ConfigPropertyTests(SynchronousTestCase):
    """The loader on arbitrary JSON."""

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(_KEYS, _JSON, max_size=5))
    def test_total(self, data: dict[str, object]) -> None:
        """Any JSON object gives a NodeConfig or a ConfigError naming the source, never another exception."""
        try:
            config = config_from_dict(data, "p.json")
        except ConfigError as e:
            self.assertTrue(str(e).startswith("p.json: "), str(e))
        else:
            self.assertEqual(config.source, "p.json")
            self.assertTrue(1 <= config.api_port <= 65535)
            self.assertTrue(config.max_message_size >= 1)


class ServiceURLTests(SynchronousTestCase):
    def test_base_url_forms(self) -> None:
        """router_addr/a2a_addr accept a bare host, an IPv6 literal, a URL with or without port."""
        from axl.config import base_url

        cases = {
            "http://127.0.0.1": "http://127.0.0.1",
            "http://127.0.0.1/": "http://127.0.0.1",
            "127.0.0.1": "http://127.0.0.1",
            "localhost:9100": "http://localhost:9100",
            "::1": "http://[::1]",
            "[::1]:9100": "http://[::1]:9100",
            "https://router.example:8443//": "https://router.example:8443",
            "": "",
        }
        for given, expected in cases.items():
            self.assertEqual(base_url(given), expected, given)
        for bad in ("ftp://host", "http://host/route", "http://host:0", "http://host:99999", "http://"):
            with self.assertRaises(ValueError, msg=bad):
                base_url(bad)

    def test_service_url(self) -> None:
        """The port key applies unless the address names its own port; empty stays off."""
        from axl.config import service_url

        self.assertEqual(service_url("http://127.0.0.1", 9003, "/route"), "http://127.0.0.1:9003/route")
        self.assertEqual(service_url("http://[::1]", 9004), "http://[::1]:9004")
        self.assertEqual(service_url("http://127.0.0.1:9100", 9003, "/route"), "http://127.0.0.1:9100/route")
        self.assertEqual(service_url("", 9003, "/route"), "")

    def test_bad_router_addr_names_key(self) -> None:
        """A router_addr with a path stops the start naming the key and the file."""
        with self.assertRaises(ConfigError) as cm:
            config_from_dict({"router_addr": "http://127.0.0.1/route"}, "c.json")
        self.assertIn("router_addr", str(cm.exception))
        self.assertIn("c.json", str(cm.exception))
