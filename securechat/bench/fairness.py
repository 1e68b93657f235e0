"""Scenario: login fairness. 20 honest users log in (p99 login time) calm, then while one
account floods its own correct login, then while 16 loopback addresses (127.0.0.2-17, through
a local TCP relay bound to each) flood wrong guesses. At the default bcrypt cost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import grpc

from securechat.bench.harness import Bench
from securechat.bench.report import percentiles, show
from securechat_proto.v1 import auth_pb2, auth_pb2_grpc

HONEST = 20
PASSWORD = "bench fairness password"  # noqa: S105 - a throwaway bench account
FLOOD_CONCURRENCY = 60
SOURCES = 16


class Relay:
    """Listens on 127.0.0.1 and forwards each connection to the server from ``source``."""

    def __init__(self, port: int, source: str) -> None:
        self.target, self.source, self.port = port, source, 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self.target, local_addr=(self.source, 0)
        )
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


def _stub(tls: dict[str, Any], port: int) -> tuple[grpc.aio.Channel, auth_pb2_grpc.AuthServiceStub]:
    with open(tls["ca"], "rb") as ca, open(tls["cert"], "rb") as crt, open(tls["key"], "rb") as k:
        creds = grpc.ssl_channel_credentials(ca.read(), k.read(), crt.read())
    channel = grpc.aio.secure_channel(
        f"localhost:{port}", creds, options=[("grpc.use_local_subchannel_pool", 1)]
    )
    return channel, auth_pb2_grpc.AuthServiceStub(channel)


async def _honest_round(stub: auth_pb2_grpc.AuthServiceStub, rounds: int) -> list[float]:
    async def one(i: int) -> float:
        started = time.perf_counter()
        request = auth_pb2.LoginRequest(username=f"fair{i:02d}", password=PASSWORD, device_id=1)
        await stub.Login(request, timeout=120)
        return time.perf_counter() - started

    times: list[float] = []
    for _ in range(rounds):
        times += await asyncio.gather(*(one(i) for i in range(HONEST)))
    return times


async def _flood(call: Any, stop: asyncio.Event, outcomes: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            await call()
            key = "OK"
        except grpc.aio.AioRpcError as error:
            key = error.code().name
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                await asyncio.sleep(0.05)
        outcomes[key] = outcomes.get(key, 0) + 1


async def _run(tls: dict[str, Any], port: int, rounds: int) -> dict[str, Any]:
    channel, stub = _stub(tls, port)
    for i in range(HONEST):
        await stub.Register(auth_pb2.RegisterRequest(username=f"fair{i:02d}", password=PASSWORD))
    await stub.Register(auth_pb2.RegisterRequest(username="flooder", password=PASSWORD))
    for i in range(HONEST):  # every honest user has logged in before (device 1)
        await stub.Login(auth_pb2.LoginRequest(username=f"fair{i:02d}", password=PASSWORD))
    result: dict[str, Any] = {"calm": percentiles(await _honest_round(stub, rounds))}

    own = auth_pb2.LoginRequest(username="flooder", password=PASSWORD, device_id=0)
    relays = [await Relay(port, f"127.0.0.{2 + i}").start() for i in range(SOURCES)]
    guessers = [_stub(tls, relay.port) for relay in relays]
    counter = iter(range(10**9))

    def guess() -> Any:
        n = next(counter)
        wrong = auth_pb2.LoginRequest(username=f"guess{n % 997}", password=f"wrong {n}")
        return guessers[n % SOURCES][1].Login(wrong)

    for name, call in (("one_account_flood", lambda: stub.Login(own)), ("many_sources", guess)):
        stop, outcomes = asyncio.Event(), {}  # type: ignore[var-annotated]
        flood = [
            asyncio.create_task(_flood(call, stop, outcomes)) for _ in range(FLOOD_CONCURRENCY)
        ]
        await asyncio.sleep(1.0)
        times = await _honest_round(stub, rounds)
        stop.set()
        await asyncio.gather(*flood, return_exceptions=True)
        result[name] = {**percentiles(times), "flood_outcomes": outcomes}
    for relay_channel, _ in guessers:
        await relay_channel.close()
    for relay in relays:
        await relay.close()
    await channel.close()
    return result


def fairness(bench: Bench) -> dict[str, Any]:
    """Honest p99 login time: calm, under one account's flood, under many sources' flood."""
    rounds = 1 if bench.params.quick else 3
    server = bench.securechat(
        "fairness", None, {"SECURECHAT_AUTH_REGISTRATIONS_PER_HOUR": "1000000"}
    )
    try:
        result = asyncio.run(_run(bench.tls_spec(server.port), server.port, rounds))
    finally:
        bench.stop(server)
    result["honest_users"] = HONEST
    result["rounds"] = rounds
    show(
        "[fairness] honest login time (s) at the default bcrypt cost",
        ["phase", "logins", "p50 s", "p99 s", "max s"],
        [
            [phase, r["n"], r["p50"], r["p99"], r["max"]]
            for phase, r in ((p, result[p]) for p in ("calm", "one_account_flood", "many_sources"))
        ],
    )
    return result
