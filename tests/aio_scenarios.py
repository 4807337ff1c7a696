"""
asyncio programs that embed axl nodes (L{axl.aio}), run one per process by L{tests.test_aio}.

Each scenario is an C{async def} taking its arguments (a JSON object) and returning a JSON-able
dict of what it observed; C{python tests/aio_scenarios.py NAME ARGS_JSON} runs it under
C{asyncio.run()} (the way a user's program runs), adds what was left on the loop afterwards
(L{leftovers}), and prints the result as the last line of stdout. The trial tests assert on
those results; nothing here decides pass or fail. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

if __name__ == "__main__":  # run as a script from the checkout: import this checkout's axl
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import axl.aio  # noqa: E402
from axl.aio import _reactor  # noqa: E402

Scenario = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {}

MiB = 1024 * 1024


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def _reactor_or_none() -> Any:
    return sys.modules.get("twisted.internet.reactor")


def leftovers(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """
    What is still on the loop (called from the last callback of the loop's life): other tasks,
    live asyncio timers, Twisted delayed calls, file descriptors the loop watches besides its own
    self-pipe and the reactor's waker, and the reactor's user count.
    """
    reactor = _reactor_or_none()
    current = asyncio.current_task()
    tasks = [repr(t) for t in asyncio.all_tasks(loop) if t is not current]
    timers = [repr(h) for h in getattr(loop, "_scheduled", []) if not h.cancelled()]
    internal = {loop._ssock.fileno(), loop._csock.fileno()}  # type: ignore[attr-defined]
    delayed: list[str] = []
    if reactor is not None:
        delayed = [repr(c) for c in reactor.getDelayedCalls()]
        internal |= {r.fileno() for r in reactor._internalReaders}
    fds = sorted(k for k in loop._selector.get_map() if k not in internal)  # type: ignore[attr-defined]
    import threading

    pool = [t.name for t in threading.enumerate() if t.name.startswith("PoolThread-twisted")]
    return {
        "twisted_threads": pool,
        "tasks": tasks,
        "timers": timers,
        "delayed_calls": delayed,
        "fds": fds,
        "reactor_users": _reactor.users(),
    }


async def peered(**extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configs of two nodes: A listens on a free loopback port, B peers with it."""
    from tests.test_e2e_twistd import free_port

    listen = f"tcp://127.0.0.1:{free_port()}"
    return {"Listen": [listen], **extra}, {"Peers": [listen], **extra}


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (polling, bounded) until C{predicate()} holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


def peer_up(node: axl.aio.Node, key: str) -> Callable[[], bool]:
    return lambda: any(p["up"] and p["public_key"] == key for p in node.topology()["peers"])


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------


@scenario
async def reactor_error(args: dict[str, Any]) -> dict[str, Any]:
    """Another reactor installed first: starting a Node raises ReactorError and starts nothing."""
    from twisted.internet import reactor  # the default (epoll) reactor

    node = axl.aio.Node({})
    try:
        await node.start()
    except axl.aio.ReactorError as e:
        return {"error": str(e), "reactor": type(reactor).__name__, "running": node.running}
    return {"error": None}


@scenario
async def reactor_other_loop(args: dict[str, Any]) -> dict[str, Any]:
    """The asyncio reactor runs on another loop, in another thread: ReactorError."""
    import threading

    from twisted.internet import asyncioreactor

    other = asyncio.new_event_loop()
    asyncioreactor.install(other)
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    try:
        await axl.aio.Node({}).start()
    except axl.aio.ReactorError as e:
        return {"error": str(e)}
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join()
        other.close()
    return {"error": None}


def installed_early() -> dict[str, Any]:
    """
    C{asyncioreactor.install()} at the top of the program, before C{asyncio.run()} makes its
    loop: the first node moves the reactor to the running loop.
    """
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    out: dict[str, Any] = {}

    async def run() -> None:
        async with axl.aio.Node({}) as n:
            await n.send(n.public_key, b"early")
            out["got"] = (await n.recv(timeout=5)).data.decode()
        await asyncio.sleep(0)
        out["leftovers"] = leftovers(asyncio.get_running_loop())

    asyncio.run(run())
    return out


@scenario
async def send_recv(args: dict[str, Any]) -> dict[str, Any]:
    """
    Two embedded nodes over tcp on loopback (B dials A by the name localhost): messages both
    ways, and the error types.
    """
    out: dict[str, Any] = {}
    ca, cb = await peered(max_message_size=MiB)
    cb["Peers"] = [uri.replace("127.0.0.1", "localhost") for uri in cb["Peers"]]  # a name: resolved in Twisted's thread pool
    async with axl.aio.Node(ca) as a, axl.aio.Node(cb) as b:
        await until(peer_up(a, b.public_key))
        out["sent"] = await a.send(b.public_key, b"hello")
        m = await b.recv(timeout=10)
        out["first"] = [m.sender == a.public_key, m.data.decode()]
        # ordering: many sends in flight from one task group arrive in the order issued
        sends = [asyncio.ensure_future(b.send(a.public_key, b"%d" % i)) for i in range(50)]
        await asyncio.gather(*sends)
        got = [(await a.recv(timeout=10)).data for _ in range(50)]
        out["ordered"] = got == [b"%d" % i for i in range(50)]
        # a full-size message (our limit) goes; one byte more is refused before sending
        big = os.urandom(MiB)
        await a.send(b.public_key, big)
        out["big"] = digest((await b.recv(timeout=10)).data) == digest(big)
        try:
            await a.send(b.public_key, big + b"x")
        except axl.aio.MessageRefused as e:
            out["too_large"] = [str(e), e.limit]
        # recv timeout; recv_nowait
        t = time.monotonic()
        try:
            await b.recv(timeout=0.2)
        except TimeoutError:
            out["timeout_after"] = round(time.monotonic() - t, 1)
        out["nowait_empty"] = b.recv_nowait() is None
        # a cancelled recv loses nothing: cancel it after the message was handed over
        waiting = asyncio.ensure_future(b.recv())
        await asyncio.sleep(0)
        # the message reaches the waiting recv, and its task is cancelled before it resumes
        b._node().recv_queue.put(bytes.fromhex(a.public_key), b"not lost")
        waiting.cancel()
        try:
            await waiting
            out["cancelled_recv"] = "returned"
        except asyncio.CancelledError:
            out["cancelled_recv"] = "cancelled"
        out["after_cancel"] = (await b.recv(timeout=5)).data.decode()
        # to ourselves; to an unknown key; a bad key
        await a.send(a.public_key, b"me")
        out["self"] = (await a.recv(timeout=5)).data.decode()
        try:
            async with axl.aio.Node({"connect_timeout_secs": 0.5}) as c:
                await c.send("00" * 32, b"nobody")
        except axl.aio.PeerTimedOut as e:
            out["unknown"] = ["PeerTimedOut", str(e)]
        except axl.aio.DeliveryError as e:
            out["unknown"] = [type(e).__name__, str(e)]
        try:
            await a.send("xyz", b"")
        except ValueError as e:
            out["bad_key"] = str(e)
        # messages(): the iterator ends when the node stops
        for i in range(3):
            await a.send(b.public_key, b"it%d" % i)
        seen = []
        async for message in b.messages():
            seen.append(message.data.decode())
            if len(seen) == 3:
                break
        out["iterated"] = seen
        reader = asyncio.ensure_future(_drain_messages(b))
        await asyncio.sleep(0)
    out["iterator_ended"] = await asyncio.wait_for(reader, 5)
    try:
        await b.send(a.public_key, b"late")
    except axl.aio.NodeStopped as e:
        out["stopped"] = str(e)
    return out


async def _drain_messages(node: axl.aio.Node) -> str:
    async for _ in node.messages():
        pass
    return "ended"


async def _transfer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> str:
    """Write C{payload} in 256 KiB pieces with drain() while reading all the other side sends."""

    async def write() -> None:
        for i in range(0, len(payload), 256 * 1024):
            writer.write(payload[i : i + 256 * 1024])
            await writer.drain()
        writer.write_eof()

    w = asyncio.ensure_future(write())
    data = await reader.read()
    await w
    return digest(data)


@scenario
async def streams(args: dict[str, Any]) -> dict[str, Any]:
    """
    open_connection/start_server: 16 MiB each way at once, intact; a reader that stops reading
    stalls the writer's drain() with bounded buffering; refused and unreachable ports.
    """
    out: dict[str, Any] = {}
    size = int(args.get("size", 16 * MiB))
    up, down = os.urandom(size), os.urandom(size)
    ca, cb = await peered()
    async with axl.aio.Node(ca) as a, axl.aio.Node(cb) as b:
        await until(peer_up(a, b.public_key))
        server_result: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def echo_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            out["server_peername"] = writer.get_extra_info("peername")[0] == a.public_key
            server_result.set_result(await _transfer(reader, writer, down))
            writer.close()

        async with await b.start_server(echo_side, 8080) as server:
            r, w = await a.open_connection(b.public_key, 8080)
            out["client_peername"] = list(w.get_extra_info("peername")) == [b.public_key, 8080]
            t = time.monotonic()
            got_down = await _transfer(r, w, up)
            elapsed = time.monotonic() - t
            out["down_intact"] = got_down == digest(down)
            out["up_intact"] = await server_result == digest(up)
            out["mib_per_s"] = round(2 * size / MiB / elapsed, 1)
            w.close()
            await w.wait_closed()
            out["serving_before_close"] = server.is_serving()
        out["serving_after_close"] = server.is_serving()

        # backpressure: the server reads nothing until released
        release = asyncio.Event()
        holder: dict[str, Any] = {}

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            holder["reader"] = reader
            await release.wait()
            data = await reader.readexactly(size)
            holder["digest"] = digest(data)
            writer.close()

        await b.start_server(slow, 8081, limit=64 * 1024)
        r, w = await a.open_connection(b.public_key, 8081)
        w.write(up)
        drain = asyncio.ensure_future(w.drain())
        await until(lambda: "reader" in holder)
        await until(lambda: holder["reader"]._paused)  # the server's reader hit its limit
        last, still = -1, 0
        while still < 10:  # until the client's send buffer stops moving (the window is shut)
            await asyncio.sleep(0.05)
            now = w.transport.get_write_buffer_size()
            still = still + 1 if now == last else 0
            last = now
        buffered = len(holder["reader"]._buffer)
        out["stalled"] = {
            "drain_done": drain.done(),
            "client_buffered": last,
            "server_buffered": buffered,
            "reader_paused": holder["reader"]._paused,
        }
        release.set()
        await drain
        await until(lambda: "digest" in holder)
        out["backpressure_intact"] = holder["digest"] == digest(up)
        w.close()

        # a port nobody listens on; a key nobody has
        try:
            await a.open_connection(b.public_key, 9)
        except ConnectionRefusedError:
            out["refused"] = True
        try:
            await a.open_connection("11" * 32, 80, timeout=0.5)
        except TimeoutError:
            out["timeout"] = True
        try:
            await b.start_server(slow, 8081)
        except OSError as e:
            out["port_in_use"] = str(e)
    return out


@scenario
async def cancellation(args: dict[str, Any]) -> dict[str, Any]:
    """
    A transfer cancelled mid-way; a task cancelled inside C{async with}: the nodes stop cleanly
    and nothing is left on the loop (checked by the runner afterwards).
    """
    out: dict[str, Any] = {}
    ca, cb = await peered()
    server_saw: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    async with axl.aio.Node(ca) as a, axl.aio.Node(cb) as b:
        await until(peer_up(a, b.public_key))

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            total = 0
            try:
                while chunk := await reader.read(65536):
                    total += len(chunk)
                server_saw.set_result(f"eof after {total}")
            except ConnectionError as e:
                server_saw.set_result(f"{type(e).__name__} after {total}")

        server = await b.start_server(sink, 9000)
        r, w = await a.open_connection(b.public_key, 9000)
        sent = 0

        async def pump() -> None:
            nonlocal sent
            block = os.urandom(256 * 1024)
            while True:
                w.write(block)
                sent += len(block)
                await w.drain()

        task = asyncio.ensure_future(pump())
        await until(lambda: sent >= 4 * MiB)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            out["pump_cancelled"] = True
        w.transport.abort()
        out["server_saw"] = (await asyncio.wait_for(server_saw, 10)).split()[0]
        # a connection left open when the node stops is closed with it
        r2, w2 = await a.open_connection(b.public_key, 9000)
        w2.write(b"x" * 1000)
        await w2.drain()
        server.close()  # stops accepting; its running handler is still cancelled at stop

        async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.Event().wait()  # never reads: only the node's stop ends it

        idle_server = await b.start_server(idle, 9001)
        await a.open_connection(b.public_key, 9001)
        await until(lambda: bool(idle_server.tasks))
        idle_server.close()
    # (its server's handler was cancelled when B stopped: that resets the connection)
    try:
        out["open_reader_at_stop"] = repr(await asyncio.wait_for(r2.read(), 10))
    except ConnectionResetError:
        out["open_reader_at_stop"] = "reset"

    # the whole `async with` in a task that is cancelled while it waits in recv()
    entered = asyncio.Event()

    async def user() -> None:
        async with axl.aio.Node({}) as n:
            entered.set()
            await n.recv()

    t = asyncio.ensure_future(user())
    await entered.wait()
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        out["user_cancelled"] = True
    # cancelled again while stopping: the stop still completes
    entered.clear()
    t = asyncio.ensure_future(user())
    await entered.wait()
    t.cancel()
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        out["cancelled_twice"] = True
    out["users_after"] = _reactor.users()
    return out


@scenario
async def lifecycle(args: dict[str, Any]) -> dict[str, Any]:
    """Properties, topology, the bridge when asked, a failing start, a failing handler."""
    from tests.test_e2e_twistd import free_port

    out: dict[str, Any] = {}
    port = free_port()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    import warnings

    std = (sys.stdout, sys.stderr, warnings.showwarning)
    keep = Keep()
    logging.getLogger("axl").addHandler(keep)
    logging.getLogger("twisted").addHandler(keep)
    logging.getLogger("axl").setLevel(logging.INFO)
    async with axl.aio.Node({"api_port": port, "Listen": ["tcp://127.0.0.1:0"]}, bridge=True) as n:
        topo = n.topology()
        out["listening"] = n.listening()
        try:
            await n.start()
        except RuntimeError as e:
            out["second_start"] = str(e)
        out["topology"] = [topo["our_public_key"] == n.public_key, topo["our_ipv6"] == n.address]
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/topology", timeout=5).read()
        )
        out["bridge_topology"] = json.loads(body)["our_public_key"] == n.public_key
        # the same port again: the start fails with the bridge's error and leaves nothing running
        other = axl.aio.Node({"api_port": port}, bridge=True)
        try:
            await other.start()
        except Exception as e:
            out["port_taken"] = [type(e).__name__, str(e)]
        out["other_running"] = other.running

        async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raise ValueError("handler bug")

        await n.start_server(broken, 5000)
        r, w = await n.open_connection(n.public_key, 5000)
        try:
            await asyncio.wait_for(r.read(), 10)
        except ConnectionResetError:
            out["broken_handler_conn"] = "reset"
        # garbage on the peer listener, and a failing Twisted callback: logged, nothing raised here
        host, _, lport = n.listening()[0].removeprefix("tcp://").rpartition(":")
        raw_r, raw_w = await asyncio.open_connection(host, int(lport))
        raw_w.write(b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)) * 8)
        try:  # closed by the node: EOF, or a reset when our garbage was still unread
            out["garbage_link"] = await asyncio.wait_for(raw_r.read(), 10) == b""
        except ConnectionResetError:
            out["garbage_link"] = True
        raw_w.close()
        from twisted.internet import reactor

        reactor.callLater(0, lambda: 1 / 0)
        await asyncio.sleep(0.05)
        await n.send(n.public_key, b"still alive")
        out["alive"] = (await n.recv(timeout=5)).data.decode()
    out["std_untouched"] = [a is b for a, b in zip(std, (sys.stdout, sys.stderr, warnings.showwarning))]
    out["logged_handler_failure"] = any(
        "handler for overlay port 5000 failed" in r.getMessage() and r.exc_info for r in records
    )
    logging.getLogger("twisted").removeHandler(keep)
    out["logged_callback_error"] = any(
        r.exc_info is not None and r.exc_info[0] is ZeroDivisionError for r in records
    )
    out["logger_names"] = sorted({r.name.split(".")[1] for r in records if r.name.count(".")})[:3]
    try:
        n.topology()
    except axl.aio.NodeStopped:
        out["stopped_topology"] = "NodeStopped"
    try:
        axl.aio.Node({"api_port": "9002"})
    except Exception as e:
        out["config_error"] = [type(e).__name__, str(e)]
    return out


