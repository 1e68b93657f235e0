"""Draining a node for a load balancer, with real processes: after SIGTERM health says NOT_SERVING
and /healthz 503 while new connections are still served; open streams get the reconnect hint,
end with UNAVAILABLE + shutting_down, and resume on a second server on the same database."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securechat.pki import DevPki
from securechat_proto.v1 import rooms_pb2
from tests.ops.conftest import free_port, fresh_channel, open_stream
from tests.support.chat import ChatClient, room_send
from tests.support.net import Api
from tests.support.process import ServerProcess

pytestmark = pytest.mark.e2e

DRAIN_S = 8  # generous: the checks below take well under a second each


def api_on(pki: DevPki, port: int, like: Api | None = None) -> Api:
    """An Api over a new connection to ``port``, with ``like``'s session (tokens live in the DB)."""
    paths = pki.client("client")
    api = Api(fresh_channel(port, pki.ca_cert, paths.cert, paths.key))
    if like is not None:
        api.token, api.device_id, api.user = like.token, like.device_id, like.user
    return api


async def health_status(pki: DevPki, port: int) -> int:
    api = api_on(pki, port)
    try:
        answer = await health_pb2_grpc.HealthStub(api.channel).Check(
            health_pb2.HealthCheckRequest()
        )
        return int(answer.status)
    finally:
        await api.channel.close()


async def test_sigterm_drains_then_streams_resume_on_another_node(
    pki: DevPki, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    status_port = free_port()
    node_a = ServerProcess(
        pki.directory,
        data,
        env={"SECURECHAT_SERVER_DRAIN_PERIOD_S": str(DRAIN_S)},
        args=("--status-port", str(status_port)),
    )
    node_b = ServerProcess(pki.directory, data)  # same database
    apis: list[Api] = []
    try:
        alice, bob = api_on(pki, node_a.port), api_on(pki, node_a.port)
        apis += [alice, bob]
        for api, name in ((alice, "alice"), (bob, "bob")):
            await api.register(name)
            await api.login(name)
        alice_on_a = await open_stream(alice)
        healthz = f"http://127.0.0.1:{status_port}/healthz"
        async with aiohttp.ClientSession() as http:
            async with http.get(healthz) as response:
                assert response.status == 200

            node_a.proc.send_signal(signal.SIGTERM)

            # Open streams get the hint and end with the documented status and trailers.
            error = await alice_on_a.wait_ended(timeout=20)
            assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
            trailers = dict(error.trailing_metadata() or ())
            assert trailers["securechat-error"] == "shutting_down"
            assert trailers["retry-after"] == "1"
            kinds = [e.WhichOneof("event") for e in alice_on_a.events]
            assert kinds[-1] == "reconnect" and alice_on_a.events[-1].reconnect.retry_after_ms > 0

            # Health is NOT_SERVING and /healthz 503, while new connections are still served.
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            assert await health_status(pki, node_a.port) == not_serving
            async with http.get(healthz) as response:
                assert (response.status, await response.text()) == (503, "draining\n")
            for _ in range(3):
                fresh = api_on(pki, node_a.port, like=bob)
                apis.append(fresh)
                rooms = await fresh.rooms.ListRooms(rooms_pb2.ListRoomsRequest(),
                                                    metadata=fresh.md)  # fmt: skip
                assert [r.name for r in rooms.rooms] == ["lobby"]
            # A stream opened during the drain is served too: bob sends while alice is away.
            bob_late = await open_stream(api_on(pki, node_a.port, like=bob))
            apis.append(bob_late.api)
            assert (await room_send(bob_late, "lobby", b"sent during the drain")).accepted
            assert await health_status(pki, node_a.port) == not_serving  # still draining

        # alice reconnects elsewhere (what the balancer does) and resumes without a loss.
        alice_on_b = ChatClient(api_on(pki, node_b.port, like=alice))
        apis.append(alice_on_b.api)
        await alice_on_b.wait_until(lambda: b"sent during the drain" in alice_on_b.texts())
        await alice_on_b.close()
        await bob_late.wait_ended(timeout=30)  # ended by node A's stop after the drain
        assert await asyncio.to_thread(node_a.proc.wait, 60) == 0
        node_a.terminate()  # the process is gone: this only closes its pipes
    finally:
        for api in apis:
            await api.channel.close()
        if node_a.proc.poll() is None:
            node_a.kill()
        assert node_b.terminate() == 0
