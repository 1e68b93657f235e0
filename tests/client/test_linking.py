"""Linking over the real relay, and everything that must fail: a wrong, expired or reused code,
a relay that swaps either side's key, one device more than the server allows, and a key change
while a message waits to be sent again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from securechat.client import linking
from securechat.client.credentials import derive
from securechat.client.events import Target
from securechat.client.linking import account_request, join_account, offer_link
from securechat.client.rpc import Api
from securechat.client.vault import Vault
from securechat.crypto.account import Address
from securechat.crypto.link_code import LinkCode
from securechat.crypto.linking import LinkJoiner
from securechat.errors import AlreadyExists, IdentityChanged, LinkError
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import content_pb2
from tests.client.conftest import MakeDevice
from tests.client.live import PASSWORD, WAIT_S, Device, device
from tests.conftest import server_config


async def pending_device(existing: Device, tmp_path: Path) -> Device:
    """A new device of the same user: logged in with the password, waiting for a link."""
    api = Api(existing.api.channel)
    user = existing.user
    keys = await derive(PASSWORD, (await api.login_parameters(user)).login)
    login = await api.login(user, keys.authenticator_text())
    path = tmp_path / f"{user}-{login.device_id}.pending"
    account, state = Vault.new_account(user, login.device_id, linked=True)
    return Device(user, api, Vault.create(path, keys, account, state))


async def offering(existing: Device) -> tuple[asyncio.Task[object], str]:
    code: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def shown(text: str) -> None:
        if text.startswith("link code: ") and not code.done():
            code.set_result(text.removeprefix("link code: "))

    task = asyncio.create_task(offer_link(existing.api, existing.messenger().accounts, shown))
    return task, await asyncio.wait_for(code, WAIT_S)


def test_a_mistyped_code_is_refused_before_anything_is_sent() -> None:
    code = LinkCode(bytes(9), bytes(4)).text()
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(LinkError) as info:
        LinkJoiner.from_text(typo)
    assert info.value.reason == "wrong_code"


async def test_a_code_works_once(make_device: MakeDevice, tmp_path: Path) -> None:
    alice = await make_device("alice")
    first = await pending_device(alice, tmp_path)
    task, code = await offering(alice)
    await join_account(first.api, first.vault, LinkJoiner.from_text(code), lambda _: None)
    await asyncio.wait_for(task, WAIT_S)
    assert first.vault.account.account_key == alice.vault.account.account_key

    second = await pending_device(alice, tmp_path)
    with pytest.raises(AlreadyExists, match="already sent"):  # the code's request slot is used
        await join_account(second.api, second.vault, LinkJoiner.from_text(code), lambda _: None)
    assert second.vault.account.account_key is None


async def test_an_expired_code_links_nothing(
    make_device: MakeDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await make_device("alice")
    newcomer = await pending_device(alice, tmp_path)
    task, code = await offering(alice)
    real_now = linking.now_s
    monkeypatch.setattr(linking, "now_s", lambda: real_now() + 601)  # ten minutes later
    joining = asyncio.create_task(
        join_account(newcomer.api, newcomer.vault, LinkJoiner.from_text(code), lambda _: None)
    )
    with pytest.raises(LinkError) as info:
        await asyncio.wait_for(task, WAIT_S)
    assert info.value.reason == "expired"
    joining.cancel()  # still polling for a grant; it must end before the channel closes
    await asyncio.gather(joining, return_exceptions=True)
    assert alice.vault.account.devices.verified("alice").keys() == {1}


@pytest.mark.parametrize("slot", ["offer", "request"])
async def test_a_relay_that_swaps_a_key_links_nothing(
    make_device: MakeDevice, server: Node, tmp_path: Path, slot: str
) -> None:
    alice = await make_device("alice")
    newcomer = await pending_device(alice, tmp_path)
    real_post = server.link_relay.post

    async def swapping(user: str, relay_id: str, name: str, message: bytes) -> None:
        if name == slot:  # replace the ephemeral key after the two header bytes
            message = message[:2] + bytes(32) + message[34:]
        await real_post(user, relay_id, name, message)

    server.link_relay.post = swapping  # type: ignore[method-assign]
    task, code = await offering(alice)
    joining = asyncio.create_task(
        join_account(newcomer.api, newcomer.vault, LinkJoiner.from_text(code), lambda _: None)
    )
    failing = joining if slot == "offer" else task  # the side that checks the swapped key
    with pytest.raises(LinkError) as info:
        await asyncio.wait_for(failing, WAIT_S)
    assert info.value.reason == "tampered"
    for other in (task, joining):
        other.cancel()
    await asyncio.gather(task, joining, return_exceptions=True)
    assert newcomer.vault.account.account_key is None
    assert set(alice.vault.account.devices.verified("alice")) == {1}
    listed = await alice.api.get_account("alice")
    assert [d.device_id for d in listed.devices if d.certificate] == [1]


async def test_one_device_more_than_the_server_allows_is_refused(
    pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")
    node = Node(server_config(pki, tmp_path / "data", **{"accounts.max_devices": 1}))
    await node.start()
    alice: Device | None = None
    try:
        alice = await device(node.port, pki, tmp_path, "alice")
        newcomer = await pending_device(alice, tmp_path)
        task, code = await offering(alice)
        joining = asyncio.create_task(
            join_account(newcomer.api, newcomer.vault, LinkJoiner.from_text(code), lambda _: None)
        )
        with pytest.raises(LinkError) as info:
            await asyncio.wait_for(task, WAIT_S)
        assert info.value.reason == "refused" and "the most allowed" in info.value.message
        joining.cancel()
        await asyncio.gather(joining, return_exceptions=True)
        assert newcomer.vault.account.account_key is None
    finally:
        if alice is not None:
            await alice.stop()
        await node.stop(grace=0.2)


async def test_a_queued_message_never_follows_a_key_change(make_device: MakeDevice) -> None:
    """Sealed once under bob's key, a message that must be sealed again (the server said the
    device list changed) is refused once bob's key has changed: no re-encryption unasked."""
    alice, bob = await make_device("alice"), await make_device("bob")
    messenger = alice.messenger()
    devices = await messenger.book.devices(Target.user("bob"))
    content = content_pb2.MessageContent(message_id="queued-1", body="queued")
    seal = messenger.seal(Target.user("bob"), content)
    assert set(await seal(devices)) == {bob.address}

    # bob starts over on a new device with a new account key; alice sees it and accepts it ...
    keys = await derive(PASSWORD, (await bob.api.login_parameters("bob")).login)
    fresh = Api(bob.api.channel)
    login = await fresh.login("bob", keys.authenticator_text())
    new_account, _ = Vault.new_account("bob", login.device_id)
    await fresh.publish_account(account_request(new_account, reset=True))
    with pytest.raises(IdentityChanged):
        await messenger.book.refresh(Target.user("bob"))
    number = alice.vault.account.safety_number("bob")
    alice.vault.account.accept_identity("bob", number, verified=False)
    # ... yet the queued message, sealed under the old key, is not sealed again under the new
    # (here: for bob's new device, as the server's stale_devices answer would ask).
    with pytest.raises(IdentityChanged):
        await seal([Address("bob", login.device_id)])


async def test_linking_through_the_helper_installs_the_same_account(
    make_device: MakeDevice,
) -> None:
    alice = await make_device("alice")
    phone = await make_device("alice", register=False, link_from=alice)
    assert phone.vault.account.account_key == alice.vault.account.account_key
    assert set(alice.vault.account.devices.verified("alice")) == {1, 2}
