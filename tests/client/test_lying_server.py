"""A deliberately lying server: it injects ghost devices (keys of its own) under the sender's own
name and under a contact's name, and tries to be encrypted to. The client sends to neither, says
so once in plain words, and the ghosts cannot decrypt anything.

Only the client library is exercised here; the server is the real test server whose database
the test tampers with (as an operator could), so the server's own checks are bypassed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.client.events import NoticeEvent, Target
from securechat.crypto.account import Address
from securechat.errors import DecryptionError
from securechat.node import Node
from tests.client.conftest import MakeDevice
from tests.support.lying import Ghost, inject_ghost


def _warnings(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, NoticeEvent) and e.warning]


async def _nothing_readable(server: Node, ghost: Ghost) -> int:
    """Every mailbox entry of the ghost fails to decrypt; returns how many there were."""
    entries = await server.store.fetch(ghost.ref, 0, 1000)
    for entry in entries:
        kind, name = entry.conversation
        target = Target.room(name) if kind.value == "room" else Target.user(name)
        sender = Address(entry.sender.user, entry.sender.device_id)
        with pytest.raises(DecryptionError):
            ghost.crypto.decrypt(
                sender, target.conversation_id(ghost.ref.user), entry.ciphertext, now=0
            )
    return len(entries)


async def test_ghost_devices_under_your_name_and_a_contacts_get_nothing(
    make_device: MakeDevice, server: Node
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    await chat.send(Target.user("bob"), "before the ghosts")  # lists learned, bob pinned
    await bob.watch.until(lambda: bob.watch.texts() == ["before the ghosts"])

    database = Path(server.config.db_url)
    ghosts = [
        await inject_ghost(server.store, "alice", database),  # under the sender's own name
        await inject_ghost(server.store, "bob", database),  # under the contact's name
    ]
    server.directory.invalidate()

    await chat.send(Target.user("bob"), "private, after the ghosts")
    await chat.send(Target.room("lobby"), "to the room, after the ghosts")
    await chat.send(Target.user("bob"), "once more")
    await bob.watch.until(lambda: len(bob.watch.texts()) == 4)
    assert bob.watch.texts() == [
        "before the ghosts", "private, after the ghosts", "to the room, after the ghosts",
        "once more",
    ]  # fmt: skip

    for ghost in ghosts:
        await _nothing_readable(server, ghost)
        assert await server.store.fetch(ghost.ref, 0, 1000) == []  # nothing was even addressed

    warnings = _warnings(alice.watch.events)
    own = [w for w in warnings if "YOUR name" in w]
    theirs = [w for w in warnings if "a device of bob" in w]
    assert len(own) == 1 and f"device {ghosts[0].ref.device_id}" in own[0]
    assert "nothing is encrypted to it" in own[0]
    assert len(theirs) == 1 and f"device {ghosts[1].ref.device_id}" in theirs[0]
    assert "did not certify" in theirs[0]


async def test_a_server_that_insists_on_a_ghost_gets_no_message_and_the_user_is_told(
    make_device: MakeDevice, server: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server also demands the ghost in every send (stale_devices naming it): the client
    refuses to send rather than encrypt to it, and says why."""
    from securechat.domain.model import DeviceRef
    from securechat.services import directory

    def every_device_with_keys(devices: object, account: object) -> list[DeviceRef]:
        return [DeviceRef(d.user, d.device_id) for d in devices if d.identity_key]  # type: ignore[attr-defined]

    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    ghost = await inject_ghost(server.store, "bob", Path(server.config.db_url))
    monkeypatch.setattr(directory, "receiving_devices", every_device_with_keys)
    server.directory.invalidate()

    with pytest.raises(Exception, match="not certified by its account key") as refused:
        await chat.send(Target.user("bob"), "never to the ghost")
    assert f"bob device {ghost.ref.device_id}" in str(refused.value)
    assert await server.store.fetch(ghost.ref, 0, 1000) == []
    assert bob.watch.texts() == []
    assert len([w for w in _warnings(alice.watch.events) if "a device of bob" in w]) == 1
