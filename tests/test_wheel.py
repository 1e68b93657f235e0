"""The wheel, built from the checkout and installed into fresh venvs: the generated stubs import
from outside the checkout, and with the lowest dependency versions pyproject.toml allows the
server and the client really work (the floors are true)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from securechat.pki import DevPki
from tests.bus.redis_server import shared_redis_url
from tests.scaleout.procs import fresh_database
from tests.support.process import BIN, ServerProcess, clean_env

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEPENDENCIES = [Requirement(d) for d in PROJECT["dependencies"]]
# The generated code names these floors itself: *_pb2.py checks the protobuf runtime is not older
# than the protoc that made it, *_pb2_grpc.py checks grpcio against the grpcio-tools release.
GENERATED_NEEDS = {"protobuf": "7.35.1", "grpcio": "1.85.1"}

# Building the wheel and installing a venv at the dependency floors runs pip, which took over
# the suite's 120 s per-test bound on a loaded 2-core CI machine (a test's bound includes its
# module fixtures' set-up). Each pip call keeps its own 600 s bound in run(); the test's bound
# must cover the wheel build, the venv and the install together.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

CHECK = """
import pathlib, sys
from securechat_proto.v1 import auth_pb2, chat_pb2, chat_pb2_grpc, admin_pb2_grpc
import securechat, securechat_proto
frame = chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=3))
assert chat_pb2.ClientFrame.FromString(frame.SerializeToString()).open.device_id == 3
assert hasattr(chat_pb2_grpc, "ChatServiceStub")
print(securechat.__file__)
print(securechat_proto.__file__)
"""
# Every module imports (the lowest versions have every name the code uses at import time),
# then the installed versions, to show the floors, not something newer, were tested.
IMPORT_ALL = """
import importlib, json, pkgutil, securechat
from importlib import metadata
for module in pkgutil.walk_packages(securechat.__path__, "securechat."):
    importlib.import_module(module.name)
print(json.dumps({d.metadata["Name"]: d.version for d in metadata.distributions()}))
"""


def floors() -> dict[str, str]:
    """Each runtime dependency's lowest allowed version (its ``>=`` bound)."""
    found = {}
    for requirement in DEPENDENCIES:
        lows = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{requirement} needs one >= floor"
        found[canonicalize_name(requirement.name)] = lows[0]
    return found


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``command`` (never with a PYTHONPATH: a venv must import what is installed in it)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=dist)
    (built,) = dist.glob("securechat-*.whl")
    return built


def venv_with(tmp_path: Path, wheel: Path, *pip_args: str) -> Path:
    """A fresh venv holding the wheel, installed with ``pip_args``; its bin folder."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", *pip_args, wheel, cwd=tmp_path)
    return venv / "bin"


def test_every_dependency_has_a_floor_and_grpc_and_protobuf_a_next_major_ceiling() -> None:
    lowest = floors()
    for name, needed in GENERATED_NEEDS.items():
        assert Version(lowest[name]) >= Version(needed), (name, lowest[name])
    for requirement in DEPENDENCIES:
        if requirement.name.startswith(("grpcio", "protobuf")):
            next_major = Version(lowest[requirement.name]).major + 1
            assert f"<{next_major}" in str(requirement.specifier), requirement


def test_wheel_installs_into_a_fresh_venv_and_the_stubs_import(wheel: Path, tmp_path: Path) -> None:
    # --no-deps keeps it fast: the stubs need only protobuf and grpcio, the newest allowed.
    bin_dir = venv_with(tmp_path, wheel, "--no-deps")
    wanted = [str(r) for r in DEPENDENCIES if r.name in GENERATED_NEEDS]
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", *wanted, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    securechat_file, generated_file = run(bin_dir / "python", "-c", CHECK, cwd=elsewhere).split()
    for path in (Path(securechat_file), Path(generated_file)):
        assert path.is_relative_to(tmp_path / "venv"), path
        assert not path.is_relative_to(ROOT), path


@pytest.fixture(scope="module")
def lowest(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel and every runtime dependency at its floor (binary wheels only)."""
    tmp = tmp_path_factory.mktemp("lowest")
    constraints = tmp / "lowest.txt"
    constraints.write_text("".join(f"{name}=={low}\n" for name, low in floors().items()))
    bin_dir = venv_with(tmp, wheel, "--only-binary", ":all:", "--constraint", constraints)
    run(bin_dir / "pip", "check", cwd=tmp)
    printed = json.loads(run(bin_dir / "python", "-c", IMPORT_ALL, cwd=tmp))
    installed = {canonicalize_name(name): Version(v) for name, v in printed.items()}
    assert {name: installed[name] for name in floors()} == {
        name: Version(low) for name, low in floors().items()
    }
    return bin_dir


