"""Device certificates, removals, signed device lists and legacy bindings: encoding, tampering."""

from __future__ import annotations

import dataclasses

import pytest

from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import (
    AccountBinding,
    DeviceCertificate,
    DeviceListHead,
    DeviceRemoval,
)
from securechat.crypto.identity import IdentityKeyPair
from securechat.errors import BadSignature, InvalidArgument

from ._support import NOW, flip_bit

ACCOUNT = AccountKeyPair.generate()
DEVICE = IdentityKeyPair.generate()
CERTIFICATE = DeviceCertificate.issue(ACCOUNT, "alice", 2, DEVICE.public, NOW)
REMOVAL = DeviceRemoval.issue(ACCOUNT, "alice", 2, DEVICE.public, NOW + 60)
HEAD = DeviceListHead.issue(ACCOUNT, "alice", 3, NOW, {2: DEVICE.public, 1: DEVICE.public})
BINDING = AccountBinding.issue(DEVICE, "alice", 1, ACCOUNT.public)
STATEMENTS = {
    "certificate": (CERTIFICATE, DeviceCertificate.from_bytes),
    "removal": (REMOVAL, DeviceRemoval.from_bytes),
    "head": (HEAD, DeviceListHead.from_bytes),
    "binding": (BINDING, AccountBinding.from_bytes),
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statements_round_trip_and_verify(name: str) -> None:
    statement, parse = STATEMENTS[name]
    statement.verify()
    assert parse(statement.to_bytes()) == statement


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_flipped_bit_is_refused(name: str) -> None:
    """Parsing fails or the signature does not verify: never a different valid statement."""
    statement, parse = STATEMENTS[name]
    encoded = statement.to_bytes()
    for bit in range(len(encoded) * 8):
        with pytest.raises((InvalidArgument, BadSignature)):
            parse(flip_bit(encoded, bit)).verify()


def test_a_statement_never_parses_as_another_kind() -> None:
    parsers = [parse for _, parse in STATEMENTS.values()]
    for name, (statement, own_parse) in STATEMENTS.items():
        for parse in parsers:
            if parse is not own_parse:
                with pytest.raises(InvalidArgument):
                    parse(statement.to_bytes())
        assert own_parse(statement.to_bytes()) == statement, name


def test_removal_and_certificate_signatures_are_not_interchangeable() -> None:
    forged = DeviceRemoval(ACCOUNT.public, "alice", 2, DEVICE.public, NOW, CERTIFICATE.signature)
    with pytest.raises(BadSignature):
        forged.verify()


def test_head_names_devices_by_id_and_identity() -> None:
    other = IdentityKeyPair.generate().public
    assert HEAD.names(2, DEVICE.public)
    assert not HEAD.names(2, other)
    assert not HEAD.names(5, DEVICE.public)
    assert [device_id for device_id, _ in HEAD.devices] == [1, 2]
    assert HEAD.digest() != dataclasses.replace(HEAD, version=4).digest()


def test_head_with_unsorted_or_repeated_ids_is_refused() -> None:
    digest = HEAD.devices[0][1]
    for devices in (((2, digest), (1, digest)), ((1, digest), (1, digest))):
        encoded = dataclasses.replace(HEAD, devices=devices).to_bytes()
        with pytest.raises(InvalidArgument):
            DeviceListHead.from_bytes(encoded)


def test_binding_is_signed_by_the_device_identity_not_the_account() -> None:
    by_account = dataclasses.replace(BINDING, signature=ACCOUNT.sign(b"anything"))
    with pytest.raises(BadSignature):
        by_account.verify()
    other_device = dataclasses.replace(BINDING, identity=IdentityKeyPair.generate().public)
    with pytest.raises(BadSignature):
        other_device.verify()
