# -*- test-case-name: tests.test_cli -*-
"""
Tests for L{axl.cli}: C{axl keygen PATH}.
"""

from __future__ import annotations

import io
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from axl.cli import main, write_new_key
from axl.config import config_from_dict
from axl.crypto import Identity
from axl.identity import identity_from_pem, load_identity


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, out, err)
    return status, out.getvalue(), err.getvalue()


class KeygenTests(SynchronousTestCase):
    """axl keygen writes a private PEM and reports the key."""

    def test_writes_private_pem(self) -> None:
        """keygen writes a PKCS#8 ed25519 PEM with mode 0600 and exits 0."""
        path = self.mktemp()
        status, out, err = run(["keygen", path])
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"-----BEGIN PRIVATE KEY-----\n"))

    def test_prints_key_and_address(self) -> None:
        """keygen prints the file, the public key and the IPv6 address of the key it wrote."""
        path = self.mktemp()
        _status, out, _err = run(["keygen", path])
        with open(path, "rb") as f:
            ident = identity_from_pem(f.read())
        self.assertEqual(
            out.splitlines(),
            [f"Wrote {path}", f"Public key: {ident.public_key.hex()}", f"IPv6: {ident.ipv6}"],
        )

    def test_node_loads_it(self) -> None:
        """A key written by keygen loads as the node identity without any warning-worthy mode."""
        path = self.mktemp()
        written = write_new_key(path, Identity(bytes(32)))
        loaded = load_identity(config_from_dict({"PrivateKeyPath": path}))
        self.assertEqual(loaded.public_key, written.public_key)

    def test_mode_despite_umask(self) -> None:
        """The file is 0600 even under a permissive umask."""
        old = os.umask(0)
        try:
            path = self.mktemp()
            write_new_key(path)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_never_overwrites(self) -> None:
        """An existing file is left alone and keygen exits 1 saying so."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"precious")
        status, out, err = run(["keygen", path])
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, f"axl keygen: {path} already exists; not overwriting it\n")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"precious")

    def test_cannot_create(self) -> None:
        """A path in a missing directory is an error with the reason, exit 1."""
        path = os.path.join(self.mktemp(), "key.pem")
        status, _out, err = run(["keygen", path])
        self.assertEqual(status, 1)
        self.assertEqual(err, f"axl keygen: cannot create {path}: No such file or directory\n")

    def test_usage_errors(self) -> None:
        """No command, or keygen without a path, is a usage error with exit status 2."""
        for argv in ([], ["keygen"], ["frobnicate"]):
            status, out, err = run(argv)
            self.assertEqual((status, out), (2, ""), argv)
            self.assertIn("usage: axl", err)

    def test_help(self) -> None:
        """--help prints the usage on stdout and exits 0."""
        status, out, _err = run(["keygen", "--help"])
        self.assertEqual(status, 0)
        self.assertIn("usage: axl keygen", out)
