"""The real `securechat-server` process: one clear line for every set-up error, the bound address
on `--port 0`, and a graceful SIGTERM (health NOT_SERVING first, exit 0)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securechat.pki import DevPki
from securechat.pki.layout import init_pki
from tests.support.net import secure_channel
from tests.support.process import ServerProcess, clean_env, server_command

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def run_server(
    tmp: Path, certs: Path, *args: str, port: int | None = 0, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the server expecting it to refuse to start (a started one would hit the timeout).

    Port 0 by default: a refusal must come from the problem under test, not from another
    process holding the default port 50051."""
    return subprocess.run(
        server_command(certs, tmp / "data", *args, port=port),
        cwd=tmp,
        env=clean_env(tmp / "home", env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode not in (0, None), result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("securechat-server: error:"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def copy_pki(pki: DevPki, target: Path) -> Path:
    target.mkdir()
    for path in (pki.ca_cert, pki.server_cert, pki.server_key):
        shutil.copy(path, target / path.name)
    return target


# ---- certificate problems -------------------------------------------------------------------


def test_missing_server_certificate(pki: DevPki, tmp_path: Path) -> None:
    certs = copy_pki(pki, tmp_path / "certs")
    (certs / "server.crt").unlink()
    assert_one_clear_line(run_server(tmp_path, certs), "server.crt", "not found")


# Tests run as root, so `chmod 000` does not make a file unreadable: a directory in the file's
# place and garbage content stand in for "cannot be read".
def test_unreadable_server_key_a_directory(pki: DevPki, tmp_path: Path) -> None:
    certs = copy_pki(pki, tmp_path / "certs")
    (certs / "server.key").unlink()
    (certs / "server.key").mkdir()
    assert_one_clear_line(run_server(tmp_path, certs), "server.key")


def test_garbage_pem_file(pki: DevPki, tmp_path: Path) -> None:
    name = "ca.crt"
    certs = copy_pki(pki, tmp_path / "certs")
    (certs / name).write_bytes(b"-----BEGIN NONSENSE-----\n\x00\xff garbage\n")
    assert_one_clear_line(run_server(tmp_path, certs), name)


def test_mismatched_certificate_and_key(pki: DevPki, tmp_path: Path) -> None:
    certs = copy_pki(pki, tmp_path / "certs")
    shutil.copy(pki.client("alice").key, certs / "server.key")
    assert_one_clear_line(run_server(tmp_path, certs), "server.key", "match")


def test_expired_server_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    init_pki(certs, days=1, now=datetime.now(UTC) - timedelta(days=10))
    assert_one_clear_line(run_server(tmp_path, certs), "server.crt", "expired")


# ---- configuration problems -----------------------------------------------------------------


def test_invalid_port_in_environment(pki: DevPki, tmp_path: Path) -> None:
    result = run_server(tmp_path, pki.directory, port=None, SECURECHAT_SERVER_PORT="abc")
    assert_one_clear_line(result, "server.port", "abc")


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("[server]\nprot = 1\n", ("server.prot", "unknown")),
        ('[auth]\nbcrypt_cost = "high"\n', ("auth.bcrypt_cost", "integer")),
    ],
)
def test_bad_toml_file(pki: DevPki, tmp_path: Path, toml: str, words: tuple[str, ...]) -> None:
    config = tmp_path / "server.toml"
    config.write_text(toml)
    result = run_server(tmp_path, pki.directory, "--config", str(config))
    assert_one_clear_line(result, *words)


def test_port_already_in_use(pki: DevPki, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_clear_line(run_server(tmp_path, pki.directory, port=port), "server.port")


# ---- a good start and a graceful stop -------------------------------------------------------


async def test_port_0_prints_the_address_and_sigterm_drains(pki: DevPki, tmp_path: Path) -> None:
    server = ServerProcess(pki.directory, tmp_path / "data")
    try:
        async with secure_channel(pki, server.port) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )
            assert (await watch.read()).status == SERVING
            server.proc.send_signal(signal.SIGTERM)
            assert (await asyncio.wait_for(watch.read(), 30)).status == NOT_SERVING
        code = await asyncio.to_thread(server.wait)
    finally:
        server.kill()
    log = server.logs()
    assert server.lines == [f"securechat-server listening on 127.0.0.1:{server.port}"]
    assert code == 0, log
    assert "SIGTERM" in log
    assert "stopped" in log
    assert "Traceback" not in log