def free_port() -> int:
    """A port free a moment ago: the status page has no "pick one" (its port 0 turns it off)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user_env(pki: DevPki, server: ServerProcess, tmp_path: Path, user: str) -> dict[str, str]:
    paths = pki.client(user)
    return clean_env(
        tmp_path / f"{user}-os",
        {
            "SECURECHAT_HOME": str(tmp_path / f"{user}-home"),
            "SECURECHAT_KDF_PROFILE": "test",
            "SECURECHAT_PASSWORD": f"{user} password 1",
            "SECURECHAT_SERVER": server.address,
            "SECURECHAT_CA": str(pki.ca_cert),
            "SECURECHAT_CERT": str(paths.cert),
            "SECURECHAT_KEY": str(paths.key),
        },
    )


def chat(bin_dir: Path, pki: DevPki, server: ServerProcess, tmp_path: Path) -> None:
    """Two users of ``bin_dir``'s client: register, an end-to-end encrypted message, inbox."""
    for user in ("alice", "bob"):
        env = user_env(pki, server, tmp_path, user)
        run(bin_dir / "securechat", "register", user, cwd=tmp_path, env=env)
    text = "hello from the lowest versions"
    env = user_env(pki, server, tmp_path, "alice")
    run(bin_dir / "securechat", "send", "--to", "bob", text, cwd=tmp_path, env=env)
    env = user_env(pki, server, tmp_path, "bob")
    inbox = run(bin_dir / "securechat", "inbox", "--json", cwd=tmp_path, env=env)
    assert [json.loads(line)["text"] for line in inbox.splitlines()] == [text]


def test_lowest_versions_serve_health_reflection_status_and_chat(
    lowest: Path, pki: DevPki, tmp_path: Path
) -> None:
    status = free_port()
    server = ServerProcess(
        pki.directory,
        tmp_path / "data",
        executable=str(lowest / "securechat-server"),
        args=("--status-port", str(status)),
    )
    with server:
        # health and reflection, served by the lowest grpcio-health-checking/-reflection
        client = pki.client("client")
        grpcurl = [str(BIN / "grpcurl"), "-cacert", str(pki.ca_cert), "-cert", str(client.cert),
                   "-key", str(client.key), server.address]  # fmt: skip
        assert "securechat.v1.ChatService" in run(*grpcurl, "list", cwd=tmp_path)
        health = json.loads(run(*grpcurl, "grpc.health.v1.Health/Check", cwd=tmp_path))
        assert health == {"status": "SERVING"}
        chat(lowest, pki, server, tmp_path)  # SQLite through the lowest sqlalchemy/aiosqlite
        # the status page (aiohttp) and its metrics (prometheus_client)
        metrics = f"http://127.0.0.1:{status}/metrics"
        with urllib.request.urlopen(metrics, timeout=30) as page:
            assert page.status == 200
            assert b"securechat_" in page.read()
    assert server.proc.returncode == 0, server.logs()[-2000:]


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async for dsn in fresh_database():
        yield dsn


@pytest.mark.postgres
@pytest.mark.redis
def test_lowest_versions_chat_on_postgres_and_redis(
    lowest: Path, pki: DevPki, tmp_path: Path, database: str
) -> None:
    server = ServerProcess(
        pki.directory,
        tmp_path / "data",
        executable=str(lowest / "securechat-server"),
        args=("--db", database, "--bus", shared_redis_url()),
    )
    with server:
        chat(lowest, pki, server, tmp_path)  # through the lowest asyncpg and redis
    assert server.proc.returncode == 0, server.logs()[-2000:]
