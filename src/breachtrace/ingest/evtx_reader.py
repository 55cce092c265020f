"""Windows EVTX files of any channel, parsed by the Rust parser behind the ``evtx`` package."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO, cast

import evtx
import pyarrow as pa

from breachtrace.ingest import windows_mapping
from breachtrace.ingest.base import Reader, RejectLog
from breachtrace.ingest.sources import InputFile

MAGIC = b"ElfFile\x00"
HEADER_BLOCK = 4096
CHUNK_BYTES = 65536
BATCH_RECORDS = 200_000


class EvtxReader(Reader):
    name = "evtx"
    description = "Windows EVTX event log (Security, System, Sysmon, PowerShell, ...)"
    raw_column = "raw"

    def sniff(self, head: bytes, src: InputFile) -> bool:
        return head.startswith(MAGIC)

    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        # The Rust parser reads the file itself; archive members are handed over in memory.
        if src.local_path is not None:
            target: str | BinaryIO = str(src.local_path)
            with open(src.local_path, "rb") as fh:
                header = fh.read(HEADER_BLOCK)
        else:
            data = stream.read()
            target, header = io.BytesIO(data), data[:HEADER_BLOCK]
        _check_truncation(header, src.size, rejects)
        parser = evtx.PyEvtxParser(target, number_of_threads=1)
        records = parser.records_json()
        numbers: list[int] = []
        raws: list[str] = []
        index = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except RuntimeError as exc:
                index += 1
                rejects.add(index, f"corrupt EVTX record: {exc}")
                continue
            index += 1
            numbers.append(index)
            raws.append(cast(dict[str, str], record)["data"])
            if len(raws) >= BATCH_RECORDS:
                yield _table(numbers, raws)
                numbers, raws = [], []
        if raws:
            yield _table(numbers, raws)

    def normalize_sql(self, table: str) -> str:
        return windows_mapping.normalize_sql(table, "evtx", self.name, "raw")

    def normalize_columns(self) -> tuple[str, ...]:
        return windows_mapping.OUTPUT_COLUMNS


def _table(numbers: list[int], raws: list[str]) -> pa.Table:
    return pa.table(
        {"input_record": pa.array(numbers, pa.int64()), "raw": pa.array(raws, pa.string())}
    )


def _check_truncation(header: bytes, size: int, rejects: RejectLog) -> None:
    """Report chunks the header promises but the file does not hold in full.

    The parser silently skips a chunk cut short, so without this check a truncated file
    would lose its last records without a word.
    """
    if len(header) < 0x2C or not header.startswith(MAGIC):
        return
    (chunk_count,) = struct.unpack_from("<H", header, 0x2A)
    complete = max(0, (size - HEADER_BLOCK) // CHUNK_BYTES)
    if size > HEADER_BLOCK and (size - HEADER_BLOCK) % CHUNK_BYTES:
        offset = HEADER_BLOCK + complete * CHUNK_BYTES
        rejects.add(
            0,
            f"file truncated: chunk {complete + 1} at byte offset {offset} is cut short "
            f"({size - offset} of {CHUNK_BYTES} bytes); header declares {chunk_count} chunks; "
            "records in the partial chunk could not be read",
        )
