"""The own account's devices, as the client drives them: link, remove, publish, verify lists.

Reached as ``CryptoAccount.devices``; a view over the account's
:class:`~securechat.crypto.device_book.DeviceBook`, trust store and device identity (it keeps
no state of its own, so it is saved with the account). Every method that changes the own
device set returns a :class:`~securechat.crypto.device_book.DevicePublication`: upload it, then
call :meth:`AccountDevices.published` once the server has stored it.

Linking, on the existing device A and the new device B (a device created with
``CryptoAccount.create(..., linked=True)``)::

    A: offer = account.devices.link_offer(now=now)       # show offer.code.text()
       relay.post(offer.code.relay_id, offer.offer_message())
    B: joiner = LinkJoiner.from_text(typed_code)
       relay.post(..., account.devices.link_request(joiner, relay.get(joiner.code.relay_id)))
    A: grant, publication = account.devices.grant_link(offer, request, now=now)
       server.publish(publication); account.devices.published(publication); relay.post(grant)
    B: account.devices.complete_link(joiner, grant)      # then publish its prekey bundle
"""

from __future__ import annotations

from securechat.crypto.account_key import AccountKeyPair, AccountPublic
from securechat.crypto.certificates import AccountBinding, DeviceCertificate, DeviceListHead
from securechat.crypto.device_book import DEFAULT_MAX_DEVICES, DeviceBook, DevicePublication
from securechat.crypto.device_list import DeviceListing, DeviceListResult
from securechat.crypto.identity import IdentityKeyPair, IdentityPublic
from securechat.crypto.linking import LinkJoiner, LinkOffer
from securechat.crypto.randomness import SystemRandomness
from securechat.crypto.trust import TrustStore
from securechat.errors import InvalidArgument


class AccountDevices:
    """Device management for one device's account (see the module docstring)."""

    def __init__(
        self,
        book: DeviceBook,
        trust: TrustStore,
        identity: IdentityKeyPair,
        randomness: SystemRandomness,
    ) -> None:
        self._book = book
        self._trust = trust
        self._identity = identity
        self._randomness = randomness

    @property
    def account_key(self) -> AccountPublic | None:
        return self._book.account_key

    @property
    def signer(self) -> AccountKeyPair:
        """The account private key, to sign roster events (InvalidArgument before a link)."""
        return self._book.require_account()

    @property
    def certificate(self) -> DeviceCertificate | None:
        """This device's certificate (publish it with the device's keys)."""
        return self._book.certificate

    @property
    def binding(self) -> AccountBinding | None:
        """This device's signature naming its account key (publish it with the certificate)."""
        key = self._book.account_key
        if key is None:
            return None
        return AccountBinding.issue(self._identity, self._book.user, self._book.device_id, key)

    @property
    def own_list(self) -> DeviceListHead | None:
        """The newest signed list of the own devices this device knows (to upload or gossip)."""
        return self._book.own_head

    def migrate(self, *, now: int) -> DevicePublication:
        """A stage-1 device makes the account key: upload the publication and :attr:`binding`."""
        return self._book.establish(AccountKeyPair.generate(self._randomness), now=now)

    def link_offer(self, *, now: int) -> LinkOffer:
        """Start linking a new device (the code is valid for LINK_CODE_LIFETIME seconds)."""
        self._book.require_account()
        return LinkOffer.create(now=now, randomness=self._randomness)

    def grant_link(
        self,
        offer: LinkOffer,
        request: bytes,
        *,
        now: int,
        max_devices: int = DEFAULT_MAX_DEVICES,
    ) -> tuple[bytes, DevicePublication]:
        """Open the new device's request and certify it: ``(grant blob, publication)``.

        LinkError if the request is not the code's, late or repeated; ``refused`` (code void)
        for another user's device, a device id in use, a removed device or too many devices.
        """
        account = self._book.require_account()
        asked = offer.open_request(request, now=now)
        if asked.user != self._book.user:
            raise offer.refuse(
                f"a device of {asked.user} cannot join the account of {self._book.user}"
            )
        try:
            publication = self._book.certify(
                asked.device_id, asked.identity, now=now, max_devices=max_devices
            )
        except InvalidArgument as exc:
            raise offer.refuse(exc.message) from exc
        assert publication.certificate is not None
        grant = offer.seal_grant(
            account, publication.certificate, publication.head, self._trust.export_pins()
        )
        return grant, publication

    def link_request(self, joiner: LinkJoiner, offer: bytes) -> bytes:
        """The new device's answer to the relayed offer (LinkError if it is not the code's)."""
        if self._book.account is not None:
            raise InvalidArgument("this device already belongs to an account")
        return joiner.request_message(offer, self._identity, self._book.user, self._book.device_id)

    def complete_link(self, joiner: LinkJoiner, grant: bytes) -> None:
        """Install the account key, certificate, device list and pins the grant carries."""
        result = joiner.open_grant(grant)
        self._book.join(result.account, result.certificate, result.head)
        self._trust.import_pins(result.pins)

    def remove(self, device_id: int, *, now: int) -> DevicePublication:
        """Sign the removal of another own device (never the one in use)."""
        return self._book.remove(device_id, now=now)

    def published(self, publication: DevicePublication) -> None:
        """The server stored ``publication``: it becomes the own device list."""
        self._book.commit(publication)

    def check(self, user: str, listing: DeviceListing) -> DeviceListResult:
        """Verify the server's device list for ``user`` and remember the verified devices.

        The own account is judged under the own account key; a contact under the account key
        pinned for it (``CryptoAccount.observe_account`` first). Nothing is taken from the
        server.
        """
        if user == self._book.user:
            return self._book.check(user, self._book.require_account().public, listing)
        key = self._trust.pinned_account(user)
        if key is None:
            raise InvalidArgument(f"no account key pinned for {user}: observe it first")
        return self._book.check(user, key, listing)

    def verified(self, user: str) -> dict[int, IdentityPublic]:
        """The devices of ``user`` that may be encrypted to (from the last verified list)."""
        return self._book.verified_devices(user)
