"""The canonical encoding round-trips, is injective and rejects malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securechat.crypto.encoding import Reader, Writer
from securechat.errors import InvalidArgument


def test_fixed_width_big_endian_layout() -> None:
    data = Writer(b"L").u8(1).u16(2).u32(3).u64(4).boolean(True).to_bytes()
    assert (
        data
        == b"\x00\x00\x00\x01L"
        + b"\x01"
        + b"\x00\x02"
        + b"\x00\x00\x00\x03"
        + (b"\x00" * 7 + b"\x04")
        + b"\x01"
    )


@given(
    st.lists(st.binary(max_size=40), max_size=6), st.text(max_size=20), st.integers(0, 2**32 - 1)
)
@settings(max_examples=50)
def test_round_trip(fields: list[bytes], text: str, number: int) -> None:
    writer = Writer(b"label").u32(number).text(text).u32(len(fields))
    for field in fields:
        writer.var_bytes(field)
    reader = Reader(writer.to_bytes())
    reader.expect_label(b"label")
    assert reader.u32() == number
    assert reader.text() == text
    assert [reader.var_bytes() for _ in range(reader.u32())] == fields
    reader.finish()


def test_length_prefix_makes_concatenation_injective() -> None:
    assert Writer().var_bytes(b"ab").var_bytes(b"c").to_bytes() != (
        Writer().var_bytes(b"a").var_bytes(b"bc").to_bytes()
    )


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x00\x05abc", b"\xff\xff\xff\xff"])
def test_truncated_input_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        Reader(data).var_bytes()


def test_trailing_bytes_and_bad_values_are_rejected() -> None:
    reader = Reader(b"\x01\x02")
    reader.u8()
    with pytest.raises(InvalidArgument):
        reader.finish()
    with pytest.raises(InvalidArgument):
        Reader(b"\x02").boolean()
    with pytest.raises(InvalidArgument):
        Reader(b"\x00\x00\x00\x01\xff").text()
    with pytest.raises(InvalidArgument):
        Reader(b"\x00\x00\x00\x01a").expect_label(b"b")


def test_writer_rejects_out_of_range_values() -> None:
    with pytest.raises(InvalidArgument):
        Writer().u8(256)
    with pytest.raises(InvalidArgument):
        Writer().u32(-1)
    with pytest.raises(InvalidArgument):
        Writer().fixed(b"abc", 4)
