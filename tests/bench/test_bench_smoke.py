"""The bench harness runs end to end on a tiny load and writes complete, finite results."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from securechat.bench.__main__ import run_bench, run_one
from securechat.bench.harness import Params
from securechat.bench.scaleout import unavailable

SUMMARY_KEYS = {
    "saturation_ratio",
    "saturation_signed_ratio",
    "saturation_drained_ratio",
    "saturation_signed_drained_ratio",
    "p99_ms_at_5k",
    "cpu_per_delivery_ratio",
    "rss_kb_per_client",
    "reference_rss_kb_per_client",
    "rss_ratio_to_reference",
    "login_storm_p99_factor",
    "login_storm_logins_per_s",
    "catchup_10k_s",
    "cpu_ratio_10x2_spread",
    "cpu_ratio_50x2_spread",
    "cpu_ratio_50x2_burst",
    "p99_ms_10x2_spread",
    "p99_ms_50x2_spread",
    "p99_ms_50x2_burst",
    "reference_p99_ms_50x2_burst",
}
SCALEOUT_KEYS = {"scaleout_1_worker", "scaleout_2_workers", "scaleout_ratio"}
TINY = dataclasses.replace(
    Params.for_run(quick=True),
    room_members=4,
    shapes=(
        ("10x2 spread", 3, 2.0, "spread", "legacy"),
        ("50x2 spread", 4, 2.0, "spread", "legacy"),
        ("50x2 burst", 4, 2.0, "burst", "legacy"),
    ),
    shape_repeats=2,
    room_processes=1,
    fanout_warmup_s=0.5,
    fanout_s=1.0,
    saturation_step_s=1.0,
    saturation_rates=(2.0, 4.0),
    idle_clients=6,
    idle_processes=2,
    storm_logins=2,
    storm_room_members=3,
    storm_before_s=1.0,
    catchup_messages=20,
    catchup_senders=2,
    catchup_concurrency=4,
    step_lead_s=0.5,
    idle_settle_before_s=0.5,
    idle_settle_after_s=0.5,
    storm_margin_s=1.0,
)


def assert_finite(summary: dict[str, Any], keys: set[str]) -> None:
    for key in keys:
        assert isinstance(summary[key], int | float), f"{key} is {summary[key]!r}"
        assert math.isfinite(summary[key]), f"{key} is {summary[key]!r}"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_run_writes_every_result_with_finite_figures(tmp_path: Path) -> None:
    # scaleout has its own test below (it needs PostgreSQL and Redis)
    wanted = {"fanout", "connections", "login_storm", "catchup"}
    run_bench(TINY, wanted, tmp_path)

    summary = json.loads((tmp_path / "latest.json").read_text())
    assert set(summary) >= SUMMARY_KEYS | SCALEOUT_KEYS
    assert_finite(summary, SUMMARY_KEYS)
    assert summary["scaleout_1_worker"] is None  # not run: null, not a made-up figure
    assert summary["room_1000_cpu_ratio_to_50"] is None  # a gap, not a figure
    fanout = json.loads((tmp_path / "fanout.json").read_text())
    for shape in fanout["shapes"].values():  # both servers, every repeat, same run
        assert [len(shape["steps"][s]) for s in ("securechat", "reference")] == [2, 2]
    assert {"cores", "cpu_model", "python", "grpcio", "git_commit"} <= set(summary["machine"])
    assert summary["params"]["room_members"] == TINY.room_members
    for name in ("fanout", "saturation", "connections", "login_storm", "catchup"):
        assert (tmp_path / f"{name}.json").is_file(), name
    saturation = json.loads((tmp_path / "saturation.json").read_text())
    for label in ("securechat", "securechat_signed", "reference"):
        # every search starts on a server whose earlier loads were all delivered
        assert saturation[label]["steps"][0]["started_drained"] is True, label
    assert not (tmp_path / "scaleout.json").exists()
    catchup = json.loads((tmp_path / "catchup.json").read_text())
    assert catchup["received"] == TINY.catchup_messages
    storm = json.loads((tmp_path / "login_storm.json").read_text())
    completed = TINY.storm_logins - storm["login_failures"]
    assert storm["logins_per_s"] == pytest.approx(completed / storm["storm_s"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_tiny_scaleout_measures_one_and_two_workers(tmp_path: Path) -> None:
    params = dataclasses.replace(TINY, saturation_rates=(2.0,))
    reason = unavailable(params)
    if reason is not None:
        pytest.skip(reason)
    run_bench(params, {"scaleout"}, tmp_path)

    summary = json.loads((tmp_path / "latest.json").read_text())
    assert_finite(summary, SCALEOUT_KEYS)
    assert summary["scaleout_available"] is True
    result = json.loads((tmp_path / "scaleout.json").read_text())
    assert result["workers_2"]["workers"] == 2
    assert len(result["workers_2"]["worker_cpu_s_during_search"]) == 2  # two worker processes
    assert summary["scaleout_ratio"] == pytest.approx(
        summary["scaleout_2_workers"] / summary["scaleout_1_worker"]
    )


@pytest.mark.timeout(300)
def test_idle_connections_measure_the_reference_in_the_same_run(tmp_path: Path) -> None:
    run_bench(TINY, {"connections"}, tmp_path)

    result = json.loads((tmp_path / "connections.json").read_text())
    reference = result["reference"]
    assert result["clients"] == reference["clients"] == TINY.idle_clients
    assert reference["rss_kb_after"] > 0
    assert result["reference_rss_kb_per_client"] == reference["rss_kb_per_client"]
    summary = json.loads((tmp_path / "latest.json").read_text())
    assert summary["reference_rss_kb_per_client"] == reference["rss_kb_per_client"]
    if reference["rss_kb_per_client"]:  # 6 streams may not move the RSS of a fresh server
        assert summary["rss_ratio_to_reference"] == pytest.approx(
            result["rss_kb_per_client"] / reference["rss_kb_per_client"]
        )
    assert summary["targets"]["rss_kb_per_client"]["target"] == "<= 80.0"  # absolute


def test_unreachable_postgres_is_recorded_not_fatal(tmp_path: Path) -> None:
    params = dataclasses.replace(TINY, scaleout_postgres="postgresql://postgres@127.0.0.1:1")
    run_bench(params, {"scaleout"}, tmp_path)

    result = json.loads((tmp_path / "scaleout.json").read_text())
    assert result["available"] is False
    assert "PostgreSQL not reachable" in result["reason"]
    summary = json.loads((tmp_path / "latest.json").read_text())
    assert summary["scaleout_available"] is False
    assert summary["scaleout_1_worker"] is None


def test_a_failing_scenario_is_recorded_and_the_finished_ones_are_kept(tmp_path: Path) -> None:
    results: dict[str, dict[str, Any]] = {"fanout": {"p99_ms": 1.0}}

    def broken() -> None:
        raise RuntimeError("load process failed")

    run_one("connections", broken, results, {"cores": 2}, tmp_path)

    assert "load process failed" in results["connections"]["failed"]
    assert json.loads((tmp_path / "fanout.json").read_text())["p99_ms"] == 1.0
    assert "failed" in json.loads((tmp_path / "connections.json").read_text())
