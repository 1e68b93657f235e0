"""The rooms benchmark runs and reports every measurement."""

from __future__ import annotations

from securechat.crypto.room_bench import QUICK_SIZES, run_room_bench


def test_quick_room_bench_reports_every_number() -> None:
    results = run_room_bench(quick=True)
    sized = {f"room_{kind}_{n}_ms" for kind in ("send", "distribution") for n in QUICK_SIZES}
    assert set(results) == {
        "room_encrypt_us",
        "room_decrypt_us",
        "room_message_bytes",
        "room_distribution_bytes",
        *sized,
    }
    assert all(value > 0 for value in results.values())
