"""What the client layer reports to a UI: messages, notices and connection state (plain data)."""

from __future__ import annotations

from dataclasses import dataclass

from securechat.domain.names import check_name
from securechat.errors import InvalidArgument
from securechat_proto.v1 import common_pb2


@dataclass(frozen=True)
class Target:
    """A conversation: a room, or a private conversation with ``name`` (kind "user")."""

    kind: str  # "room" | "user"
    name: str

    @classmethod
    def room(cls, name: str) -> Target:
        return cls("room", name)

    @classmethod
    def user(cls, name: str) -> Target:
        return cls("user", name)

    @classmethod
    def parse(cls, text: str) -> Target:
        """``@bob`` is a private conversation, ``NAME`` (or ``#NAME``) a room."""
        if text.startswith("@"):
            return cls.user(text[1:])
        return cls.room(text.removeprefix("#"))

    def conversation_id(self, me: str) -> str:
        """The associated-data conversation id; the same on both sides."""
        if self.kind == "room":
            return f"room:{self.name}"
        first, second = sorted((me, self.name))
        return f"dm:{first}:{second}"

    def to_proto(self) -> common_pb2.Conversation:
        if self.kind == "room":
            return common_pb2.Conversation(room=self.name)
        return common_pb2.Conversation(user=self.name)

    @classmethod
    def from_proto(cls, message: common_pb2.Conversation) -> Target:
        kind = message.WhichOneof("kind")
        if kind == "room":
            return cls.room(message.room)
        if kind == "user":
            return cls.user(message.user)
        raise InvalidArgument("a delivery without a conversation")

    def __str__(self) -> str:
        return f"@{self.name}" if self.kind == "user" else f"#{self.name}"


def check_user(name: str) -> str:
    """A user name that follows the server's rules (InvalidArgument otherwise)."""
    return check_name(name, what="username")


def check_room(name: str) -> str:
    return check_name(name, what="room name")


@dataclass(frozen=True)
class MessageEvent:
    message_id: str
    sender: str
    device_id: int
    target: Target
    text: str
    sent_at_ms: int
    reply_to: str = ""
    # Whether the sending device is certified by its account key (None: a legacy contact).
    certified: bool | None = None


@dataclass(frozen=True)
class UndecryptableEvent:
    message_id: str
    sender: str
    device_id: int
    target: Target
    sent_at_ms: int


@dataclass(frozen=True)
class IdentityEvent:
    """A contact's account key changed (or was seen changed): sending to them is blocked until
    the user decides (verify, trust or reject: client/key_change.py)."""

    user: str
    verified: bool
    at_ms: int


@dataclass(frozen=True)
class PresenceEvent:
    user: str
    online: bool
    at_ms: int


@dataclass(frozen=True)
class MembershipEvent:
    room: str
    user: str
    kind: str  # joined | left (device and key changes come as notices from the account book)
    at_ms: int


@dataclass(frozen=True)
class NoticeEvent:
    text: str
    warning: bool = False
    target: Target | None = None  # the conversation it concerns, when one does


@dataclass(frozen=True)
class ConnectionEvent:
    state: str  # connecting | online | reconnecting | offline
    detail: str = ""
    code: str = ""  # the error code of what ended the connection, if an error did
    retry_in_s: float = 0.0  # reconnecting: seconds until the next try


Event = (
    MessageEvent
    | UndecryptableEvent
    | IdentityEvent
    | PresenceEvent
    | MembershipEvent
    | NoticeEvent
    | ConnectionEvent
)
