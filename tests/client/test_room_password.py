"""The chat's /password and /upgrade commands (chat_commands.py) on the real test server: a room
password set, changed and removed by an admin with signed SET_POLICY events, asked twice; a
non-admin is refused before any password is typed, and nothing changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from securechat.client.chat_engine import ChatEngine
from securechat.client.config import ClientConfig
from securechat.client.events import Target
from securechat.client.passwords import ROOM_PASSWORD_ENV
from securechat.crypto.roster import Roster
from securechat.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from tests.client.conftest import MakeDevice
from tests.client.live import Device
from tests.client.rooms_support import Recorder
from tests.client.tui_support import client_for

ROOM = "den"


def _engine(device: Device, tmp_path: Path, room: str = ROOM) -> tuple[ChatEngine, Recorder]:
    view = Recorder(room)
    return ChatEngine(client_for(device, tmp_path / device.user), ClientConfig(), view), view


def _says(password: str) -> Callable[[], Awaitable[str]]:
    async def ask() -> str:
        return password

    return ask


async def _roster(device: Device, room: str = ROOM) -> Roster:
    roster = await device.messenger().rosters.sync(room)
    assert roster is not None
    return roster


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOM_PASSWORD_ENV, raising=False)


async def test_an_admin_sets_changes_and_removes_the_password(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob, carol = [await make_device(n) for n in ("alice", "bob", "carol")]
    await alice.messenger().actions.create(ROOM)
    engine, view = _engine(alice, tmp_path)

    view.answers = ["first-pass-1", "first-pass-1"]
    await engine.handle("/password")
    assert view.asked == ["new password for #den", "repeat the new password for #den"]
    roster = await _roster(alice)
    assert roster.policy.protected
    assert "#den: alice set a new room password" in view.lines
    with pytest.raises(PermissionDenied, match="wrong password"):
        await carol.messenger().actions.join(ROOM, _says("not-the-pass"))
    assert await carol.messenger().actions.join(ROOM, _says("first-pass-1")) is not None

    # typed differently the second time: refused, nothing changes
    view.answers = ["second-pass-2", "second-typo-2"]
    before = (await _roster(alice)).version
    with pytest.raises(InvalidArgument, match="the two passwords differ"):
        await engine.handle("/password")
    view.answers = []
    with pytest.raises(InvalidArgument, match="no password given"):
        await engine.handle("/password")  # the prompt cancelled
    assert (await _roster(alice)).version == before

    # changed: the old one no longer opens the room
    view.answers = ["second-pass-2", "second-pass-2"]
    await engine.handle("/password")
    with pytest.raises(PermissionDenied, match="wrong password"):
        await bob.messenger().actions.join(ROOM, _says("first-pass-1"))

    # removed: open again, anyone joins without a password
    await engine.handle("/password --remove")
    assert not (await _roster(alice)).policy.protected
    assert "#den: alice opened the room (no password)" in view.lines

    async def never() -> str:
        raise AssertionError("an open room asks for no password")

    assert await bob.messenger().actions.join(ROOM, never) is not None
    with pytest.raises(InvalidArgument, match="open already"):
        await engine.handle("/password --remove")


async def test_password_by_a_non_admin_is_refused_before_any_prompt(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    await alice.messenger().actions.create(ROOM)

    async def never() -> str:
        raise AssertionError("an open room asks for no password")

    await bob.messenger().actions.join(ROOM, never)
    before = (await _roster(alice)).version
    engine, view = _engine(bob, tmp_path)
    view.answers = ["bobs-pass-1", "bobs-pass-1"]
    with pytest.raises(PermissionDenied, match=r"only an admin of #den .*\(alice\)"):
        await engine.handle("/password")
    with pytest.raises(PermissionDenied, match="only an admin"):
        await engine.handle("/password --remove")
    assert view.asked == []  # refused before a password was typed for nothing
    after = await _roster(alice)
    assert after.version == before and not after.policy.protected

    # a private conversation is not a room; a legacy room has no signed roster to change
    view.current = Target.user("alice")
    with pytest.raises(InvalidArgument, match="name a room"):
        await engine.handle("/password")
    await bob.api.create_room("old-room")  # a room from before signed rosters
    view.current = Target.room("old-room")
    with pytest.raises(FailedPrecondition, match="no signed member list"):
        await engine.handle("/password")


async def test_upgrade_command_in_a_protected_legacy_room_asks_for_a_password(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice = await make_device("alice")
    await alice.api.create_room("vault", "old-room-pass")  # from before signed rosters
    engine, view = _engine(alice, tmp_path, "vault")
    view.answers = ["new-vault-pass", "other-vault-pass"]
    with pytest.raises(InvalidArgument, match="the two passwords differ"):
        await engine.handle("/upgrade")
    assert (await alice.api.get_roster("vault")).events == []  # nothing changed
    view.answers = ["new-vault-pass", "new-vault-pass"]
    await engine.handle("/upgrade")
    roster = await _roster(alice, "vault")
    assert roster.policy.protected and list(roster.members) == ["alice"]
    assert any("alice made #vault end-to-end verified" in line for line in view.lines)
