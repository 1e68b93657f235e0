"""/metrics after real traffic parses as Prometheus exposition and its counters moved."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from securechat import __version__
from securechat.ops.status import StatusServer
from securechat.services.admin import Stats
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


async def test_standard_collectors_build_info_and_store_gauges(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    alice = await open_stream(await connect("alice"))
    await connect("bob")
    assert (await room_send(alice, "lobby", b"for bob, who is offline")).accepted
    await status.refresh_counts()  # the sampler does this every COUNTS_REFRESH_S
    after = await scrape(http, status)
    assert after["process_resident_memory_bytes{}"] > 0
    assert after["process_cpu_seconds_total{}"] > 0
    assert after["process_open_fds{}"] > 0
    assert any(name.startswith("python_gc_collections_total{") for name in after)
    assert any(name.startswith("python_info{") for name in after)
    build = [name for name in after if name.startswith("securechat_build_info{")]
    assert len(build) == 1 and f"version={__version__}" in build[0] and after[build[0]] == 1
    assert after["securechat_registered_users{}"] == 2
    assert after["securechat_rooms{}"] == 1
    assert after["securechat_undelivered_entries{}"] == 1  # bob's copy waits in his mailbox
    await alice.close()


async def test_a_scrape_runs_no_count_query(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    calls = []
    real = status.view.stats

    async def counted() -> Stats:
        calls.append(1)
        return await real()

    status.view.stats = counted  # type: ignore[method-assign]
    await connect("carol")
    for _ in range(5):
        samples = await scrape(http, status)
    assert calls == [] and samples["securechat_registered_users{}"] == 0  # the cached count
    await status.refresh_counts()
    assert calls == [1] and (await scrape(http, status))["securechat_registered_users{}"] == 1


async def test_promtool_check_metrics_is_clean(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool not installed (apt-get install -y prometheus); CI installs it"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    alice = await open_stream(await connect("alice"))
    await connect("bob")
    with pytest.raises(grpc.aio.AioRpcError):
        await (await connect()).login("bob", "wrong password!")
    assert (await room_send(alice, "lobby", b"x")).accepted
    async with http.get(f"http://127.0.0.1:{status.port}/metrics") as response:
        exposition = await response.read()
    await alice.close()
    result = subprocess.run([promtool, "check", "metrics"], input=exposition,
                            capture_output=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, b"")


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    text = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if not text[match.end() :].lstrip().startswith("("):  # a function call
            names.add(match.group())
    return names - PROMQL_WORDS


def test_metric_names_parser() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, method) (rate(a_bucket{x="1"}[5m]))) * 60'
    assert metric_names(expr) == {"a_bucket"}
    assert metric_names("sum(rate(b_total[1m])) / on (instance) c") == {"b_total", "c"}


async def test_every_grafana_query_names_a_metric_the_server_exports(
    connect: ApiFactory, status: StatusServer, http: aiohttp.ClientSession
) -> None:
    alice = await open_stream(await connect("alice"))
    await connect("bob")
    assert (await room_send(alice, "lobby", b"x")).accepted
    exported = {name.split("{")[0] for name in await scrape(http, status)}
    await alice.close()

    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 10
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{expr}: {sorted(names - exported)} not exported"
    for variable in dashboard["templating"]["list"]:
        metric = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["query"])
        assert metric is not None and metric.group(1) in exported
    titles = {panel["title"] for panel in dashboard["panels"]}
    for needed in ("Messages accepted /s", "Send latency", "Errors by status code /s"):
        assert needed in titles
