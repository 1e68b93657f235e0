"""Devices in memory: devices, the key directory, account-owned device lists and the link
relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from securechat.domain.model import (
    AccountRecord,
    Bundle,
    Certification,
    ClaimedBundle,
    Device,
    DeviceRef,
    KemPreKeyRecord,
    LinkSlot,
    OneTimePreKeyRecord,
    PreKeyCounts,
    Removal,
    SignedPreKeyRecord,
)
from securechat.storage import rules
from securechat.storage.memory.state import DeviceState, MemoryState


class DevicesMemory(MemoryState):
    """Devices, their keys, the account that owns them and the link relay."""

    # ---- devices --------------------------------------------------------------------------
    async def add_device(self, user: str, now_ms: int) -> int:
        self._user(user)
        device_id = self._last_device_id[user] + 1
        self._last_device_id[user] = device_id
        device = Device(user, device_id, now_ms, now_ms, None)
        self._devices[DeviceRef(user, device_id)] = DeviceState(device)
        return device_id

    async def get_device(self, user: str, device_id: int) -> Device | None:
        state = self._devices.get(DeviceRef(user, device_id))
        return None if state is None else state.device

    async def list_devices(self, user: str) -> list[Device]:
        found = [s.device for ref, s in self._devices.items() if ref.user == user]
        return sorted(found, key=lambda d: d.device_id)

    async def touch_devices(self, seen: Sequence[tuple[DeviceRef, int]]) -> None:
        for device, now_ms in seen:
            state = self._devices.get(device)
            if state is not None and state.device.last_seen_ms < now_ms:
                state.device = replace(state.device, last_seen_ms=now_ms)

    async def remove_device(self, device: DeviceRef) -> bool:
        if self._devices.pop(device, None) is None:
            return False
        for acked in [k for k in self._room_acks if k[0] == device]:
            del self._room_acks[acked]
        for key in [k for k in self._sent if k[:2] == (device.user, device.device_id)]:
            del self._sent[key]
        self._drop_sessions(lambda s: s.user == device.user and s.device_id == device.device_id)
        return True

    # ---- key directory --------------------------------------------------------------------
    async def publish_bundle(self, device: DeviceRef, bundle: Bundle) -> PreKeyCounts:
        rules.check_bundle(bundle)
        state = self._device(device)
        state.device = replace(state.device, identity_key=bundle.identity_key)
        if bundle.binding is not None:
            state.device = replace(state.device, binding=bundle.binding)
        state.signed_prekey = bundle.signed_prekey
        state.one_time = {k.key_id: k for k in bundle.one_time_prekeys}
        state.kem = {k.key_id: k for k in rules.bundle_kem_records(bundle)}
        return state.counts()

    async def add_prekeys(
        self,
        device: DeviceRef,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
        signed_prekey: SignedPreKeyRecord | None,
    ) -> PreKeyCounts:
        rules.check_prekeys(one_time, kem)
        state = self._device(device)
        replaces_last_resort = any(k.last_resort for k in kem)
        for otk in one_time:
            if otk.key_id in state.one_time:
                raise rules.existing_key_conflict("one-time", otk.key_id)
        for kem_key in kem:
            old = state.kem.get(kem_key.key_id)
            if old is not None and not (replaces_last_resort and old.last_resort):
                raise rules.existing_key_conflict("KEM", kem_key.key_id)
        if replaces_last_resort:
            state.kem = {i: k for i, k in state.kem.items() if not k.last_resort}
        if signed_prekey is not None:
            state.signed_prekey = signed_prekey
        state.one_time.update((k.key_id, k) for k in one_time)
        state.kem.update((k.key_id, k) for k in kem)
        return state.counts()

    async def claim_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        state = self._devices.get(device)
        if state is None or state.device.identity_key is None or state.signed_prekey is None:
            return None
        kem_one_time = sorted(i for i, k in state.kem.items() if not k.last_resort)
        last_resorts = sorted(i for i, k in state.kem.items() if k.last_resort)
        if kem_one_time:
            kem = state.kem.pop(kem_one_time[0])
        elif last_resorts:
            kem = state.kem[last_resorts[-1]]
        else:
            return None
        one_time = state.one_time.pop(min(state.one_time)) if state.one_time else None
        return ClaimedBundle(device, state.device.identity_key, state.signed_prekey, one_time, kem)

    async def peek_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        state = self._devices.get(device)
        if state is None or state.device.identity_key is None or state.signed_prekey is None:
            return None
        last_resorts = sorted(i for i, k in state.kem.items() if k.last_resort)
        if not last_resorts:
            return None
        kem = state.kem[last_resorts[-1]]
        return ClaimedBundle(device, state.device.identity_key, state.signed_prekey, None, kem)

    async def count_prekeys(self, device: DeviceRef) -> PreKeyCounts:
        return self._device(device).counts()

    # ---- accounts own devices --------------------------------------------------------------
    async def get_account(self, user: str) -> AccountRecord | None:
        return self._accounts.get(user)

    async def get_accounts(self, users: Sequence[str]) -> list[AccountRecord]:
        return [self._accounts[u] for u in sorted(set(users)) if u in self._accounts]

    def _certify(self, device: DeviceRef, certificate: bytes, binding: bytes | None) -> None:
        state = self._device(device)
        state.device = replace(state.device, certificate=certificate)
        if binding is not None:
            state.device = replace(state.device, binding=binding)

    async def create_account(
        self,
        account: AccountRecord,
        device: DeviceRef,
        certificate: bytes,
        binding: bytes,
        now_ms: int,
        *,
        reset: bool = False,
    ) -> list[DeviceRef]:
        user = account.user
        if user in self._accounts and not reset:
            raise rules.account_exists(user)
        self._device(device)  # NotFound before anything changes
        removed: list[DeviceRef] = []
        if reset:
            removed = sorted(r for r in self._devices if r.user == user and r != device)
            for gone in removed:
                await self.remove_device(gone)
            self._removals.pop(user, None)
        self._certify(device, certificate, binding)
        self._accounts[user] = account
        return removed

    async def change_devices(
        self,
        user: str,
        expected_version: int,
        account: AccountRecord,
        certified: Certification | None,
        removed: Removal | None,
        now_ms: int,
    ) -> bool:
        stored = self._accounts.get(user)
        if (
            stored is None
            or stored.list_version != expected_version
            or stored.account_key != account.account_key
        ):
            return False
        if certified is not None:
            self._device(DeviceRef(user, certified.device_id))  # NotFound, nothing changed
            self._certify(DeviceRef(user, certified.device_id), certified.certificate, None)
        if removed is not None:
            key = (removed.device_id, removed.identity_digest)
            self._removals.setdefault(user, {}).setdefault(key, (removed.statement, now_ms))
            await self.remove_device(DeviceRef(user, removed.device_id))
        self._accounts[user] = account
        return True

    async def list_removals(self, user: str) -> list[bytes]:
        found = self._removals.get(user, {})
        ordered = sorted(found.items(), key=lambda kv: (kv[1][1], kv[0][0]))
        return [statement for _, (statement, _) in ordered]

    async def list_room_device_records(self, room: str) -> list[Device]:
        members = self._members.get(room, {})
        refs = sorted(r for r in self._devices if r.user in members)
        return [self._devices[r].device for r in refs]

    # ---- the link relay ------------------------------------------------------------------
    async def put_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, data: bytes, now_ms: int, expires_at_ms: int
    ) -> bool:
        key = (user, relay_id, slot)
        held = self._links.get(key)
        if held is not None and held[1] > now_ms:
            return False
        self._links[key] = (bytes(data), expires_at_ms)
        return True

    async def get_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, now_ms: int
    ) -> bytes | None:
        held = self._links.get((user, relay_id, slot))
        return None if held is None or held[1] <= now_ms else held[0]

    async def purge_link_messages(self, now_ms: int) -> int:
        doomed = [k for k, (_, expires) in self._links.items() if expires <= now_ms]
        for key in doomed:
            del self._links[key]
        return len(doomed)
