"""Several devices per account, in process against the real test server: linked devices all
receive, a user's own messages appear on their other devices, a removed device receives nothing
more, and safety numbers never change while devices come and go."""

from __future__ import annotations

import pytest

from securechat.client.devices_view import own_devices, remove_device
from securechat.client.events import MessageEvent, Target
from securechat.errors import InvalidArgument
from securechat.node import Node
from tests.client.conftest import MakeDevice


async def test_two_linked_devices_of_alice_and_one_of_bob(
    make_device: MakeDevice, server: Node
) -> None:
    laptop, bob = await make_device("alice"), await make_device("bob")
    desktop = await make_device("alice", register=False, link_from=laptop)
    bob_chat = await bob.start()
    laptop_chat = await laptop.start()
    await desktop.start()

    # bob -> alice reaches both of alice's devices
    receipt = await bob_chat.send(Target.user("alice"), "hello alice")
    assert set(receipt.devices) == {laptop.address, desktop.address}
    for device in (laptop, desktop):
        await device.watch.until(lambda d=device: "hello alice" in d.watch.texts())
    number = bob.vault.account.safety_number("alice")
    assert laptop.vault.account.safety_number("bob") == number
    assert desktop.vault.account.safety_number("bob") == number  # the link carried the pin

    # alice writes from the laptop: bob gets it, and so does her desktop, as sent by her
    receipt = await laptop_chat.send(Target.user("bob"), "from the laptop")
    assert set(receipt.devices) == {bob.address, desktop.address}
    await desktop.watch.until(lambda: "from the laptop" in desktop.watch.texts())
    [copy] = [e for e in desktop.watch.events if isinstance(e, MessageEvent)
              and e.text == "from the laptop"]  # fmt: skip
    assert (copy.sender, copy.device_id, copy.target) == ("alice", 1, Target.user("bob"))
    assert copy.certified is True
    await bob.watch.until(lambda: "from the laptop" in bob.watch.texts())

    # the laptop removes the desktop (as for a lost device): it receives nothing more
    accounts = laptop_chat.messenger.accounts
    with pytest.raises(InvalidArgument, match="cannot remove the device you are using"):
        await remove_device(laptop.api, accounts, laptop.address.device_id)
    await remove_device(laptop.api, accounts, desktop.address.device_id)
    assert await server.store.get_device("alice", desktop.address.device_id) is None
    receipt = await bob_chat.send(Target.user("alice"), "only to the laptop")
    assert receipt.devices == (laptop.address,)
    await laptop.watch.until(lambda: "only to the laptop" in laptop.watch.texts())
    await bob.watch.until(lambda: "alice removed a device (device 2)" in bob.watch.notices())
    assert "only to the laptop" not in desktop.watch.texts()
    lines = await own_devices(accounts)
    assert [line.split("  ")[0] for line in lines[1:]] == ["device 1"]

    # through all of it, nobody's safety number moved
    assert bob.vault.account.safety_number("alice") == number
    assert laptop.vault.account.safety_number("bob") == number
