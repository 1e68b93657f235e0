"""The signed-room shapes (issue 15) run end to end on a tiny load: members of two load processes
join one signed room with signed events, every member gets every room message, each message is
stored once, and the figures land in fanout.json and latest.json beside the reference's."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from securechat.bench.__main__ import main, params_of, run_bench
from securechat.bench.harness import QUICK_ROOM_1000_MEMBERS, ROOM_1000, Params
from securechat.bench.signed_room import first_use_roster
from securechat.crypto.account import CryptoAccount
from securechat.crypto.room_membership import create_event, join_event, new_room_salt
from securechat.errors import RosterRejected
from tests.bench.test_bench_smoke import TINY

SIGNED_SHAPES = (
    ("10x2 spread signed", 3, 2.0, "spread", "signed"),
    ("50x2 spread signed", 4, 2.0, "spread", "signed"),
)
SIGNED = dataclasses.replace(
    TINY, shapes=SIGNED_SHAPES, saturation=False, room_processes=2, shape_repeats=2
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_signed_room_shapes_deliver_everything_and_store_each_message_once(
    tmp_path: Path,
) -> None:
    run_bench(SIGNED, {"fanout"}, tmp_path)

    fanout = json.loads((tmp_path / "fanout.json").read_text())
    assert set(fanout["shapes"]) == {name for name, *_ in SIGNED_SHAPES}
    for name, members, *_ in SIGNED_SHAPES:
        shape = fanout["shapes"][name]
        assert [len(shape["steps"][s]) for s in ("securechat", "reference")] == [2, 2]
        for step in shape["steps"]["securechat"]:
            assert step["room"] == "signed"
            assert step["errors"] == {}
            assert step["sent_messages"] > 0
            assert step["delivered_per_s"] > 0
            # every other member received every message sent so far, and no more
            assert step["all_delivered"] is True
            assert step["received_total"] == step["sent_total"] * (members - 1)
            stored = step["stored"]
            assert stored["room_log_rows"] == step["sent_messages"]  # one row per message
            assert stored["room_log_rows_per_message"] == 1.0
            assert 200 <= stored["room_log_bytes_per_message"] <= 400  # the one ciphertext
            assert step["deliveries_per_write"] >= 1.0
        for step in shape["steps"]["reference"]:
            assert step["delivered_per_s"] > 0
        assert shape["securechat"]["stored"]["room_log_rows_per_message"] == 1.0

    summary = json.loads((tmp_path / "latest.json").read_text())
    for key in (
        "cpu_ratio_50x2_spread_signed",
        "cpu_us_50x2_spread_signed",
        "reference_cpu_us_50x2_spread_signed",
        "p50_ms_50x2_spread_signed",
        "p99_ms_50x2_spread_signed",
        "deliveries_per_write_50x2_spread_signed",
        "room_log_bytes_per_message_50x2_spread_signed",
        "cpu_ratio_10x2_spread_signed",
    ):
        assert isinstance(summary[key], int | float) and math.isfinite(summary[key]), key
        assert summary[key] > 0, key
    assert summary["room_log_rows_per_message_50x2_spread_signed"] == 1.0
    assert summary["saturation_ratio"] is None  # not run: null, not a made-up figure
    saturation = json.loads((tmp_path / "saturation.json").read_text())
    assert "skipped" in saturation


def test_shape_and_saturation_flags_choose_the_run() -> None:
    parser_args = ["--quick", "--shape", "50x2 spread signed", "--no-saturation"]
    captured: list[Params] = []

    def fake(params: Params, *_: object) -> dict[str, object]:
        captured.append(params)
        return {}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("securechat.bench.__main__.run_bench", fake)
        assert main([*parser_args, "--repeats", "2"]) == 0
    [params] = captured
    assert [s[0] for s in params.shapes] == ["50x2 spread signed"]
    assert params.saturation is False
    assert params.shape_repeats == 2
    assert params.quick is True


def test_without_flags_every_shape_and_saturation_run() -> None:
    import argparse

    args = argparse.Namespace(quick=False, shape=None, no_saturation=False, repeats=0)
    params = params_of(args)
    assert params == Params.for_run(quick=False)
    assert {kind for *_, kind in params.shapes} == {"legacy", "signed"}
    assert params.saturation is True


def test_an_unknown_shape_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--shape", "50x2 sideways"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_first_use_roster_takes_the_events_keys_and_still_checks_signatures() -> None:
    alice = CryptoAccount.create("alice", 1, now=1, one_time_count=0, kem_one_time_count=0)
    bob = CryptoAccount.create("bob", 1, now=1, one_time_count=0, kem_one_time_count=0)
    alice_key, bob_key = alice.account_key_of("alice"), bob.account_key_of("bob")
    assert alice_key is not None and bob_key is not None
    first = create_event("r", alice.devices.signer, "alice", alice_key, room_salt=new_room_salt())
    roster = first_use_roster("r", [first])
    join = join_event(roster, bob.devices.signer, "bob", bob_key)
    assert set(first_use_roster("r", [first, join]).members) == {"alice", "bob"}
    forged = join[:-1] + bytes([join[-1] ^ 1])  # the signature no longer verifies
    with pytest.raises(RosterRejected):
        first_use_roster("r", [first, forged])


BIG_SHAPES = (
    ("50x2 spread signed", 4, 2.0, "spread", "signed"),
    (ROOM_1000, 9, 2.0, "spread", "signed"),  # the big room's shape, with 9 members
)
BIG = dataclasses.replace(
    TINY,
    shapes=BIG_SHAPES,
    shape_senders=((ROOM_1000, 3),),
    saturation=False,
    room_processes=2,
    shape_repeats=1,
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_big_room_shape_delivers_everything_and_reports_its_ratio_to_50(
    tmp_path: Path,
) -> None:
    run_bench(BIG, {"fanout"}, tmp_path)

    fanout = json.loads((tmp_path / "fanout.json").read_text())
    big = fanout["shapes"][ROOM_1000]
    assert (big["members"], big["senders"]) == (9, 3)
    for step in big["steps"]["securechat"]:
        assert step["errors"] == {}
        assert step["sent_messages"] > 0
        assert step["offered_deliveries_per_s"] == 3 * 2.0 * 8  # senders x rate x recipients
        # every other member (the 6 that never send too) received every message
        assert step["all_delivered"] is True
        assert step["received_total"] == step["sent_total"] * 8
        assert step["stored"]["room_log_rows_per_message"] == 1.0
    assert fanout["room_1000"]["all_delivered"] is True

    summary = json.loads((tmp_path / "latest.json").read_text())
    for key in ("room_1000_cpu_ratio_to_50", "room_1000_cpu_ratio_to_reference"):
        assert isinstance(summary[key], int | float) and math.isfinite(summary[key]), key
        assert summary[key] > 0, key
    assert summary["room_1000_cpu_ratio_to_50"] == pytest.approx(
        summary[f"cpu_us_{ROOM_1000.replace(' ', '_')}"] / summary["cpu_us_50x2_spread_signed"]
    )
    assert summary["targets"]["room_1000_cpu_ratio_to_50"]["value"] is not None
    assert "room_1000_cpu_ratio_to_50" not in summary["gaps"]
    assert (summary["room_1000_members"], summary["room_1000_senders"]) == (9, 3)
    assert "NOT 1,000" in summary["room_1000_note"]  # a smaller room says so


def test_quick_runs_the_big_room_with_fewer_members_and_full_with_1000() -> None:
    def members(params: Params) -> int:
        return next(m for name, m, *_ in params.shapes if name == ROOM_1000)

    assert members(Params.for_run(quick=False)) == 1000
    assert members(Params.for_run(quick=True)) == QUICK_ROOM_1000_MEMBERS < 1000
    assert Params.for_run(quick=False).senders(ROOM_1000) == 4
    assert Params.for_run(quick=False).senders("50x2 spread signed") is None
