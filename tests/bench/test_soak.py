"""The churn soak's short mode: a real server, churning clients, samples, CSV, plot, leak diff."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from securechat.bench.soak import SoakParams, main, run_soak, slope_per_min


def soak(params: SoakParams, out: Path, name: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Run a soak; its result and the rows of its CSV."""
    result = run_soak(params, out, name)
    with (out / f"{name}.csv").open() as table:
        return result, list(csv.DictReader(table))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_short_soak_samples_rss_files_and_store_and_writes_csv_png(tmp_path: Path) -> None:
    params = SoakParams(minutes=0.25, sample_s=1.0, users=4, tracemalloc=True)
    result, rows = soak(params, tmp_path, "short")
    assert len(rows) == result["samples"] >= 5
    assert {"elapsed_s", "rss_kb", "open_files", "store_bytes"} == set(rows[0])
    assert all(int(r["rss_kb"]) > 0 and int(r["open_files"]) > 0 for r in rows)
    assert result["sessions"] > 0 and result["messages_sent"] > 0
    # each session's messages are new ones (client message ids go on), not retries of the
    # last session's, so they are stored and reach the other members
    assert result["deliveries"] >= result["messages_sent"]
    assert (tmp_path / "short.png").stat().st_size > 0  # matplotlib: the bench extra
    assert math.isfinite(json.loads((tmp_path / "short.json").read_text())["rss_kb_first"])
    diff = (tmp_path / "short-tracemalloc.txt").read_text()
    assert diff.startswith("total growth between the snapshots:")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_heap_soak_samples_malloc_and_python_heap_and_trims_at_the_end(tmp_path: Path) -> None:
    result, rows = soak(SoakParams(minutes=0.2, sample_s=1.0, users=2, heap=True), tmp_path, "heap")
    assert {"malloc_in_use_kb", "malloc_free_kb", "sqlite_kb", "py_blocks"} <= set(rows[0])
    # the heap server's figures are real: malloc holds megabytes (grpc, SQLite), Python
    # hundreds of thousands of blocks
    assert int(rows[-1]["malloc_in_use_kb"]) > 1024 and int(rows[-1]["py_blocks"]) > 10_000
    assert 0 < int(rows[-1]["sqlite_kb"]) < int(rows[-1]["malloc_in_use_kb"])
    assert result["rss_kb_before_trim"] > 0 and result["rss_kb_after_trim"] > 0
    assert math.isfinite(result["malloc_in_use_kb_per_min_second_half"])


def test_tracemalloc_and_heap_servers_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one"):
        run_soak(SoakParams(minutes=0.1, tracemalloc=True, heap=True), tmp_path)


def test_heap_collect_is_a_way_of_sampling_the_heap(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give --heap too"):
        run_soak(SoakParams(minutes=0.1, heap_collect=True), tmp_path)


def test_slope_is_taken_over_the_second_half() -> None:
    samples = [
        {"elapsed_s": 60.0 * i, "rss_kb": 1000.0 + (50 * i if i >= 2 else 500 * i)}
        for i in range(4)
    ]
    assert slope_per_min(samples, "rss_kb") == pytest.approx(50.0)
    assert math.isnan(slope_per_min(samples[:1], "rss_kb"))


def test_cli_parses_the_duration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[SoakParams] = []
    monkeypatch.setattr("securechat.bench.soak.run_soak", lambda p, out, name: seen.append(p))
    assert main(["--minutes", "2.5", "--users", "3", "--out", str(tmp_path)]) == 0
    assert seen[0].minutes == 2.5 and seen[0].users == 3 and not seen[0].tracemalloc
    assert not seen[0].heap
    assert main(["--heap", "--out", str(tmp_path)]) == 0
    assert seen[1].heap and not seen[1].heap_collect
    assert main(["--heap-collect", "--out", str(tmp_path)]) == 0
    assert seen[2].heap and seen[2].heap_collect
