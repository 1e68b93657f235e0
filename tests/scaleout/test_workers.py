"""`securechat-server --workers N`: N processes on one port, supervised; bad set-ups refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from securechat.config import Config, load_config
from securechat.errors import ConfigError
from securechat.pki import DevPki
from securechat.supervisor import check_workers, worker_config
from securechat_proto.v1 import admin_pb2
from tests.bus.conftest import eventually
from tests.bus.redis_server import free_port
from tests.scaleout.peer import channel
from tests.scaleout.procs import ADMIN_PASSWORD, start_node
from tests.support.net import Api
from tests.support.process import clean_env


def config(**overrides: object) -> Config:
    base: dict[str, object] = {"server.workers": 2, "server.port": 50999}
    base.update(overrides)
    return load_config(None, base, env={})


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"bus.url": "redis://127.0.0.1:6379"}, "storage.db"),  # SQLite
        ({"storage.db": "postgresql://u@h/db"}, "bus.url"),  # in-process bus
        ({"storage.db": "postgresql://u@h/db", "bus.url": "redis://h", "server.port": 0}, "port"),
    ],
)
def test_workers_need_shared_store_bus_and_a_fixed_port(
    overrides: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        check_workers(config(**overrides))


def test_the_cli_refuses_workers_on_sqlite_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "securechat.app", "--workers", "2", "--data-dir", str(tmp_path)],
        env=clean_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert "--workers > 1 needs a shared PostgreSQL database" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_worker_gets_its_own_node_name_and_status_port() -> None:
    cfg = config(**{"server.node": "web1", "status.port": 9100})
    names = [
        (worker_config(cfg, i).server.node, worker_config(cfg, i).status.port) for i in range(2)
    ]
    assert names == [("web1/0", 9100), ("web1/1", 9101)]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.e2e
async def test_two_workers_share_one_port_and_restart_when_killed(
    pki: DevPki, tmp_path: Path, pg_dsn: str, redis_url: str
) -> None:
    port = free_port()
    server = start_node(pki, tmp_path / "w", pg_dsn, redis_url, port=port, workers=2)
    try:
        assert server.ports == [port, port]
        nodes: dict[str, int] = {}
        for _ in range(64):  # each channel is a new connection; the kernel spreads them
            api = Api(channel(pki, port, "admin"))
            await api.login("root.admin", ADMIN_PASSWORD)
            stats = await api.admin.GetStats(admin_pb2.GetStatsRequest(), metadata=api.md)
            nodes[stats.node] = nodes.get(stats.node, 0) + 1
            await api.channel.close()
            if len(nodes) == 2:
                break
        assert len(nodes) == 2, nodes  # both workers served connections
        victim = int(next(iter(nodes)).rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: len(server.announced()) == 3, 30)  # the supervisor restarted it
    finally:
        assert server.terminate() == 0
