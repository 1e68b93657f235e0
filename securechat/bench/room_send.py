"""What the client's room send path costs once keys are distributed, and the one-time distribution.

Runs the client's own code (``Messenger.seal`` -> ``RoomChannel.seal``: the roster's recipients,
``prepare_send``, sender-key encryption, the keystore save before upload, the request split)
for a signed room of N members with one device each, pairwise sessions already made (in
memory, no server: this is the client's share). Prints milliseconds per send and the sizes.

    .venv/bin/python -m securechat.bench.room_send 10 100 1000

``make bench`` reports the same figures (``run_room_send_bench``) with the crypto figures,
beside the crypto core's own (``securechat.crypto.room_bench``). The keystore here uses the
test KDF profile's parameters for its one-time key derivation only; every save is a real
encrypted, fsynced keystore write, as in the client.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.client.credentials import new_keys
from securechat.client.events import Target
from securechat.client.messenger import Messenger
from securechat.client.rpc.sender import Sealed
from securechat.client.vault import TEST_ARGON2, Vault
from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.bench import NOW, _pair
from securechat.crypto.room_membership import create_event, join_event, new_room_salt
from securechat.crypto.roster import Roster
from securechat_proto.v1 import content_pb2

ROOM = "bench-room"


async def measure(members: int, rounds: int, directory: Path) -> dict[str, float]:
    keys = await new_keys("bench password", TEST_ARGON2)
    account, state = Vault.new_account("sender", 1)
    vault = Vault.create(directory / f"sender-{members}.keystore", keys, account, state)
    own_key = account.account_key_of("sender")
    assert own_key is not None
    signers = {f"member{i}": Ed25519PrivateKey.generate() for i in range(members)}
    pins = {user: k.public_key().public_bytes_raw() for user, k in signers.items()}
    pins["sender"] = own_key
    first = create_event(ROOM, account.devices.signer, "sender", own_key, room_salt=new_room_salt())
    roster, _ = Roster.from_events(ROOM, [first])
    for user, signer in signers.items():
        roster.apply(join_event(roster, signer, user, pins[user]))
    roster.mark_shown(roster.version.sequence)
    vault.state.rosters[ROOM] = roster
    devices = [Address(user, 1) for user in signers]
    for address in devices:
        peer = CryptoAccount.create(address.user, 1, now=NOW, one_time_count=1,
                                    kem_one_time_count=1)  # fmt: skip
        _pair(account, peer)
    messenger = Messenger(None, vault)  # type: ignore[arg-type]

    async def ready(devices: Iterable[Address], *, partial: bool = False) -> list[Address]:
        return list(devices)

    messenger.rooms.ensure_sessions = ready  # sessions exist (made above)
    # the members are stand-ins without directory accounts: their join keys count as accepted
    messenger.rosters.account_key_of = lambda user: pins.get(user)  # type: ignore[method-assign]

    async def one(text: str) -> tuple[Sealed, float]:
        content = content_pb2.MessageContent(message_id=text, sent_at_ms=0, body="m" * 200)
        start = time.perf_counter()
        sealed = await messenger.seal(Target.room(ROOM), content)(devices)
        elapsed = time.perf_counter() - start
        assert isinstance(sealed, Sealed)
        if sealed.accepted is not None:
            sealed.accepted()
        return sealed, elapsed

    first_send, distribution_s = await one("first")
    total = 0.0
    for i in range(rounds):
        sealed, elapsed = await one(f"m{i}")
        assert not sealed.ciphertexts
        total += elapsed
    envelopes = sum(len(p) for p in (*first_send.before, first_send.ciphertexts))
    return {
        "members": members,
        "send_ms": total / rounds * 1e3,
        "first_send_with_distribution_ms": distribution_s * 1e3,
        "distribution_requests": len(first_send.before) + 1,
        "distribution_envelopes": envelopes,
        "room_message_bytes": len(first_send.room_message),
    }


async def _all(sizes: list[int], rounds: int) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        return [await measure(members, rounds, Path(directory)) for members in sizes]


def run_room_send_bench(*, quick: bool = False) -> dict[str, float]:
    """Flat figures for the bench report: room_client_send_{N}_ms and the rest."""
    sizes = [3, 10] if quick else [10, 100, 1000]
    figures: dict[str, float] = {}
    for result in asyncio.run(_all(sizes, 3 if quick else 20)):
        n = int(result["members"])
        figures[f"room_client_send_{n}_ms"] = result["send_ms"]
        figures[f"room_client_first_send_{n}_ms"] = result["first_send_with_distribution_ms"]
        figures[f"room_client_distribution_requests_{n}"] = result["distribution_requests"]
        figures["room_stored_bytes_per_message"] = result["room_message_bytes"]
    return figures


if __name__ == "__main__":
    for line in asyncio.run(_all([int(a) for a in sys.argv[1:]] or [10, 100, 1000], 20)):
        print(line)
