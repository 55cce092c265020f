"""Columnar building blocks: interned strings, typed row sets, and vectorised text formatting.

Events are generated as numeric columns (numpy): every string is an id into one ``StringPool``,
every address a uint32. Text is produced only when a chunk is written, column by column with
Arrow compute kernels, so no Python object exists per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NONE_ID = 0  # string id of "-", the value every string column defaults to


class StringPool:
    """Interns strings to int32 ids; id 0 is "-" (the Windows/Zeek placeholder for no value)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {"-": NONE_ID}
        self._items: list[str] = ["-"]
        self._plain: pa.Array | None = None
        self._json: pa.Array | None = None

    def id(self, text: str) -> int:
        found = self._ids.get(text)
        if found is None:
            found = len(self._items)
            self._ids[text] = found
            self._items.append(text)
            self._plain = self._json = None
        return found

    def ids(self, texts: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.id(t) for t in texts), dtype=np.int32)

    def text(self, ident: int) -> str:
        return self._items[ident]

    def __len__(self) -> int:
        return len(self._items)

    def plain(self, ids: np.ndarray) -> pa.Array:
        """The strings for ``ids`` as an Arrow array."""
        if self._plain is None:
            self._plain = pa.array(self._items, pa.string())
        return self._plain.take(pa.array(ids, pa.int32()))

    def json(self, ids: np.ndarray) -> pa.Array:
        """The strings for ``ids``, escaped for use inside a JSON string literal."""
        if self._json is None:
            self._json = json_escape(pa.array(self._items, pa.string()))
        return self._json.take(pa.array(ids, pa.int32()))


def json_escape(values: pa.Array) -> pa.Array:
    """Backslashes, quotes and control characters escaped for a JSON string literal."""
    out = pc.replace_substring(values, "\\", "\\\\")
    out = pc.replace_substring(out, '"', '\\"')
    for char, escaped in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        out = pc.replace_substring(out, char, escaped)
    return out


class RowSchema:
    """Named, typed columns with defaults; a row set holds one numpy array per column."""

    def __init__(self, name: str, columns: Mapping[str, tuple[Any, Any]]) -> None:
        self.name = name
        self.columns = dict(columns)  # column -> (dtype, default)

    def make(self, n: int, **values: Any) -> Rows:
        """A row set of ``n`` rows; scalars broadcast, unnamed columns take their default."""
        cols: dict[str, np.ndarray] = {}
        for column, (dtype, default) in self.columns.items():
            value = values.pop(column, default)
            arr = np.asarray(value, dtype=dtype)
            cols[column] = np.broadcast_to(arr, (n,)).copy() if arr.ndim == 0 else arr
            if len(cols[column]) != n:
                raise ValueError(f"{self.name}.{column}: {len(cols[column])} values for {n} rows")
        if values:
            raise KeyError(f"{self.name}: unknown columns {sorted(values)}")
        return Rows(self, cols, n)

    def empty(self) -> Rows:
        return self.make(0)


class Rows:
    """A set of rows in one schema (column -> numpy array)."""

    def __init__(self, schema: RowSchema, cols: dict[str, np.ndarray], n: int) -> None:
        self.schema = schema
        self.cols = cols
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, column: str) -> np.ndarray:
        return self.cols[column]

    def take(self, index: np.ndarray) -> Rows:
        index = np.asarray(index)
        n = int(index.sum()) if index.dtype == np.bool_ else len(index)
        return Rows(self.schema, {k: v[index] for k, v in self.cols.items()}, n)

    @staticmethod
    def concat(schema: RowSchema, parts: Sequence[Rows]) -> Rows:
        parts = [p for p in parts if p.n]
        if not parts:
            return schema.empty()
        if len(parts) == 1:
            return parts[0]
        cols = {k: np.concatenate([p.cols[k] for p in parts]) for k in schema.columns}
        return Rows(schema, cols, sum(p.n for p in parts))

    def sorted_by_time(self, tiebreak: Sequence[str] = ()) -> Rows:
        keys = [self.cols[k] for k in reversed(tiebreak)] + [self.cols["ts"]]
        return self.take(np.lexsort(keys))


