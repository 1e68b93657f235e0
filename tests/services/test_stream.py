"""A live stream's queue, cursor and catch-up, without a server."""

from __future__ import annotations

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    PeerCertificate,
    Role,
    Session,
)
from securechat.errors import SlowConsumer, Unavailable
from securechat.services.acks import AckBatcher
from securechat.services.stream import StreamSession
from securechat.storage.memory import MemoryStore

BOB = DeviceRef("bob", 1)
SESSION = Session(b"h", "bob", 1, Role.USER, 10**13, 0, "CN=bob")


def entry(seq: int) -> MailboxEntry:
    room = Conversation(ConversationKind.ROOM, "lobby")
    return MailboxEntry(BOB, seq, f"m{seq}", DeviceRef("alice", 1), room, b"x", 1)


def stream(store: MemoryStore, bound: int = 10) -> StreamSession:
    return StreamSession(
        SESSION, store, AckBatcher(store), resume_after=0, bound=bound, page=100, peer="p",
        certificate=PeerCertificate("CN=bob", "bob", "", ""), connected_ms=0,
    )  # fmt: skip


class FailingStore(MemoryStore):
    async def fetch(self, device: DeviceRef, after_seq: int, limit: int) -> list[MailboxEntry]:
        raise Unavailable("database unreachable")


async def test_a_failing_mailbox_read_ends_the_stream_so_the_client_reconnects() -> None:
    session = stream(FailingStore())
    await session.pump()
    assert isinstance(session.ending, Unavailable)
    assert "reconnect" in session.ending.message


async def test_live_entries_in_order_are_queued_and_a_full_queue_ends_the_stream() -> None:
    session = stream(MemoryStore(), bound=3)
    session.cursor.replaying = False
    for seq in (1, 2, 2, 3):
        session.deliver(entry(seq))
    assert [e.seq for e in session.queue if isinstance(e, MailboxEntry)] == [1, 2, 3]
    session.deliver(entry(4))  # past the bound
    assert isinstance(session.ending, SlowConsumer)
    assert await session.next_batch() is None
