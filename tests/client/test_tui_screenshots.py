"""The text screenshots in docs/client.md are made here, from the real app, so they stay true.

Each capture sits in docs/client.md between ``<!-- screenshot:NAME -->`` markers. The test
renders the same screen again and fails on any difference; run it with
``SECURECHAT_UPDATE_SCREENSHOTS=1`` to rewrite the captures after a deliberate change.
"""

from __future__ import annotations

import difflib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securechat.client.chat_engine import HISTORY_FILE
from securechat.client.config import ClientConfig, HistoryConfig
from securechat.client.events import MessageEvent, Target
from securechat.client.history import HistoryStore
from tests.client.conftest import MakeDevice
from tests.client.tui_support import chat_app, client_for, screen_text, until

DOCS = Path(__file__).resolve().parents[2] / "docs" / "client.md"
SIZE = (100, 24)
DAY = 1_741_944_600_000  # 2025-03-14 09:30 UTC: not today, so dates are shown


def _at(minutes: int) -> int:
    return DAY + minutes * 60_000


def seed(path: Path, key: bytes) -> None:
    """A morning of conversations, at fixed times."""
    store = HistoryStore.open(path, key)
    lobby, dev = Target.room("lobby"), Target.room("dev")
    said = [
        ("bob", lobby, "morning! the 2.4 deploy went out at 09:00", 0),
        ("carol", lobby, "anyone seen the latency graphs?\nthey look flat since the deploy", 2),
        ("bob", lobby, "@alice can you check the status page?", 5),
        ("carol", dev, "review please: the retry patch", 7),
        ("bob", Target.user("bob"), "the db password rotated, new one in the vault", 9),
        ("bob", Target.user("bob"), "ping me when you are in", 10),
        ("carol", Target.user("carol"), "lunch at 12?", 11),
    ]
    for number, (sender, target, text, minutes) in enumerate(said):
        store.add_received(MessageEvent(f"m{number}", sender, 1, target, text, _at(minutes)),
                           "alice")  # fmt: skip
    mine = store.add_outgoing(Target.room("lobby"), "alice", "on it, looking now", at_ms=_at(6))
    store.mark_sent(mine.message_id, _at(6))
    store.mark_read("#lobby")
    store.mark_read("@carol")
    store.close()


def capture(name: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(rf"<!-- screenshot:{name} -->\n```text\n(.*?)```\n<!-- /screenshot -->",
                      text, re.DOTALL)  # fmt: skip
    assert found is not None, f"docs/client.md has no screenshot:{name} block"
    return found.group(1)


def check(name: str, shown: str) -> None:
    shown = "\n".join(line.rstrip() for line in shown.splitlines()) + "\n"
    if os.environ.get("SECURECHAT_UPDATE_SCREENSHOTS") == "1":
        text = DOCS.read_text(encoding="utf-8")
        block = f"<!-- screenshot:{name} -->\n```text\n{shown}```\n<!-- /screenshot -->"
        pattern = rf"<!-- screenshot:{name} -->\n```text\n.*?```\n<!-- /screenshot -->"
        DOCS.write_text(re.sub(pattern, lambda _m: block, text, flags=re.DOTALL), "utf-8")
        return
    documented = capture(name)
    lines = difflib.unified_diff(
        documented.splitlines(), shown.splitlines(), "docs/client.md", "the app", lineterm=""
    )
    diff = "\n".join(lines)
    assert shown == documented, (
        f"the {name} screenshot in docs/client.md is out of date (rerun with "
        f"SECURECHAT_UPDATE_SCREENSHOTS=1 to rewrite it):\n{diff}"
    )


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_the_main_screen_matches_the_docs(make_device: MakeDevice, tmp_path: Path) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    await bob.start()
    # an ordinary day: the lobby was made end-to-end verified long ago (its notices are not
    # on this screen), and bob is in it again
    await alice.messenger().upgrades.open("lobby")
    await bob.watch.until(lambda: "#lobby: bob joined" in bob.watch.notices())
    await alice.messenger().rosters.sync("lobby")
    client = client_for(alice, tmp_path, "chat.example.org:50051")
    seed(client.profile.directory / HISTORY_FILE, alice.vault.history_key())
    keep = ClientConfig(history=HistoryConfig(retention_days=0))  # the fixed day stays
    app = chat_app(alice, tmp_path, keep, server="chat.example.org:50051")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.status.state == "online")
        await until(lambda: "2 members, 2 online" in screen_text(app))
        await until(lambda: "looking now" in screen_text(app) and "@bob (2)" in screen_text(app))
        await pilot.pause()
        check("main", screen_text(app))

        for char in "/search deploy":
            await pilot.press("space" if char == " " else char)
        await pilot.press("enter")
        await until(lambda: "message(s) with" in screen_text(app))
        await pilot.pause()
        check("search", screen_text(app))
