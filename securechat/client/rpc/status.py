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
    grpc.StatusCode.ABORTED: FailedPrecondition,
}
# What grpc says when the TLS handshake failed on a certificate. A connection lost during the
# handshake ("Handshake read failed (Socket closed)") is a network problem, not one of these.
_TLS_HINTS = ("certificate", "x509", "ssl_error_ssl", "tls handshake failed")


def _trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return None


def _retry_after(text: str | None) -> float | None:
    return float(text) if text and text.isdigit() else None


def translate(error: grpc.aio.AioRpcError) -> SecureChatError:
    """The SecureChatError for a failed call, with a message saying what to do."""
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry = _retry_after(_trailer(error, RETRY_TRAILER))
        if _trailer(error, ERROR_TRAILER) == MailboxFull.code:
            return MailboxFull(details or None, retry)
        return ResourceExhausted(details or "rate limited: wait and try again", retry)
    if code == grpc.StatusCode.UNAVAILABLE:
        if _trailer(error, ERROR_TRAILER) == ShuttingDown.code:
            retry = _retry_after(_trailer(error, RETRY_TRAILER))
            return ShuttingDown(details or None, retry_after=retry)
        return _unavailable(details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable("the server did not answer in time: check --server and try again")
    if code == grpc.StatusCode.INTERNAL:
        return SecureChatError(details or "the server failed: try again later")
    cls = _BY_CODE.get(_trailer(error, ERROR_TRAILER) or "") or _BY_STATUS.get(code)
    return (cls or SecureChatError)(details or None)


def _unavailable(details: str) -> SecureChatError:
    lowered = details.lower()
    if any(hint in lowered for hint in _TLS_HINTS):
        return CertificateError(
            "the TLS handshake with the server failed: check that --ca is the server's CA "
            "and that --cert/--key are a client certificate that CA issued and did not revoke"
        )
    if "socket closed" in lowered:
        return Unavailable(
            "the server closed the connection: it may not accept your client certificate "
            "(issued by another CA, revoked or expired) or it is shutting down; check "
            "--cert/--key and --server"
        )
    if details and "failed to connect" not in lowered:
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
