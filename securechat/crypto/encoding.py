"""Canonical fixed-width byte encoding for signatures, associated data, transcripts and state.

Everything that is signed, authenticated or hashed is built with :class:`Writer`: fixed-width
big-endian integers, fixed-length byte fields and length-prefixed (uint32) variable fields. The
encoding is injective (two different field sequences never produce the same bytes) and never
depends on protobuf's serializer. :class:`Reader` parses the same format and raises
``InvalidArgument`` on any malformed input; callers translate that into ``DecryptionError`` or
``KeystoreError`` at their boundary.
"""

from __future__ import annotations

from securechat.errors import InvalidArgument

MAX_VARIABLE_FIELD = 1 << 26  # 64 MiB: far above any legitimate field, stops absurd allocations


class Writer:
    """Appends canonical fields to a growing byte string."""

    def __init__(self, label: bytes | None = None) -> None:
        self._parts: list[bytes] = []
        if label is not None:
            self.var_bytes(label)

    def u8(self, value: int) -> Writer:
        return self._int(value, 1)

    def u16(self, value: int) -> Writer:
        return self._int(value, 2)

    def u32(self, value: int) -> Writer:
        return self._int(value, 4)

    def u64(self, value: int) -> Writer:
        return self._int(value, 8)

    def boolean(self, value: bool) -> Writer:
        return self.u8(1 if value else 0)

    def fixed(self, data: bytes, length: int) -> Writer:
        if len(data) != length:
            raise InvalidArgument(f"field must be {length} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def var_bytes(self, data: bytes) -> Writer:
        if len(data) > MAX_VARIABLE_FIELD:
            raise InvalidArgument("field too large")
        self.u32(len(data))
        self._parts.append(bytes(data))
        return self

    def text(self, value: str) -> Writer:
        return self.var_bytes(value.encode("utf-8"))

    def optional_bytes(self, data: bytes | None) -> Writer:
        self.boolean(data is not None)
        if data is not None:
            self.var_bytes(data)
        return self

    def raw(self, data: bytes) -> Writer:
        """Append already-canonical bytes (for nesting a fixed-width structure)."""
        self._parts.append(bytes(data))
        return self

    def to_bytes(self) -> bytes:
        return b"".join(self._parts)

    def _int(self, value: int, width: int) -> Writer:
        if not 0 <= value < (1 << (8 * width)):
            raise InvalidArgument(f"integer {value} does not fit in {width} bytes")
        self._parts.append(value.to_bytes(width, "big"))
        return self


class Reader:
    """Consumes canonical fields; every short read or bad value raises InvalidArgument."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._offset = 0

    def u8(self) -> int:
        return int.from_bytes(self.fixed(1), "big")

    def u16(self) -> int:
        return int.from_bytes(self.fixed(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.fixed(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.fixed(8), "big")

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise InvalidArgument("malformed boolean")
        return value == 1

    def fixed(self, length: int) -> bytes:
        end = self._offset + length
        if length < 0 or end > len(self._data):
            raise InvalidArgument("truncated input")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def var_bytes(self) -> bytes:
        length = self.u32()
        if length > MAX_VARIABLE_FIELD:
            raise InvalidArgument("field too large")
        return self.fixed(length)

    def text(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument("malformed text field") from exc

    def optional_bytes(self) -> bytes | None:
        return self.var_bytes() if self.boolean() else None

    def expect_label(self, label: bytes) -> None:
        if self.var_bytes() != label:
            raise InvalidArgument("unexpected label")

    def rest(self) -> bytes:
        chunk = self._data[self._offset :]
        self._offset = len(self._data)
        return chunk

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def finish(self) -> None:
        """Require that every byte was consumed."""
        if self._offset != len(self._data):
            raise InvalidArgument("trailing bytes")
