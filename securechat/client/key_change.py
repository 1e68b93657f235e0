"""Key changes as an explicit decision: what the user is shown and what each answer does.

One flow, the same words everywhere: the command line (`securechat keys ...`) and the chat
(`/verify`, `/trust`, `/reject`) both call :func:`decide`, which prints :func:`lines` first.

When a contact's account key changes, sending to them is blocked until the user decides:

- **verify**: the user compared the safety number of the *new* key with the contact (in person
  or on a call) and it matches: the new key is accepted and marked verified;
- **trust**: accept the new key without comparing (unverified);
- **reject**: keep the old key and the sessions made under it; the new key stays refused (shown
  again, it is reported but no longer blocks).

Before any of them the contact's account is fetched again, so the decision is about the key the
server shows *now*, and the number shown is the one of the key that will be accepted; if the key
changes again between showing and accepting, the accept is refused (the user must look again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from securechat.client.events import check_user
from securechat.client.vault import Vault
from securechat.client.verified import AccountBook
from securechat.crypto.safety_number import format_safety_number
from securechat.crypto.trust import TrustLevel
from securechat.errors import InvalidArgument

LEVELS = {
    TrustLevel.UNVERIFIED: "unverified",
    TrustLevel.VERIFIED: "verified",
    TrustLevel.CHANGED: "CHANGED: not accepted yet",
}


@dataclass(frozen=True)
class KeyStatus:
    """A contact's key as the user should see it before deciding."""

    user: str
    level: TrustLevel
    number: str  # 60 digits: the safety number of the displayed key (the new one after a change)
    verified_before: bool  # the previously accepted key was verified

    @property
    def changed(self) -> bool:
        return self.level is TrustLevel.CHANGED


COMMANDS = {
    "cli": {
        "look": "securechat keys safety-number {user}",
        "verify": "securechat keys verify {user}",
        "trust": "securechat keys trust {user}",
        "reject": "securechat keys reject {user}",
    },
    "chat": {
        "look": "/verify {user}",
        "verify": "/verify {user}",
        "trust": "/trust {user}",
        "reject": "/reject {user}",
    },
}


def blocked_hint(user: str, verified: bool, ui: str) -> str:
    """What the user is told when a key change blocks sending (``ui``: "cli" or "chat")."""
    say = {k: v.format(user=user) for k, v in COMMANDS[ui].items()}
    was = "verified " if verified else ""
    return (
        f"the account key of {user} changed: sending to {user} is blocked until you decide. "
        f"Compare the new safety number with {user} ({say['look']}), then accept it "
        f"({say['verify']} if it matches, {say['trust']} without comparing) or keep the old "
        f"{was}key ({say['reject']})"
    )


async def look(accounts: AccountBook, user: str) -> KeyStatus:
    """Fetch ``user``'s account again and return what to show (saved: a change seen is kept)."""
    check_user(user)
    vault = accounts.vault
    if user == vault.account.address.user:
        raise InvalidArgument("that is you: your own account key is never taken from the server")
    await accounts.refresh(user)
    return status(vault, user)


def status(vault: Vault, user: str) -> KeyStatus:
    account = vault.account
    level = account.trust_level(user)
    if level is TrustLevel.UNKNOWN:
        raise InvalidArgument(f"no key known for {user}: they have not published one yet")
    return KeyStatus(user, level, account.safety_number(user), account.pinned_verified(user))


def lines(shown: KeyStatus) -> list[str]:
    """The safety number as it is shown before every decision (CLI and chat alike)."""
    digits = format_safety_number(shown.number).split(" ")
    out = [
        f"safety number with {shown.user} ({LEVELS[shown.level]}):",
        "  " + " ".join(digits[:6]),
        "  " + " ".join(digits[6:]),
    ]
    if shown.changed:
        out.append(
            f"the account key of {shown.user} changed: this is the number of the NEW key, the one "
            "that would be accepted"
        )
    return out


def verify(vault: Vault, shown: KeyStatus) -> str:
    """The user compared ``shown.number`` with the contact and it matches."""
    vault.account.accept_identity(shown.user, shown.number, verified=True)
    vault.save()
    if shown.changed:
        return (
            f"accepted the new key of {shown.user} as verified: sending to {shown.user} works again"
        )
    return f"{shown.user} is verified"


def trust(vault: Vault, shown: KeyStatus) -> str:
    """Accept the new key without comparing (nothing to do when the key did not change)."""
    if not shown.changed:
        return f"the key of {shown.user} has not changed: nothing to accept"
    vault.account.accept_identity(shown.user, shown.number, verified=False)
    vault.save()
    return f"accepted the new key of {shown.user} (unverified): sending to {shown.user} works again"


def reject(vault: Vault, shown: KeyStatus) -> str:
    """Keep the old key and its sessions; the new key stays refused."""
    if not shown.changed:
        raise InvalidArgument(
            f"the key of {shown.user} has not changed: there is nothing to reject"
        )
    vault.account.reject_identity(shown.user)
    vault.save()
    return (
        f"kept the old key of {shown.user}; the new key is refused. Messages go to {shown.user}'s "
        "devices under the old key only, if any are left"
    )


Show = Callable[[str], None]
Confirm = Callable[[str], Awaitable[bool]]
ACTIONS = ("look", "verify", "trust", "reject")


async def decide(
    accounts: AccountBook, action: str, user: str, show: Show, confirm: Confirm, ui: str
) -> KeyStatus:
    """The whole flow of one answer (``action``: look, verify, trust or reject): fetch the key
    again, show its safety number, then act on exactly that key."""
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown key decision {action!r}")
    shown = await look(accounts, user)
    for line in lines(shown):
        show(line)
    vault = accounts.vault
    if action == "look":
        if shown.changed:
            show(blocked_hint(user, shown.verified_before, ui))
    elif action == "verify":
        if await confirm("Do the numbers match on both sides?"):
            show(verify(vault, shown))
        else:
            show(f"{user} not verified: nothing changed")
    elif action == "trust":
        show(trust(vault, shown))
    else:
        show(reject(vault, shown))
    return shown
