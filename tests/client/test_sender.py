"""The one send path (rpc.sender.Sender) over both outlets, against the real test server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import pytest

from securechat.client.events import Event, NoticeEvent, Target
from securechat.client.messenger import Messenger
from securechat.client.rpc import Sender, UnaryOutlet
from securechat.crypto.account import Address
from securechat.errors import InvalidArgument, Unavailable
from tests.client.conftest import MakeDevice
from tests.client.live import WAIT_S

TOO_BIG = 64 * 1024 + 1  # over the server's chat.max_message_bytes


def opaque(size: int) -> Callable[[Sequence[Address]], Awaitable[Mapping[Address, bytes]]]:
    async def seal(devices: Sequence[Address]) -> Mapping[Address, bytes]:
        return {d: b"\x01" * size for d in devices}

    return seal


async def test_the_one_shot_path_is_the_same_sender_over_unary_send(
    make_device: MakeDevice,
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    await bob.start()
    notices: list[Event] = []
    messenger = Messenger(alice.api, alice.vault)
    sender = Sender(UnaryOutlet(alice.api), messenger.book, notices.append)
    lobby = Target.room("lobby")
    first = await (await messenger.submit(sender, lobby, "by unary Send"))
    assert first.devices == (bob.vault.account.address,)

    carol = await make_device("carol")  # joins the lobby: the next send is answered stale_devices
    await carol.start()
    second = await (await messenger.submit(sender, lobby, "carol too"))
    assert set(second.devices) == {bob.vault.account.address, carol.vault.account.address}
    assert NoticeEvent("carol joined #lobby: encrypting for them too", target=lobby) in notices
    await carol.watch.until(lambda: carol.watch.texts() == ["carol too"])
    await bob.watch.until(lambda: bob.watch.texts() == ["by unary Send", "carol too"])


@pytest.mark.parametrize("outlet", ["stream", "unary"])
async def test_a_send_the_server_refuses_fails_with_its_error(
    make_device: MakeDevice, outlet: str
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    sender = chat.sender
    if outlet == "unary":
        sender = Sender(UnaryOutlet(alice.api), chat.messenger.book)
    answer = await sender.submit(Target.room("lobby"), opaque(TOO_BIG), "too-big")
    with pytest.raises(InvalidArgument, match="over the limit"):
        await asyncio.wait_for(answer, WAIT_S)
    assert sender.in_flight == 0
    ok = await sender.send(Target.room("lobby"), opaque(100), "fine")  # nothing is stuck
    assert ok.client_message_id == "fine"


async def test_one_client_message_id_is_in_flight_once(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    lobby = Target.room("lobby")
    answer = await chat.sender.submit(lobby, opaque(100), "same")
    with pytest.raises(InvalidArgument, match="already being sent"):
        await chat.sender.submit(lobby, opaque(100), "same")
    with pytest.raises(InvalidArgument, match="client message id"):
        await chat.sender.submit(lobby, opaque(100), "")
    assert (await answer).client_message_id == "same"


async def test_closing_fails_every_unanswered_send(make_device: MakeDevice) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await bob.start()
    answer = await chat.sender.submit(Target.room("lobby"), opaque(100), "cut short")
    chat.sender.close()
    with pytest.raises(Unavailable, match="stopped before the server confirmed"):
        await answer
    assert chat.sender.in_flight == 0
