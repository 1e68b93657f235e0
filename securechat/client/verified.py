"""The device lists this client verified: fetch an account, judge it, tell the user, once.

The server serves each user's account key, device certificates, bindings, removals and signed
device list (KeyService.GetAccount). :class:`AccountBook` takes none of it on trust:

- a contact's account key goes through trust on first use (``observe_account``): the first key
  is pinned, a different one later is an identity change that blocks sending until the user
  decides (client/key_change.py); a stage-1 pin on a device identity moves to the account key
  when that device's binding names it;
- the device list is verified under the key *this client* pinned (for the own account: its own
  key, never the server's), and only the devices it certifies may be encrypted to;
- every device the server lists but the account key did not certify, and every problem with the
  list, is told to the user once, in plain words (remembered in the keystore); a device under the
  user's *own* name gets the strongest warning;
- devices coming and going are told as "bob added a device" / "bob removed a device".

Contacts whose server account has no account key yet (legacy accounts) are judged as in stage 1:
their listed devices with keys, each session checked against the pinned device identity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from securechat.client.events import Event, IdentityEvent, NoticeEvent, Target
from securechat.client.rpc.api import Api
from securechat.client.vault import Vault, now_s
from securechat.crypto.account import Address
from securechat.crypto.account_key import AccountPublic
from securechat.crypto.certificates import AccountBinding
from securechat.crypto.device_book import DEFAULT_MAX_DEVICES
from securechat.crypto.device_list import (
    DeviceListing,
    DeviceListResult,
    ListedDevice,
    ListProblem,
    Rejection,
)
from securechat.crypto.identity import IdentityPublic
from securechat.crypto.trust import TrustEvent
from securechat.errors import InvalidArgument
from securechat_proto.v1 import keys_pb2

Notify = Callable[[Event], None]

REASONS = {
    Rejection.NO_CERTIFICATE: "it has no certificate",
    Rejection.MALFORMED: "its certificate is malformed",
    Rejection.OTHER_ACCOUNT: "its certificate is signed by another account key",
    Rejection.BAD_SIGNATURE: "its certificate's signature is wrong",
    Rejection.OTHER_USER: "its certificate is made out to another user",
    Rejection.OTHER_DEVICE: "its certificate is made out to another device",
    Rejection.REMOVED: "it was removed",
    Rejection.NOT_IN_LIST: "the signed device list does not name it",
    Rejection.DUPLICATE: "it is listed twice",
    Rejection.STALE_REMOVAL: "a removal names an earlier device with that number",
}
PROBLEMS = {
    ListProblem.MISSING: "serves no signed device list for {who}",
    ListProblem.INVALID: "serves a device list for {who} that does not verify",
    ListProblem.ROLLED_BACK: (
        "serves an older device list for {who} than one already seen (it may be hiding a new "
        "or removed device)"
    ),
    ListProblem.CONFLICTING: (
        "serves a different device list for {who} with the version of one already seen"
    ),
}


@dataclass(frozen=True)
class UserDevices:
    """The devices of one user this client may encrypt to (never the server's word alone)."""

    user: str
    devices: tuple[Address, ...]
    account_mode: bool  # judged under an account key (False: a legacy contact)


def listing_from_proto(reply: keys_pb2.GetAccountResponse) -> DeviceListing:
    """The server's answer as the crypto layer's listing (malformed parts stay malformed)."""
    devices = []
    for device in reply.devices:
        identity = None
        if device.identity_key:
            try:
                identity = IdentityPublic.from_bytes(device.identity_key)
            except InvalidArgument:
                identity = None
        devices.append(ListedDevice(device.device_id, device.certificate or None, identity))
    return DeviceListing(devices, list(reply.removals), reply.device_list or None)


def bindings_from_proto(reply: keys_pb2.GetAccountResponse) -> list[AccountBinding]:
    found = []
    for device in reply.devices:
        if device.binding:
            try:
                found.append(AccountBinding.from_bytes(device.binding))
            except InvalidArgument:
                continue
    return found


class AccountBook:
    """Verified device lists of every user this client talks to (see the module docstring)."""

    def __init__(self, api: Api, vault: Vault, notify: Notify | None = None) -> None:
        self.api = api
        self.vault = vault
        self.notify = notify
        self.max_devices = DEFAULT_MAX_DEVICES
        self._known: dict[str, UserDevices] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.served: dict[str, keys_pb2.GetAccountResponse] = {}  # the last answer, as served

    @property
    def me(self) -> Address:
        return self.vault.account.address

    def _tell(self, event: Event) -> None:
        if self.notify is not None:
            self.notify(event)

    def _say(self, user: str, text: str, *, warning: bool = False) -> None:
        """A notice about ``user``: shown in the conversation with them (the own account's
        notices have none, so they show where the user is)."""
        target = None if user == self.me.user else Target.user(user)
        self._tell(NoticeEvent(text, warning, target))

    def _once(self, user: str, key: str, text: str) -> None:
        if self.vault.state.first_time(key):
            self._say(user, text, warning=True)

    async def devices(self, user: str) -> UserDevices:
        """What this process verified for ``user`` (fetched the first time)."""
        known = self._known.get(user)
        return known if known is not None else await self.refresh(user)

    async def refresh(self, user: str, *, save: bool = True) -> UserDevices:
        """Fetch ``user``'s account and judge it; ``save`` persists what was learned (pins,
        verified lists, warnings) at once, so a send that then fails does not forget it."""
        lock = self._locks.setdefault(user, asyncio.Lock())
        async with lock:
            reply = await self.api.get_account(user)
            self.served[user] = reply
            if user == self.me.user:
                self.max_devices = reply.max_devices or DEFAULT_MAX_DEVICES
                found = self._own(reply)
            else:
                found = self._contact(user, reply)
            self._known[user] = found
            if save:
                self.vault.save()
            return found

    def forget(self, user: str) -> None:
        self._known.pop(user, None)

    # -- contacts -----------------------------------------------------------------------------

    def _contact(self, user: str, reply: keys_pb2.GetAccountResponse) -> UserDevices:
        account = self.vault.account
        if not reply.account_key:
            if account.account_key_of(user) is None:  # a legacy contact: stage-1 rules
                listed = tuple(Address(user, d.device_id) for d in reply.devices if d.has_bundle)
                return UserDevices(user, listed, account_mode=False)
            self._once(
                user,
                f"nokey:{user}",
                f"the server shows no account key for {user}, whose key you accepted: only "
                f"{user}'s devices verified before are encrypted to",
            )
            return self._verified(user)
        try:
            key = AccountPublic.from_bytes(reply.account_key)
        except InvalidArgument:
            self._once(
                user, f"badkey:{user}", f"the server serves a malformed account key for {user}"
            )
            return self._verified(user)
        event = account.observe_account(user, key, bindings_from_proto(reply))
        if event is TrustEvent.CHANGED:
            self._tell(IdentityEvent(user, account.pinned_verified(user), now_s() * 1000))
        elif event is TrustEvent.REJECTED_AGAIN:
            self._once(
                user,
                f"rejected:{user}:{key.to_bytes().hex()}",
                f"the server again shows the account key of {user} that you rejected: "
                f"messages to {user} still use the key you kept",
            )
        elif event is TrustEvent.ADOPTED:
            self._say(user, f"{user} now has an account key, signed by the device you knew")
        if account.account_key_of(user) != key.to_bytes():
            return self._verified(user)  # a pending or rejected key: nothing new is verified
        before = account.devices.verified(user)
        result = account.devices.check(user, listing_from_proto(reply))
        self._report(user, before, result)
        return self._verified(user)

    # -- the own account ----------------------------------------------------------------------

    def _own(self, reply: keys_pb2.GetAccountResponse) -> UserDevices:
        account = self.vault.account
        me = self.me.user
        own_key = account.account_key
        if own_key is None:  # not migrated yet, or waiting for a link: no own copies
            return UserDevices(me, (), account_mode=False)
        if reply.account_key != own_key.to_bytes():
            self._once(
                me,
                f"ownkey:{reply.account_key.hex()}",
                "!! the server shows another account key for YOU than the one this device holds: "
                "if you did not reset your account from another device, the server is lying. "
                "Nothing is encrypted to devices under that key.",
            )
            return self._verified(me)
        before = account.devices.verified(me)
        result = account.devices.check(me, listing_from_proto(reply))
        self._report(me, before, result)
        if self.me.device_id not in account.devices.verified(me) and result.problem is None:
            self._once(
                me,
                f"notlisted:{result.head.version if result.head else 0}",
                "!! your account's signed device list does not name this device: it was removed "
                "from another of your devices",
            )
        return self._verified(me)

    def _verified(self, user: str) -> UserDevices:
        verified = self.vault.account.devices.verified(user)
        devices = tuple(Address(user, i) for i in sorted(verified) if Address(user, i) != self.me)
        return UserDevices(user, devices, account_mode=True)

    # -- telling the user -----------------------------------------------------------------------

    def _report(
        self, user: str, before: dict[int, IdentityPublic], result: DeviceListResult
    ) -> None:
        own = user == self.me.user
        after = self.vault.account.devices.verified(user)
        if before:
            for device_id in sorted(set(after) - set(before)):
                self._say(user, f"you added a device (device {device_id})" if own
                          else f"{user} added a device (device {device_id})")  # fmt: skip
            for device_id in sorted(set(before) - set(after)):
                self._say(user, f"your device {device_id} was removed" if own
                          else f"{user} removed a device (device {device_id})")  # fmt: skip
        for rejected in result.rejected:
            if rejected.what == "device" and rejected.device_id is not None:
                self._rejected_device(user, rejected.device_id, rejected.reason)
            elif rejected.what == "removal":
                self._once(
                    user,
                    f"removal:{user}:{rejected.device_id}:{rejected.reason.value}",
                    f"the server serves a device removal for {user} that {user}'s account key "
                    "did not sign: it is ignored",
                )
        if result.problem is not None:
            who = "you" if own else user
            version = result.head.version if result.head is not None else 0
            self._once(
                user,
                f"problem:{user}:{result.problem.value}:{version}",
                f"the server {PROBLEMS[result.problem].format(who=who)}: only devices verified "
                "before are encrypted to",
            )
        for device_id in result.missing:
            self._once(
                user,
                f"missing:{user}:{device_id}:{result.head.version if result.head else 0}",
                f"the signed device list of {'your account' if own else user} names device "
                f"{device_id}, but the server does not serve it: it gets no messages for now",
            )

    def _rejected_device(self, user: str, device_id: int, reason: Rejection) -> None:
        if reason is Rejection.REMOVED:
            return  # a removed device still listed: nothing to say beyond the removal itself
        why = REASONS[reason]
        key = f"device:{user}:{device_id}:{reason.value}"
        if user == self.me.user:
            self._once(
                user,
                key,
                f"!! the server lists a device under YOUR name (device {device_id}) that your "
                f"account key did not certify ({why}): nothing is encrypted to it. If you did not "
                "add it, the server may be trying to read your messages.",
            )
        else:
            self._once(
                user,
                key,
                f"the server lists a device of {user} (device {device_id}) that {user}'s account "
                f"key did not certify ({why}): nothing is encrypted to it",
            )
