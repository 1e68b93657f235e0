"""Client test fixtures: a real `securechat-server` process and `securechat` users; in-process
devices of the client library on the test server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from securechat.node import Node
from securechat.pki import DevPki
from tests.client.live import Device, Relay, device, reset
from tests.client.tmux import Tmux
from tests.support.process import BIN, ServerProcess, clean_env

__all__ = ["BIN", "ServerProcess", "User"]


@pytest.fixture(scope="module")
def server_process(
    pki: DevPki, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """`securechat-server --port 0` with bcrypt cost 4 (tests/support/process.py).

    A test module may set ``SERVER_ENV`` (a dict) for extra server environment."""
    root = tmp_path_factory.mktemp("server")
    env = getattr(request.module, "SERVER_ENV", {})
    with ServerProcess(pki.directory, root / "data", env=env) as server:
        yield server


@dataclass
class User:
    """One person at a terminal: their own SECURECHAT_HOME, client certificate and password."""

    name: str
    home: Path
    server: ServerProcess
    pki: DevPki
    password: str
    cert: str = "client"

    def env(self) -> dict[str, str]:
        paths = self.pki.client(self.cert)
        return clean_env(
            self.os_home,
            dict(
                SECURECHAT_HOME=str(self.home),
                SECURECHAT_KDF_PROFILE="test",
                SECURECHAT_PASSWORD=self.password,
                SECURECHAT_SERVER=self.server.address,
                SECURECHAT_CA=str(self.pki.ca_cert),
                SECURECHAT_CERT=str(paths.cert),
                SECURECHAT_KEY=str(paths.key),
            ),
        )

    @property
    def os_home(self) -> Path:
        """HOME and the XDG folders of this user's processes (none of the developer's)."""
        return self.home.with_name(f"{self.home.name}-os")

    def run(self, *args: str, ok: bool = True, stdin: str = "") -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "securechat"), *args],
            env=self.env(),
            cwd=self.os_home,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert result.returncode == 0, (args, result.returncode, result.stderr)
        return result


@pytest.fixture
def make_user(server_process: ServerProcess, pki: DevPki, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(name: str) -> User:
        cert = name if name in pki.clients else "client"
        return User(name, tmp_path / f"home-{name}", server_process, pki, f"{name}-pass-1", cert)

    return make


MakeDevice = Callable[..., Awaitable[Device]]
Reset = Callable[[str], Awaitable[Device]]


@pytest.fixture
async def make_device(
    server: Node, pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeDevice]:
    """make_device(user, register=True, port=None, link_from=None) -> an in-process Device (see
    live.py) of the `server` fixture (or of whatever listens on ``port``), linked from another
    device of the same user when ``link_from`` is given; all stopped at the end."""
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")  # cheap keystores
    made: list[Device] = []

    async def build(
        user: str,
        *,
        register: bool = True,
        port: int | None = None,
        link_from: Device | None = None,
    ) -> Device:
        made.append(
            await device(
                port or server.port, pki, tmp_path, user, register=register, link_from=link_from
            )
        )
        return made[-1]

    yield build
    for each in made:
        await each.stop()


@pytest.fixture
async def reset_device(
    server: Node, pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Reset]:
    """reset_device(user): ``securechat login USER --reset`` as the client library does it (see
    live.reset); the devices are stopped at the end."""
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")  # cheap keystores
    made: list[Device] = []

    async def build(user: str) -> Device:
        made.append(await reset(server.port, pki, tmp_path, user))
        return made[-1]

    yield build
    for each in made:
        await each.stop()


@pytest.fixture
async def relay(server: Node) -> AsyncIterator[Relay]:
    """A TCP relay to the `server` fixture that a test can cut or hold down."""
    relay = Relay(server.port)
    await relay.start()
    yield relay
    await relay.close()


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    """A private tmux server (killed at the end); skips where tmux is not installed."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the interactive tests need a real terminal")
    session = Tmux(tmp_path)
    yield session
    session.kill()
