"""The one place server errors become gRPC status codes."""

from __future__ import annotations

import logging

import grpc

from securechat.errors import ResourceExhausted, SecureChatError

log = logging.getLogger("securechat.rpc")


def status_code(error: SecureChatError) -> grpc.StatusCode:
    code: grpc.StatusCode = getattr(grpc.StatusCode, error.status, grpc.StatusCode.UNKNOWN)
    return code


def trailing_metadata(error: SecureChatError) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = [("securechat-error", error.code)]
    if isinstance(error, ResourceExhausted) and error.retry_after is not None:
        pairs.append(("retry-after", str(max(1, round(error.retry_after)))))
    return tuple(pairs)


async def abort_with(context: grpc.aio.ServicerContext, error: SecureChatError) -> None:
    """End the call with the error's status, message and machine-readable trailers."""
    context.set_trailing_metadata(trailing_metadata(error))
    await context.abort(status_code(error), error.message)


async def abort_internal(context: grpc.aio.ServicerContext, request_id: str) -> None:
    await context.abort(
        grpc.StatusCode.INTERNAL,
        f"internal server error (request id {request_id}); the operator can find it in the logs",
    )
