"""The status page in real headless Chromium: the client list renders a connected client."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from securechat.ops.status import StatusServer
from tests.conftest import ApiFactory
from tests.ops.conftest import open_stream

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


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


async def test_status_page_renders_the_connected_client_in_chromium(
    connect: ApiFactory, status: StatusServer, tmp_path: Path
) -> None:
    carol = await open_stream(await connect("carol"))
    url = f"http://127.0.0.1:{status.port}/"

    dom = await run_chromium(tmp_path / "profile", "--dump-dom", url)

    assert 'data-state="live"' in dom, dom[-3000:]
    clients = dom.split('<tbody id="clients">', 1)[1].split("</tbody>", 1)[0]
    assert "<td>carol</td>" in clients and "<td>1</td>" in clients
    assert "no clients connected" not in clients
    rooms = dom.split('<tbody id="rooms">', 1)[1].split("</tbody>", 1)[0]
    assert "<td>lobby</td>" in rooms
    assert carol.api.token not in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    await run_chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,800", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    await carol.close()
