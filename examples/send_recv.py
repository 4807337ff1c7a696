#!/usr/bin/env python3
"""
Send and receive raw messages through an axl (or AXL) node's HTTP bridge.

    send_recv.py [--node URL] send PEER TEXT      # POST /send, prints the byte count
    send_recv.py [--node URL] recv [--wait S]     # print messages as they arrive
    send_recv.py [--node URL] echo                # answer every message with "echo: <text>"
    send_recv.py [--node URL] ping PEER [TEXT]    # send, then wait for the echo; print the round trip

Needs only the standard library and axl.client (blocking flavour).
"""

from __future__ import annotations

import argparse
import sys
import time

from axl.client import DEFAULT_NODE_URL, NodeClient, NodeError, ReceivedMessage


def wait_for_message(node: NodeClient, seconds: float) -> ReceivedMessage | None:
    """Poll /recv until a message arrives or C{seconds} pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = node.recv()
        if message is not None:
            return message
        time.sleep(0.1)
    return None


def show(message: Message) -> str:
    text = message.data.decode("utf-8", "replace")
    return f"from {message.from_peer_id[:16]}...: {text!r} ({len(message.data)} bytes)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node", default=DEFAULT_NODE_URL, help="the node's bridge URL")
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send")
    send.add_argument("peer")
    send.add_argument("text")
    recv = sub.add_parser("recv")
    recv.add_argument("--wait", type=float, default=60.0, help="stop after this many quiet seconds")
    sub.add_parser("echo")
    ping = sub.add_parser("ping")
    ping.add_argument("peer")
    ping.add_argument("text", nargs="?", default="ping")
    args = parser.parse_args(argv)
    node = NodeClient(args.node)
    me = node.our_key()
    print(f"our key: {me}")
    try:
        if args.command == "send":
            print(f"sent {node.send(args.peer, args.text.encode())} bytes")
        elif args.command == "recv":
            while (message := wait_for_message(node, args.wait)) is not None:
                print(show(message))
        elif args.command == "echo":
            print("echoing; Ctrl-C to stop")
            while True:
                message = wait_for_message(node, 3600)
                if message is not None:
                    print(show(message))
                    node.send(message.from_peer_id, b"echo: " + message.data)
        elif args.command == "ping":
            start = time.monotonic()
            node.send(args.peer, args.text.encode())
            while True:
                reply = wait_for_message(node, 30 - (time.monotonic() - start))
                if reply is None:
                    print("no echo within 30 s (is the peer running 'echo'?)")
                    return 1
                if reply.data == b"echo: " + args.text.encode():
                    break
                print(f"skipping {show(reply)}")
            print(f"{show(reply)} after {1000 * (time.monotonic() - start):.1f} ms")
    except NodeError as e:
        print(f"the node refused: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
