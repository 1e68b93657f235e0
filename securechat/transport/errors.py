"""The one place server errors become gRPC status codes (and the only server module that names
them): every error, stream endings included, leaves with its status and message, the standard
``google.rpc.Status`` details (``ErrorInfo``, plus ``RetryInfo`` when waiting is the remedy) in
``grpc-status-details-bin``, and the project's own trailers (``securechat-error``, ``retry-after``,
``securechat-request-id``) for clients that read plain metadata."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from securechat.errors import SecureChatError
from securechat.ops.logsetup import request_id

# Status names as the metrics and the access log record them.
OK = grpc.StatusCode.OK.name
CANCELLED = grpc.StatusCode.CANCELLED.name
INTERNAL = grpc.StatusCode.INTERNAL.name

ERROR_DOMAIN = "securechat.v1"
"""``ErrorInfo.domain`` of every securechat error."""
ERROR_TRAILER = "securechat-error"
RETRY_TRAILER = "retry-after"
REQUEST_ID_TRAILER = "securechat-request-id"

Metadata = tuple[tuple[str, str | bytes], ...]


def status_code(error: SecureChatError) -> grpc.StatusCode:
    code: grpc.StatusCode = getattr(grpc.StatusCode, error.status, grpc.StatusCode.UNKNOWN)
    return code


def status_name(error: SecureChatError) -> str:
    return str(status_code(error).name)


def retry_after_s(error: SecureChatError) -> int | None:
    """Whole seconds to wait (at least 1), or None when waiting is not the remedy."""
    return None if error.retry_after is None else max(1, round(error.retry_after))


def error_reason(code: str) -> str:
    """``ErrorInfo.reason``: the stable code in the UPPER_SNAKE_CASE that AIP-193 asks for
    (``stale_devices`` -> ``STALE_DEVICES``); the ``securechat-error`` trailer keeps it as is."""
    return code.upper()


def request_id_metadata() -> Metadata:
    """The trailer every call carries, successful or not: the id its log lines carry."""
    return ((REQUEST_ID_TRAILER, request_id.get()),)


def error_metadata(
    status: grpc.StatusCode, message: str, code: str, retry_after: int | None = None
) -> Metadata:
    """All trailers of an error: the project's plain ones and the packed ``google.rpc.Status``."""
    rid = request_id.get()
    info = error_details_pb2.ErrorInfo(
        reason=error_reason(code), domain=ERROR_DOMAIN, metadata={"request_id": rid}
    )
    details = [info]
    pairs: list[tuple[str, str | bytes]] = [(ERROR_TRAILER, code)]
    if retry_after is not None:
        details.append(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after))
        )
        pairs.append((RETRY_TRAILER, str(retry_after)))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    standard = rpc_status.to_status(
        status_pb2.Status(code=status.value[0], message=message, details=packed)
    )
    return (*pairs, *request_id_metadata(), *standard.trailing_metadata)


async def _abort(
    context: grpc.aio.ServicerContext,
    status: grpc.StatusCode,
    message: str,
    code: str,
    retry_after: int | None = None,
) -> None:
    await context.abort(status, message, error_metadata(status, message, code, retry_after))


async def abort_with(context: grpc.aio.ServicerContext, error: SecureChatError) -> None:
    """End the call with the error's status, message and machine-readable trailers."""
    await _abort(context, status_code(error), error.message, error.code, retry_after_s(error))


async def abort_internal(context: grpc.aio.ServicerContext, request_id: str) -> None:
    await _abort(
        context,
        grpc.StatusCode.INTERNAL,
        f"internal server error (request id {request_id}); the operator can find it in the logs",
        "internal",
    )


async def abort_unimplemented(context: grpc.aio.ServicerContext, method: str) -> None:
    await _abort(
        context, grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet", "unimplemented"
    )
