"""Verifying a device list the server serves, against an account key the client pinned.

The server lists a user's devices with their certificates, every removal statement it holds
and the latest signed device list (:class:`~securechat.crypto.certificates.DeviceListHead`).
:func:`verify_device_list` returns exactly the devices that are

1. certified by the pinned account key, for this user and this device id,
2. named (id and identity digest) by a valid signed list from the same key and user that is not
   older than the newest list this client has seen for the account, and
3. not removed by a valid removal, now or ever before (removals are remembered for good),

plus a typed :class:`Rejected` entry for everything else. A list problem (no signed list, an
invalid one, one older than already seen, or a different list with the same version) accepts
no device at all; :meth:`DeviceListMemory.apply` then keeps the last verified set, minus any
newly removed device. Pure functions: the caller persists the memory.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from securechat.crypto.account_key import AccountPublic
from securechat.crypto.certificates import (
    DeviceCertificate,
    DeviceListHead,
    DeviceRemoval,
    DeviceStatement,
    identity_digest,
)
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IDENTITY_PUBLIC_SIZE, IdentityPublic
from securechat.crypto.labels import constant_time_equal
from securechat.errors import BadSignature, InvalidArgument

MAX_REMEMBERED_REMOVALS = 1024


class Rejection(enum.Enum):
    """Why a listed certificate, a removal or the signed list was not used."""

    NO_CERTIFICATE = "no_certificate"
    MALFORMED = "malformed"
    OTHER_ACCOUNT = "signed_by_another_account"
    BAD_SIGNATURE = "bad_signature"
    OTHER_USER = "for_another_user"
    OTHER_DEVICE = "for_another_device"
    REMOVED = "removed"
    NOT_IN_LIST = "not_in_signed_list"
    DUPLICATE = "duplicate"
    STALE_REMOVAL = "removal_of_an_earlier_device"


class ListProblem(enum.Enum):
    """Why no device of the list was accepted."""

    MISSING = "no_signed_list"
    INVALID = "invalid_signed_list"
    ROLLED_BACK = "older_than_already_seen"
    CONFLICTING = "different_list_with_the_same_version"


@dataclass(frozen=True)
class ListedDevice:
    """One device as the server lists it: its id, certificate bytes and claimed identity."""

    device_id: int
    certificate: bytes | None
    identity: IdentityPublic | None = None


@dataclass(frozen=True)
class DeviceListing:
    """Everything the server serves about one user's devices (all opaque bytes to it)."""

    devices: Sequence[ListedDevice]
    removals: Sequence[bytes] = ()
    head: bytes | None = None


@dataclass(frozen=True)
class Rejected:
    what: str  # "device", "removal" or "list"
    device_id: int | None
    reason: Rejection


@dataclass(frozen=True)
class DeviceListResult:
    user: str
    account_key: AccountPublic
    devices: dict[int, IdentityPublic]  # the verified devices: encrypt to these only
    rejected: tuple[Rejected, ...]
    missing: tuple[int, ...]  # named by the signed list but not served with a valid certificate
    removals: tuple[DeviceRemoval, ...]  # every valid removal served
    head: DeviceListHead | None
    problem: ListProblem | None


@dataclass
class DeviceListMemory:
    """What a client keeps per user between refreshes (part of the account state)."""

    account_key: AccountPublic
    version: int = 0
    digest: bytes = b""
    devices: dict[int, IdentityPublic] = field(default_factory=dict)
    removed: dict[tuple[int, bytes], None] = field(default_factory=dict)

    def is_removed(self, device_id: int, identity: IdentityPublic) -> bool:
        return (device_id, identity_digest(identity)) in self.removed

    def apply(self, result: DeviceListResult) -> None:
        """Remember the removals, and the list itself unless it had a problem."""
        if result.account_key != self.account_key:
            raise InvalidArgument("a device list verified under another account key")
        for removal in result.removals:
            self.removed[(removal.device_id, identity_digest(removal.identity))] = None
        while len(self.removed) > MAX_REMEMBERED_REMOVALS:
            del self.removed[next(iter(self.removed))]
        if result.problem is None and result.head is not None:
            self.version, self.digest = result.head.version, result.head.digest()
            self.devices = dict(result.devices)
        else:
            self.devices = {i: d for i, d in self.devices.items() if not self.is_removed(i, d)}

    def write(self, writer: Writer) -> Writer:
        writer.raw(self.account_key.to_bytes()).u64(self.version).var_bytes(self.digest)
        writer.u32(len(self.devices))
        for device_id, identity in sorted(self.devices.items()):
            writer.u32(device_id).raw(identity.to_bytes())
        writer.u32(len(self.removed))
        for device_id, digest in self.removed:
            writer.u32(device_id).fixed(digest, 32)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> DeviceListMemory:
        memory = cls(AccountPublic(reader.fixed(32)), reader.u64(), reader.var_bytes())
        for _ in range(reader.u32()):
            device_id = reader.u32()
            memory.devices[device_id] = IdentityPublic.from_bytes(
                reader.fixed(IDENTITY_PUBLIC_SIZE)
            )
        for _ in range(reader.u32()):
            memory.removed[(reader.u32(), reader.fixed(32))] = None
        return memory


