"""The one place the client turns a failed call or a refused send into a SecureChatError.

A failed call carries a gRPC status, the server's message and, from securechat servers, the
machine-readable trailers ``securechat-error`` (the error's stable code) and ``retry-after``
(whole seconds). The code picks the error class when the client knows it; otherwise the status
does. A refused stream send (a SendResult with ``accepted`` false) carries the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc

from securechat.errors import (
    AlreadyExists,
    CertificateError,
    FailedPrecondition,
    InvalidArgument,
    Kicked,
    LoggedOut,
    MailboxFull,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RevokedCertificate,
    RosterMovedOn,
    SecureChatError,
    SessionExpired,
    ShuttingDown,
    StreamReplaced,
    Unauthenticated,
    Unavailable,
)
from securechat_proto.v1 import chat_pb2

T = TypeVar("T")
ERROR_TRAILER = "securechat-error"
RETRY_TRAILER = "retry-after"

# Error classes built from a message alone, by their stable code.
_BY_CODE: dict[str, type[SecureChatError]] = {
    cls.code: cls
    for cls in (
        CertificateError,
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Unauthenticated,
        PermissionDenied,
        FailedPrecondition,
        RosterMovedOn,
        Unavailable,
        SessionExpired,
        LoggedOut,
        Kicked,
        RevokedCertificate,
        StreamReplaced,
        ShuttingDown,
    )
}
_BY_STATUS: dict[grpc.StatusCode, type[SecureChatError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.ABORTED: RosterMovedOn,
    grpc.StatusCode.UNIMPLEMENTED: FailedPrecondition,  # a server without that call
}
# What grpc says when the TLS handshake failed on a certificate. A connection lost during the
# handshake ("Handshake read failed (Socket closed)") is a network problem, not one of these.
_TLS_HINTS = ("certificate", "x509", "ssl_error_ssl", "tls handshake failed")
# Nothing listens there, or the host cannot be reached: the server is down or the address wrong.
_UNREACHABLE_HINTS = (
    "connection refused",
    "no route to host",
    "network is unreachable",
    "host is unreachable",
    "dns resolution failed",
    "name or service not known",
)
# An open connection (or one being set up) that the other side dropped.
_CLOSED_HINTS = ("socket closed", "connection reset", "broken pipe", "end of stream")
_TOO_LARGE = "larger than max"


def _trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return None


def _retry_after(text: str | None) -> float | None:
    return float(text) if text and text.isdigit() else None


def translate(
    error: grpc.aio.AioRpcError, *, certificate_accepted: bool = False
) -> SecureChatError:
    """The SecureChatError for a failed call, with a message saying what to do.

    ``certificate_accepted``: this client's certificate was accepted by the server before (a
    stream opened), so a connection closed later is the server or the network, not it."""
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if _TOO_LARGE in details.lower():
            return InvalidArgument(
                "the message is too large for the server: shorten it or send it in parts"
            )
        retry = _retry_after(_trailer(error, RETRY_TRAILER))
        if _trailer(error, ERROR_TRAILER) == MailboxFull.code:
            return MailboxFull(details or None, retry)
        return ResourceExhausted(details or "rate limited: wait and try again", retry)
    if code == grpc.StatusCode.UNAVAILABLE:
        if _trailer(error, ERROR_TRAILER) == ShuttingDown.code:
            retry = _retry_after(_trailer(error, RETRY_TRAILER))
            return ShuttingDown(details or None, retry_after=retry)
        return _unavailable(details, certificate_accepted)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable("the server did not answer in time: check --server and try again")
    if code == grpc.StatusCode.INTERNAL:
        return SecureChatError(details or "the server failed: try again later")
    cls = _BY_CODE.get(_trailer(error, ERROR_TRAILER) or "") or _BY_STATUS.get(code)
    return (cls or SecureChatError)(details or None)


def _unavailable(details: str, certificate_accepted: bool) -> SecureChatError:
    """Tell a dead or unreachable server, a lost connection and a refused certificate apart."""
    lowered = details.lower()
    connecting = "failed to connect" in lowered
    if any(hint in lowered for hint in _TLS_HINTS):
        return CertificateError(
            "the TLS handshake with the server failed: check that --ca is the server's CA "
            "and that --cert/--key are a client certificate that CA issued and did not revoke"
        )
    if any(hint in lowered for hint in _UNREACHABLE_HINTS):
        return Unavailable(
            "server unavailable: no server is answering (connection refused or address "
            "unreachable): it is not running or --server is wrong"
        )
    closed = any(hint in lowered for hint in _CLOSED_HINTS)
    if closed and not connecting:
        return Unavailable(
            "lost the connection to the server (it stopped or restarted, or the network failed)"
        )
    if closed and certificate_accepted:
        return Unavailable(
            "the server closed the connection while it was being opened (it is probably restarting)"
        )
    if closed:
        return Unavailable(
            "the server closed the connection during the TLS handshake: it may not accept your "
            "client certificate (issued by another CA, revoked or expired); check --cert/--key "
            "and --server"
        )
    if details and not connecting:
        return Unavailable(f"server unavailable ({details}): try again later")
    return Unavailable()


def result_error(result: chat_pb2.SendResult) -> SecureChatError:
    """The SecureChatError for a send the server refused (not ``stale_devices``: re-encrypt)."""
    message = result.error_message or f"the server refused the message ({result.error_code})"
    if result.error_code in (ResourceExhausted.code, MailboxFull.code):
        cls = MailboxFull if result.error_code == MailboxFull.code else ResourceExhausted
        return cls(message, float(result.retry_after_s or 1))
    return _BY_CODE.get(result.error_code, SecureChatError)(message)


async def call(awaitable: Awaitable[T]) -> T:
    """Await one RPC, translating its failure."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise translate(exc) from None
