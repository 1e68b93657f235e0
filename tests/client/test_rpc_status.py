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
    RosterMovedOn,
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
        (grpc.StatusCode.ABORTED, RosterMovedOn),  # a FailedPrecondition: sign again
        (grpc.StatusCode.UNIMPLEMENTED, FailedPrecondition),  # a server without that call
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
        "server unavailable: no server is answering"
    )
    closed = translate(failed(grpc.StatusCode.UNAVAILABLE, f"{CONNECT}: Socket closed"))
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
    long_outage = backoff.brief_s
    assert backoff.delay(0, lambda: 0.0) == 0.25
    assert backoff.delay(0, lambda: 1.0) == 0.5
    assert backoff.delay(3, lambda: 1.0, long_outage) == 4.0
    assert backoff.delay(1000, lambda: 1.0, long_outage) == 30.0
    assert backoff.delay(1000, lambda: 0.0, long_outage) == 15.0


def test_backoff_stays_short_while_the_outage_is_young() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, brief_cap_s=3.0, brief_s=120.0)
    assert backoff.delay(1000, lambda: 1.0, outage_s=0.0) == 3.0
    assert backoff.delay(1000, lambda: 1.0, outage_s=119.0) == 3.0
    assert backoff.delay(1000, lambda: 1.0, outage_s=121.0) == 30.0
    assert Backoff(base_s=0.05, cap_s=0.2).delay(1000, lambda: 1.0) == 0.2  # never above cap


CONNECT = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:9"


@pytest.mark.parametrize(
    ("details", "accepted", "says"),
    [
        # kill -9 of the server under an open stream
        ("Socket closed", False, "lost the connection to the server"),
        ("recvmsg:Connection reset by peer", True, "lost the connection to the server"),
        # nothing listens any more (the server is down) or the host is unreachable
        (f"{CONNECT}: Failed to connect to remote host: Connection refused", True,
         "no server is answering"),
        (f"{CONNECT}: No route to host", False, "no server is answering"),
        # the handshake was cut: before any success it may be the certificate ...
        (f"{CONNECT}: Socket closed", False, "may not accept your client certificate"),
        # ... after this certificate was accepted it is a restarting server
        (f"{CONNECT}: Socket closed", True, "probably restarting"),
    ],
)  # fmt: skip
def test_a_dead_server_is_told_apart_from_a_refused_certificate(
    details: str, accepted: bool, says: str
) -> None:
    error = translate(failed(grpc.StatusCode.UNAVAILABLE, details), certificate_accepted=accepted)
    assert type(error) is Unavailable
    assert says in error.message
    if "certificate" not in says:
        assert "certificate" not in error.message


def test_an_oversized_request_is_invalid_not_rate_limited() -> None:
    details = "Received message larger than max (70000 vs. 69632)"
    error = translate(failed(grpc.StatusCode.RESOURCE_EXHAUSTED, details))
    assert type(error) is InvalidArgument
    assert error.exit_code == 64 and "too large" in error.message
