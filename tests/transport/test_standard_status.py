"""What generic gRPC tools understand, against a real server process: google.rpc.Status details
(ErrorInfo, RetryInfo) read by grpc_status and by grpcurl, the request-id trailer, reflection v1
with the comments of protos/, and Health List."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

from securechat.pki import DevPki
from securechat_proto.v1 import auth_pb2, auth_pb2_grpc
from tests.support.net import credentials
from tests.support.process import ServerProcess

pytestmark = pytest.mark.e2e

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that allows one registration per address per hour (the second gets retry-after)."""
    data = tmp_path_factory.mktemp("standard") / "data"
    limit = {"SECURECHAT_AUTH_REGISTRATIONS_PER_PEER_PER_HOUR": "1"}
    process = ServerProcess(pki.directory, data, env=limit)
    yield process
    assert process.terminate() == 0


def grpcurl(
    pki: DevPki, port: int, *verb: str, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """grpcurl -cacert ... -cert ... -key ... FLAGS localhost:PORT VERB..."""
    client = pki.client("client")
    tls = ["-cacert", str(pki.ca_cert), "-cert", str(client.cert), "-key", str(client.key)]
    return subprocess.run([GRPCURL, *tls, *flags, f"localhost:{port}", *verb],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    """The unpacked google.rpc.Status details of an error, by type name."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == error.code().value[0] and status.message == error.details()
    found: dict[str, object] = {}
    for packed in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                found[kind.DESCRIPTOR.name] = detail
    return found


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {k: v for k, v in error.trailing_metadata() or () if isinstance(v, str)}


async def test_python_client_reads_error_info_and_retry_info(
    pki: DevPki, server: ServerProcess
) -> None:
    client = pki.client("client")
    async with grpc.aio.secure_channel(
        f"localhost:{server.port}", credentials(pki.ca_cert, client.cert, client.key)
    ) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        call = auth.Register(auth_pb2.RegisterRequest(username="py-first", password=PASSWORD))
        await call
        rid = dict(await call.trailing_metadata())["securechat-request-id"]
        assert len(rid) == 12  # a successful call carries its request id too
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await auth.Register(auth_pb2.RegisterRequest(username="py-second", password=PASSWORD))
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await auth.Login(auth_pb2.LoginRequest(username="py-first", password="not it at all"))

    error = limited.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    found = details(error)
    info, retry = found["ErrorInfo"], found["RetryInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    plain = trailers(error)
    assert (info.reason, info.domain) == ("RESOURCE_EXHAUSTED", "securechat.v1")
    assert plain["securechat-error"] == "resource_exhausted"  # the same code, plain spelling
    assert info.metadata["request_id"] == plain["securechat-request-id"]
    assert retry.retry_delay.seconds == int(plain["retry-after"]) > 0

    found = details(wrong.value)
    assert set(found) == {"ErrorInfo"}  # no RetryInfo where waiting is not the remedy
    assert isinstance(found["ErrorInfo"], error_details_pb2.ErrorInfo)
    assert found["ErrorInfo"].reason == "UNAUTHENTICATED"


def test_grpcurl_reads_error_info_and_retry_info(pki: DevPki, server: ServerProcess) -> None:
    first = json.dumps({"username": "curl-first", "password": PASSWORD})
    second = json.dumps({"username": "curl-second", "password": PASSWORD})
    # This server allows one registration per address: whichever test ran first took it.
    grpcurl(pki, server.port, "securechat.v1.AuthService/Register", flags=("-d", first))
    result = grpcurl(pki, server.port, "securechat.v1.AuthService/Register",
                     flags=("-format-error", "-d", second))  # fmt: skip
    assert result.returncode != 0
    status = json.loads(result.stdout or result.stderr)
    assert status["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    by_type = {d["@type"].rsplit("/", 1)[1]: d for d in status["details"]}
    info, retry = by_type["google.rpc.ErrorInfo"], by_type["google.rpc.RetryInfo"]
    assert (info["reason"], info["domain"]) == ("RESOURCE_EXHAUSTED", "securechat.v1")
    assert len(info["metadata"]["request_id"]) == 12
    assert retry["retry_delay"].endswith("s") and int(retry["retry_delay"][:-1]) > 0


def test_reflection_v1_and_v1alpha_and_describe_shows_comments(
    pki: DevPki, server: ServerProcess
) -> None:
    listed = grpcurl(pki, server.port, "list")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
            "securechat.v1.AuthService", "grpc.health.v1.Health"} <= names  # fmt: skip
    described = grpcurl(pki, server.port, "describe", "securechat.v1.AuthService")
    assert described.returncode == 0, described.stderr
    assert "// Creates an account with role `user`" in described.stdout
    message = grpcurl(pki, server.port, "describe", "securechat.v1.SendResult")
    assert message.returncode == 0 and "//" in message.stdout, message.stdout
    itself = grpcurl(pki, server.port, "describe", "grpc.reflection.v1.ServerReflection")
    assert itself.returncode == 0 and "ServerReflectionInfo" in itself.stdout, itself.stderr


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_both_reflection_versions_answer(
    pki: DevPki, server: ServerProcess, version: str
) -> None:
    """The v1 request and response are byte-identical to v1alpha's: one message class serves."""
    client = pki.client("client")
    method = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    async with grpc.aio.secure_channel(
        f"localhost:{server.port}", credentials(pki.ca_cert, client.cert, client.key)
    ) as channel:
        call = channel.stream_stream(
            method,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="securechat.v1.ChatService")]  # fmt: skip
        answers = [answer async for answer in call(iter(requests))]
    services = {s.name for s in answers[0].list_services_response.service}
    assert f"grpc.reflection.{version}.ServerReflection" in services
    files = answers[1].file_descriptor_response.file_descriptor_proto
    protos = [descriptor_pb2.FileDescriptorProto.FromString(blob) for blob in files]
    chat = next(p for p in protos if p.name == "securechat/v1/chat.proto")
    assert any("Chat" in loc.leading_comments for loc in chat.source_code_info.location)


async def test_health_list_reports_every_service(pki: DevPki, server: ServerProcess) -> None:
    client = pki.client("client")
    async with grpc.aio.secure_channel(
        f"localhost:{server.port}", credentials(pki.ca_cert, client.cert, client.key)
    ) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        listed = await health.List(health_pb2.HealthListRequest())
    serving = health_pb2.HealthCheckResponse.SERVING
    assert {name: s.status for name, s in listed.statuses.items()} == {
        name: serving
        for name in ("", "grpc.health.v1.Health", "securechat.v1.AuthService",
                     "securechat.v1.KeyService", "securechat.v1.RoomService",
                     "securechat.v1.ChatService", "securechat.v1.AdminService")
    }  # fmt: skip
