"""The chat's input language: slash commands, `@user text` and plain text, parsed purely."""

from __future__ import annotations

from dataclasses import dataclass

from securechat.errors import InvalidArgument

COMMANDS: dict[str, tuple[str, str]] = {
    "help": ("", "show this help"),
    "join": ("ROOM", "join a room and switch to it"),
    "create": ("ROOM [--password]", "create a room (optionally password protected)"),
    "leave": ("[ROOM]", "leave the current room (or ROOM)"),
    "rooms": ("", "list rooms"),
    "members": ("[ROOM]", "list the members of the current room (or ROOM)"),
    "remove": ("USER", "remove USER from the current room (admins; a signed change)"),
    "admin": ("USER", "make USER an admin of the current room (admins)"),
    "unadmin": ("USER", "USER is no longer an admin of the current room (admins)"),
    "password": (
        "[--remove]",
        "set or change the current room's password, asked twice (admins); --remove opens "
        "the room again",
    ),
    "upgrade": (
        "",
        "make the current room (one from before signed member lists) end-to-end verified; "
        "a protected one asks for a room password",
    ),
    "who": ("", "who is online"),
    "w": ("USER TEXT", "private message (also /whisper USER TEXT and @USER TEXT)"),
    "switch": ("ROOM|@USER", "send plain text to another room or person"),
    "verify": (
        "USER",
        "show the safety number with USER (the NEW key's after a change) and mark "
        "it verified if it matches",
    ),
    "trust": ("USER", "accept USER's new account key without comparing safety numbers"),
    "reject": ("USER", "refuse USER's new account key: keep the old key and its sessions"),
    "devices": ("[link | remove N]", "list your devices, link a new one, or remove one"),
    "search": ("WORDS", "search the local history of every conversation"),
    "retry": ("", "send the failed messages of this conversation again"),
    "quit": ("", "leave the chat (also Ctrl+D or Ctrl+C)"),
}
# Commands whose argument is the rest of the line, taken as text.
TEXT_COMMANDS = {"search"}
ALIASES = {"whisper": "w", "msg": "w", "exit": "quit", "q": "quit", "h": "help", "?": "help"}
ARGUMENTS = {
    "join": (1, 1),
    "create": (1, 2),
    "leave": (0, 1),
    "members": (0, 1),
    "remove": (1, 1),
    "admin": (1, 1),
    "unadmin": (1, 1),
    "switch": (1, 1),
    "verify": (1, 1),
    "trust": (1, 1),
    "reject": (1, 1),
    "devices": (0, 2),
    "password": (0, 1),
}


@dataclass(frozen=True)
class Command:
    """A parsed input line: ``name`` is a command, or "say" for plain text."""

    name: str
    args: tuple[str, ...] = ()
    text: str = ""


def parse(line: str) -> Command | None:
    """Parse one input line (None for a blank line); InvalidArgument says what is wrong."""
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.startswith("@"):
        user, _, text = stripped[1:].partition(" ")
        return _whisper(user, text)
    if not stripped.startswith("/") or stripped.startswith("//"):
        return Command("say", text=line.removeprefix("/") if stripped.startswith("//") else line)
    word, _, rest = stripped[1:].partition(" ")
    name = ALIASES.get(word.lower(), word.lower())
    if name not in COMMANDS:
        raise InvalidArgument(f"unknown command /{word}: type /help for the list")
    if name == "w":
        user, _, text = rest.strip().partition(" ")
        return _whisper(user, text)
    if name in TEXT_COMMANDS:
        if not rest.strip():
            raise InvalidArgument(f"usage: /{name} {COMMANDS[name][0]}")
        return Command(name, text=rest.strip())
    args = tuple(rest.split())
    low, high = ARGUMENTS.get(name, (0, 0))
    if not low <= len(args) <= high:
        usage, _ = COMMANDS[name]
        raise InvalidArgument(f"usage: /{name} {usage}".rstrip())
    if name == "create" and len(args) == 2 and args[1] != "--password":
        raise InvalidArgument("usage: /create ROOM [--password]")
    if name == "password" and args not in ((), ("--remove",)):
        raise InvalidArgument("usage: /password [--remove]")
    if (
        name == "devices"
        and args not in ((), ("link",))
        and not (len(args) == 2 and args[0] == "remove" and args[1].isdigit())
    ):
        raise InvalidArgument("usage: /devices [link | remove N]")
    return Command(name, args)


def _whisper(user: str, text: str) -> Command:
    if not user or not text.strip():
        raise InvalidArgument("usage: /w USER TEXT (or @USER TEXT)")
    return Command("w", (user,), text.strip())


def help_lines() -> list[str]:
    lines = ["commands (plain text goes to the current room or person):"]
    for name, (usage, summary) in COMMANDS.items():
        lines.append(f"  /{name} {usage}".ljust(30) + summary)
    lines.append("  //text".ljust(30) + "send text that starts with a slash")
    return lines