@scenario
async def mcp_a2a_disabled(args: dict[str, Any]) -> dict[str, Any]:
    """call_mcp / call_a2a to a node without router or A2A server: RemoteError with the reason."""
    out: dict[str, Any] = {}
    ca, cb = await peered()
    async with axl.aio.Node(ca) as a, axl.aio.Node(cb) as b:
        await until(peer_up(a, b.public_key))
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        try:
            await a.call_mcp(b.public_key, "weather", request)
        except axl.aio.RemoteError as e:
            out["mcp"] = str(e)
        try:
            await a.call_a2a(b.public_key, None)
        except axl.aio.RemoteError as e:
            out["a2a"] = str(e)
    return out


@scenario
async def mcp_a2a(args: dict[str, Any]) -> dict[str, Any]:
    """
    call_mcp / call_a2a to a node running (in this process) an MCP router with one JSON-RPC
    service and an A2A server: replies, a notification, an unknown service, the agent card and
    an A2A SendMessage.
    """
    from tests.test_e2e_twistd import free_port

    out: dict[str, Any] = {}
    router_port, a2a_port, api_port = free_port(), free_port(), free_port()
    seen: list[Any] = []
    ca, cb = await peered()
    cb.update(router_addr="127.0.0.1", router_port=router_port, a2a_addr="127.0.0.1",
              a2a_port=a2a_port, api_port=api_port)
    async with axl.aio.Node(ca) as a, axl.aio.Node(cb, bridge=True) as b:
        from twisted.internet import reactor
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from axl.integrations.a2a_tap import a2a_service
        from axl.integrations.router_tap import router_service

        class Echo(Resource):
            isLeaf = True

            def render_POST(self, request: Any) -> bytes:
                message = json.loads(request.content.read())
                seen.append(message.get("method"))
                if "id" not in message:
                    request.setResponseCode(202)
                    return b""
                request.setHeader(b"Content-Type", b"application/json")
                body = {"jsonrpc": "2.0", "id": message["id"], "result": {"echo": message.get("params")}}
                return json.dumps(body).encode()

        service_port = reactor.listenTCP(0, Site(Echo()), interface="127.0.0.1")
        router = router_service(reactor, "127.0.0.1", router_port)
        a2a = a2a_service(reactor, "127.0.0.1", a2a_port, f"http://127.0.0.1:{router_port}",
                          f"http://127.0.0.1:{api_port}")
        router.startService()
        a2a.startService()
        loop = asyncio.get_running_loop()
        endpoint = f"http://127.0.0.1:{service_port.getHost().port}/mcp"
        register = urllib.request.Request(
            f"http://127.0.0.1:{router_port}/register", method="POST",
            data=json.dumps({"service": "echo", "endpoint": endpoint}).encode(),
            headers={"Content-Type": "application/json"},
        )
        await asyncio.to_thread(lambda: urllib.request.urlopen(register, timeout=10).read())
        try:
            await until(peer_up(a, b.public_key))
            request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"x": 1}}
            out["reply"] = await a.call_mcp(b.public_key, "echo", request)
            out["notification"] = await a.call_mcp(
                b.public_key, "echo", {"jsonrpc": "2.0", "method": "notifications/initialized"}
            )
            try:
                await a.call_mcp(b.public_key, "nope", request)
            except axl.aio.RemoteError as e:
                out["unknown_service"] = str(e)
            card = await a.call_a2a(b.public_key, None)
            out["card_skills"] = [skill["id"] for skill in card["skills"]]
            envelope = {"service": "echo", "request": request}
            answer = await a.call_a2a(b.public_key, {
                "jsonrpc": "2.0", "method": "SendMessage", "id": 3,
                "params": {"message": {"role": "ROLE_USER", "messageId": "m1",
                                       "parts": [{"text": json.dumps(envelope)}]}},
            })
            task = answer["result"]["task"]
            out["a2a_state"] = task["status"]["state"]
            out["a2a_artifact"] = json.loads(task["artifacts"][0]["parts"][0]["text"])
            out["service_saw"] = seen
        finally:
            await a2a.stopService().asFuture(loop)
            await router.stopService().asFuture(loop)
            await service_port.stopListening().asFuture(loop)
    return out


