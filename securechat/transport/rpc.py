"""Registering servicers: every method is wrapped once with authentication, revocation checks,
request ids, access logs, metrics and the error translation. Servicers stay plain.

grpc.aio interceptors cannot see the peer certificate, so the wrapping happens at the method
handler, where ``context.auth_context()`` is available.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from securechat.domain.model import DeviceRef, PeerCertificate, Session
from securechat.errors import InvalidArgument, RevokedCertificate, SecureChatError, Unauthenticated
from securechat.ops.logsetup import request_id
from securechat.ops.metrics import Metrics
from securechat.services.accounts import Accounts
from securechat.transport.errors import (
    CANCELLED,
    INTERNAL,
    OK,
    abort_internal,
    abort_unimplemented,
    abort_with,
    request_id_metadata,
    status_name,
)
from securechat.transport.peer import peer_certificate

log = logging.getLogger("securechat.rpc")
access = logging.getLogger("securechat.access")

PUBLIC_METHODS = frozenset({"Register", "Login", "GetLoginParameters"})


@dataclass(slots=True)
class Call:
    """What a servicer method knows about the call it serves."""

    context: grpc.aio.ServicerContext
    method: str
    request_id: str
    peer: str
    certificate: PeerCertificate
    session: Session | None = field(default=None)

    @property
    def user(self) -> str:
        assert self.session is not None, "authenticated method without a session"
        return self.session.user

    @property
    def device(self) -> DeviceRef:
        assert self.session is not None, "authenticated method without a session"
        return DeviceRef(self.session.user, self.session.device_id)


RevocationCheck = Callable[[PeerCertificate], bool]


class Guard:
    """Admission for every RPC: certificate not revoked, bearer token valid, role allowed."""

    def __init__(self, accounts: Accounts, is_revoked: RevocationCheck, metrics: Metrics) -> None:
        self.accounts = accounts
        self.is_revoked = is_revoked
        self.metrics = metrics

    def start(self, context: grpc.aio.ServicerContext, method: str) -> Call:
        rid = secrets.token_hex(6)
        request_id.set(rid)
        # Every call, successful or not, tells the client the id its log lines carry.
        context.set_trailing_metadata(request_id_metadata())
        return Call(context, method, rid, context.peer(), peer_certificate(context))

    async def admit(self, call: Call, *, public: bool, admin: bool) -> None:
        if self.is_revoked(call.certificate):
            raise RevokedCertificate()
        if public:
            return
        session = await self.accounts.authenticate(bearer_token(call.context), call.certificate)
        if self.is_revoked(_login_certificate(session)):
            raise Unauthenticated(
                "the client certificate this session logged in with has been revoked: "
                "log in again with a valid one"
            )
        call.session = session
        if admin:
            self.accounts.require_admin(call.session)


def _login_certificate(session: Session) -> PeerCertificate:
    return PeerCertificate(
        session.cert_subject, None, session.cert_fingerprint, session.cert_serial
    )


def log_access(call: Call, kind: str, code: str, seconds: float) -> None:
    """One access line per RPC (``kind`` "rpc") or ended stream ("stream"), facts as fields."""
    fields = {
        "method": call.method,
        "code": code,
        "duration_ms": round(seconds * 1000, 1),
        "user": call.session.user if call.session else "-",
        "peer": call.peer,
    }
    access.info("%s %s", kind, call.method, extra=fields)


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("malformed authorization metadata: use 'Bearer <token>'")
    raise Unauthenticated(
        "this call needs a session: log in and send 'authorization: Bearer <token>'"
    )


@dataclass(frozen=True, slots=True)
class MalformedRequest:
    """Stands in for request bytes that do not parse (e.g. a string field that is not UTF-8)."""

    type_name: str

    def refuse(self) -> InvalidArgument:
        return InvalidArgument(
            f"the request is not a valid {self.type_name} message: string fields must be UTF-8 text"
        )


def _parser(cls: type[Message]) -> Callable[[bytes], Message | MalformedRequest]:
    """A request deserializer that reports bad bytes as INVALID_ARGUMENT, not UNKNOWN."""

    def parse(data: bytes) -> Message | MalformedRequest:
        try:
            return cls.FromString(data)
        except DecodeError:
            return MalformedRequest(cls.DESCRIPTOR.name)

    return parse


async def _parsed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, MalformedRequest):
            raise request.refuse()
        yield request


UnaryImpl = Callable[[Any, Call], Awaitable[Message]]
StreamImpl = Callable[[AsyncIterator[Any], Call], Awaitable[None]]
AnyImpl = Any


def _unimplemented(name: str) -> UnaryImpl:
    async def method(request: Message, call: Call) -> Message:
        await abort_unimplemented(call.context, name)
        raise AssertionError("unreachable")  # pragma: no cover

    return method


def _unary(guard: Guard, full: str, impl: UnaryImpl, public: bool, admin: bool) -> Any:
    short = full.rsplit("/", 1)[-1]

    async def handler(
        request: Message | MalformedRequest, context: grpc.aio.ServicerContext
    ) -> Message | None:
        call = guard.start(context, full)
        started = time.perf_counter()
        code = OK
        try:
            await guard.admit(call, public=public, admin=admin)
            if isinstance(request, MalformedRequest):
                raise request.refuse()
            return await impl(request, call)
        except SecureChatError as error:
            code = status_name(error)
            await abort_with(context, error)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            code = CANCELLED if code == OK else code
            raise
        except Exception:
            code = INTERNAL
            log.exception("unexpected error in %s", full)
            await abort_internal(context, call.request_id)
        finally:
            elapsed = time.perf_counter() - started
            guard.metrics.rpcs.labels(short, code).inc()
            guard.metrics.rpc_latency.labels(short).observe(elapsed)
            log_access(call, "rpc", code, elapsed)
        return None  # pragma: no cover - abort raised

    return handler


def _stream(guard: Guard, full: str, impl: StreamImpl) -> Any:
    async def handler(requests: AsyncIterator[Message], context: grpc.aio.ServicerContext) -> None:
        call = guard.start(context, full)
        started = time.perf_counter()
        code = OK
        try:
            await guard.admit(call, public=False, admin=False)
            await impl(_parsed(requests), call)  # raises the ending when the server ended it
        except SecureChatError as error:
            code = status_name(error)
            await abort_with(context, error)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            code = CANCELLED if code == OK else code
            raise
        except Exception:
            code = INTERNAL
            log.exception("unexpected error in %s", full)
            await abort_internal(context, call.request_id)
        finally:
            guard.metrics.rpcs.labels("Chat", code).inc()
            log_access(call, "stream", code, time.perf_counter() - started)

    return handler


def _serialize_frame(message: Message | bytes) -> bytes:
    """Streams may write frames already serialised (transport/wire.py) or messages."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def service_handler(
    descriptor: ServiceDescriptor, servicer: object, guard: Guard, *, admin: bool = False
) -> grpc.GenericRpcHandler:
    """A generic handler for one service; methods the servicer lacks answer UNIMPLEMENTED."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in descriptor.methods:
        full = f"/{descriptor.full_name}/{method.name}"
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        impl: AnyImpl = getattr(servicer, method.name, None)
        if method.client_streaming and method.server_streaming:
            if impl is None:
                impl = _unimplemented(method.name)
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _stream(guard, full, impl),
                request_deserializer=_parser(request_cls),
                response_serializer=_serialize_frame,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(
                    guard,
                    full,
                    impl or _unimplemented(method.name),
                    method.name in PUBLIC_METHODS,
                    admin,
                ),
                request_deserializer=_parser(request_cls),
                response_serializer=response_cls.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)
