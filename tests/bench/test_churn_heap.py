"""scripts/churn_heap.py, the soak's per-connection heap probe: a short run against real servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "churn_heap.py"


def churn(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_reference_churn_reads_the_heap_after_each_round() -> None:
    result = churn("reference", "200", "--warmup", "20", "--rounds", "2")
    assert result["system"] == "reference" and result["connections"] == 200
    samples = result["samples"]
    assert isinstance(samples, list) and len(samples) == 3  # after the warm-up, then each round
    # real figures of the heap server: grpc's C core holds megabytes, Python many blocks
    assert all(s["malloc_in_use_kb"] > 1024 and s["py_blocks"] > 10_000 for s in samples)
    assert all(s["rss_kb"] > 0 for s in samples)
    assert isinstance(result["second_half"], dict)
    assert "malloc_in_use_bytes_per_connection" in result["second_half"]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_securechat_sessions_churn_logs_in_and_chats() -> None:
    result = churn("securechat", "20", "--warmup", "5", "--sessions", "--messages", "1")
    assert result["sessions"] is True and result["connections"] == 20
    samples = result["samples"]
    assert isinstance(samples, list) and len(samples) == 2
    assert samples[-1]["sqlite_kb"] > 0  # securechat's store is open in the sampled process
