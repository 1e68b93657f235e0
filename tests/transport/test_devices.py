"""Accounts own devices, over the real server: account keys, device changes, the link relay and
who receives. Every refusal changes nothing (checked by reading the account back)."""

from __future__ import annotations

from pathlib import Path

import grpc

from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import (
    AccountBinding,
    DeviceCertificate,
    DeviceListHead,
    DeviceRemoval,
)
from securechat.crypto.identity import IdentityKeyPair
from securechat.domain.model import DeviceRef
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2, common_pb2, keys_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.accounts import (
    AccountDevice,
    account_request,
    change_request,
    first_device,
    get_account,
    link,
    now,
)
from tests.support.chat import ChatClient, room_devices, room_send
from tests.support.net import Api, secure_channel
from tests.transport.test_accounts import fails

Code = grpc.StatusCode


async def bare(connect: ApiFactory, user: str, *, register: bool = False) -> Api:
    api = await connect()
    if register:
        await api.register(user)
    await api.login(user, keys=False)
    return api


async def alice_with_devices(connect: ApiFactory, count: int = 2) -> list[AccountDevice]:
    devices = [await first_device(await bare(connect, "alice", register=True))]
    for _ in range(count - 1):
        devices.append(await link(devices[0], await bare(connect, "alice")))
    return devices


# ---- PublishAccount ---------------------------------------------------------------------------


async def test_the_first_device_publishes_the_account_and_then_its_keys(
    connect: ApiFactory,
) -> None:
    api = await bare(connect, "alice", register=True)
    crypto = CryptoAccount.create("alice", api.device_id, now=now())
    device = AccountDevice(api, crypto)
    # Keys before the account: allowed (a stage-1 device migrating does this) ...
    await device.publish_bundle()
    await api.keys.PublishAccount(account_request(crypto), metadata=api.md)
    account = await get_account(api, "alice")
    assert account.account_key == crypto.account_key.to_bytes()  # type: ignore[union-attr]
    [listed] = account.devices
    assert listed.device_id == api.device_id and listed.has_bundle
    assert listed.certificate == crypto.devices.certificate.to_bytes()  # type: ignore[union-attr]
    assert listed.binding == crypto.devices.binding.to_bytes()  # type: ignore[union-attr]
    assert account.device_list == crypto.devices.own_list.to_bytes()  # type: ignore[union-attr]
    assert account.max_devices == 10 and list(account.removals) == []

    # ... but never twice: a second account key is refused without a reset.
    other = await bare(connect, "alice")
    stranger = CryptoAccount.create("alice", other.device_id, now=now())
    error = await fails(other.keys.PublishAccount(account_request(stranger), metadata=other.md),
                        Code.ALREADY_EXISTS)  # fmt: skip
    assert "link this device" in (error.details() or "")
    assert (await get_account(api, "alice")).account_key == account.account_key


def _forged(crypto: CryptoAccount, **changes: object) -> keys_pb2.PublishAccountRequest:
    request = account_request(crypto)
    for name, value in changes.items():
        setattr(request, name, value)
    return request


async def test_bad_account_publications_are_refused_and_change_nothing(
    connect: ApiFactory,
) -> None:
    api = await bare(connect, "alice", register=True)
    crypto = CryptoAccount.create("alice", api.device_id, now=now())
    devices = crypto.devices
    assert devices.certificate is not None and devices.account_key is not None
    identity = crypto.identity_public
    other_key = AccountKeyPair.generate()
    cases = {
        "signed by another account": _forged(crypto, certificate=DeviceCertificate.issue(
            other_key, "alice", api.device_id, identity, now()).to_bytes()),
        "for another user": _forged(crypto, certificate=DeviceCertificate.issue(
            crypto.devices.signer, "bob", api.device_id, identity, now()).to_bytes()),
        "for another device id": _forged(crypto, certificate=DeviceCertificate.issue(
            crypto.devices.signer, "alice", api.device_id + 5, identity, now()).to_bytes()),
        "binding of another identity": _forged(crypto, binding=AccountBinding.issue(
            IdentityKeyPair.generate(), "alice", api.device_id, devices.account_key).to_bytes()),
        "list version 2": _forged(crypto, device_list=DeviceListHead.issue(
            crypto.devices.signer, "alice", 2, now(), {api.device_id: identity}).to_bytes()),
        "garbage certificate": _forged(crypto, certificate=b"\x01garbage"),
        "short key": _forged(crypto, account_key=b"k" * 31),
    }  # fmt: skip
    for what, request in cases.items():
        error = await fails(api.keys.PublishAccount(request, metadata=api.md),
                            Code.INVALID_ARGUMENT)  # fmt: skip
        assert error.details(), what
    assert (await get_account(api, "alice")).account_key == b""


