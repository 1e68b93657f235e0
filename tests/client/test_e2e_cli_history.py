"""Scripts against a real server process: send --stdin/--batch, history and search, limits."""

from __future__ import annotations

import json

import pytest

from securechat.client.vault import Vault
from tests.client.conftest import User

pytestmark = pytest.mark.e2e


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_send_stdin_sends_every_line_in_order_and_history_keeps_them(make_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("alice"), make_user("bob")
    alice.run("register", "alice")
    bob.run("register", "bob")
    lines = [f"line {i}" for i in range(20)]
    sent = alice.run("send", "--stdin", "--json", "--room", "lobby", stdin="\n".join(lines) + "\n")
    results = _lines(sent.stdout)
    assert [r["line"] for r in results] == list(range(1, 21))
    assert all(r["ok"] and r["conversation"] == "#lobby" for r in results)
    received = [m["text"] for m in _lines(bob.run("inbox", "--json").stdout)]
    assert received == lines

    mine = _lines(alice.run("history", "--json", "#lobby").stdout)
    assert [m["text"] for m in mine] == lines and {m["state"] for m in mine} == {"sent"}
    theirs = _lines(bob.run("history", "--json", "--limit", "3").stdout)
    assert [m["text"] for m in theirs] == lines[-3:]  # inbox stored what it printed
    assert {m["sender"] for m in theirs} == {"alice"}
    found = _lines(bob.run("search", "--json", "line", "7").stdout)
    assert [m["text"] for m in found] == ["line 7"]  # every word must occur
    prefixed = _lines(bob.run("search", "--json", "line", "1").stdout)
    assert len(prefixed) == 11  # the last word is a prefix: 1, 10..19
    assert bob.run("search", "--in", "@alice", "line").stderr.startswith("nothing found")


def test_batch_reports_each_message_and_exits_with_the_first_failure(make_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("ann"), make_user("ben")
    alice.run("register", "ann")
    bob.run("register", "ben")
    batch = "\n".join(json.dumps(item) for item in (
        {"to": "ben", "text": "private one"},
        {"room": "no-such-room", "text": "refused"},
        {"room": "lobby", "text": "room one"},
    )) + "\n"  # fmt: skip
    result = alice.run("send", "--batch", "--json", stdin=batch, ok=False)
    assert result.returncode == 66  # no such room
    outcomes = _lines(result.stdout)
    assert [o["ok"] for o in outcomes] == [True, False, True]
    assert outcomes[1]["code"] == 66
    assert [m["text"] for m in _lines(bob.run("inbox", "--json").stdout)] == [
        "private one",
        "room one",
    ]
    failed = _lines(alice.run("history", "--json", "#no-such-room").stdout)
    assert [(m["text"], m["state"]) for m in failed] == [("refused", "failed")]

    bad = alice.run("send", "--batch", stdin='{"to": "ben"}\n', ok=False)
    assert bad.returncode == 64 and "--batch line 1" in bad.stderr


def test_an_oversized_message_is_invalid_input_not_a_rate_limit(make_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("cat"), make_user("dan")
    alice.run("register", "cat")
    bob.run("register", "dan")
    result = alice.run("send", "--to", "dan", "-", stdin="x" * 70_000, ok=False)
    assert result.returncode == 64
    assert "too long" in result.stderr and "Traceback" not in result.stderr
    near = alice.run("send", "--to", "dan", "-", stdin="y" * 59_000, ok=False)
    assert near.returncode in (0, 64)  # fits or is refused clearly, never a raw gRPC error
    if near.returncode:
        assert "too long" in near.stderr


def test_send_stdin_unlocks_the_keystore_once(
    make_user, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import io

    from securechat.client.cli import dispatch

    alice: User = make_user("eve")
    bob: User = make_user("fay")
    alice.run("register", "eve")
    bob.run("register", "fay")
    for name, value in alice.env().items():
        monkeypatch.setenv(name, value)
    unlocks: list[object] = []
    real = Vault.open.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Vault], *args: object) -> Vault:
        unlocks.append(args)
        return real(cls, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(Vault, "open", classmethod(counting))
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"m{i}\n" for i in range(10))))
    assert dispatch(["send", "--stdin", "--to", "fay"]) == 0
    assert len(unlocks) == 1
    assert capsys.readouterr().err.count("sent to @fay") == 10
