"""The outbox: what the user typed is kept on disk and sent in order, whatever the connection.

A typed message is first written to the encrypted history as ``pending`` (with a client
message id it keeps for good), then sent through the chat session whenever the stream is up,
in the order typed. Its id never changes across retries, so a retry after a lost answer is
stored once by the server (it deduplicates on the sender device and that id) and shown once
by recipients (they drop a message id they have seen).

Outcomes: accepted -> ``sent`` with the server's time; the connection ended before the answer
-> nothing to do here: the Sender writes the very request again once the stream is back and the
answer settles the same future (the message stays in flight, so this outbox never submits it a
second time meanwhile); ``Unavailable`` (the Sender gave up, or the ending was final, e.g. an
expired session) -> stays ``pending`` and goes again, same id, after the reconnect; rate
limited -> again after the server's ``retry_after``; any other refusal (not a member, a
contact's identity key changed, too large) -> ``failed`` with the reason, text kept, until
:meth:`Outbox.retry`.
Nothing typed is lost: the process may even stop, the next start sends what is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

from securechat.client.events import Target
from securechat.client.history import Entry, History, HistoryStore
from securechat.client.rpc.sender import Receipt
from securechat.client.session import ChatSession
from securechat.errors import ResourceExhausted, SecureChatError, Unavailable

Changed = Callable[[Entry, SecureChatError | None], None]
"""Told every new or changed outbox entry (with the error that failed it, if one did)."""


def _ignore(entry: Entry, error: SecureChatError | None) -> None:
    return None


class Outbox:
    """Sends the history's pending messages through ``session``, in order, when online."""

    def __init__(self, history: History, session: ChatSession, changed: Changed = _ignore) -> None:
        self.history = history
        self.session = session
        self.changed = changed
        self.me = session.vault.account.address.user
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    async def add(self, target: Target, text: str) -> Entry:
        """Keep ``text`` for ``target`` (on disk, before anything else) and queue it."""
        entry = await self.history.run(lambda s: s.add_outgoing(target, self.me, text))
        self.changed(entry, None)
        self.kick()
        return entry

    async def retry(self, conversation: str) -> list[Entry]:
        """Queue every failed message of ``conversation`` again, with its own id."""

        def requeue(store: HistoryStore) -> list[Entry]:
            again = [store.mark_pending(e.message_id) for e in store.failed(conversation)]
            return [e for e in again if e is not None]

        entries = await self.history.run(requeue)
        for entry in entries:
            self.changed(entry, None)
        self.kick()
        return entries

    def kick(self) -> None:
        """Look at the outbox now (something was added, or the stream is back)."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: whenever kicked and online, send what is pending, in order."""
        self._wake.set()  # whatever a previous run left pending
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self.session.link.online.is_set():
                    await self._send_pending()
        finally:
            for timer in self._timers:
                timer.cancel()

    async def _send_pending(self) -> None:
        pending = await self.history.run(HistoryStore.pending)
        for entry in pending:
            if entry.message_id in self._in_flight:
                continue
            try:
                answer = await self.session.submit(
                    entry.target, entry.body, message_id=entry.message_id
                )
            except Unavailable:
                return  # the stream went down: the next "online" kicks us again
            except SecureChatError as exc:
                await self._failed(entry, exc)
                continue
            self._in_flight.add(entry.message_id)
            answer.add_done_callback(functools.partial(self._answered, entry))

    def _answered(self, entry: Entry, answer: asyncio.Future[Receipt]) -> None:
        """Record the answer. The entry stays in flight until its new state is in the history:
        until then the history still says ``pending``, and a look at the outbox meanwhile would
        send it again."""
        if answer.cancelled():
            self._in_flight.discard(entry.message_id)
            return
        error = answer.exception()
        task: asyncio.Task[None]
        if error is None:
            task = asyncio.get_running_loop().create_task(self._sent(entry, answer.result()))
        elif isinstance(error, ResourceExhausted | Unavailable):
            self._in_flight.discard(entry.message_id)  # still pending in the history: again...
            if isinstance(error, ResourceExhausted):
                self._later(error.retry_after or 1.0)  # ...after the server's retry_after
            return  # ...or, unconfirmed, with the same id once the stream is back
        elif isinstance(error, SecureChatError):
            task = asyncio.get_running_loop().create_task(self._failed(entry, error))
        else:
            failure = SecureChatError(f"not sent: {error!r}")
            task = asyncio.get_running_loop().create_task(self._failed(entry, failure))
        task.add_done_callback(_log_nothing)

    def _later(self, delay_s: float) -> None:
        def due() -> None:
            self._timers.discard(timer)
            self.kick()

        timer = asyncio.get_running_loop().call_later(delay_s, due)
        self._timers.add(timer)

    async def _sent(self, entry: Entry, receipt: Receipt) -> None:
        await self._settle(entry, lambda s: s.mark_sent(entry.message_id, receipt.server_time_ms))

    async def _failed(self, entry: Entry, error: SecureChatError) -> None:
        await self._settle(entry, lambda s: s.mark_failed(entry.message_id, error.message), error)

    async def _settle(
        self,
        entry: Entry,
        mark: Callable[[HistoryStore], Entry | None],
        error: SecureChatError | None = None,
    ) -> None:
        """Record the entry's outcome in the history; it leaves the in-flight set either way."""
        try:
            stored = await self.history.run(mark)
        finally:
            self._in_flight.discard(entry.message_id)
        if stored is not None:
            self.changed(stored, error)


def _log_nothing(task: asyncio.Task[None]) -> None:
    """Retrieve a bookkeeping task's outcome (a history write that failed is not fatal)."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
