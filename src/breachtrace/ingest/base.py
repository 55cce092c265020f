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

import pyarrow as pa

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

    Blank lines are skipped; lines starting with ``skip_prefix`` (comments) too. A line that is
    not valid UTF-8 is rejected with its line number; its neighbours are kept.
    """
    line_no = 0
    carry = b""
    numbers: list[int] = []
    lines: list[str] = []
    pending = 0
    while True:
        block = stream.read(block_bytes)
        data = carry + block if carry else block
        if block:
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            chunk, carry = data[:cut], data[cut + 1 :]
        else:
            chunk, carry = data, b""
        if chunk:
            line_no = _split_chunk(chunk, line_no, numbers, lines, rejects, skip_prefix)
            pending += len(chunk)
        if pending >= batch_bytes or (not block and lines):
            yield pa.table(
                {
                    "input_record": pa.array(numbers, pa.int64()),
                    "line": pa.array(lines, pa.string()),
                }
            )
            numbers, lines, pending = [], [], 0
        if not block:
            return


def _split_chunk(
    chunk: bytes,
    line_no: int,
    numbers: list[int],
    lines: list[str],
    rejects: RejectLog,
    skip_prefix: bytes | None,
) -> int:
    raw_lines = chunk.split(b"\n")
    try:
        text_lines = chunk.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        text_lines = []
        for offset, raw in enumerate(raw_lines, start=line_no + 1):
            try:
                text_lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                rejects.add(offset, f"undecodable bytes (not UTF-8) at column {exc.start + 1}", raw)
                text_lines.append("")
    prefix = skip_prefix.decode() if skip_prefix else None
    start = line_no + 1
    for offset, text in enumerate(text_lines, start=start):
        if text.endswith("\r"):
            text = text[:-1]
        if not text or text.isspace() or (prefix and text.startswith(prefix)):
            continue
        numbers.append(offset)
        lines.append(text)
    return line_no + len(raw_lines)
