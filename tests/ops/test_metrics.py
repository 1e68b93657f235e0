"""/metrics after real traffic parses as Prometheus exposition and its counters moved."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from securechat.ops.status import StatusServer
from tests.conftest import ApiFactory
from tests.ops.conftest import open_stream
from tests.support.chat import room_send


async def scrape(http: aiohttp.ClientSession, status: StatusServer) -> dict[str, float]:
    """Every sample as 'name{label=value,...}' -> value."""
    async with http.get(f"http://127.0.0.1:{status.port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def test_metrics_count_streams_sends_deliveries_and_logins(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, status)
    alice = await open_stream(await connect("alice"))
    bob = await open_stream(await connect("bob"))
    with pytest.raises(grpc.aio.AioRpcError):
        await (await connect()).login("bob", "wrong password!")
    for i in range(4):
        assert (await room_send(alice, "lobby", f"m{i}".encode())).accepted
    await bob.wait_until(lambda: len(bob.deliveries) == 4)
    after = await scrape(http, status)

    families = {name.split("{")[0] for name in after}
    for expected in (
        "securechat_streams",
        "securechat_rpcs_total",
        "securechat_rpc_latency_seconds_bucket",
        "securechat_messages_accepted_total",
        "securechat_deliveries_total",
        "securechat_send_latency_seconds_count",
        "securechat_frames_total",
        "securechat_queue_drops_total",
        "securechat_logins_total",
        "securechat_store_commit_seconds_count",
    ):
        assert expected in families, expected
    assert before["securechat_streams{}"] == 0 and after["securechat_streams{}"] == 2
    assert after["securechat_messages_accepted_total{}"] == 4
    assert after["securechat_send_latency_seconds_count{}"] == 4
    assert after["securechat_deliveries_total{}"] == 4
    assert after["securechat_logins_total{outcome=ok}"] == 2
    assert after["securechat_logins_total{outcome=failed}"] == 1
    assert after["securechat_rpcs_total{code=OK,method=Login}"] == 2
    assert after["securechat_rpcs_total{code=UNAUTHENTICATED,method=Login}"] == 1
    assert after["securechat_frames_total{}"] > before.get("securechat_frames_total{}", 0)
    await alice.close()
    await bob.close()