async def test_a_device_of_an_account_publishes_keys_only_once_certified(
    connect: ApiFactory,
) -> None:
    [alice] = await alice_with_devices(connect, 1)
    newcomer = await bare(connect, "alice")
    crypto = CryptoAccount.create("alice", newcomer.device_id, now=now(), linked=True)
    uncertified = AccountDevice(newcomer, crypto)
    error = await fails(uncertified.publish_bundle(), Code.FAILED_PRECONDITION)
    assert "devices link" in (error.details() or "")
    # Certified, but then publishing keys of another identity than the certificate's:
    linked = await link(alice, newcomer, bundle=False)
    impostor = AccountDevice(newcomer, CryptoAccount.create("alice", newcomer.device_id, now=now()))
    await fails(impostor.publish_bundle(), Code.INVALID_ARGUMENT)
    await linked.publish_bundle()
    listed = {d.device_id: d for d in (await get_account(alice.api, "alice")).devices}
    assert listed[newcomer.device_id].identity_key == linked.crypto.identity_public.to_bytes()


# ---- PublishDeviceChange ----------------------------------------------------------------------


async def test_version_clash_returns_the_current_account(connect: ApiFactory) -> None:
    first, second = await alice_with_devices(connect, 2)
    publication = first.crypto.devices.remove(second.api.device_id, now=now())
    again = change_request(publication)  # the same version once more, as a second device would
    assert (await first.publish_change(publication)).accepted
    reply = await first.api.keys.PublishDeviceChange(again, metadata=first.api.md)
    assert not reply.accepted
    assert reply.current.device_list == first.crypto.devices.own_list.to_bytes()  # type: ignore[union-attr]


async def test_bad_device_changes_are_refused_and_change_nothing(connect: ApiFactory) -> None:
    first, second = await alice_with_devices(connect, 2)
    target = await bare(connect, "alice")
    books = first.crypto.devices
    signer, version = books.signer, first.crypto.devices.own_list.version  # type: ignore[union-attr]
    newcomer = IdentityKeyPair.generate().public
    devices = {first.api.device_id: first.crypto.identity_public,
               second.api.device_id: second.crypto.identity_public}  # fmt: skip
    grown = {**devices, target.device_id: newcomer}

    def head(device_set: dict[int, object], *, key: AccountKeyPair = signer,
             at: int = version + 1) -> bytes:  # fmt: skip
        return DeviceListHead.issue(key, "alice", at, now(), device_set).to_bytes()  # type: ignore[arg-type]

    def cert(device_id: int, *, key: AccountKeyPair = signer, user: str = "alice") -> bytes:
        return DeviceCertificate.issue(key, user, device_id, newcomer, now()).to_bytes()

    stranger = AccountKeyPair.generate()
    removal = DeviceRemoval.issue(signer, "alice", second.api.device_id,
                                  second.crypto.identity_public, now()).to_bytes()  # fmt: skip
    own = DeviceRemoval.issue(signer, "alice", first.api.device_id,
                              first.crypto.identity_public, now()).to_bytes()  # fmt: skip
    bad = [
        ("certificate signed by another account", head(grown),
         cert(target.device_id, key=stranger), None, Code.INVALID_ARGUMENT),
        ("certificate for another user", head(grown),
         cert(target.device_id, user="bob"), None, Code.INVALID_ARGUMENT),
        ("certificate for another device id", head(grown),
         cert(target.device_id + 7), None, Code.INVALID_ARGUMENT),
        ("list signed by another account", head(grown, key=stranger),
         cert(target.device_id), None, Code.INVALID_ARGUMENT),
        ("list that is not the stored one plus the device", head(devices),
         cert(target.device_id), None, Code.INVALID_ARGUMENT),
        ("a device that never logged in", head({**devices, 99: newcomer}),
         cert(99), None, Code.NOT_FOUND),
        ("removing the device you are on", head({second.api.device_id: devices[2]}),
         None, own, Code.FAILED_PRECONDITION),
        ("a list that still names the removed device", head(devices),
         None, removal, Code.INVALID_ARGUMENT),
    ]  # fmt: skip
    before = await get_account(first.api, "alice")
    for what, device_list, certificate, removed, code in bad:
        request = keys_pb2.PublishDeviceChangeRequest(device_list=device_list)
        if certificate is not None:
            request.certificate = certificate
        if removed is not None:
            request.removal = removed
        error = await fails(first.api.keys.PublishDeviceChange(request, metadata=first.api.md),
                            code)  # fmt: skip
        assert error.details(), what
        assert await get_account(first.api, "alice") == before, what


