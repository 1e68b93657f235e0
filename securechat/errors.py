"""The one error hierarchy: every failure securechat reports is a SecureChatError.

Each class carries a stable ``code`` (shown to users and scripts), the gRPC status name the
server maps it to (``status``, a plain string so this module imports nothing of grpc) and the
CLI exit code. The message always says what to do next. ``retry_after`` (seconds) is set when
waiting is the remedy; the server sends it as the ``retry-after`` trailer.

A Chat stream that the server ends always ends with one of these (the classes below
``Unauthenticated``, ``SlowConsumer``, ``StreamReplaced``, ``ShuttingDown``, ...), so every
ending carries its code in the ``securechat-error`` trailer.

    SecureChatError
    ├── ConfigError               a configuration value is wrong (names the key path)
    ├── CertificateError          certificate/key files missing, mismatched, expired, revoked
    │   └── RevokedCertificate    the peer's client certificate is on the revocation list
    ├── InvalidArgument           bad input: names, sizes, malformed frames
    ├── NotFound                  unknown user, room, device
    ├── AlreadyExists             duplicate registration, room name taken
    ├── Unauthenticated           missing/expired/revoked token, wrong password
    │   ├── SessionExpired        a stream's session ran out
    │   ├── LoggedOut             a stream's session was logged out
    │   └── Kicked                an admin (or a login on a new device) ended the user's streams
    ├── PermissionDenied          not a member, not an admin, wrong room password
    ├── ResourceExhausted         rate limits and lockouts (carries retry_after)
    │   ├── SlowConsumer          a stream's reader fell too far behind
    │   └── MailboxFull           a recipient's mailbox (or the sender's share) is over quota
    ├── FailedPrecondition        the request is valid but the state forbids it
    │   └── StaleDevices          send built on an outdated recipient device list
    ├── StreamReplaced            a newer stream of the same device took over
    ├── Unavailable               server unreachable (may carry retry_after)
    │   └── ShuttingDown          the server is going away: reconnect after retry_after
    └── CryptoError
        ├── DecryptionError       the one opaque "message could not be decrypted"
        ├── KeystoreError         the local keystore cannot be opened or is damaged
        ├── BadSignature          a key bundle whose signatures do not verify
        ├── IdentityChanged       a pinned contact's account (or identity) key changed
        ├── RosterRejected        a room roster event that fails a check (signature, chain, rule)
        ├── DeviceNotCertified    a device without a valid certificate from its account key
        └── LinkError             linking a new device failed (wrong, expired, used, tampered)
"""

from __future__ import annotations

from typing import ClassVar


class SecureChatError(Exception):
    """Root of every securechat error."""

    code: ClassVar[str] = "error"
    status: ClassVar[str] = "UNKNOWN"
    exit_code: ClassVar[int] = 1
    default_message: ClassVar[str] = "something went wrong"
    retry_after: float | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class ConfigError(SecureChatError):
    code = "config"
    status = "INVALID_ARGUMENT"
    exit_code = 78  # EX_CONFIG

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        super().__init__(f"config {path}: {problem}")


class CertificateError(SecureChatError):
    code = "certificate"
    status = "UNAUTHENTICATED"
    exit_code = 77


class InvalidArgument(SecureChatError):
    code = "invalid_argument"
    status = "INVALID_ARGUMENT"
    exit_code = 64  # EX_USAGE


class NotFound(SecureChatError):
    code = "not_found"
    status = "NOT_FOUND"
    exit_code = 66


class AlreadyExists(SecureChatError):
    code = "already_exists"
    status = "ALREADY_EXISTS"
    exit_code = 65


class Unauthenticated(SecureChatError):
    code = "unauthenticated"
    status = "UNAUTHENTICATED"
    exit_code = 67
    default_message = "not logged in or session expired: run `securechat login USER`"


class PermissionDenied(SecureChatError):
    code = "permission_denied"
    status = "PERMISSION_DENIED"
    exit_code = 68


class ResourceExhausted(SecureChatError):
    code = "resource_exhausted"
    status = "RESOURCE_EXHAUSTED"
    exit_code = 75  # EX_TEMPFAIL

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        if retry_after is not None and message is not None:
            message = f"{message} (retry after {retry_after:.0f}s)"
        super().__init__(message)


class MailboxFull(ResourceExhausted):
    """A send nobody could take: every recipient's mailbox, or the sender's share of it, is
    over the server's quota. Nothing was stored."""

    code = "mailbox_full"


