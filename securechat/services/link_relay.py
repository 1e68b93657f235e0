"""The link relay: three opaque messages between two devices of one user, each written once.

Linking a new device (crypto/linking.py) sends an offer (existing device to new), a request
(new to existing) and a grant (existing to new) through the server. The server cannot read or
usefully change them: the code the user typed authenticates the channel. It keeps each message
under ``(user, relay id, slot)``, refuses a second write to a slot, and forgets it after the
code's lifetime.
"""

from __future__ import annotations

import re

from securechat.crypto.linking import LINK_CODE_LIFETIME
from securechat.domain.model import LinkSlot
from securechat.errors import AlreadyExists, InvalidArgument
from securechat.services.clock import Clock
from securechat.storage.port import Store

RELAY_ID = re.compile(r"[0-9a-f]{18}")
MAX_LINK_MESSAGE_BYTES = 60 * 1024
LIFETIME_MS = LINK_CODE_LIFETIME * 1000


def _checked(relay_id: str, slot: str) -> LinkSlot:
    if RELAY_ID.fullmatch(relay_id) is None:
        raise InvalidArgument("a relay id is the link code's 18 lowercase hex digits")
    try:
        return LinkSlot(slot)
    except ValueError:
        raise InvalidArgument("the link slot is one of offer, request, grant") from None


class LinkRelay:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def post(self, user: str, relay_id: str, slot: str, message: bytes) -> None:
        checked = _checked(relay_id, slot)
        if not message or len(message) > MAX_LINK_MESSAGE_BYTES:
            raise InvalidArgument(
                f"a link message is 1 to {MAX_LINK_MESSAGE_BYTES} bytes, got {len(message)}"
            )
        now = self.clock.now_ms()
        if not await self.store.put_link_message(
            user, relay_id, checked, message, now, now + LIFETIME_MS
        ):
            raise AlreadyExists(
                f"the link {checked.value} was already sent: start again with a new code"
            )

    async def get(self, user: str, relay_id: str, slot: str) -> bytes | None:
        checked = _checked(relay_id, slot)
        return await self.store.get_link_message(user, relay_id, checked, self.clock.now_ms())

    async def purge(self) -> int:
        return await self.store.purge_link_messages(self.clock.now_ms())
