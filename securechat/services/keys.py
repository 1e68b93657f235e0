"""The key directory: verify and store public bundles, hand out one-time prekeys once, and
never let one claimer (or many together) drain a device's one-time prekeys.

On an account with an account key a device publishes keys only once certified, with the
identity its certificate names and its binding (services/devices.py checks those statements).
A device that publishes keys for the first time becomes a recipient: its user's contacts and
other devices are told (DEVICE_ADDED).
"""

from __future__ import annotations

from collections.abc import Sequence

from securechat.bus.port import Bus
from securechat.config import LimitsConfig
from securechat.crypto.account_key import AccountPublic
from securechat.crypto.certificates import DeviceCertificate
from securechat.crypto.identity import IdentityPublic
from securechat.crypto.prekeys import (
    KemPreKeyPublic,
    OneTimePreKeyPublic,
    SignedPreKeyPublic,
    verify_kem_prekey,
    verify_one_time_prekey,
    verify_signed_prekey,
)
from securechat.domain import names
from securechat.domain.events import MembershipKind
from securechat.domain.model import (
    Bundle,
    ClaimedBundle,
    Device,
    DeviceRef,
    KemPreKeyRecord,
    OneTimePreKeyRecord,
    PreKeyCounts,
    SignedPreKeyRecord,
)
from securechat.domain.ratelimit import KeyedBuckets, RecentSet
from securechat.errors import (
    BadSignature,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from securechat.services.clock import Clock
from securechat.services.devices import AccountDevices, check_binding
from securechat.storage.port import Store

MAX_PREKEYS_PER_UPLOAD = 200


class KeyDirectory:
    """Claims are limited so that no user can drain another's one-time prekeys:

    - per claimer: ``limits.prekey_claims_per_hour`` ClaimBundles calls (bursts of a quarter),
      past it RESOURCE_EXHAUSTED with retry-after (only the claimer is slowed);
    - per claimer and target device: one one-time prekey per ``limits.prekey_reclaim_window_s``;
      a repeat claim gets the bundle without one (signed prekey and last-resort KEM key), as when
      the device has run out, which PQXDH allows;
    - per target device: ``limits.one_time_prekeys_per_target_per_hour`` one-time prekeys handed
      out (bursts of half); past it, bundles without one, so many claimers together cannot empty
      it faster than its owner refills, and nobody is refused a bundle because of a target.
    """

    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        accounts: AccountDevices,
        limits: LimitsConfig | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.accounts = accounts
        limits = limits or LimitsConfig()
        self.claims = KeyedBuckets(
            limits.prekey_claims_per_hour / 3600.0, max(10.0, limits.prekey_claims_per_hour / 4)
        )
        per_target = limits.one_time_prekeys_per_target_per_hour
        self.handouts = KeyedBuckets(per_target / 3600.0, max(1.0, per_target / 2))
        self.recent_claims = RecentSet(limits.prekey_reclaim_window_s)

    @staticmethod
    def _identity(raw: bytes) -> IdentityPublic:
        identity = IdentityPublic.from_bytes(raw)
        identity.verify()
        return identity

    @staticmethod
    def _verify(
        identity: IdentityPublic,
        device: DeviceRef,
        signed: SignedPreKeyRecord | None,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
    ) -> None:
        if len(one_time) > MAX_PREKEYS_PER_UPLOAD or len(kem) > MAX_PREKEYS_PER_UPLOAD:
            raise InvalidArgument(f"at most {MAX_PREKEYS_PER_UPLOAD} prekeys of a kind per upload")
        try:
            if signed is not None:
                verify_signed_prekey(
                    identity,
                    device.user,
                    device.device_id,
                    SignedPreKeyPublic(
                        signed.key_id, signed.public_key, signed.created_at, signed.signature
                    ),
                )
            for key in one_time:
                verify_one_time_prekey(
                    identity,
                    device.user,
                    device.device_id,
                    OneTimePreKeyPublic(key.key_id, key.public_key, key.signature),
                )
            for k in kem:
                verify_kem_prekey(
                    identity,
                    device.user,
                    device.device_id,
                    KemPreKeyPublic(k.key_id, k.public_key, k.signature, k.last_resort),
                )
        except BadSignature as exc:
            raise InvalidArgument(f"key bundle refused: {exc.message}") from exc

    async def publish(self, device: DeviceRef, bundle: Bundle) -> PreKeyCounts:
        identity = self._identity(bundle.identity_key)
        if bundle.last_resort is None or not bundle.last_resort.last_resort:
            raise InvalidArgument("a bundle needs a last-resort post-quantum prekey")
        if any(k.last_resort for k in bundle.kem_prekeys):
            raise InvalidArgument("one-time post-quantum prekeys must not be marked last-resort")
        self._verify(
            identity,
            device,
            bundle.signed_prekey,
            bundle.one_time_prekeys,
            [*bundle.kem_prekeys, bundle.last_resort],
        )
        before = await self.store.get_device(device.user, device.device_id)
        if before is None:
            raise NotFound(f"device {device.device_id} of {device.user} is not registered")
        await self._check_certified(device, before, bundle)
        counts = await self.store.publish_bundle(device, bundle)
        if before.identity_key is None:
            await self.accounts.announce(device.user, MembershipKind.DEVICE_ADDED)
        elif before.identity_key != bundle.identity_key:
            await self.accounts.announce(device.user, MembershipKind.IDENTITY_CHANGED)
        return counts

    async def _check_certified(self, device: DeviceRef, before: Device, bundle: Bundle) -> None:
        """On an account with an account key: certified first, the certified identity, a
        binding naming the account key."""
        account = await self.store.get_account(device.user)
        if account is None:
            return
        if before.certificate is None:
            raise FailedPrecondition(
                f"this device is not certified by the account key of {device.user}: link it "
                "from one of your devices first (`securechat devices link`)"
            )
        certified = DeviceCertificate.from_bytes(before.certificate).identity.to_bytes()
        if certified != bundle.identity_key:
            raise InvalidArgument("these keys are not the identity the device's certificate names")
        binding = bundle.binding or before.binding
        if binding is None:
            raise InvalidArgument("a certified device publishes its binding with its keys")
        check_binding(binding, device, certified, AccountPublic.from_bytes(account.account_key))

    async def add_prekeys(
        self,
        device: DeviceRef,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
        signed: SignedPreKeyRecord | None,
        last_resort: KemPreKeyRecord | None = None,
    ) -> PreKeyCounts:
        current = await self.store.get_device(device.user, device.device_id)
        if current is None or current.identity_key is None:
            raise FailedPrecondition("publish a key bundle before adding prekeys")
        if any(k.last_resort for k in kem):
            raise InvalidArgument("added post-quantum prekeys must be one-time keys")
        if last_resort is not None and not last_resort.last_resort:
            raise InvalidArgument("the rotated last-resort post-quantum prekey must be marked so")
        added = [*kem, last_resort] if last_resort is not None else list(kem)
        self._verify(self._identity(current.identity_key), device, signed, one_time, added)
        return await self.store.add_prekeys(device, one_time, added, signed)

    async def claim(
        self, user: str, device_ids: Sequence[int], claimer: str = ""
    ) -> list[ClaimedBundle]:
        names.check_name(user)
        now = self.clock.monotonic()
        wait = self.claims.take(claimer, now)
        if wait:
            raise ResourceExhausted("too many key bundle claims", retry_after=wait)
        devices = await self.devices(user)
        wanted = set(device_ids)
        bundles = []
        for device in devices:
            if wanted and device.device_id not in wanted:
                continue
            claimed = await self._claim_one(DeviceRef(user, device.device_id), claimer, now)
            if claimed is not None:
                bundles.append(claimed)
        if not bundles:
            raise NotFound(f"{user} has no published keys yet: they must log in once")
        return bundles

    async def _claim_one(self, device: DeviceRef, claimer: str, now: float) -> ClaimedBundle | None:
        """One device's bundle: with one-time prekeys unless a limit says otherwise."""
        target = f"{device.user}/{device.device_id}"
        pair = f"{claimer}\x00{target}"
        if self.recent_claims.recent(pair, now) or self.handouts.wait(target, now):
            return await self.store.peek_bundle(device)
        claimed = await self.store.claim_bundle(device)
        if claimed is not None:
            self.handouts.take(target, now)
            self.recent_claims.add(pair, now)
        return claimed

    async def devices(self, user: str) -> list[Device]:
        names.check_name(user)
        if await self.store.get_user(user) is None:
            raise NotFound(f"no user named {user!r}")
        return await self.store.list_devices(user)

    async def counts(self, device: DeviceRef) -> PreKeyCounts:
        return await self.store.count_prekeys(device)