class FailedPrecondition(SecureChatError):
    code = "failed_precondition"
    status = "FAILED_PRECONDITION"
    exit_code = 70


class StaleDevices(FailedPrecondition):
    """The sender encrypted for an outdated device list; ``devices`` is the current one."""

    code = "stale_devices"
    default_message = "the recipient device list changed: re-encrypt for the current devices"

    def __init__(self, devices: list[tuple[str, int]], message: str | None = None) -> None:
        self.devices = devices
        super().__init__(message)


class RosterMovedOn(FailedPrecondition):
    """A roster event was signed for a position that is no longer the room's head (another
    event came first, or the chain does not link): fetch the roster and sign again."""

    code = "roster_moved_on"
    status = "ABORTED"


class Unavailable(SecureChatError):
    code = "unavailable"
    status = "UNAVAILABLE"
    exit_code = 69  # EX_UNAVAILABLE
    default_message = "server unavailable: check --server and that securechat-server is running"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


# ---- how the server ends a Chat stream --------------------------------------------------------
class SessionExpired(Unauthenticated):
    code = "session_expired"
    default_message = "session expired: log in again"


class LoggedOut(Unauthenticated):
    code = "logged_out"
    default_message = "you logged out: log in again to continue"


class Kicked(Unauthenticated):
    """The user's sessions were revoked (by an admin, or by a login on a new device)."""

    code = "kicked"
    default_message = "you were disconnected by an admin"


class RevokedCertificate(CertificateError):
    code = "certificate_revoked"
    default_message = "your client certificate has been revoked: ask the operator for a new one"


class SlowConsumer(ResourceExhausted):
    code = "slow_consumer"
    default_message = (
        "you fell too far behind and were disconnected; reconnect to resume (nothing was lost)"
    )


class StreamReplaced(SecureChatError):
    code = "stream_replaced"
    status = "ABORTED"
    exit_code = 75  # EX_TEMPFAIL
    default_message = "replaced by a newer connection of the same device"


class ShuttingDown(Unavailable):
    code = "shutting_down"
    default_message = "server shutting down: reconnect"


class CryptoError(SecureChatError):
    code = "crypto"
    status = "INVALID_ARGUMENT"
    exit_code = 71


class DecryptionError(CryptoError):
    """Opaque by design: never says which check failed (no oracle)."""

    code = "decryption"
    default_message = "message could not be decrypted"

    def __init__(self) -> None:
        super().__init__(None)


class KeystoreError(CryptoError):
    code = "keystore"
    exit_code = 72


class BadSignature(CryptoError):
    code = "bad_signature"
    default_message = "a key bundle signature does not verify"


class IdentityChanged(CryptoError):
    code = "identity_changed"
    exit_code = 73

    def __init__(self, user: str, verified: bool) -> None:
        self.user = user
        self.verified = verified
        super().__init__(
            f"the account key of {user} changed: sending to {user} is blocked until you decide: "
            f"compare the new safety number, then verify or trust the new key, or reject it"
        )


class RosterRejected(CryptoError):
    """A room roster event was not applied; the message says which check failed."""

    code = "roster_rejected"
    default_message = "a room membership event does not verify: it was not applied"


class DeviceNotCertified(CryptoError):
    """Nothing is encrypted to a device its account key has not certified (or has removed)."""

    code = "device_not_certified"

    def __init__(self, user: str, device_id: int) -> None:
        self.user = user
        self.device_id = device_id
        super().__init__(
            f"device {device_id} of {user} has no valid certificate from {user}'s account key "
            "(or was removed): nothing was encrypted to it"
        )


class LinkError(CryptoError):
    """Linking a device failed; ``reason`` is a key of :attr:`MESSAGES`."""

    code = "link_failed"
    exit_code = 74
    MESSAGES: ClassVar[dict[str, str]] = {
        "wrong_code": "the link code is not valid: check it and type it again",
        "expired": "the link code expired: show a new code on your other device",
        "used": "the link code was already used: show a new code on your other device",
        "tampered": (
            "the link was tampered with or the code was wrong: nothing was linked and the code "
            "is void; show a new code on your other device (if it happens again, the server is "
            "interfering)"
        ),
        "refused": "the other device refused the link",
    }

    def __init__(self, reason: str, message: str | None = None) -> None:
        if reason not in self.MESSAGES:
            raise ValueError(f"unknown link failure {reason!r}")
        self.reason = reason
        super().__init__(message or self.MESSAGES[reason])
