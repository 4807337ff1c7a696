# -*- test-case-name: tests.test_cli -*-
"""
The C{axl} command: C{axl keygen PATH} writes a new ed25519 key (PKCS#8 PEM, mode 0600) and
prints its public key and address; C{axl ctl [-endpoint E] [-json] COMMAND [k=v ...]} talks to a
node's admin socket like C{yggdrasilctl} (L{axl.admin.ctl}).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from axl.crypto.keys import Identity
from axl.identity import identity_to_pem

__all__ = ["main", "write_new_key"]


def write_new_key(path: str, identity: Identity | None = None) -> Identity:
    """
    Write a new key to C{path}, created with mode 0600; an existing file is never overwritten.

    @raise OSError: C{FileExistsError} if C{path} exists, or the file cannot be created.
    """
    identity = identity if identity is not None else Identity.generate()
    pem = identity_to_pem(identity)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # in case the umask or the file system changed the mode
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return identity


def _keygen(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        identity = write_new_key(args.path)
    except FileExistsError:
        err.write(f"axl keygen: {args.path} already exists; not overwriting it\n")
        return 1
    except OSError as e:
        err.write(f"axl keygen: cannot create {args.path}: {e.strerror or e}\n")
        return 1
    out.write(f"Wrote {args.path}\n")
    out.write(f"Public key: {identity.public_key.hex()}\n")
    out.write(f"IPv6: {identity.ipv6}\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="axl", description="axl node utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="write a new ed25519 node key (PEM, mode 0600)")
    keygen.add_argument("path", help="where to write the key, e.g. private.pem")
    keygen.set_defaults(run=_keygen)
    ctl = sub.add_parser(
        "ctl",
        help="query or steer a node over its admin socket (like yggdrasilctl)",
        description="Run an admin command (list, getSelf, getPeers, getTree, getPaths, "
        "getSessions, getNodeInfo key=..., addPeer uri=..., removePeer uri=..., ...) on a node "
        "with AdminListen set.",
    )
    ctl.add_argument("-endpoint", help="unix:///path or tcp://host:port (default: the config's AdminListen)")
    ctl.add_argument("-config", help="config file to read AdminListen from (default: $AXL_CONFIG, "
                     "then ./node-config.json)")  # fmt: skip
    ctl.add_argument("-json", action="store_true", help="print the response as JSON")
    ctl.add_argument("-borders", type=_go_bool, nargs="?", const=True, default=True,
                     help="draw table borders (-borders=false for plain columns)")  # fmt: skip
    ctl.add_argument("command", help="the admin command, e.g. getPeers")
    ctl.add_argument("arguments", nargs="*", help="key=value arguments, e.g. key=<64 hex>")
    ctl.set_defaults(run=_ctl)
    return parser


def _go_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _ctl(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return _run_ctl(args.endpoint, args.config, args.json, args.borders, args.command,
                   args.arguments, out, err, dict(os.environ))  # fmt: skip


def _run_ctl(
    endpoint: str | None,
    config_path: str | None,
    as_json: bool,
    borders: bool,
    command: str,
    tokens: Sequence[str],
    out: TextIO,
    err: TextIO,
    environ: dict[str, str],
) -> int:
    """C{axl ctl}: returns the exit status (0 success, 1 any error, 2 usage)."""
    from axl.admin.address import parse_admin_listen
    from axl.admin.codec import go_json
    from axl.admin.ctl import AdminClientError, admin_call, parse_key_values, render
    from axl.config import load_config
    from axl.errors import ConfigError
    from axl.tap import find_config

    try:
        arguments = parse_key_values(tokens)
    except ValueError as e:
        err.write(f"axl ctl: {e}\n")
        return 2
    where = "-endpoint"
    try:
        if endpoint is None:
            path = find_config(config_path, environ)
            if path is None:
                err.write("axl ctl: no -endpoint given and no config file found "
                          "(-config FILE, $AXL_CONFIG or ./node-config.json)\n")  # fmt: skip
                return 1
            endpoint = load_config(path).admin_listen
            if not endpoint:
                err.write(f"axl ctl: {path} has no AdminListen; set it, or pass -endpoint\n")
                return 1
            where = f"{path}: key 'AdminListen'"
        address = parse_admin_listen(endpoint)
    except ConfigError as e:
        err.write(f"axl ctl: {e}\n" if endpoint is None else f"axl ctl: {where} {e}\n")
        return 1
    if address is None:
        err.write(f"axl ctl: the endpoint {endpoint!r} is off; use unix:///path or tcp://host:port\n")
        return 1
    try:
        answer = admin_call(address, command, arguments)
    except AdminClientError as e:
        err.write(f"axl ctl: {e}\n")
        return 1
    if answer.get("status", "success") == "error":
        message = answer.get("error") or "no error text"
        err.write(f"Admin socket returned an error: {message}\n")
        return 1
    response = answer.get("response")
    if as_json:
        out.write(go_json(response) + "\n")
    else:
        try:
            out.write(render(command, response, borders))
        except (KeyError, TypeError, AttributeError):
            out.write(go_json(response) + "\n")  # an answer shaped unlike Yggdrasil's
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the C{axl} command; returns the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = _parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage (or --help)
        return int(e.code or 0)
    return int(args.run(args, out, err))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
