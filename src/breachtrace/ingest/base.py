"""What every reader shares: the reader interface, reject bookkeeping, and line batching.

A reader turns an input stream into Arrow tables of raw records (Python touches each record at
most once, to move it into Arrow), plus one SQL SELECT that normalizes such a table into the
event schema. The SELECT runs in DuckDB, vectorised over the whole batch, and adds a
``reject_reason`` column: rows with a reason are counted as rejects, never stored as events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from breachtrace.ingest.sources import InputFile

BLOCK_BYTES = 16 * 2**20
BATCH_BYTES = 64 * 2**20
EXCERPT_CHARS = 200


class FormatError(Exception):
    """The input is not in the format its reader expects (a file-level failure)."""


@dataclass
class Reject:
    input_record: int
    reason: str
    excerpt: str = ""


@dataclass
class RejectLog:
    """Rejected records of one input file, with where they were."""

    items: list[Reject] = field(default_factory=list)

    def add(self, input_record: int, reason: str, excerpt: bytes | str = b"") -> None:
        if isinstance(excerpt, bytes):
            excerpt = excerpt[:EXCERPT_CHARS].decode("utf-8", errors="backslashreplace")
        self.items.append(Reject(input_record, reason, excerpt[:EXCERPT_CHARS]))

    def __len__(self) -> int:
        return len(self.items)


class Reader(ABC):
    """One source format."""

    #: format name as shown to users and stored in the manifest
    name: str = ""
    #: one line for ``--help`` and error messages
    description: str = ""
    #: the column of the raw tables holding the original record (joined back when the
    #: normalizing SELECT does not produce ``raw`` itself)
    raw_column: str = "line"

    @abstractmethod
    def sniff(self, head: bytes, src: InputFile) -> bool:
        """Whether the first bytes of an input look like this format."""

    @abstractmethod
    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        """Raw record tables, each with an ``input_record`` (int64) column."""

    @abstractmethod
    def normalize_sql(self, table: str) -> str:
        """A SELECT over ``table`` giving every schema column except event_uid and
        input_sha256, plus ``reject_reason`` (NULL for good rows)."""

    def normalize_columns(self) -> tuple[str, ...] | None:
        """The columns ``normalize_sql``'s SELECT gives, where the reader knows them; else
        the runner has DuckDB bind the SELECT to find out, once per process and SQL (~80 ms
        for the Windows mapping's)."""
        return None

    def prepare(self, src: InputFile, head: bytes) -> Reader:
        """A reader configured for one input (e.g. its Zeek #fields); self by default."""
        return self


def line_batches(
    stream: BinaryIO,
    rejects: RejectLog,
    *,
    skip_prefix: bytes | None = None,
    block_bytes: int = BLOCK_BYTES,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[pa.Table]:
    """Tables of (input_record = 1-based line number, line) from a byte stream.

    Lines are split by Arrow's C++ kernels, not a Python loop. Blank lines are skipped, and
    lines starting with ``skip_prefix`` (comments) too. A line that is not valid UTF-8 is
    rejected with its line number; its neighbours are kept.
    """
    line_no = 0
    carry = b""
    pending: list[pa.Table] = []
    pending_bytes = 0
    data = bytearray(block_bytes)
    while True:
        # Each block is read after the carried partial line, into a buffer that Arrow wraps:
        # the bytes are not copied on the way to the line splitter. The splitter copies the
        # lines out, so the buffer is reused (fresh memory is zero-filled, then faulted in).
        if len(data) < len(carry) + block_bytes:
            data = bytearray(len(carry) + block_bytes)
        data[: len(carry)] = carry
        with memoryview(data) as view:
            read = stream.readinto(view[len(carry) : len(carry) + block_bytes])  # type: ignore[attr-defined]
        end = len(carry) + read
        if read:
            cut = data.rfind(b"\n", 0, end)
            if cut < 0:
                carry = bytes(data[:end])
                continue
            size, carry = cut, bytes(data[cut + 1 : end])
        else:
            size, carry = end, b""
        if size:
            table, count = _split_chunk(data, size, line_no, rejects, skip_prefix)
            line_no += count
            if table.num_rows:
                pending.append(table)
            pending_bytes += size
        elif read:  # the block began with the newline ending an empty line: count it
            line_no += 1
        if pending and (pending_bytes >= batch_bytes or not read):
            yield pa.concat_tables(pending)
            pending, pending_bytes = [], 0
        if not read:
            return


def _split_chunk(
    data: bytearray, size: int, line_no: int, rejects: RejectLog, skip_prefix: bytes | None
) -> tuple[pa.Table, int]:
    """(input_record, line) rows of ``data[:size]``, whole lines, and how many lines it held."""
    try:
        offsets = pa.py_buffer(np.array([0, size], dtype=np.int64))
        blob = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)]
        )
        lines = pc.split_pattern(blob.cast(pa.large_string()), "\n").flatten()
    except pa.ArrowInvalid:  # some line is not UTF-8: find it, keep the rest
        lines = pa.array(_decode_lines(bytes(data[:size]), line_no, rejects), pa.large_string())
    count = len(lines)
    numbers = pa.array(np.arange(line_no + 1, line_no + 1 + count, dtype=np.int64))
    if data.find(b"\r", 0, size) >= 0:
        lines = pc.utf8_rtrim(lines, characters="\r")
    table = pa.table({"input_record": numbers, "line": lines.cast(pa.string())})
    # blank lines (empty or whitespace only) and comment lines are dropped
    drop = pc.or_(pc.equal(pc.binary_length(lines), 0), pc.utf8_is_space(lines))
    if skip_prefix:
        drop = pc.or_(drop, pc.starts_with(lines, skip_prefix.decode()))
    if not pc.any(drop).as_py():  # the usual case: nothing to drop, nothing to copy
        return table, count
    keep = pc.invert(drop)
    return table.filter(keep), count


def _decode_lines(chunk: bytes, line_no: int, rejects: RejectLog) -> list[str]:
    texts = []
    for offset, raw in enumerate(chunk.split(b"\n"), start=line_no + 1):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            rejects.add(offset, f"undecodable bytes (not UTF-8) at column {exc.start + 1}", raw)
            texts.append("")
    return texts
