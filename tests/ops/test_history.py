"""The status page's hour of history: rates, quantiles from histogram buckets, fixed memory."""

from __future__ import annotations

import math

import aiohttp
import grpc
import pytest

from securechat.ops.history import ALL, ERRORS, LOGINS, History, Totals, quantile
from securechat.ops.status import StatusServer
from tests.conftest import ApiFactory
from tests.ops.conftest import open_stream
from tests.support.chat import room_send

INF = math.inf


def totals(messages: float = 0, *, buckets: list[tuple[float, float]] | None = None,
           logins: dict[str, float] | None = None, errors: dict[str, float] | None = None,
           streams: float = 0) -> Totals:  # fmt: skip
    return Totals(messages, messages * 2, streams, logins or {}, errors or {},
                  buckets or [(0.01, 0), (0.1, 0), (INF, 0)])  # fmt: skip


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (INF, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert quantile(0.99, buckets) == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert quantile(0.5, [(0.01, 0.0), (INF, 0.0)]) is None
    # Everything above the largest finite bound: that bound is the best estimate.
    assert quantile(0.5, [(0.01, 0.0), (0.1, 0.0), (INF, 4.0)]) == pytest.approx(0.1)


def test_rates_latency_logins_and_errors_per_interval() -> None:
    now = [1000.0]
    history = History(window_s=60, step_s=5, wall=lambda: now[0])
    history.sample(totals(0, logins={"ok": 1}))
    assert history.times == type(history.times)()  # the first sample only sets the baseline
    now[0] += 5
    history.sample(totals(50, streams=3, logins={"ok": 3, "failed": 1},
                          errors={"UNAUTHENTICATED": 1},
                          buckets=[(0.01, 90), (0.1, 100), (INF, 100)]))  # fmt: skip
    now[0] += 5
    history.sample(totals(50, streams=2, logins={"ok": 3, "failed": 1},
                          errors={"UNAUTHENTICATED": 1},
                          buckets=[(0.01, 90), (0.1, 100), (INF, 100)]))  # fmt: skip
    data = history.to_json()
    series = data["series"]
    assert data["times_ms"] == [1_005_000, 1_010_000]
    assert series["messages_per_s"] == [10.0, 0.0]
    assert series["deliveries_per_s"] == [20.0, 0.0]
    assert series["streams"] == [3, 2]
    assert series["send_p50_ms"][0] == pytest.approx(5.556, abs=0.001)
    assert series["send_p99_ms"][0] == pytest.approx(91.0)
    assert series["send_p50_ms"][1] is None  # no sends in that interval: a gap, not a zero
    assert series[LOGINS + "ok"] == [24.0, 0.0]  # 2 in 5 s = 24 per minute
    assert series[LOGINS + "failed"] == [12.0, 0.0]
    assert series[LOGINS + ALL] == [36.0, 0.0]
    assert series[ERRORS + "UNAUTHENTICATED"] == [12.0, 0.0]


def test_memory_is_fixed_whatever_the_uptime() -> None:
    now = [0.0]
    history = History(window_s=60, step_s=5, wall=lambda: now[0])
    for i in range(1000):
        now[0] += 5
        history.sample(totals(i, errors={"INTERNAL": i}))
    assert history.points == 12 and len(history.times) == 12
    assert all(len(points) == 12 for points in history.series.values())
    late = History(window_s=60, step_s=5, wall=lambda: now[0])
    for i in range(3):
        now[0] += 5
        late.sample(totals(i, errors={"INTERNAL": i} if i == 2 else {}))
    assert list(late.series[ERRORS + "INTERNAL"]) == [0.0, 24.0]  # a late series is aligned


async def test_api_history_after_real_traffic(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    status.history.sample(status.totals())
    alice = await open_stream(await connect("alice"))
    bob = await open_stream(await connect("bob"))
    with pytest.raises(grpc.aio.AioRpcError):
        await (await connect()).login("alice", "wrong password!")
    for i in range(5):
        assert (await room_send(alice, "lobby", f"m{i}".encode())).accepted
    status.history.sample(status.totals())
    async with http.get(f"http://127.0.0.1:{status.port}/api/history") as response:
        assert response.status == 200
        body = await response.json()
    series = body["series"]
    assert body["window_s"] == 3600 and len(body["times_ms"]) >= 1
    assert series["messages_per_s"][-1] > 0 and series["streams"][-1] == 2
    assert series["send_p99_ms"][-1] is not None and series["send_p99_ms"][-1] > 0
    assert series[LOGINS + "failed"][-1] > 0 and series[ERRORS + "UNAUTHENTICATED"][-1] > 0
    await alice.close()
    await bob.close()
