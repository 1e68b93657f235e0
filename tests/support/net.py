"""Test helpers: secure channels with a client certificate and typed stubs with a session."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from securechat.client.bundles import publish_request
from securechat.crypto.account import CryptoAccount
from securechat.pki import DevPki
from securechat_proto.v1 import (
    admin_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2_grpc,
    keys_pb2_grpc,
    rooms_pb2_grpc,
)

PASSWORD = "correct horse battery"


def credentials(ca: Path, cert: Path | None, key: Path | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


def secure_channel(pki: DevPki, port: int, client: str = "client") -> grpc.aio.Channel:
    paths = pki.client(client)
    return grpc.aio.secure_channel(
        f"localhost:{port}", credentials(pki.ca_cert, paths.cert, paths.key)
    )


@dataclass
class Api:
    """One logged-in device: stubs plus the bearer metadata."""

    channel: grpc.aio.Channel
    token: str = ""
    device_id: int = 0
    user: str = ""
    auth: auth_pb2_grpc.AuthServiceStub = field(init=False)
    keys: keys_pb2_grpc.KeyServiceStub = field(init=False)
    rooms: rooms_pb2_grpc.RoomServiceStub = field(init=False)
    chat: chat_pb2_grpc.ChatServiceStub = field(init=False)
    admin: admin_pb2_grpc.AdminServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.keys = keys_pb2_grpc.KeyServiceStub(self.channel)
        self.rooms = rooms_pb2_grpc.RoomServiceStub(self.channel)
        self.chat = chat_pb2_grpc.ChatServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    async def register(self, user: str, password: str = PASSWORD) -> None:
        await self.auth.Register(auth_pb2.RegisterRequest(username=user, password=password))

    async def login(
        self, user: str, password: str = PASSWORD, device_id: int = 0, *, keys: bool = True
    ) -> None:
        """Log in; a new device (``device_id`` 0) also publishes a key bundle unless ``keys`` is
        False, since only devices with published keys receive messages."""
        response = await self.auth.Login(
            auth_pb2.LoginRequest(username=user, password=password, device_id=device_id)
        )
        self.token, self.device_id, self.user = response.token, response.device_id, user
        if keys and device_id == 0:
            await self.publish_keys()

    async def publish_keys(self) -> None:
        """A real (minimal) bundle for this device: identity, signed and last-resort prekeys."""
        account = CryptoAccount.create(
            self.user, self.device_id, now=int(time.time()), one_time_count=0, kem_one_time_count=0
        )
        request = publish_request(account.upload_bundle())
        await self.keys.PublishBundle(request, metadata=self.md)