@scenario
async def mcp_stateful(args: dict[str, Any]) -> dict[str, Any]:
    """
    An MCP server with the official SDK's defaults (sessions, SSE replies) behind a node's
    router: a call without a session is refused by the server; an mcp_session initializes,
    lists and calls tools, and closing it ends the server's session.
    """
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    from tests.test_e2e_twistd import free_port

    out: dict[str, Any] = {}
    router_port, tool_port = free_port(), free_port()
    server = MCPServer("weather")

    @server.tool()
    def get_weather(city: str) -> str:
        """Made-up weather."""
        return f"{city}: sunny"

    app = server.streamable_http_app()  # the SDK's defaults: stateful, SSE replies
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=tool_port, log_level="warning"))
    ca, cb = await peered()
    cb.update(router_addr="127.0.0.1", router_port=router_port)
    async with axl.aio.Node(ca) as a, axl.aio.Node(cb) as b:
        from twisted.internet import reactor

        from axl.integrations.router_tap import router_service

        router = router_service(reactor, "127.0.0.1", router_port)
        router.startService()
        task = asyncio.ensure_future(web.serve())
        loop = asyncio.get_running_loop()
        try:
            await until(lambda: web.started)
            register = urllib.request.Request(
                f"http://127.0.0.1:{router_port}/register", method="POST",
                data=json.dumps({"service": "weather", "endpoint": f"http://127.0.0.1:{tool_port}/mcp"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            await asyncio.to_thread(lambda: urllib.request.urlopen(register, timeout=10).read())
            await until(peer_up(a, b.public_key))
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
            try:
                out["no_session"] = await a.call_mcp(b.public_key, "weather", listing)
            except axl.aio.RemoteError as e:
                out["no_session"] = ["RemoteError", str(e)]
            async with a.mcp_session(b.public_key, "weather") as session:
                init = await session.call({
                    "jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "aio-test", "version": "1"}},
                })
                out["init_version"] = init["result"]["protocolVersion"]
                out["has_session"] = bool(session.session_id)
                out["initialized"] = await session.call(
                    {"jsonrpc": "2.0", "method": "notifications/initialized"}
                )
                tools = await session.call(listing)
                out["tools"] = [t["name"] for t in tools["result"]["tools"]]
                called = await session.call({
                    "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                })
                out["called"] = called["result"]["content"][0]["text"]
                ended_id = session.session_id
            out["closed"] = session.session_id is None
            # the server forgot the session: using its id again is refused
            stale = a.mcp_session(b.public_key, "weather")
            stale.session_id, stale.protocol_version = ended_id, out["init_version"]
            try:
                out["after_close"] = await stale.call(listing)
            except axl.aio.RemoteError as e:
                out["after_close"] = ["RemoteError", str(e)]
        finally:
            web.should_exit = True
            await task
            await router.stopService().asFuture(loop)
    return out


def two_loops() -> dict[str, Any]:
    """Two asyncio.run() in one process, a node in each: the reactor moves to the new loop."""
    out: dict[str, Any] = {}

    async def once(label: str) -> None:
        async with axl.aio.Node({}) as n:
            await n.send(n.public_key, label.encode())
            out[label] = (await n.recv(timeout=5)).data.decode()
        await asyncio.sleep(0)
        out[f"leftovers_{label}"] = leftovers(asyncio.get_running_loop())

    asyncio.run(once("first"))
    asyncio.run(once("second"))
    return out


@scenario
async def twistd_peer(args: dict[str, Any]) -> dict[str, Any]:
    """An embedded node peered with a twistd node: /send to it, its /send to us."""
    out: dict[str, Any] = {}
    bridge = f"http://127.0.0.1:{args['bridge_port']}"
    key = args["key"]

    def http(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(bridge + path, data=body, method=method, headers=headers or {})
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()

    async with axl.aio.Node({"Peers": [args["listen"]]}) as n:
        await until(peer_up(n, key))
        await n.send(key, b"from asyncio")
        status, body = await asyncio.to_thread(http, "GET", "/recv?wait=10")
        out["twistd_got"] = [status, body.decode()]
        status, _ = await asyncio.to_thread(
            http, "POST", "/send", b"from twistd", {"X-Destination-Peer-Id": n.public_key}
        )
        out["twistd_send"] = status
        m = await n.recv(timeout=10)
        out["we_got"] = [m.sender == key, m.data.decode()]
    return out


@scenario
async def real_relay(args: dict[str, Any]) -> dict[str, Any]:
    """Two embedded nodes whose only link is a real yggdrasil node: messages and a stream."""
    out: dict[str, Any] = {}
    peer = {"Peers": [args["uri"]]}
    async with axl.aio.Node(peer) as a, axl.aio.Node(peer) as b:
        await until(peer_up(a, args["key"]), 30)
        await until(peer_up(b, args["key"]), 30)
        out["direct_link"] = any(p["public_key"] == b.public_key for p in a.topology()["peers"])
        await a.send(b.public_key, b"via real yggdrasil")
        m = await b.recv(timeout=20)
        out["message"] = [m.sender == a.public_key, m.data.decode()]
        payload = os.urandom(int(args.get("size", 4 * MiB)))

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            await writer.drain()
            writer.close()

        await b.start_server(echo, 4000)
        r, w = await a.open_connection(b.public_key, 4000)
        w.write(payload)
        await w.drain()
        w.write_eof()
        out["stream_intact"] = digest(await r.read()) == digest(payload)
        w.close()
    return out


def main(argv: list[str]) -> int:
    name = argv[1]
    args = json.loads(argv[2]) if len(argv) > 2 else {}
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if name in ("two_loops", "installed_early"):
        print(json.dumps(two_loops() if name == "two_loops" else installed_early()))
        return 0
    result: dict[str, Any] = {}

    async def run() -> None:
        result.update(await SCENARIOS[name](args))
        await asyncio.sleep(0)
        result["leftovers"] = leftovers(asyncio.get_running_loop())

    asyncio.run(run())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
