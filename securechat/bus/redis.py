"""The Redis Bus: cross-node fan-out over one pub/sub channel, presence in Redis hashes.

``redis://HOST:PORT/DB?prefix=NAME&node_ttl=15``: ``prefix`` (default ``securechat``) names the
channel and keys, so several deployments (or tests) can share one Redis; ``node_ttl`` is how many
seconds a node that stopped heart-beating still counts as online.

Pub/sub is lossy and the mailbox is the source of truth, so this adapter never lets Redis trouble
reach the send path: ``publish`` hands the event to the local handler at once (local streams
never wait for Redis) and queues it for a background publisher that batches events into frames.
When Redis is unreachable, frames are dropped and every local stream is told to re-read its
mailbox once the subscriber is back (a ``Resync`` event); a node whose frames were dropped
asks every node to do the same with its next frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from securechat.bus import codec
from securechat.bus import redis_presence as rp
from securechat.bus.local_presence import LocalPresence
from securechat.bus.port import EventHandler
from securechat.domain.events import BusEvent, OnlineDevice, Resync
from securechat.domain.model import DeviceRef
from securechat.errors import ConfigError

log = logging.getLogger("securechat.bus.redis")

OUTBOX_LIMIT = 20_000  # events waiting for Redis; beyond this they are dropped
FRAME_EVENTS = 256  # events per published frame at most
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0
TIMEOUT_S = 3.0
_ERRORS = (RedisError, OSError, TimeoutError)


def parse_url(url: str) -> tuple[str, str, float]:
    """Split our own options off the URL: (redis-py URL, prefix, node TTL seconds)."""
    parts = urlsplit(url)
    ours = {"prefix": "securechat", "node_ttl": "15"}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ours:
            ours[key] = value
        else:
            rest.append((key, value))
    try:
        ttl = float(ours["node_ttl"])
    except ValueError:
        raise ConfigError("bus.url", "node_ttl must be a number of seconds") from None
    if ttl < 1 or not ours["prefix"]:
        raise ConfigError("bus.url", "node_ttl must be at least 1 and prefix not empty")
    clean = urlunsplit(parts._replace(query=urlencode(rest)))
    return clean, ours["prefix"], ttl


def safe_address(url: str) -> str:
    """host:port/db without credentials, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


class _Backoff:
    def __init__(self) -> None:
        self.delay = BACKOFF_MIN_S

    def next(self) -> float:
        delay, self.delay = self.delay, min(BACKOFF_MAX_S, self.delay * 2)
        return delay * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self.delay = BACKOFF_MIN_S


