"""The bench harness runs end to end on a tiny load and writes complete, finite results."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from securechat.bench.__main__ import run_bench
from securechat.bench.harness import Params

SUMMARY_KEYS = {
    "saturation_ratio",
    "p99_ms_at_5k",
    "cpu_per_delivery_ratio",
    "rss_kb_per_client",
    "login_storm_p99_factor",
    "catchup_10k_s",
}
TINY = dataclasses.replace(
    Params.for_run(quick=True),
    room_members=4,
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
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tiny_run_writes_every_result_with_finite_figures(tmp_path: Path) -> None:
    wanted = {"fanout", "connections", "login_storm", "catchup"}
    run_bench(TINY, wanted, tmp_path)

    summary = json.loads((tmp_path / "latest.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    for key in SUMMARY_KEYS:
        assert isinstance(summary[key], int | float), f"{key} is {summary[key]!r}"
        assert math.isfinite(summary[key]), f"{key} is {summary[key]!r}"
    assert {"cores", "cpu_model", "python", "grpcio", "git_commit"} <= set(summary["machine"])
    assert summary["params"]["room_members"] == TINY.room_members
    for name in ("fanout", "saturation", "connections", "login_storm", "catchup"):
        assert (tmp_path / f"{name}.json").is_file(), name
    catchup = json.loads((tmp_path / "catchup.json").read_text())
    assert catchup["received"] == TINY.catchup_messages
