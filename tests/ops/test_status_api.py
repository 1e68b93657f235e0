"""The status side-server over HTTP: /api/status, /healthz, the page, and the admin token."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import aiohttp
import grpc
import pytest

from securechat.config import StatusConfig
from securechat.errors import ConfigError
from securechat.node import Node
from securechat.ops.snapshot import RateMeter
from securechat.ops.status import StatusServer, check_config, is_loopback
from securechat.pki import DevPki
from securechat_proto.v1 import rooms_pb2
from tests.conftest import ApiFactory, server_config
from tests.ops.conftest import free_port, open_stream
from tests.support.chat import ChatClient, room_send
from tests.support.net import PASSWORD

TOKEN = "s3cret-status-token-0123456789"
EVERYWHERE = "0.0.0.0"  # noqa: S104 - binding beyond loopback is what these tests exercise


async def traffic(connect: ApiFactory) -> tuple[ChatClient, ChatClient]:
    """alice and bob on streams, a room "ops", one failed login, three messages."""
    alice = await open_stream(await connect("alice"))
    bob = await open_stream(await connect("bob"))
    await bob.api.rooms.CreateRoom(rooms_pb2.CreateRoomRequest(name="ops"), metadata=bob.api.md)
    stranger = await connect()
    with pytest.raises(grpc.aio.AioRpcError):
        await stranger.login("alice", "not the password")
    for i in range(3):
        assert (await room_send(alice, "lobby", f"ciphertext {i}".encode())).accepted
    return alice, bob


async def test_api_status_shows_counts_but_no_personal_data_without_a_token(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    alice, bob = await traffic(connect)
    await status.refresh_counts()  # the sampler does this every COUNTS_REFRESH_S
    async with http.get(f"http://127.0.0.1:{status.port}/api/status") as response:
        assert response.status == 200
        body = await response.json()
    assert body["personal_data"] is False and "clients" not in body and "rooms" not in body
    text = str(body)
    for personal in ("alice", "bob", "ops", "ipv4", "CN=client"):
        assert personal not in text
    assert body["logins"]["ok"] == 2 and body["logins"]["failed"] == 1
    assert body["messages_accepted"] == 3 and body["messages_per_second"] > 0
    assert body["connected_streams"] == 2 and body["node"] == status.view.name
    assert (body["users"], body["rooms_count"]) == (2, 2) and body["serving"] is True
    await alice.close()
    await bob.close()


async def test_api_status_lists_clients_and_rooms_to_the_admin_token(
    server: Node, connect: ApiFactory, http: aiohttp.ClientSession
) -> None:
    side = StatusServer(server.view, server.metrics, StatusConfig(port=0, admin_token=TOKEN))
    await side.start()
    try:
        alice, bob = await traffic(connect)
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"http://127.0.0.1:{side.port}/api/status", headers=good) as response:
            assert response.status == 200
            body = await response.json()
    finally:
        await side.stop()
    assert body["personal_data"] is True
    assert [(c["user"], c["device"]) for c in body["clients"]] == [("alice", 1), ("bob", 1)]
    assert all(c["peer"].startswith("ipv") and c["since_ms"] > 0 for c in body["clients"])
    assert body["clients"][0]["certificate_subject"].startswith("CN=client")
    assert {r["name"]: r["members"] for r in body["rooms"]} == {"lobby": 2, "ops": 1}
    text = str(body)
    assert PASSWORD not in text and alice.api.token not in text and "ciphertext" not in text
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("path", ["/", "/api/status", "/api/history", "/metrics", "/healthz"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "10.0.0.1", ""])
async def test_a_loopback_page_refuses_a_foreign_host_header(
    status: StatusServer, http: aiohttp.ClientSession, path: str, host: str
) -> None:
    """DNS rebinding: a page from attacker.example re-pointed at 127.0.0.1 sends its own Host."""
    url = f"http://127.0.0.1:{status.port}{path}"
    async with http.get(url, headers={"Host": host}, skip_auto_headers=["Host"]) as response:
        assert response.status == 421
        assert "localhost" in await response.text()
    for good in ("localhost", f"localhost:{status.port}", f"127.0.0.1:{status.port}",
                 f"[::1]:{status.port}", "127.0.0.2"):  # fmt: skip
        async with http.get(url, headers={"Host": good}) as response:
            assert response.status == 200, good


async def test_healthz_answers_503_while_the_node_drains(
    server: Node, http: aiohttp.ClientSession
) -> None:
    serving = [True]
    side = StatusServer(server.view, server.metrics, StatusConfig(port=0),
                        serving=lambda: serving[0])  # fmt: skip
    await side.start()
    try:
        async with http.get(f"http://127.0.0.1:{side.port}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok\n")
        serving[0] = False
        async with http.get(f"http://127.0.0.1:{side.port}/healthz") as response:
            assert (response.status, await response.text()) == (503, "draining\n")
        async with http.get(f"http://127.0.0.1:{side.port}/api/status") as response:
            assert (await response.json())["serving"] is False
    finally:
        await side.stop()


async def test_page_escapes_the_node_name_and_allows_only_its_own_script(
    pki: DevPki, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = Node(server_config(pki, tmp_path, **{"server.node": "<b>n&1</b>"}))
    await srv.start()
    side = StatusServer(srv.view, srv.metrics, StatusConfig(port=0))
    await side.start()
    try:
        async with http.get(f"http://127.0.0.1:{side.port}/") as response:
            page = await response.text()
            policy = response.headers["Content-Security-Policy"]
    finally:
        await side.stop()
        await srv.stop(0.1)
    assert "<b>n&1</b>" not in page and "&lt;b&gt;n&amp;1&lt;/b&gt;" in page
    script = re.search(r"<script>(.*)</script>", page, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "innerHTML" not in page


async def test_healthz_and_metrics_answer_on_loopback_without_a_token(
    status: StatusServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"http://127.0.0.1:{status.port}/healthz") as response:
        assert (response.status, await response.text()) == (200, "ok\n")
    async with http.get(f"http://127.0.0.1:{status.port}/metrics") as response:
        assert response.status == 200
        assert "securechat_streams" in await response.text()


def test_non_loopback_without_admin_token_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        check_config(StatusConfig(host=EVERYWHERE, port=0))
    assert info.value.path == "status.admin_token"
    assert "status.admin_token" in info.value.message


async def test_server_refuses_to_start_with_an_exposed_status_page_and_no_token(
    pki: DevPki, tmp_path: Path
) -> None:
    config = server_config(pki, tmp_path, **{"status.host": EVERYWHERE, "status.port": 18080})
    srv = Node(config)
    with pytest.raises(ConfigError, match=r"status\.admin_token"):
        await srv.start()
    assert srv.status is None


@pytest.mark.parametrize("path", ["/", "/api/status", "/metrics"])
async def test_token_is_required_off_loopback_except_for_healthz(
    server: Node, http: aiohttp.ClientSession, path: str
) -> None:
    side = StatusServer(
        server.view, server.metrics, StatusConfig(host=EVERYWHERE, port=0, admin_token=TOKEN)
    )
    await side.start()
    url = f"http://127.0.0.1:{side.port}"
    try:
        async with http.get(url + path) as response:
            assert response.status == 401
            assert TOKEN not in await response.text()
        bad = {"Authorization": "Bearer wrong-token-wrong-token"}
        async with http.get(url + path, headers=bad) as response:
            assert response.status == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(url + path, headers=good) as response:
            assert response.status == 200
        async with http.get(url + "/healthz") as response:
            assert response.status == 200
    finally:
        await side.stop()


async def test_the_server_runs_its_status_page_on_the_configured_port(
    pki: DevPki, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    srv = Node(server_config(pki, tmp_path, **{"status.port": port}))
    await srv.start()
    side = srv.status
    assert side is not None and side.port == port
    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
        assert response.status == 200
    await srv.stop(0.1)
    assert vars(srv)["status"] is None
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"http://127.0.0.1:{port}/healthz"):
            pass


def test_loopback_detection() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, [EVERYWHERE, "::", "10.0.0.1", "example.org"]))


def test_rate_meter_spans_its_window() -> None:
    now = [0.0]
    total = [0]
    meter = RateMeter(lambda: total[0], window_s=10, clock=lambda: now[0])
    assert meter.rate() == 0.0
    for _ in range(30):  # 30 s at 5 messages per second
        meter.sample()
        now[0] += 1
        total[0] += 5
    assert meter.rate() == pytest.approx(5.0)
    now[0] += 20  # quiet from here on: the last 5 messages spread over the gap
    meter.sample()
    assert meter.rate() == pytest.approx(5 / 21)
    now[0] += 11  # a whole window later the burst is forgotten
    meter.sample()
    assert meter.rate() == 0.0
