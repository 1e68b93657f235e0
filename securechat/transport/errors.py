"""The one place server errors become gRPC status codes (and the only server module that names
them): every error, stream endings included, leaves with its status, its message and the
machine-readable ``securechat-error`` trailer (plus ``retry-after`` when waiting is the remedy)."""

from __future__ import annotations

import grpc

from securechat.errors import SecureChatError

# Status names as the metrics and the access log record them.
OK = grpc.StatusCode.OK.name
CANCELLED = grpc.StatusCode.CANCELLED.name
INTERNAL = grpc.StatusCode.INTERNAL.name


def status_code(error: SecureChatError) -> grpc.StatusCode:
    code: grpc.StatusCode = getattr(grpc.StatusCode, error.status, grpc.StatusCode.UNKNOWN)
    return code


def status_name(error: SecureChatError) -> str:
    return str(status_code(error).name)


def retry_after_s(error: SecureChatError) -> int | None:
    """Whole seconds to wait (at least 1), or None when waiting is not the remedy."""
    return None if error.retry_after is None else max(1, round(error.retry_after))


def trailing_metadata(error: SecureChatError) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = [("securechat-error", error.code)]
    seconds = retry_after_s(error)
    if seconds is not None:
        pairs.append(("retry-after", str(seconds)))
    return tuple(pairs)


async def abort_with(context: grpc.aio.ServicerContext, error: SecureChatError) -> None:
    """End the call with the error's status, message and machine-readable trailers."""
    context.set_trailing_metadata(trailing_metadata(error))
    await context.abort(status_code(error), error.message)


async def abort_internal(context: grpc.aio.ServicerContext, request_id: str) -> None:
    context.set_trailing_metadata((("securechat-error", "internal"),))
    await context.abort(
        grpc.StatusCode.INTERNAL,
        f"internal server error (request id {request_id}); the operator can find it in the logs",
    )


async def abort_unimplemented(context: grpc.aio.ServicerContext, method: str) -> None:
    context.set_trailing_metadata((("securechat-error", "unimplemented"),))
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