async def test_a_replayed_removal_is_refused(connect: ApiFactory) -> None:
    first, second, third = await alice_with_devices(connect, 3)
    publication = first.crypto.devices.remove(second.api.device_id, now=now())
    assert (await first.publish_change(publication)).accepted
    # The same removal again, with a list one version up (as a replaying server might sign
    # nothing new, it reuses the statement): refused, the device stays removed.
    replay = keys_pb2.PublishDeviceChangeRequest(
        device_list=DeviceListHead.issue(
            first.crypto.devices.signer, "alice", publication.head.version + 1, now(),
            {first.api.device_id: first.crypto.identity_public,
             third.api.device_id: third.crypto.identity_public},
        ).to_bytes(),
        removal=publication.removal.to_bytes(),  # type: ignore[union-attr]
    )  # fmt: skip
    error = await fails(first.api.keys.PublishDeviceChange(replay, metadata=first.api.md),
                        Code.INVALID_ARGUMENT)  # fmt: skip
    assert "already removed" in (error.details() or "")
    account = await get_account(first.api, "alice")
    assert list(account.removals) == [publication.removal.to_bytes()]  # type: ignore[union-attr]


async def test_a_removed_device_loses_its_stream_sessions_and_mail(
    connect: ApiFactory, server: Node
) -> None:
    first, second = await alice_with_devices(connect, 2)
    stream = ChatClient(second.api)
    await stream.wait_until(lambda: len(stream.events) >= 1)
    publication = first.crypto.devices.remove(second.api.device_id, now=now())
    assert (await first.publish_change(publication)).accepted
    error = await stream.wait_ended()
    assert error is not None and error.code() == Code.UNAUTHENTICATED
    assert "removed from your account" in (error.details() or "")
    await fails(get_account(second.api, "alice"), Code.UNAUTHENTICATED)
    assert await server.store.get_device("alice", second.api.device_id) is None
    listed = [d.device_id for d in (await get_account(first.api, "alice")).devices]
    assert listed == [first.api.device_id]


async def test_more_devices_than_the_maximum_are_refused(pki: DevPki, tmp_path: Path) -> None:
    node = Node(server_config(pki, tmp_path / "data", **{"accounts.max_devices": 2}))
    await node.start()
    apis: list[Api] = []
    try:

        async def new_api() -> Api:
            apis.append(Api(secure_channel(pki, node.port)))
            return apis[-1]

        first_api = await new_api()
        await first_api.register("alice")
        await first_api.login("alice", keys=False)
        first = await first_device(first_api)
        second_api = await new_api()
        await second_api.login("alice", keys=False)
        await link(first, second_api)
        third = await new_api()
        await third.login("alice", keys=False)
        newcomer = IdentityKeyPair.generate().public  # a client ignoring the maximum signs it
        publication = first.crypto._devices.certify(third.device_id, newcomer, now=now(),
                                                    max_devices=64)  # fmt: skip
        request = change_request(publication)
        error = await fails(first_api.keys.PublishDeviceChange(request, metadata=first_api.md),
                            Code.FAILED_PRECONDITION)  # fmt: skip
        assert "at most 2 devices" in (error.details() or "")
        account = await get_account(first_api, "alice")
        assert account.max_devices == 2 and len(account.devices) == 2
    finally:
        for api in apis:
            await api.channel.close()
        await node.stop(grace=0.2)


# ---- who receives -----------------------------------------------------------------------------


async def test_only_certified_listed_devices_with_keys_receive(
    connect: ApiFactory, server: Node
) -> None:
    first, second = await alice_with_devices(connect, 2)
    bob = ChatClient(await connect("bob"))
    pending = await bare(connect, "alice")  # logged in, not linked: no keys, no certificate
    assert sorted(await room_devices(bob.api, "lobby")) == [
        ("alice", first.api.device_id), ("alice", second.api.device_id), ("bob", 1),
    ]  # fmt: skip
    # A device row with keys that no signed list names (as a tampered database would hold):
    await server.store.publish_bundle(
        DeviceRef("alice", pending.device_id), (await _any_bundle(pending)).bundle
    )
    server.directory.invalidate()
    assert ("alice", pending.device_id) not in await room_devices(bob.api, "lobby")
    to_alice = {("alice", first.api.device_id): b"1", ("alice", second.api.device_id): b"2"}
    assert (await bob.send(common_pb2.Conversation(user="alice"), to_alice)).accepted
    assert (await room_send(bob, "lobby", b"room")).accepted
    await bob.close()