class RedisBus:
    def __init__(self, url: str, node: str) -> None:
        clean, prefix, ttl = parse_url(url)
        self.node = node
        self.address = safe_address(clean)
        self.channel = f"{prefix}:events"
        self.keys = rp.PresenceKeys(prefix, node)
        self.ttl_ms = int(ttl * 1000)
        self.heartbeat_s = ttl / 3
        # Reconnecting is this class's job: redis-py must not retry behind our back.
        self._redis = aioredis.Redis.from_url(
            clean,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._sub_redis = aioredis.Redis.from_url(
            clean,
            socket_timeout=None,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
        )
        self._handler: EventHandler | None = None
        self._local = LocalPresence()
        self._outbox: deque[BusEvent] = deque()
        self._wake = asyncio.Event()
        self._owe_resync = False  # frames were dropped: ask every node to re-read mailboxes
        self._presence_dirty = False  # Redis may not match self._local
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        self._closing = False

    # ---- lifecycle --------------------------------------------------------------------------
    async def start(self, handler: EventHandler) -> None:
        try:
            await self._register_all()
            pubsub = self._sub_redis.pubsub()
            await pubsub.subscribe(self.channel)
            await pubsub.get_message(timeout=TIMEOUT_S)  # the subscribe confirmation
        except _ERRORS as exc:
            await self._close_clients()
            raise ConfigError(
                "bus.url", f"cannot reach Redis at {self.address}: {type(exc).__name__}: {exc}"
            ) from None
        self._handler = handler
        self.connected = True
        self._tasks = [
            asyncio.create_task(self._subscriber(pubsub), name="redis-subscriber"),
            asyncio.create_task(self._publisher(), name="redis-publisher"),
            asyncio.create_task(self._heartbeat(), name="redis-heartbeat"),
        ]
        log.info("redis bus on %s channel=%s node=%s", self.address, self.channel, self.node)

    async def close(self) -> None:
        """Flush what is queued (briefly), leave the presence tables, disconnect."""
        self._closing = True
        self._handler = None
        self._wake.set()
        if self._tasks:
            with contextlib.suppress(TimeoutError, *_ERRORS):
                await asyncio.wait_for(asyncio.shield(self._tasks[1]), TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # redis-py may turn a cancellation into a ConnectionError; the loops then see
            # _closing and return.
            with contextlib.suppress(asyncio.CancelledError, *_ERRORS):
                await task
        self._tasks = []
        with contextlib.suppress(*_ERRORS):
            await self._redis.eval(rp.LEAVE, 1, self.keys.nodes, self.node, self.keys.prefix)
        await self._close_clients()

    def closing(self) -> bool:
        return self._closing

    async def _close_clients(self) -> None:
        for client in (self._redis, self._sub_redis):
            with contextlib.suppress(*_ERRORS):
                await client.aclose()

    # ---- fan-out ----------------------------------------------------------------------------
    async def publish(self, event: BusEvent) -> None:
        """Deliver locally now; queue for the other nodes (never raises for Redis trouble)."""
        if self._handler is not None:
            self._handler(event)
        if isinstance(event, Resync):
            return
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._owe_resync = True
            return
        self._outbox.append(event)
        self._wake.set()

    async def _flush_once(self) -> None:
        batch = [self._outbox.popleft() for _ in range(min(FRAME_EVENTS, len(self._outbox)))]
        resync = self._owe_resync
        try:
            await self._redis.publish(self.channel, codec.encode(self.node, batch, resync=resync))
        except _ERRORS:
            self._owe_resync = True
            raise
        if resync:
            self._owe_resync = False
            log.info("redis bus: asked every node to re-read mailboxes after dropped events")

    async def _publisher(self) -> None:
        backoff = _Backoff()
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                try:
                    await self._flush_once()
                    backoff.reset()
                except _ERRORS as exc:
                    if self.closing():
                        return
                    log.warning(
                        "redis bus: cannot publish to %s (%s); events dropped, the mailbox "
                        "keeps them",
                        self.address,
                        type(exc).__name__,
                    )
                    await asyncio.sleep(backoff.next())
            if self._owe_resync and self.connected:
                with contextlib.suppress(*_ERRORS):
                    await self._redis.publish(
                        self.channel, codec.encode(self.node, [], resync=True)
                    )
                    self._owe_resync = False

    def _dispatch(self, raw: bytes) -> None:
        try:
            frame = codec.decode(raw)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("redis bus: dropped a malformed frame (%s)", type(exc).__name__)
            return
        handler = self._handler
        if handler is None or frame.origin == self.node:
            return  # our own events were handled locally in publish()
        for event in frame.events:
            handler(event)
        if frame.resync:
            handler(Resync())

    async def _subscriber(self, first: aioredis.client.PubSub) -> None:
        backoff = _Backoff()
        pubsub: aioredis.client.PubSub | None = first
        while not self._closing:
            try:
                if pubsub is None:
                    pubsub = self._sub_redis.pubsub()
                    await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._dispatch(message["data"])
                    elif message["type"] == "subscribe":  # start() consumed the first one
                        await self._reconnected()
                        backoff.reset()
            except asyncio.CancelledError:
                if pubsub is not None:
                    with contextlib.suppress(*_ERRORS):
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2
                raise
            except _ERRORS as exc:
                if self.closing():
                    return
                if self.connected:
                    log.warning(
                        "redis bus: lost %s (%s): serving local clients only, reconnecting",
                        self.address,
                        type(exc).__name__,
                    )
                self.connected = False
                self._presence_dirty = True
                if pubsub is not None:
                    with contextlib.suppress(*_ERRORS):
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2
                pubsub = None
                await asyncio.sleep(backoff.next())

    async def _reconnected(self) -> None:
        """Back on Redis: re-register presence, then make every local stream catch up."""
        await self._register_all()
        self.connected = True
        self._wake.set()  # let the publisher send what it owes (a resync request)
        log.info(
            "redis bus: reconnected to %s; local streams re-read their mailboxes", self.address
        )
        if self._handler is not None:
            self._handler(Resync())

    # ---- presence ---------------------------------------------------------------------------
    async def _register_all(self) -> None:
        args: list[str | int] = [self.node, self.keys.prefix]
        for device, since in self._local.since.items():
            args += [device.user, device.device_id, since]
        await self._redis.eval(rp.REGISTER_ALL, 1, self.keys.nodes, *args)
        self._presence_dirty = False

    async def _heartbeat(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.heartbeat_s)
            try:
                if self._presence_dirty and self.connected:
                    await self._register_all()
                reaped = await self._redis.eval(
                    rp.HEARTBEAT, 1, self.keys.nodes, self.node, self.keys.prefix, self.ttl_ms
                )
                if reaped:
                    log.info("redis bus: forgot %d node(s) that stopped heart-beating", reaped)
            except _ERRORS as exc:
                log.debug("redis bus: heartbeat failed (%s)", type(exc).__name__)

    async def mark_online(self, device: DeviceRef, since_ms: int) -> bool:
        new_device, first_here = self._local.add(device, since_ms)
        if not new_device:
            return False
        k = self.keys
        try:
            result = await self._redis.eval(
                rp.MARK_ONLINE,
                3,
                k.nodes,
                k.node_hash,
                k.user_hash(device.user),
                self.node,
                k.node_field(device),
                k.user_field(device),
                since_ms,
                self.ttl_ms,
            )
        except _ERRORS:
            self._presence_dirty = True
            return first_here  # Redis is away: answer for this node alone
        return bool(result)

    async def mark_offline(self, device: DeviceRef) -> bool:
        gone, last_here = self._local.remove(device)
        if not gone:
            return False
        k = self.keys
        try:
            result = await self._redis.eval(
                rp.MARK_OFFLINE,
                3,
                k.nodes,
                k.node_hash,
                k.user_hash(device.user),
                k.node_field(device),
                k.user_field(device),
                self.ttl_ms,
            )
        except _ERRORS:
            self._presence_dirty = True
            return last_here
        return bool(result)

    async def online(self) -> list[OnlineDevice]:
        try:
            flat = await self._redis.eval(
                rp.ONLINE, 1, self.keys.nodes, self.keys.prefix, self.ttl_ms
            )
        except _ERRORS:
            local = sorted(self._local.since.items(), key=_key)
            return [OnlineDevice(d, self.node, s) for d, s in local]
        return rp.parse_online(list(flat))


def _key(item: tuple[DeviceRef, int]) -> tuple[str, int]:
    return (item[0].user, item[0].device_id)
