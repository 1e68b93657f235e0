"""Recipient checks: exactly one ciphertext per current device, duplicates are client bugs."""

from __future__ import annotations

import pytest

from securechat.domain.model import DeviceRef
from securechat.domain.recipients import check_recipients, expected_recipients
from securechat.errors import InvalidArgument, StaleDevices

A1, B1, B2, C1 = (
    DeviceRef("alice", 1),
    DeviceRef("bob", 1),
    DeviceRef("bob", 2),
    DeviceRef("carol", 1),
)


def test_expected_excludes_only_the_sending_device() -> None:
    assert expected_recipients(A1, [C1, B2, A1, B1, DeviceRef("alice", 2)]) == [
        DeviceRef("alice", 2), B1, B2, C1,
    ]  # fmt: skip


def test_exact_set_passes_in_any_order() -> None:
    check_recipients([C1, B1], [B1, C1])


@pytest.mark.parametrize("given", [[B1], [B1, C1, B2], [B1, DeviceRef("dave", 1)], []])
def test_any_difference_is_stale_with_the_current_list(given: list[DeviceRef]) -> None:
    with pytest.raises(StaleDevices) as info:
        check_recipients(given, [B1, C1])
    assert info.value.devices == [("bob", 1), ("carol", 1)]


def test_duplicates_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="two ciphertexts"):
        check_recipients([B1, B1], [B1])
