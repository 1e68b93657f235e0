"""The in-memory Store adapter, for unit tests: same semantics as the SQL adapters, no I/O.

Every method validates before it mutates and never awaits in between, so each call is atomic on
one event loop exactly as a database transaction would be. Data lives as long as the object
(``close()`` then ``open()`` keeps it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from securechat.domain.mailbox import (
    NO_LIMITS,
    ZERO,
    Committed,
    MailboxLimits,
    SendKey,
    Usage,
    plan,
    send_key,
)
from securechat.domain.model import (
    AccountRecord,
    Bundle,
    Certification,
    ClaimedBundle,
    Device,
    DeviceRef,
    Invite,
    KemPreKeyRecord,
    LinkSlot,
    LoginRecord,
    MailboxEntry,
    OneTimePreKeyRecord,
    OutgoingCiphertext,
    PendingSend,
    PreKeyCounts,
    Removal,
    Role,
    Room,
    RoomEntry,
    RoomSummary,
    RosterAppend,
    RosterHead,
    Session,
    SignedPreKeyRecord,
    StoreStats,
    User,
)
from securechat.storage import rules
from securechat.storage.migrations import LATEST_VERSION
from securechat.storage.rules import MAX_ROSTER_PAGE, page_end


@dataclass(slots=True)
class _DeviceState:
    device: Device
    last_seq: int = 0
    signed_prekey: SignedPreKeyRecord | None = None
    one_time: dict[int, OneTimePreKeyRecord] = field(default_factory=dict)
    kem: dict[int, KemPreKeyRecord] = field(default_factory=dict)
    mailbox: dict[int, MailboxEntry] = field(default_factory=dict)

    def counts(self) -> PreKeyCounts:
        kem = sum(1 for k in self.kem.values() if not k.last_resort)
        return PreKeyCounts(one_time=len(self.one_time), kem_one_time=kem)


class MemoryStore:
    """Store kept in dictionaries."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._last_device_id: dict[str, int] = {}
        self._sessions: dict[bytes, Session] = {}
        self._devices: dict[DeviceRef, _DeviceState] = {}
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, dict[str, int]] = {}  # room -> user -> joined_at_ms
        self._contacts: set[tuple[str, str]] = set()
        self._revocations: dict[str, tuple[str, str, int]] = {}
        self._invites: dict[bytes, tuple[Invite, str | None]] = {}
        self._accounts: dict[str, AccountRecord] = {}
        self._removals: dict[str, dict[tuple[int, bytes], tuple[bytes, int]]] = {}
        self._links: dict[tuple[str, str, LinkSlot], tuple[bytes, int]] = {}
        self._sent: dict[SendKey, tuple[str, int]] = {}  # -> (message_id, sent_at_ms)
        self._rosters: dict[str, list[tuple[bytes, bytes]]] = {}  # room -> [(event, hash)]
        self._roster_states: dict[str, bytes] = {}
        self._room_logs: dict[str, dict[int, RoomEntry]] = {}
        self._room_heads: dict[str, int] = {}  # room -> last_room_seq
        self._joined_seq: dict[tuple[str, str], int] = {}  # (room, user) -> log head at join
        self._room_acks: dict[tuple[DeviceRef, str], int] = {}

    def __repr__(self) -> str:
        return "MemoryStore()"

    # ---- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def schema_version(self) -> int:
        return LATEST_VERSION

    # ---- accounts -------------------------------------------------------------------------
    async def create_user(
        self,
        name: str,
        password_hash: bytes,
        role: Role,
        now_ms: int,
        login: LoginRecord | None = None,
    ) -> User:
        if name in self._users:
            raise rules.user_taken(name)
        user = User(name, password_hash, role, now_ms, login)
        self._users[name] = user
        self._last_device_id[name] = 0
        return user

    async def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    async def set_user_password_and_role(self, name: str, password_hash: bytes, role: Role) -> None:
        self._users[name] = replace(
            self._user(name), password_hash=password_hash, role=role, login=None
        )

    async def set_login(self, name: str, password_hash: bytes, login: LoginRecord) -> bool:
        user = self._user(name)
        if user.login is not None:
            return False
        self._users[name] = replace(user, password_hash=password_hash, login=login)
        return True

    def _user(self, name: str) -> User:
        if name not in self._users:
            raise rules.user_not_found(name)
        return self._users[name]

    # ---- sessions -------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        self._user(session.user)
        if session.token_hash in self._sessions:
            raise rules.session_exists()
        self._sessions[bytes(session.token_hash)] = session

    async def get_session(self, token_hash: bytes) -> Session | None:
        return self._sessions.get(token_hash)

    async def revoke_session(self, token_hash: bytes) -> bool:
        return self._sessions.pop(token_hash, None) is not None

    async def revoke_user_sessions(self, user: str) -> int:
        return self._drop_sessions(lambda s: s.user == user)

    async def purge_expired_sessions(self, now_ms: int) -> int:
        return self._drop_sessions(lambda s: s.expires_at_ms <= now_ms)

    async def revoke_certificate_sessions(self, fingerprint: str, serial_hex: str) -> list[bytes]:
        doomed = [
            k
            for k, s in self._sessions.items()
            if (fingerprint and s.cert_fingerprint == fingerprint)
            or (serial_hex and s.cert_serial == serial_hex)
        ]
        for key in doomed:
            del self._sessions[key]
        return doomed

    def _drop_sessions(self, doomed: Callable[[Session], bool]) -> int:
        keys = [k for k, s in self._sessions.items() if doomed(s)]
        for key in keys:
            del self._sessions[key]
        return len(keys)

    # ---- registration invites -------------------------------------------------------------
    async def create_invite(self, invite: Invite) -> None:
        if invite.code_hash in self._invites:
            raise rules.invite_taken()
        self._invites[bytes(invite.code_hash)] = (invite, None)

    async def redeem_invite(self, code_hash: bytes, user: str, now_ms: int) -> bool:
        found = self._invites.get(code_hash)
        if found is None or found[1] is not None or found[0].expires_at_ms <= now_ms:
            return False
        self._invites[code_hash] = (found[0], user)
        return True

    async def release_invite(self, code_hash: bytes) -> None:
        found = self._invites.get(code_hash)
        if found is not None:
            self._invites[code_hash] = (found[0], None)

    # ---- devices --------------------------------------------------------------------------
    async def add_device(self, user: str, now_ms: int) -> int:
        self._user(user)
        device_id = self._last_device_id[user] + 1
        self._last_device_id[user] = device_id
        device = Device(user, device_id, now_ms, now_ms, None)
        self._devices[DeviceRef(user, device_id)] = _DeviceState(device)
        return device_id

    async def get_device(self, user: str, device_id: int) -> Device | None:
        state = self._devices.get(DeviceRef(user, device_id))
        return None if state is None else state.device

    async def list_devices(self, user: str) -> list[Device]:
        found = [s.device for ref, s in self._devices.items() if ref.user == user]
        return sorted(found, key=lambda d: d.device_id)

    async def touch_devices(self, seen: Sequence[tuple[DeviceRef, int]]) -> None:
        for device, now_ms in seen:
            state = self._devices.get(device)
            if state is not None and state.device.last_seen_ms < now_ms:
                state.device = replace(state.device, last_seen_ms=now_ms)

    async def remove_device(self, device: DeviceRef) -> bool:
        if self._devices.pop(device, None) is None:
            return False
        for acked in [k for k in self._room_acks if k[0] == device]:
            del self._room_acks[acked]
        for key in [k for k in self._sent if k[:2] == (device.user, device.device_id)]:
            del self._sent[key]
        self._drop_sessions(lambda s: s.user == device.user and s.device_id == device.device_id)
        return True

    def _device(self, device: DeviceRef) -> _DeviceState:
        state = self._devices.get(device)
        if state is None:
            raise rules.device_not_found(device)
        return state

    # ---- key directory --------------------------------------------------------------------
    async def publish_bundle(self, device: DeviceRef, bundle: Bundle) -> PreKeyCounts:
        rules.check_bundle(bundle)
        state = self._device(device)
        state.device = replace(state.device, identity_key=bundle.identity_key)
        if bundle.binding is not None:
            state.device = replace(state.device, binding=bundle.binding)
        state.signed_prekey = bundle.signed_prekey
        state.one_time = {k.key_id: k for k in bundle.one_time_prekeys}
        state.kem = {k.key_id: k for k in rules.bundle_kem_records(bundle)}
        return state.counts()

    async def add_prekeys(
        self,
        device: DeviceRef,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
        signed_prekey: SignedPreKeyRecord | None,
    ) -> PreKeyCounts:
        rules.check_prekeys(one_time, kem)
        state = self._device(device)
        replaces_last_resort = any(k.last_resort for k in kem)
        for otk in one_time:
            if otk.key_id in state.one_time:
                raise rules.existing_key_conflict("one-time", otk.key_id)
        for kem_key in kem:
            old = state.kem.get(kem_key.key_id)
            if old is not None and not (replaces_last_resort and old.last_resort):
                raise rules.existing_key_conflict("KEM", kem_key.key_id)
        if replaces_last_resort:
            state.kem = {i: k for i, k in state.kem.items() if not k.last_resort}
        if signed_prekey is not None:
            state.signed_prekey = signed_prekey
        state.one_time.update((k.key_id, k) for k in one_time)
        state.kem.update((k.key_id, k) for k in kem)
        return state.counts()

    async def claim_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        state = self._devices.get(device)
        if state is None or state.device.identity_key is None or state.signed_prekey is None:
            return None
        kem_one_time = sorted(i for i, k in state.kem.items() if not k.last_resort)
        last_resorts = sorted(i for i, k in state.kem.items() if k.last_resort)
        if kem_one_time:
            kem = state.kem.pop(kem_one_time[0])
        elif last_resorts:
            kem = state.kem[last_resorts[-1]]
        else:
            return None
        one_time = state.one_time.pop(min(state.one_time)) if state.one_time else None
        return ClaimedBundle(device, state.device.identity_key, state.signed_prekey, one_time, kem)

    async def peek_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        state = self._devices.get(device)
        if state is None or state.device.identity_key is None or state.signed_prekey is None:
            return None
        last_resorts = sorted(i for i, k in state.kem.items() if k.last_resort)
        if not last_resorts:
            return None
        kem = state.kem[last_resorts[-1]]
        return ClaimedBundle(device, state.device.identity_key, state.signed_prekey, None, kem)

    async def count_prekeys(self, device: DeviceRef) -> PreKeyCounts:
        return self._device(device).counts()

    # ---- accounts own devices --------------------------------------------------------------
    async def get_account(self, user: str) -> AccountRecord | None:
        return self._accounts.get(user)

    async def get_accounts(self, users: Sequence[str]) -> list[AccountRecord]:
        return [self._accounts[u] for u in sorted(set(users)) if u in self._accounts]

    def _certify(self, device: DeviceRef, certificate: bytes, binding: bytes | None) -> None:
        state = self._device(device)
        state.device = replace(state.device, certificate=certificate)
        if binding is not None:
            state.device = replace(state.device, binding=binding)

    async def create_account(
        self,
        account: AccountRecord,
        device: DeviceRef,
        certificate: bytes,
        binding: bytes,
        now_ms: int,
        *,
        reset: bool = False,
    ) -> list[DeviceRef]:
        user = account.user
        if user in self._accounts and not reset:
            raise rules.account_exists(user)
        self._device(device)  # NotFound before anything changes
        removed: list[DeviceRef] = []
        if reset:
            removed = sorted(r for r in self._devices if r.user == user and r != device)
            for gone in removed:
                await self.remove_device(gone)
            self._removals.pop(user, None)
        self._certify(device, certificate, binding)
        self._accounts[user] = account
        return removed

    async def change_devices(
        self,
        user: str,
        expected_version: int,
        account: AccountRecord,
        certified: Certification | None,
        removed: Removal | None,
        now_ms: int,
    ) -> bool:
        stored = self._accounts.get(user)
        if (
            stored is None
            or stored.list_version != expected_version
            or stored.account_key != account.account_key
        ):
            return False
        if certified is not None:
            self._device(DeviceRef(user, certified.device_id))  # NotFound, nothing changed
            self._certify(DeviceRef(user, certified.device_id), certified.certificate, None)
        if removed is not None:
            key = (removed.device_id, removed.identity_digest)
            self._removals.setdefault(user, {}).setdefault(key, (removed.statement, now_ms))
            await self.remove_device(DeviceRef(user, removed.device_id))
        self._accounts[user] = account
        return True

    async def list_removals(self, user: str) -> list[bytes]:
        found = self._removals.get(user, {})
        ordered = sorted(found.items(), key=lambda kv: (kv[1][1], kv[0][0]))
        return [statement for _, (statement, _) in ordered]

    async def list_room_device_records(self, room: str) -> list[Device]:
        members = self._members.get(room, {})
        refs = sorted(r for r in self._devices if r.user in members)
        return [self._devices[r].device for r in refs]

    # ---- the link relay ------------------------------------------------------------------
    async def put_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, data: bytes, now_ms: int, expires_at_ms: int
    ) -> bool:
        key = (user, relay_id, slot)
        held = self._links.get(key)
        if held is not None and held[1] > now_ms:
            return False
        self._links[key] = (bytes(data), expires_at_ms)
        return True

    async def get_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, now_ms: int
    ) -> bytes | None:
        held = self._links.get((user, relay_id, slot))
        return None if held is None or held[1] <= now_ms else held[0]

    async def purge_link_messages(self, now_ms: int) -> int:
        doomed = [k for k, (_, expires) in self._links.items() if expires <= now_ms]
        for key in doomed:
            del self._links[key]
        return len(doomed)

    # ---- rooms ----------------------------------------------------------------------------
    async def create_room(
        self,
        name: str,
        password_hash: bytes | None,
        creator: str,
        now_ms: int,
        listed: bool = False,
        roster: RosterAppend | None = None,
    ) -> Room:
        self._user(creator)
        if name in self._rooms:
            raise rules.room_taken(name)
        room = Room(name, password_hash, creator, now_ms, listed, roster is not None)
        self._rooms[name] = room
        self._members[name] = {creator: now_ms}
        self._joined_seq[(name, creator)] = 0
        if roster is not None:
            self._rosters[name] = [(roster.event, roster.event_hash)]
            self._roster_states[name] = roster.state
        return room

    # ---- signed rosters and room logs ------------------------------------------------------
    async def roster_head(self, room: str) -> RosterHead | None:
        if room not in self._rooms:
            return None
        events = self._rosters.get(room, [])
        head = events[-1][1] if events else b""
        return RosterHead(len(events), head, self._roster_states.get(room, b""))

    async def append_roster_event(self, change: RosterAppend) -> bool:
        room = change.room
        if room not in self._rooms:
            raise rules.room_not_found(room)
        for joining in (change.only, change.add):
            if joining:
                self._user(joining)
        events = self._rosters.setdefault(room, [])
        if len(events) != change.sequence:
            return False
        events.append((change.event, change.event_hash))
        self._roster_states[room] = change.state
        self._rooms[room] = replace(self._rooms[room], signed=True)
        if change.set_password:
            self._rooms[room] = replace(self._rooms[room], password_hash=change.password_hash)
        members = self._members[room]
        if change.only:
            for user in [u for u in members if u != change.only]:
                self._leave(room, user)
        for joining in (change.only, change.add):
            if joining and joining not in members:
                members[joining] = change.now_ms
                self._joined_seq[(room, joining)] = self._room_heads.get(room, 0)
        if change.remove:
            self._leave(room, change.remove)
        return True

    def _leave(self, room: str, user: str) -> None:
        self._members[room].pop(user, None)
        self._joined_seq.pop((room, user), None)
        for key in [k for k in self._room_acks if k[1] == room and k[0].user == user]:
            del self._room_acks[key]

    async def roster_events(self, room: str, from_sequence: int, limit: int) -> list[bytes]:
        if not 1 <= limit <= MAX_ROSTER_PAGE:
            raise rules.bad_roster_page(limit, MAX_ROSTER_PAGE)
        events = self._rosters.get(room, [])
        return [event for event, _ in events[from_sequence : from_sequence + limit]]

    async def last_room_seq(self, room: str) -> int:
        if room not in self._rooms:
            raise rules.room_not_found(room)
        return self._room_heads.get(room, 0)

    async def fetch_room(
        self, room: str, after_room_seq: int, limit: int, max_bytes: int = 0
    ) -> list[RoomEntry]:
        rules.check_limit(limit)
        log = self._room_logs.get(room, {})
        found = [log[seq] for seq in sorted(log) if seq > after_room_seq][:limit]
        if max_bytes and found:
            end = page_end([(e.room_seq, len(e.ciphertext)) for e in found], max_bytes)
            found = [e for e in found if e.room_seq <= end]
        return found

    async def room_message_seq(self, room: str, message_id: str, sent_at_ms: int) -> int:
        for entry in self._room_logs.get(room, {}).values():
            if entry.message_id == message_id and entry.sent_at_ms == sent_at_ms:
                return entry.room_seq
        return 0

    async def room_starts(self, device: DeviceRef) -> dict[str, int]:
        state = self._devices.get(device)
        created = state.device.created_at_ms if state is not None else 0
        starts = {}
        for room, members in self._members.items():
            if device.user not in members:
                continue
            before = [seq for seq, e in self._room_logs.get(room, {}).items()
                      if e.sent_at_ms < created]  # fmt: skip
            starts[room] = max(
                self._joined_seq.get((room, device.user), 0),
                self._room_acks.get((device, room), 0),
                max(before, default=0),
            )
        return starts

    async def ack_rooms(self, acks: Sequence[tuple[DeviceRef, str, int]]) -> None:
        for device, room, seq in acks:
            key = (device, room)
            self._room_acks[key] = max(seq, self._room_acks.get(key, 0))

    def _post(self, stored: Sequence[PendingSend]) -> list[RoomEntry | None]:
        posted: list[RoomEntry | None] = []
        for send in stored:
            post = send.room_post
            if post is None:
                posted.append(None)
                continue
            seq = self._room_heads.get(post.room, 0) + 1
            self._room_heads[post.room] = seq
            entry = RoomEntry(
                post.room, seq, send.message_id, send.sender, bytes(post.ciphertext),
                send.sent_at_ms,
            )  # fmt: skip
            self._room_logs.setdefault(post.room, {})[seq] = entry
            posted.append(entry)
        return posted

    async def get_room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def _summary(self, room: Room, user: str) -> RoomSummary:
        members = self._members[room.name]
        return RoomSummary(
            room.name, len(members), room.protected, user in members, room.created_at_ms
        )

    async def list_rooms(self, for_user: str) -> list[RoomSummary]:
        return [
            self._summary(room, for_user)
            for room in sorted(self._rooms.values(), key=lambda r: r.name)
        ]

    async def list_visible_rooms(self, user: str, after: str, limit: int) -> list[RoomSummary]:
        rules.check_page(limit)
        visible = [
            room
            for room in self._rooms.values()
            if room.name > after
            and (not room.protected or room.listed or user in self._members[room.name])
        ]
        visible.sort(key=lambda r: r.name)
        return [self._summary(room, user) for room in visible[:limit]]

    async def room_summary(self, name: str, user: str) -> RoomSummary | None:
        room = self._rooms.get(name)
        return None if room is None else self._summary(room, user)

    async def count_rooms_created_by(self, user: str) -> int:
        return sum(1 for room in self._rooms.values() if room.created_by == user)

    async def add_member(self, room: str, user: str, now_ms: int) -> bool:
        if room not in self._rooms:
            raise rules.room_not_found(room)
        self._user(user)
        members = self._members[room]
        if user in members:
            return False
        members[user] = now_ms
        self._joined_seq[(room, user)] = self._room_heads.get(room, 0)
        return True

    async def remove_member(self, room: str, user: str) -> bool:
        if user not in self._members.get(room, {}):
            return False
        self._leave(room, user)
        return True

    async def is_member(self, room: str, user: str) -> bool:
        return user in self._members.get(room, {})

    async def room_members(self, room: str) -> list[str]:
        return sorted(self._members.get(room, {}))

    async def room_devices(self, room: str) -> list[DeviceRef]:
        members = self._members.get(room, {})
        return sorted(
            (ref for ref in self._devices if ref.user in members),
            key=lambda r: (r.user, r.device_id),
        )

    async def rooms_of(self, user: str) -> list[str]:
        return sorted(name for name, members in self._members.items() if user in members)

    async def record_contact(self, a: str, b: str, now_ms: int) -> None:
        pair = rules.contact_pair(a, b)
        self._user(pair[0])
        self._user(pair[1])
        self._contacts.add(pair)

    async def private_contacts_of(self, user: str) -> set[str]:
        found = {b for a, b in self._contacts if a == user}
        found.update(a for a, b in self._contacts if b == user)
        return found

    async def contacts_of(self, user: str) -> set[str]:
        found = {u for m in self._members.values() if user in m for u in m}
        found.update(b for a, b in self._contacts if a == user)
        found.update(a for a, b in self._contacts if b == user)
        found.discard(user)
        return found

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
        return decided.outcomes(results, self._post(decided.stored))

    def _mailbox(self, device: DeviceRef) -> dict[int, MailboxEntry]:
        state = self._devices.get(device)
        return {} if state is None else state.mailbox

    def _usage(self, device: DeviceRef) -> Usage:
        entries = self._mailbox(device).values()
        return Usage(len(entries), sum(len(e.ciphertext) for e in entries))

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

    async def ack_many(self, acks: Sequence[tuple[DeviceRef, int]]) -> None:
        for device, up_to_seq in acks:
            state = self._devices.get(device)
            if state is None:
                continue
            doomed = [seq for seq in state.mailbox if seq <= up_to_seq]
            for seq in doomed:
                del state.mailbox[seq]

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

    # ---- revocations and stats ------------------------------------------------------------
    async def add_revocation(
        self, serial_hex: str, fingerprint: str, subject: str, now_ms: int
    ) -> None:
        self._revocations.setdefault(serial_hex, (fingerprint, subject, now_ms))

    async def list_revocations(self) -> list[tuple[str, str]]:
        ordered = sorted(self._revocations.items(), key=lambda kv: (kv[1][2], kv[0]))
        return [(serial, fingerprint) for serial, (fingerprint, _, _) in ordered]

    async def stats(self) -> StoreStats:
        pending = sum(len(s.mailbox) for s in self._devices.values())
        return StoreStats(len(self._users), len(self._rooms), pending)
