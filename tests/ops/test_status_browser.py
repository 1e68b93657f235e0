"""The status page in real headless Chromium, under real traffic: every chart has points, and the
personal-data tables render for a browser behind a proxy that adds the admin token."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web

from securechat.config import StatusConfig
from securechat.node import Node
from securechat.ops.status import StatusServer
from securechat.ops.status_page import CHARTS
from tests.conftest import ApiFactory
from tests.ops.conftest import open_stream
from tests.support.chat import room_send

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "s3cret-status-token-0123456789"
POINTS = re.compile(r'<svg id="(chart-[a-z]+)"[^>]*data-points="(\d+)"')


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    reason = "headless Chromium not installed (apt-get install -y chromium); CI installs it"
    print(f"SKIP: {reason}")
    pytest.skip(reason)


async def run_chromium(profile: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@contextlib.asynccontextmanager
async def traffic(connect: ApiFactory) -> AsyncIterator[None]:
    """Messages between two streams and a failed login now and then, until the block ends."""
    alice = await open_stream(await connect("alice"))
    bob = await open_stream(await connect("bob"))
    stranger = await connect()

    async def load() -> None:
        for i in range(100_000):
            assert (await room_send(alice, "lobby", f"m{i}".encode())).accepted
            if i % 20 == 0:
                with pytest.raises(grpc.aio.AioRpcError):
                    await stranger.login("alice", "not the password")
            await asyncio.sleep(0.02)

    task = asyncio.create_task(load())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await alice.close()
        await bob.close()


async def test_every_chart_has_data_points_under_real_traffic(
    server: Node, connect: ApiFactory, tmp_path: Path
) -> None:
    side = StatusServer(server.view, server.metrics, StatusConfig(port=0), history_step_s=0.25)
    await side.start()
    url = f"http://127.0.0.1:{side.port}/"
    try:
        async with traffic(connect):
            while len(side.history.times) < 8:  # a couple of seconds of load on the charts
                await asyncio.sleep(0.1)
            dom = await run_chromium(tmp_path / "profile", "--dump-dom", url)
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "status-page.png"
            shot.unlink(missing_ok=True)
            await run_chromium(tmp_path / "profile", f"--screenshot={shot}",
                               "--window-size=1300,1100", url)  # fmt: skip
    finally:
        await side.stop()

    assert 'data-state="live"' in dom, dom[-3000:]
    points = dict(POINTS.findall(dom))
    assert set(points) == {chart_id for chart_id, _, _ in CHARTS}
    assert all(int(n) > 0 for n in points.values()), points
    legend = dom.split('id="chart-errors-legend"', 1)[1].split("</div>", 1)[0]
    assert "UNAUTHENTICATED" in legend  # the failed logins show up by their code
    assert "Connected clients" in dom and 'id="personal" hidden' in dom  # no token: hidden
    assert "alice" not in dom.split("<h1>", 1)[1]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_clients_render_behind_a_proxy_that_adds_the_token(
    server: Node, connect: ApiFactory, tmp_path: Path
) -> None:
    """What docs/operations.md tells an operator to do for a browser: a proxy adds the header."""
    side = StatusServer(server.view, server.metrics, StatusConfig(port=0, admin_token=TOKEN))
    await side.start()
    upstream = f"http://127.0.0.1:{side.port}"
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.get(upstream + request.path_qs, headers=headers) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items()
                    if k in ("Content-Type", "Content-Security-Policy")}  # fmt: skip
            return web.Response(status=answer.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy_port = runner.addresses[0][1]
    try:
        carol = await open_stream(await connect("carol"))
        dom = await run_chromium(tmp_path / "profile", "--dump-dom",
                                 f"http://127.0.0.1:{proxy_port}/")  # fmt: skip
        await carol.close()
    finally:
        await runner.cleanup()
        await session.close()
        await side.stop()
    assert 'data-state="live"' in dom, dom[-3000:]
    clients = dom.split('<tbody id="clients">', 1)[1].split("</tbody>", 1)[0]
    assert "<td>carol</td>" in clients and "no clients connected" not in clients
    rooms = dom.split('<tbody id="rooms">', 1)[1].split("</tbody>", 1)[0]
    assert "<td>lobby</td>" in rooms
    assert TOKEN not in dom and carol.api.token not in dom