async def _any_bundle(api: Api) -> object:
    from types import SimpleNamespace

    from securechat.domain.model import Bundle, KemPreKeyRecord, SignedPreKeyRecord

    crypto = CryptoAccount.create(api.user, api.device_id, now=now(), one_time_count=0,
                                  kem_one_time_count=0)  # fmt: skip
    upload = crypto.upload_bundle()
    spk, kem = upload.signed_prekey, upload.last_resort_kem_prekey
    return SimpleNamespace(bundle=Bundle(
        upload.identity.to_bytes(),
        SignedPreKeyRecord(spk.key_id, spk.public_key, spk.created_at, spk.signature),
        last_resort=KemPreKeyRecord(kem.key_id, kem.public_key, kem.signature, True),
    ))  # fmt: skip


async def test_a_linked_device_is_announced_when_it_gets_keys(connect: ApiFactory) -> None:
    [first] = await alice_with_devices(connect, 1)
    bob = ChatClient(await connect("bob"))
    await bob.wait_until(lambda: len(bob.events) >= 1)
    newcomer = await link(first, await bare(connect, "alice"), bundle=False)
    assert ("alice", newcomer.api.device_id) not in await room_devices(bob.api, "lobby")
    await newcomer.publish_bundle()

    def added() -> bool:
        return any(
            e.WhichOneof("event") == "membership" and e.membership.user == "alice"
            and e.membership.kind == chat_pb2.MembershipChange.KIND_DEVICE_ADDED
            for e in bob.events
        )  # fmt: skip

    await bob.wait_until(added)
    assert ("alice", newcomer.api.device_id) in await room_devices(bob.api, "lobby")
    await bob.close()


# ---- the link relay ---------------------------------------------------------------------------


async def test_the_link_relay_takes_each_message_once_for_one_user(connect: ApiFactory) -> None:
    alice = await bare(connect, "alice", register=True)
    bob = await bare(connect, "bob", register=True)
    relay = "0123456789abcdef01"

    async def post(api: Api, slot: str, message: bytes) -> None:
        await api.keys.PostLinkMessage(
            keys_pb2.PostLinkMessageRequest(relay_id=relay, slot=slot, message=message),
            metadata=api.md,
        )

    async def get(api: Api, slot: str) -> keys_pb2.GetLinkMessageResponse:
        reply: keys_pb2.GetLinkMessageResponse = await api.keys.GetLinkMessage(
            keys_pb2.GetLinkMessageRequest(relay_id=relay, slot=slot), metadata=api.md
        )
        return reply

    assert not (await get(alice, "offer")).found
    await post(alice, "offer", b"offer bytes")
    await fails(post(alice, "offer", b"swapped"), Code.ALREADY_EXISTS)
    assert (await get(alice, "offer")).message == b"offer bytes"
    assert not (await get(bob, "offer")).found  # another user's relay is another relay
    bad = [("offer", "XYZ", b"x"), ("nope", relay, b"x"), ("grant", relay, b""),
           ("grant", relay, b"x" * 70_000)]  # fmt: skip
    for slot, relay_id, message in bad:
        request = keys_pb2.PostLinkMessageRequest(relay_id=relay_id, slot=slot, message=message)
        code = Code.RESOURCE_EXHAUSTED if len(message) > 69_000 else Code.INVALID_ARGUMENT
        await fails(alice.keys.PostLinkMessage(request, metadata=alice.md), code)


async def test_devices_that_never_got_keys_do_not_pile_up(
    connect: ApiFactory, server: Node
) -> None:
    [first] = await alice_with_devices(connect, 1)
    logins = [await bare(connect, "alice") for _ in range(7)]
    kept = [d.device_id for d in await server.store.list_devices("alice")]
    newest = [api.device_id for api in logins[-5:]]
    assert kept == [first.api.device_id, *newest]  # the device with keys, the 5 newest pending
    await fails(get_account(logins[0], "alice"), Code.UNAUTHENTICATED)  # its session is gone
    await link(first, logins[-1])  # a pending device still links
