"""The crypto benchmark runs and reports every measurement."""

from __future__ import annotations

from securechat.crypto.bench import run_crypto_bench


def test_quick_bench_reports_every_number() -> None:
    results = run_crypto_bench(quick=True)
    assert set(results) == {
        "session_setup_ms",
        "ratchet_encrypt_decrypt_us",
        "room_fanout_10_ms",
        "room_fanout_50_ms",
        "room_fanout_100_ms",
    }
    assert all(value > 0 for value in results.values())
