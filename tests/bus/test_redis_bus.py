"""RedisBus specifics: node expiry, the wire codec, URL options, and riding out a Redis outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from securechat.bus import codec
from securechat.bus.redis import RedisBus, parse_url
from securechat.domain.events import BusEvent, Resync, UserKicked
from securechat.domain.model import DeviceRef
from securechat.errors import ConfigError
from tests.bus.conftest import eventually
from tests.bus.redis_server import RedisProcess, free_port, shared_redis_url
from tests.bus.test_bus_contract import every_kind_of_event

pytestmark = pytest.mark.redis
ALICE1, ALICE2 = DeviceRef("alice", 1), DeviceRef("alice", 2)


def test_codec_round_trips_every_event_and_the_resync_request() -> None:
    frame = codec.decode(codec.encode("host:1", every_kind_of_event(), resync=True))
    assert frame.origin == "host:1"
    assert list(frame.events) == every_kind_of_event()
    assert frame.resync is True


def test_codec_skips_unknown_events_and_rejects_garbage() -> None:
    raw = codec.encode("n", [UserKicked("bob", "x")])
    header_len = int.from_bytes(raw[:4], "big")
    newer = raw[4 : 4 + header_len].replace(b'[["K"', b'[["future",1],["K"')
    frame = codec.decode(len(newer).to_bytes(4, "big") + newer)
    assert frame.events == (UserKicked("bob", "x"),)
    delivered = codec.encode("n", every_kind_of_event()[:1])
    for garbage in (b"", b"\x00\x00\x00\x09{}", raw[:-1], b"\x00\x00\x00\x02[]", delivered[:-1]):
        with pytest.raises((ValueError, KeyError, TypeError, IndexError)):
            codec.decode(garbage)


def test_url_options_are_ours_and_the_rest_goes_to_redis() -> None:
    clean, prefix, ttl = parse_url("redis://h:1/2?prefix=p1&node_ttl=4&socket_keepalive=true")
    assert (clean, prefix, ttl) == ("redis://h:1/2?socket_keepalive=true", "p1", 4.0)
    assert parse_url("redis://h:1/0")[1:] == ("securechat", 15.0)
    with pytest.raises(ConfigError, match="node_ttl"):
        parse_url("redis://h:1/0?node_ttl=soon")


async def test_unreachable_redis_is_a_clear_start_error() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0", "n1")
    with pytest.raises(ConfigError, match=r"cannot reach Redis at 127\.0\.0\.1:\d+/0"):
        await bus.start(lambda event: None)


async def test_a_silent_node_expires_after_its_ttl() -> None:
    """A node that stops heart-beating (SIGKILL) drops out of online() within node_ttl."""
    url = shared_redis_url() + "&node_ttl=1"
    live = RedisBus(url, "live")
    await live.start(lambda event: None)
    silent = RedisBus(url, "silent")  # never started: it registers but never heart-beats
    try:
        assert await silent.mark_online(ALICE1, 100) is True
        assert [o.node for o in await live.online()] == ["silent"]
        await asyncio.sleep(1.2)
        assert await live.online() == []
        assert await live.mark_online(ALICE2, 200) is True  # alice's old device is gone
    finally:
        await silent.close()
        await live.close()


async def test_an_outage_keeps_local_delivery_and_resyncs_afterwards(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    got: dict[str, list[BusEvent]] = {"a": [], "b": []}
    a, b = RedisBus(redis.url, "a"), RedisBus(redis.url, "b")
    try:
        await a.start(got["a"].append)
        await b.start(got["b"].append)
        await a.mark_online(ALICE1, 100)
        redis.kill()
        await eventually(lambda: not a.connected and not b.connected)
        await a.publish(UserKicked("bob", "during the outage"))  # must not raise
        assert got["a"] == [UserKicked("bob", "during the outage")]  # local delivery goes on
        assert await a.mark_online(ALICE2, 200) is False  # answered locally
        redis.start()  # empty: it lost every key
        await eventually(lambda: Resync() in got["a"] and Resync() in got["b"])
        await eventually(lambda: a.connected and b.connected)
        # b missed the kick: it is told to re-read mailboxes (a resync request from a, or its own)
        assert UserKicked("bob", "during the outage") not in got["b"]
        found = sorted((o.device.device_id, o.node) for o in await b.online())
        assert found == [(1, "a"), (2, "a")]  # a registered its devices again
        await a.publish(UserKicked("carol", "after"))
        await eventually(lambda: UserKicked("carol", "after") in got["b"])
    finally:
        await a.close()
        await b.close()
        redis.kill()