# --- text columns --------------------------------------------------------------------------

_OCTETS = pa.array([str(i) for i in range(256)], pa.string())
_HEX4 = pa.array([f"{i:04x}" for i in range(65536)], pa.string())


def join(parts: Sequence[pa.Array | str]) -> pa.Array:
    """Element-wise concatenation of string arrays and constant strings."""
    merged: list[pa.Array | pa.Scalar] = []
    pending = ""
    for part in parts:
        if isinstance(part, str):
            pending += part
            continue
        if pending:
            merged.append(pa.scalar(pending, pa.string()))
            pending = ""
        merged.append(part)
    if pending:
        merged.append(pa.scalar(pending, pa.string()))
    if not any(isinstance(m, pa.Array) for m in merged):
        raise ValueError("join needs at least one array")
    return pc.binary_join_element_wise(*merged, "")


def ints(values: np.ndarray, *, dash_below: int | None = None) -> pa.Array:
    """Integers as decimal text; values below ``dash_below`` become "-"."""
    text = pc.cast(pa.array(values), pa.string())
    if dash_below is None:
        return text
    return pc.if_else(pa.array(values < dash_below), pa.scalar("-"), text)


def ipv4(values: np.ndarray, *, zero: str = "-") -> pa.Array:
    """uint32 addresses as dotted quads; 0 becomes ``zero``."""
    v = values.astype(np.uint32)
    parts: list[pa.Array | str] = []
    for shift in (24, 16, 8, 0):
        if parts:
            parts.append(".")
        parts.append(_OCTETS.take(pa.array(((v >> shift) & 255).astype(np.int32))))
    text = join(parts)
    return pc.if_else(pa.array(v == 0), pa.scalar(zero), text)


def hex_id(values: np.ndarray) -> pa.Array:
    """Non-negative int64 ids as Windows-style hex ("0x3e7"), no leading zeros."""
    v = values.astype(np.uint64)
    hi = _HEX4.take(pa.array(((v >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.int32)))
    lo = _HEX4.take(pa.array((v & np.uint64(0xFFFF)).astype(np.int32)))
    digits = pc.utf8_ltrim(join([hi, lo]), "0")
    digits = pc.if_else(pc.equal(digits, ""), pa.scalar("0"), digits)
    return join(["0x", digits])


def iso_ms(ts_us: np.ndarray) -> pa.Array:
    """Microsecond epoch times as ISO-8601 UTC with milliseconds and a Z."""
    text = np.datetime_as_string(
        ts_us.astype("datetime64[us]").astype("datetime64[ms]"), unit="ms", timezone="UTC"
    )
    return pa.array(text, pa.string())


def epoch_text(ts_us: np.ndarray) -> pa.Array:
    """Microsecond epoch times as seconds with six decimals (Zeek's ``time``)."""
    sec = ints(ts_us // 1_000_000)
    frac = pc.utf8_lpad(ints(ts_us % 1_000_000), 6, "0")
    return join([sec, ".", frac])


def write_lines(fh: Any, lines: pa.Array) -> None:
    """Write a string array (each element already ends in a newline) with one buffer copy."""
    if len(lines) == 0:
        return
    if lines.null_count:
        raise ValueError("a formatted line is null")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    fh.write(memoryview(lines.buffers()[2])[start:end])


def random_tokens(rng: np.random.Generator, n: int, length: int, alphabet: str) -> pa.Array:
    """``n`` random strings of ``length`` characters from ``alphabet``, as an Arrow array."""
    table = np.frombuffer(alphabet.encode(), dtype=np.uint8)
    codes = np.ascontiguousarray(table[rng.integers(0, len(table), size=(n, length))])
    return pa.array(codes.view(f"S{length}").ravel()).cast(pa.string())


def draw_strings(rng: np.random.Generator, n: int, length: int, alphabet: str) -> list[str]:
    """``n`` random strings of ``length`` characters from ``alphabet``."""
    table = np.frombuffer(alphabet.encode(), dtype=np.uint8)
    codes = table[rng.integers(0, len(table), size=(n, length))]
    return [bytes(row).decode() for row in codes]
