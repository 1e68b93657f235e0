"""In-process client devices for tests: the client library against the real test server.

A :class:`Device` is one logged-in device with a keystore (cheap test KDF) and published keys;
``start()`` runs a ChatSession and records its events. A :class:`Relay` is a TCP relay in front
of a server, which a test can cut, hold down or point at another server, to see the client lose
and regain its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from securechat.client.credentials import derive, new_keys
from securechat.client.events import ConnectionEvent, Event, MessageEvent, NoticeEvent
from securechat.client.linking import account_request, join_account, offer_link
from securechat.client.messenger import Messenger
from securechat.client.rpc import Api, Backoff, Endpoint
from securechat.client.session import ChatSession
from securechat.client.upkeep import maintain
from securechat.client.vault import TEST_ARGON2, Vault
from securechat.crypto.account_password import LoginParameters
from securechat.crypto.linking import LinkJoiner
from securechat.pki import DevPki

PASSWORD = "correct horse battery"
FAST = Backoff(base_s=0.05, cap_s=0.2)
WAIT_S = 20.0


class Watch:
    """Collects a session's events; tests wait for a condition on them (never for a time)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def poke(self) -> None:
        """Something else a test waits on changed: look at the condition again."""
        self._changed.set()

    async def until(self, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
        async def wait() -> None:
            while not check():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, MessageEvent)]

    def notices(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, NoticeEvent)]

    def states(self) -> list[ConnectionEvent]:
        return [e for e in self.events if isinstance(e, ConnectionEvent)]

    def onlines(self) -> int:
        return sum(1 for e in self.states() if e.state == "online")

    def warnings(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, NoticeEvent) and e.warning]


@dataclass
class Device:
    user: str
    api: Api
    vault: Vault
    watch: Watch = field(default_factory=Watch)
    session: ChatSession | None = None
    runner: asyncio.Task[None] | None = None

    async def start(self) -> ChatSession:
        """Run a ChatSession and wait until its stream is open."""
        self.session = ChatSession(self.api, self.vault, self.watch, backoff=FAST)
        self.runner = asyncio.create_task(self.session.run())
        online = self.watch.onlines() + 1
        await self.watch.until(lambda: self.watch.onlines() >= online or self.runner.done())
        if self.runner.done():
            self.runner.result()
        return self.session

    @property
    def address(self) -> object:
        return self.vault.account.address

    def messenger(self) -> Messenger:
        """The running session's messenger, or a new one reporting to the same watch."""
        if self.session is not None:
            return self.session.messenger
        return Messenger(self.api, self.vault, self.watch)

    async def stop(self) -> None:
        if self.session is not None and self.runner is not None:
            self.session.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.runner, WAIT_S)
        await self.api.close()


async def device(
    port: int,
    pki: DevPki,
    keystores: Path,
    user: str,
    *,
    register: bool = True,
    cert: str = "client",
    link_from: Device | None = None,
) -> Device:
    """A new device of ``user`` (registering the account first, or linked from another device
    over the server's relay): logged in with the authenticator, keys published."""
    paths = pki.client(cert)
    api = Api(Endpoint(f"localhost:{port}", pki.ca_cert, paths.cert, paths.key).open())
    if register:
        keys = await new_keys(PASSWORD, TEST_ARGON2)
        await api.register(user, keys.authenticator_text(), LoginParameters(keys.salt, keys.params))
    else:
        keys = await derive(PASSWORD, (await api.login_parameters(user)).login)
    login = await api.login(user, keys.authenticator_text())
    path = keystores / f"{user}-{login.device_id}.keystore"
    account, state = Vault.new_account(user, login.device_id, linked=link_from is not None)
    vault = Vault.create(path, keys, account, state)
    made = Device(user, api, vault)
    if link_from is None:
        await api.publish_account(account_request(account))
    else:
        await link(link_from, made)
    vault.state.account_published = True
    await maintain(api, vault)
    if register:  # as `securechat register` does: the legacy lobby it is in is remembered
        await Messenger(api, vault).upgrades.settle_all()
    return made


async def link(existing: Device, new: Device) -> None:
    """Both sides of a link over the real relay: the code shown on one is typed on the other."""
    code: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def shown(text: str) -> None:
        if text.startswith("link code: ") and not code.done():
            code.set_result(text.removeprefix("link code: "))

    offering = asyncio.create_task(offer_link(existing.api, existing.messenger().accounts, shown))
    joiner = LinkJoiner.from_text(await asyncio.wait_for(code, WAIT_S))
    await join_account(new.api, new.vault, joiner, lambda text: None)
    await asyncio.wait_for(offering, WAIT_S)


class Relay:
    """Forwards TCP connections from its own loopback port to ``upstream`` (a server port)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepting = True
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self) -> None:
        """Drop every relayed connection at once, as a network failure would."""
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    def hold(self) -> None:
        """Cut, and refuse new connections until :meth:`release`."""
        self.accepting = False
        self.cut()

    def release(self, upstream: int | None = None) -> None:
        """Accept again (forwarding to ``upstream`` from now on, when given)."""
        if upstream is not None:
            self.upstream = upstream
        self.accepting = True

    async def close(self) -> None:
        self.hold()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._transports.update({writer.transport, up_writer.transport})
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._transports.discard(sink.transport)


async def reset(port: int, pki: DevPki, keystores: Path, user: str) -> Device:
    """``securechat login USER --reset`` as the client library does it: a new device with a new
    keystore and a new account key (the user's other devices are removed)."""
    paths = pki.client("client")
    api = Api(Endpoint(f"localhost:{port}", pki.ca_cert, paths.cert, paths.key).open())
    keys = await derive(PASSWORD, (await api.login_parameters(user)).login)
    login = await api.login(user, keys.authenticator_text())
    account, state = Vault.new_account(user, login.device_id)
    path = keystores / f"{user}-reset-{login.device_id}.keystore"
    vault = Vault.create(path, keys, account, state)
    await api.publish_account(account_request(account, reset=True))
    vault.state.account_published = True
    await maintain(api, vault)
    return Device(user, api, vault)
