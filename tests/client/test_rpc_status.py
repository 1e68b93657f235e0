"""The client library's one error translation, and its reconnect backoff (pure, no server)."""

from __future__ import annotations

import grpc
import pytest

from securechat.client.rpc import result_error, translate
from securechat.client.rpc.link import Backoff
from securechat.errors import (
    CertificateError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SecureChatError,
    Unauthenticated,
    Unavailable,
)
from securechat_proto.v1 import chat_pb2


def failed(
    code: grpc.StatusCode, details: str = "", trailers: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details
    )


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.ABORTED, FailedPrecondition),  # "replaced by a newer connection"
        (grpc.StatusCode.UNKNOWN, SecureChatError),
    ],
)
def test_status_picks_the_class_and_keeps_the_servers_message(
    code: grpc.StatusCode, cls: type[SecureChatError]
) -> None:
    error = translate(failed(code, "what to do next"))
    assert type(error) is cls
    assert error.message == "what to do next"


def test_the_securechat_error_trailer_wins_over_the_status() -> None:
    trailers = (("securechat-error", "certificate"),)
    error = translate(failed(grpc.StatusCode.UNAUTHENTICATED, "revoked", trailers))
    assert type(error) is CertificateError
    unknown = translate(failed(grpc.StatusCode.NOT_FOUND, "gone", (("securechat-error", "x"),)))
    assert type(unknown) is NotFound  # an unknown code falls back to the status


def test_retry_after_trailer_is_kept() -> None:
    trailers = (("securechat-error", "resource_exhausted"), ("retry-after", "7"))
    error = translate(failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", trailers))
    assert isinstance(error, ResourceExhausted) and error.retry_after == 7.0
    assert "retry after 7s" in error.message
    garbled = translate(failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "", (("retry-after", "x"),)))
    assert isinstance(garbled, ResourceExhausted) and garbled.retry_after is None


def test_a_certificate_refused_in_the_handshake_is_a_certificate_error() -> None:
    details = (
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls "
        "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED"
    )
    assert type(translate(failed(grpc.StatusCode.UNAVAILABLE, details))) is CertificateError


@pytest.mark.parametrize(
    "details",
    [
        "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
        "Handshake read failed (Socket closed)",
        "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
        "Handshake read failed (recvmsg:Connection reset by peer (104))",
    ],
)
def test_a_connection_lost_during_the_handshake_is_not_a_certificate_error(details: str) -> None:
    # A certificate error stops the chat client for good; a dropped network must not.
    assert type(translate(failed(grpc.StatusCode.UNAVAILABLE, details))) is Unavailable


def test_unavailable_and_deadline_say_what_to_check() -> None:
    refused = "failed to connect to all addresses; last error: UNKNOWN: Connection refused"
    assert translate(failed(grpc.StatusCode.UNAVAILABLE, refused)).message.startswith(
        "server unavailable: check --server"
    )
    closed = translate(failed(grpc.StatusCode.UNAVAILABLE, "Socket closed"))
    assert "client certificate" in closed.message
    assert "in time" in translate(failed(grpc.StatusCode.DEADLINE_EXCEEDED)).message
    ending = translate(failed(grpc.StatusCode.UNAVAILABLE, "the server could not read"))
    assert "the server could not read" in ending.message


def test_internal_errors_carry_no_class_of_their_own() -> None:
    error = translate(failed(grpc.StatusCode.INTERNAL, "internal server error (request id 1)"))
    assert type(error) is SecureChatError and "request id" in error.message


def test_refused_sends_become_errors_by_their_code() -> None:
    refused = chat_pb2.SendResult(
        client_message_id="c1", error_code="permission_denied", error_message="join first"
    )
    assert type(result_error(refused)) is PermissionDenied
    limited = chat_pb2.SendResult(error_code="resource_exhausted", retry_after_s=3)
    error = result_error(limited)
    assert isinstance(error, ResourceExhausted) and error.retry_after == 3.0
    odd = result_error(chat_pb2.SendResult(error_code="something_new"))
    assert type(odd) is SecureChatError and "something_new" in odd.message


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0)
    assert backoff.delay(0, lambda: 0.0) == 0.25
    assert backoff.delay(0, lambda: 1.0) == 0.5
    assert backoff.delay(3, lambda: 1.0) == 4.0
    assert backoff.delay(1000, lambda: 1.0) == 30.0
    assert backoff.delay(1000, lambda: 0.0) == 15.0
