# -*- test-case-name: tests.test_identity -*-
"""
Tests for L{axl.identity}: where the node's key comes from (spec/axl-node.md section 2.4).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import replace

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.config import config_from_dict, default_config
from axl.crypto import Identity
from axl.errors import ConfigError
from axl.identity import (
    how_to_make_key,
    identity_from_pem,
    identity_to_pem,
    load_identity,
    read_key_file,
)

DATA = os.path.join(os.path.dirname(__file__), "data")
KEY_A = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
KEY_B = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
PRIV_B = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" + KEY_B
# The DER PKCS#8 wrapping of an ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the seed.
PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


def data_path(name: str) -> str:
    return os.path.join(DATA, name)


def pem_of_seed(seed: bytes) -> bytes:
    """A PKCS#8 PEM built by hand (independent of the code under test)."""
    body = base64.encodebytes(PKCS8_ED25519_PREFIX + seed)
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


class PemTests(SynchronousTestCase):
    """Reading and writing PEM keys."""

    def test_hand_made_pem(self) -> None:
        """A hand-built PKCS#8 PEM of seed 32x00 gives key A of the vectors."""
        self.assertEqual(identity_from_pem(pem_of_seed(bytes(32))).public_key.hex(), KEY_A)

    def test_round_trip(self) -> None:
        """identity_to_pem writes exactly the hand-built PKCS#8 form, which reads back."""
        ident = Identity(bytes(range(1, 33)))
        pem = identity_to_pem(ident)
        self.assertEqual(pem, pem_of_seed(ident.seed))
        self.assertEqual(identity_from_pem(pem).public_key.hex(), KEY_B)

    def test_openssl_pem(self) -> None:
        """The openssl-made key of tests/data gives the public key openssl printed for it."""
        with open(data_path("ed25519-openssl.pem"), "rb") as f:
            ident = identity_from_pem(f.read())
        with open(data_path("ed25519-openssl.pub.hex")) as f:
            self.assertEqual(ident.public_key.hex(), f.read().strip())

    def test_openssl_live(self) -> None:
        """A key openssl makes now gives the key `openssl pkey -pubout` reports (skipped without openssl)."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise self.skipTest("no openssl binary")  # type: ignore[misc]
        path = self.mktemp()
        subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", path], check=True, timeout=30)
        der = subprocess.run(
            [openssl, "pkey", "-in", path, "-pubout", "-outform", "DER"],
            check=True, capture_output=True, timeout=30,
        ).stdout
        with open(path, "rb") as f:
            self.assertEqual(identity_from_pem(f.read()).public_key, der[-32:])

    def test_first_block_only(self) -> None:
        """Only the first PEM block counts; text before it is allowed."""
        pem = b"comment line\n" + pem_of_seed(bytes(32)) + pem_of_seed(bytes(range(1, 33)))
        self.assertEqual(identity_from_pem(pem).public_key.hex(), KEY_A)

    def test_rejections(self) -> None:
        """Every kind of unusable PEM gives its own reason."""
        def read(name: str) -> bytes:
            with open(data_path(name), "rb") as f:
                return f.read()

        cases = [
            (b"hello", "is not a PEM file (no -----BEGIN PRIVATE KEY----- line)"),
            (read("ec-traditional.pem"), 'holds a PEM block of type "EC PRIVATE KEY", expected "PRIVATE KEY"'),
            (
                read("ed25519-encrypted.pem"),
                'holds a PEM block of type "ENCRYPTED PRIVATE KEY", expected "PRIVATE KEY" '
                "(encrypted keys are not supported)",
            ),
            (read("ed25519-public.pem"), 'holds a PEM block of type "PUBLIC KEY", expected "PRIVATE KEY"'),
            (
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                'holds a PEM block of type "OPENSSH PRIVATE KEY", expected "PRIVATE KEY"',
            ),
            (read("rsa-pkcs8.pem"), "holds an RSA key, but the node key must be ed25519"),
            (read("ec-pkcs8.pem"), "holds an EC key, but the node key must be ed25519"),
            (read("x25519.pem"), "holds an X25519 key, but the node key must be ed25519"),
            (b"-----BEGIN PRIVATE KEY-----\nAAAA\n", "is a malformed PEM file (no -----END PRIVATE KEY----- line)"),
        ]
        for data, reason in cases:
            with self.assertRaises(ValueError) as cm:
                identity_from_pem(data)
            self.assertEqual(str(cm.exception), reason, reason)

    def test_malformed_body(self) -> None:
        """A PRIVATE KEY block whose body is not valid base64 DER is called malformed."""
        with self.assertRaises(ValueError) as cm:
            identity_from_pem(b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n")
        self.assertTrue(str(cm.exception).startswith("is a malformed PEM private key ("), str(cm.exception))


class KeyFileTests(SynchronousTestCase):
    """read_key_file: errors name the config, the key file and how to make one."""

    def write(self, data: bytes, mode: int = 0o600) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def test_missing(self) -> None:
        """A missing key file names both files and the two ways to create it."""
        path = os.path.abspath(self.mktemp())
        with self.assertRaises(ConfigError) as cm:
            read_key_file(path, "c.json")
        self.assertEqual(
            str(cm.exception),
            f"c.json: PrivateKeyPath {path} does not exist; create one with `axl keygen {path}` "
            f"or `openssl genpkey -algorithm ed25519 -out {path}`",
        )

    def test_directory(self) -> None:
        """A directory instead of a key file is named as such."""
        path = self.mktemp()
        os.mkdir(path)
        with self.assertRaises(ConfigError) as cm:
            read_key_file(path, "c.json")
        self.assertEqual(str(cm.exception), f"c.json: PrivateKeyPath {path} is a directory; {how_to_make_key(path)}")

    def test_unreadable(self) -> None:
        """
        A key path that cannot be opened for another reason than a missing file says why (a path
        through a regular file: unreadable for root too, unlike a mode-000 file).
        """
        path = os.path.join(self.write(pem_of_seed(bytes(32))), "key.pem")
        with self.assertRaises(ConfigError) as cm:
            read_key_file(path, "c.json")
        self.assertEqual(
            str(cm.exception),
            f"c.json: PrivateKeyPath {path} cannot be read (Not a directory); fix its permissions or "
            f"{how_to_make_key(path)}",
        )

    def test_bad_content(self) -> None:
        """A file that is not an ed25519 PEM names the file, the reason and the fix."""
        path = self.write(b"not a key")
        with self.assertRaises(ConfigError) as cm:
            read_key_file(path, "c.json")
        self.assertEqual(
            str(cm.exception),
            f"c.json: PrivateKeyPath {path} is not a PEM file (no -----BEGIN PRIVATE KEY----- line); "
            f"{how_to_make_key(path)}",
        )

    def test_wrong_key_type(self) -> None:
        """An RSA key file is rejected, naming the key type."""
        with self.assertRaises(ConfigError) as cm:
            read_key_file(data_path("rsa-pkcs8.pem"), "c.json")
        self.assertIn("holds an RSA key, but the node key must be ed25519", str(cm.exception))

    def test_private_mode_quiet(self) -> None:
        """A key file with mode 0600 loads without a warning."""
        path = self.write(pem_of_seed(bytes(32)), 0o600)
        with capturedLogs() as events:
            ident = read_key_file(path, "c.json")
        self.assertEqual(ident.public_key.hex(), KEY_A)
        self.assertEqual(events, [])

    def test_group_readable_warns(self) -> None:
        """A key file readable by group or others loads, with a warning saying how to fix it."""
        path = self.write(pem_of_seed(bytes(32)), 0o644)
        with capturedLogs() as events:
            read_key_file(path, "c.json")
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"].name, "warn")
        self.assertEqual(events[0]["path"], path)
        self.assertEqual(events[0]["mode"], "0o644")
        self.assertIn("chmod 600", events[0]["log_format"])


class LoadIdentityTests(SynchronousTestCase):
    """load_identity: PEM wins over PrivateKey; neither means an ephemeral key."""

    def test_private_key(self) -> None:
        """PrivateKey alone gives that identity, not ephemeral."""
        ident = load_identity(config_from_dict({"PrivateKey": PRIV_B}))
        self.assertEqual(ident.public_key.hex(), KEY_B)
        self.assertFalse(ident.ephemeral)

    def test_pem_wins(self) -> None:
        """With both PrivateKeyPath and PrivateKey, the PEM file's key is used."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(pem_of_seed(bytes(32)))
        os.chmod(path, 0o600)
        config = config_from_dict({"PrivateKeyPath": path, "PrivateKey": PRIV_B})
        self.assertEqual(load_identity(config).public_key.hex(), KEY_A)

    def test_pem_missing_is_fatal(self) -> None:
        """A named but missing PEM is an error even when PrivateKey is set (no silent fallback)."""
        path = self.mktemp()
        config = config_from_dict({"PrivateKeyPath": path, "PrivateKey": PRIV_B}, "n.json")
        with self.assertRaises(ConfigError) as cm:
            load_identity(config)
        self.assertIn("n.json: PrivateKeyPath ", str(cm.exception))
        self.assertIn("does not exist", str(cm.exception))

    def test_private_key_mismatch(self) -> None:
        """A PrivateKey whose public half is not the seed's is an error naming the file and key."""
        bad = PRIV_B[:64] + KEY_A
        with self.assertRaises(ConfigError) as cm:
            load_identity(config_from_dict({"PrivateKey": bad}, "n.json"))
        self.assertEqual(
            str(cm.exception),
            "n.json: key 'PrivateKey' is not a valid key: the public half does not match the seed",
        )

    def test_ephemeral(self) -> None:
        """With no key configured, a new ephemeral key is made and a warning says it changes on restart."""
        with capturedLogs() as events:
            a = load_identity(default_config())
            b = load_identity(replace(default_config()))
        self.assertTrue(a.ephemeral)
        self.assertNotEqual(a.public_key, b.public_key)
        self.assertEqual(len(events), 2)
        self.assertEqual(events[0]["log_level"].name, "warn")
        self.assertIn("will change on restart", events[0]["log_format"])
        self.assertIn("axl keygen", events[0]["log_format"])
        self.assertNotIn(a.seed.hex(), repr(events[0]))
