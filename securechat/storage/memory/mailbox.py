"""Mailboxes in memory: the group commit, fetch, acks, expiry and send records."""

from __future__ import annotations

from collections.abc import Sequence

from securechat.domain.mailbox import (
    NO_LIMITS,
    ZERO,
    Committed,
    MailboxLimits,
    Usage,
    plan,
    send_key,
)
from securechat.domain.model import (
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PendingSend,
)
from securechat.storage import rules
from securechat.storage.memory.room_log import post_room_messages
from securechat.storage.memory.state import MemoryState
from securechat.storage.rules import page_end


class MailboxMemory(MemoryState):
    """Per-device mailboxes, the group commit, acks and expiry."""

    # ---- mailboxes ------------------------------------------------------------------------
    async def enqueue(
        self,
        message_id: str,
        sender: DeviceRef,
        sent_at_ms: int,
        items: Sequence[OutgoingCiphertext],
    ) -> list[MailboxEntry]:
        send = PendingSend(message_id, sender, sent_at_ms, tuple(items))
        return (await self.enqueue_batch([send]))[0]

    async def enqueue_batch(self, sends: Sequence[PendingSend]) -> list[list[MailboxEntry]]:
        return [done.entries for done in await self.commit_sends(sends, NO_LIMITS, 0)]

    async def commit_sends(
        self, sends: Sequence[PendingSend], limits: MailboxLimits, dedup_since_ms: int
    ) -> list[Committed]:
        devices = list(rules.recipient_counts(sends))
        usage = {d: self._usage(d) for d in devices}
        shares: dict[tuple[DeviceRef, str], Usage] = {}
        for device in devices:
            for entry in self._mailbox(device).values():
                share = (device, entry.sender.user)
                shares[share] = shares.get(share, ZERO).plus(1, len(entry.ciphertext))
        seen = {
            key: found
            for send in sends
            if (key := send_key(send)) is not None
            and (found := self._sent.get(key)) is not None
            and found[1] >= dedup_since_ms
        }
        for send in sends:
            if send.room_post is not None and send.room_post.room not in self._rooms:
                raise rules.room_not_found(send.room_post.room)
        decided = plan(sends, limits, usage, shares, seen)
        states = {ref: self._device(ref) for ref in rules.recipient_counts(decided.stored)}
        results: list[list[MailboxEntry]] = []
        for send in decided.stored:
            entries = []
            for item in send.items:
                state = states[item.recipient]
                state.last_seq += 1
                entry = MailboxEntry(
                    recipient=item.recipient,
                    seq=state.last_seq,
                    message_id=send.message_id,
                    sender=send.sender,
                    conversation=item.conversation,
                    ciphertext=bytes(item.ciphertext),
                    sent_at_ms=send.sent_at_ms,
                )
                state.mailbox[entry.seq] = entry
                entries.append(entry)
            results.append(entries)
        for record, message_id, sent_at_ms in decided.records:
            self._sent[record] = (message_id, sent_at_ms)
        return decided.outcomes(results, post_room_messages(self, decided.stored))

    async def mailbox_usage(self, device: DeviceRef) -> Usage:
        return self._usage(device)

    async def prune_sent(self, before_ms: int, keep_per_device: int) -> int:
        doomed = {key for key, (_, at) in self._sent.items() if at < before_ms}
        by_device: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for key, (_, at) in self._sent.items():
            by_device.setdefault(key[:2], []).append((at, key[2]))
        for (user, device_id), found in by_device.items():
            for _, client_id in sorted(found, reverse=True)[keep_per_device:]:
                doomed.add((user, device_id, client_id))
        for key in doomed:
            del self._sent[key]
        return len(doomed)

    async def fetch(
        self, device: DeviceRef, after_seq: int, limit: int, max_bytes: int = 0
    ) -> list[MailboxEntry]:
        rules.check_limit(limit)
        state = self._devices.get(device)
        if state is None:
            return []
        found = [e for seq, e in state.mailbox.items() if seq > after_seq][:limit]
        if max_bytes and found:
            end = page_end([(e.seq, len(e.ciphertext)) for e in found], max_bytes)
            found = [e for e in found if e.seq <= end]
        return found

    async def ack(self, device: DeviceRef, up_to_seq: int) -> int:
        state = self._device(device)
        if up_to_seq > state.last_seq:
            raise rules.ack_beyond_last(up_to_seq, state.last_seq)
        doomed = [seq for seq in state.mailbox if seq <= up_to_seq]
        for seq in doomed:
            del state.mailbox[seq]
        return len(doomed)

    async def ack_many(
        self, acks: Sequence[tuple[DeviceRef, int]], limit: int = 0
    ) -> list[tuple[DeviceRef, int]]:
        rest: list[tuple[DeviceRef, int]] = []
        deleted = 0
        for device, up_to_seq in sorted(dict(acks).items()):
            budget = limit - deleted
            if limit and budget <= 0:
                rest.append((device, up_to_seq))
                continue
            state = self._devices.get(device)
            if state is None:
                continue
            doomed = [seq for seq in state.mailbox if seq <= up_to_seq]
            if limit and len(doomed) >= budget:
                doomed = doomed[:budget]
                rest.append((device, up_to_seq))
            for seq in doomed:
                del state.mailbox[seq]
            deleted += len(doomed)
        return rest

    async def last_seq(self, device: DeviceRef) -> int:
        return self._device(device).last_seq

    async def pending_count(self, device: DeviceRef, after_seq: int) -> int:
        state = self._devices.get(device)
        return 0 if state is None else sum(1 for seq in state.mailbox if seq > after_seq)

    async def expire_messages(self, before_ms: int) -> int:
        removed = 0
        for log in self._room_logs.values():
            old = [seq for seq, entry in log.items() if entry.sent_at_ms < before_ms]
            for seq in old:
                del log[seq]
            removed += len(old)
        for state in self._devices.values():
            doomed = [s for s, e in state.mailbox.items() if e.sent_at_ms < before_ms]
            for seq in doomed:
                del state.mailbox[seq]
            removed += len(doomed)
        return removed