def _statement_problem(
    statement: DeviceStatement | DeviceListHead, user: str, account_key: AccountPublic
) -> Rejection | None:
    if not constant_time_equal(statement.account_key.to_bytes(), account_key.to_bytes()):
        return Rejection.OTHER_ACCOUNT
    try:
        statement.verify()
    except (BadSignature, InvalidArgument):
        return Rejection.BAD_SIGNATURE
    return Rejection.OTHER_USER if statement.user != user else None


def _check_head(
    data: bytes | None,
    user: str,
    account_key: AccountPublic,
    memory: DeviceListMemory | None,
    rejected: list[Rejected],
) -> tuple[DeviceListHead | None, ListProblem | None]:
    if data is None:
        return None, ListProblem.MISSING
    try:
        head = DeviceListHead.from_bytes(data)
    except InvalidArgument:
        rejected.append(Rejected("list", None, Rejection.MALFORMED))
        return None, ListProblem.INVALID
    reason = _statement_problem(head, user, account_key)
    if reason is not None:
        rejected.append(Rejected("list", None, reason))
        return None, ListProblem.INVALID
    if memory is not None and head.version < memory.version:
        return head, ListProblem.ROLLED_BACK
    if (
        memory is not None
        and head.version == memory.version
        and not constant_time_equal(head.digest(), memory.digest)
    ):
        return head, ListProblem.CONFLICTING
    return head, None


def _check_removals(
    data: Sequence[bytes], user: str, account_key: AccountPublic, rejected: list[Rejected]
) -> list[DeviceRemoval]:
    removals = []
    for item in data:
        try:
            removal = DeviceRemoval.from_bytes(item)
        except InvalidArgument:
            rejected.append(Rejected("removal", None, Rejection.MALFORMED))
            continue
        reason = _statement_problem(removal, user, account_key)
        if reason is not None:
            rejected.append(Rejected("removal", removal.device_id, reason))
        else:
            removals.append(removal)
    return removals


def _check_device(
    listed: ListedDevice, user: str, account_key: AccountPublic
) -> DeviceCertificate | Rejection:
    if listed.certificate is None:
        return Rejection.NO_CERTIFICATE
    try:
        certificate = DeviceCertificate.from_bytes(listed.certificate)
    except InvalidArgument:
        return Rejection.MALFORMED
    reason = _statement_problem(certificate, user, account_key)
    if reason is not None:
        return reason
    if certificate.device_id != listed.device_id or (
        listed.identity is not None and listed.identity != certificate.identity
    ):
        return Rejection.OTHER_DEVICE
    return certificate


def verify_device_list(
    user: str,
    account_key: AccountPublic,
    listing: DeviceListing,
    memory: DeviceListMemory | None = None,
) -> DeviceListResult:
    """Check ``listing`` for ``user`` under ``account_key`` (see the module docstring).

    ``memory`` is what this client remembered for the same account key (None the first time).
    """
    if memory is not None and memory.account_key != account_key:
        raise InvalidArgument("the remembered device list belongs to another account key")
    rejected: list[Rejected] = []
    head, problem = _check_head(listing.head, user, account_key, memory, rejected)
    removals = _check_removals(listing.removals, user, account_key, rejected)
    removed = {(r.device_id, identity_digest(r.identity)) for r in removals}
    if memory is not None:
        removed.update(memory.removed)
    accepted: dict[int, IdentityPublic] = {}
    for listed in listing.devices:
        checked = _check_device(listed, user, account_key)
        if isinstance(checked, Rejection):
            rejected.append(Rejected("device", listed.device_id, checked))
            continue
        digest = identity_digest(checked.identity)
        if (checked.device_id, digest) in removed:
            reason = Rejection.REMOVED
        elif head is None or not head.names(checked.device_id, checked.identity):
            reason = Rejection.NOT_IN_LIST
        elif checked.device_id in accepted:
            reason = Rejection.DUPLICATE
        else:
            accepted[checked.device_id] = checked.identity
            continue
        rejected.append(Rejected("device", listed.device_id, reason))
    for removal in removals:
        other = accepted.get(removal.device_id)
        if other is not None and other != removal.identity:
            rejected.append(Rejected("removal", removal.device_id, Rejection.STALE_REMOVAL))
    missing: tuple[int, ...] = ()
    if head is not None and problem is None:
        missing = tuple(i for i, d in head.devices if i not in accepted and (i, d) not in removed)
    return DeviceListResult(
        user,
        account_key,
        {} if problem is not None else accepted,
        tuple(rejected),
        missing,
        tuple(removals),
        head,
        problem,
    )
