"""Who a message must be encrypted for, and whether a send's device list is current."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from securechat.domain.model import DeviceRef
from securechat.errors import InvalidArgument, StaleDevices


def expected_recipients(sender: DeviceRef, member_devices: Iterable[DeviceRef]) -> list[DeviceRef]:
    """Every device in the conversation except the sending device, in a stable order."""
    return sorted((d for d in member_devices if d != sender), key=lambda d: (d.user, d.device_id))


def check_recipients(given: Sequence[DeviceRef], expected: Sequence[DeviceRef]) -> None:
    """The send must carry exactly one ciphertext per expected device.

    Duplicates are a client bug (InvalidArgument); any other difference means the client's view
    of the device list is stale (StaleDevices with the current list, so it can re-encrypt).
    """
    seen: set[DeviceRef] = set()
    for device in given:
        if device in seen:
            raise InvalidArgument(
                f"two ciphertexts for device {device.user}/{device.device_id}: send one per device"
            )
        seen.add(device)
    if seen != set(expected):
        raise StaleDevices([(d.user, d.device_id) for d in expected])
