"""Failed-login limits that an attacker cannot turn against the victim, over the real mTLS server
with clients on several loopback addresses (NIST SP 800-63B 5.2.2; docs/operations.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import auth_pb2
from tests.conftest import server_config
from tests.support.net import PASSWORD, Api, secure_channel
from tests.support.sources import SourceProxy

Code = grpc.StatusCode
WRONG = "not the password"


async def fails(call: Awaitable[object], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value


def retry_after(error: grpc.aio.AioRpcError) -> int:
    return int(dict(error.trailing_metadata() or ())["retry-after"])


class Site:
    """A started server and clients from chosen loopback addresses (127.0.0.1 is direct)."""

    def __init__(self, node: Node, pki: DevPki) -> None:
        self.node = node
        self.pki = pki
        self.proxies: list[SourceProxy] = []
        self.apis: list[Api] = []

    async def client(self, source: str = "127.0.0.1", cert: str = "client") -> Api:
        if source == "127.0.0.1":
            api = Api(secure_channel(self.pki, self.node.port, cert))
        else:
            proxy = await SourceProxy(self.node.port, source).start()
            self.proxies.append(proxy)
            api = proxy.api(self.pki, cert)
        self.apis.append(api)
        return api

    async def close(self) -> None:
        for api in self.apis:
            await api.channel.close()
        for proxy in self.proxies:
            await proxy.close()
        await self.node.stop(grace=0.2)


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def site(pki: DevPki, tmp_path: Path) -> AsyncIterator[SiteFactory]:
    sites: list[Site] = []

    async def start(**overrides: object) -> Site:
        config = {"auth.max_login_delay_s": 0.5, **overrides}
        node = Node(server_config(pki, tmp_path / f"data{len(sites)}", **config))
        await node.start()
        sites.append(Site(node, pki))
        return sites[-1]

    yield start
    for s in sites:
        await s.close()


def bad(user: str) -> auth_pb2.LoginRequest:
    return auth_pb2.LoginRequest(username=user, password=WRONG)


async def test_wrong_passwords_never_lock_the_owner_out(site: SiteFactory) -> None:
    """Before: 5 wrong passwords locked the named user out for 300 s, right password or not."""
    s = await site()
    home = await s.client()
    await home.register("victim")
    await home.login("victim")  # the owner's usual address is now known for the account
    attacker = await s.client("127.0.0.2")
    for _ in range(10):  # auth.max_failures_per_pair
        await fails(attacker.auth.Login(bad("victim")), Code.UNAUTHENTICATED)
    # The attacker's own (account, address) pair is locked, with a retry-after...
    error = await fails(attacker.auth.Login(bad("victim")), Code.RESOURCE_EXHAUSTED)
    assert 1 <= retry_after(error) <= 300
    # ...the owner logs in from home, and from an address never seen before (slowed, not refused).
    await home.login("victim", device_id=home.device_id)
    elsewhere = await s.client("127.0.0.3")
    await elsewhere.login("victim", device_id=home.device_id)
    assert home.token and elsewhere.token


async def test_failures_from_an_address_do_not_lock_out_its_other_users(
    site: SiteFactory,
) -> None:
    """Before: 20 failures from one address locked out every user behind it."""
    s = await site()
    office = await s.client("127.0.0.2")
    await office.register("carol")
    for i in range(25):  # someone at the office fails on five accounts, five times each
        await fails(office.auth.Login(bad(f"dave{i % 5}")), Code.UNAUTHENTICATED)
    colleague = await s.client("127.0.0.2")
    await colleague.login("carol")  # same address, another account: slowed at most
    assert colleague.token


async def test_guessing_many_accounts_slows_an_address_but_never_locks_it(
    site: SiteFactory,
) -> None:
    s = await site(**{"auth.max_failures_per_peer": 5})
    nat = await s.client("127.0.0.2")
    await nat.register("erin")
    for i in range(12):  # password spraying: a different account each time
        await fails(nat.auth.Login(bad(f"target{i}")), Code.UNAUTHENTICATED)
    assert s.node.accounts.limits.sources.count("127.0.0.2", s.node.clock.monotonic()) == 12
    await nat.login("erin")  # delayed (growing, capped), then admitted
    assert nat.token


async def test_an_account_past_the_nist_limit_accepts_only_known_addresses(
    site: SiteFactory,
) -> None:
    s = await site(**{"auth.max_failures_per_user": 6, "auth.max_failures_per_pair": 100})
    home = await s.client()
    await home.register("frank")
    await home.login("frank")
    for i in range(6):  # from changing addresses: no pair limit is reached
        guesser = await s.client(f"127.0.0.{10 + i}")
        await fails(guesser.auth.Login(bad("frank")), Code.UNAUTHENTICATED)
    stranger = await s.client("127.0.0.30")
    good = auth_pb2.LoginRequest(username="frank", password=PASSWORD, device_id=1)
    error = await fails(stranger.auth.Login(good), Code.RESOURCE_EXHAUSTED)
    assert "addresses it logged in from before" in (error.details() or "")
    assert retry_after(error) >= 1
    await home.login("frank", device_id=1)  # the allow-listed address still works
    assert home.token


async def test_successful_logins_are_rate_limited_per_account(site: SiteFactory) -> None:
    s = await site(**{"auth.login_burst": 3, "auth.logins_per_account_per_hour": 3})
    api = await s.client()
    await api.register("gina")
    await api.register("hank")
    for _ in range(3):
        await api.login("gina", device_id=1 if api.device_id else 0)
    good = auth_pb2.LoginRequest(username="gina", password=PASSWORD, device_id=1)
    error = await fails(api.auth.Login(good), Code.RESOURCE_EXHAUSTED)
    assert retry_after(error) >= 1
    await api.login("hank")  # another account is not affected
    assert s.node.hasher.in_flight == 0


async def test_a_certificate_refusal_checks_no_password(site: SiteFactory) -> None:
    s = await site(**{"tls.bind_client_cert_to_user": True})
    alice = await s.client(cert="alice")
    await alice.register("alice")
    await alice.login("alice")
    other = await s.client(cert="bob")
    for _ in range(30):  # no lock or delay builds up for alice from another certificate
        await fails(other.auth.Login(bad("alice")), Code.UNAUTHENTICATED)
    await alice.login("alice", device_id=alice.device_id)
    assert s.node.accounts.limits.accounts.count("alice", s.node.clock.monotonic()) == 0
