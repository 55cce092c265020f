"""Ingest speed and memory, printed as a table (not a timed test).

    python benchmarks/ingest.py                      # all three parts, full sizes
    python benchmarks/ingest.py --json-events 500000 --memory-gb 0.5   # a quick run

1. EVTX: records/s of the raw ``evtx`` parser alone over ../shared/corpus/evtx-mitre versus a
   full ingest of the same files, and their ratio (target: ingest >= 0.8x the raw parser);
   beside them a floor: parse, SHA-256 and an unnormalized Parquet write in sequence, and the
   CPU-seconds the target leaves on this machine's cores against what that floor uses.
2. JSON lines: a generated file of Windows events (NXLog style, as in OTRF's datasets), ingested
   (target: >= 300,000 events/s on this 2-core machine); beside it a floor: DuckDB's own
   JSON-lines reader writing Parquet with the raw line kept and no normalization; the
   normalization alone (nothing written); and the CPU-seconds the target allows on this
   machine's cores against what the floor and the normalization use.
3. Memory: an input of several GB ingested in a child process; peak RSS (target: < 2 GB for a
   >= 5 GB input: bounded by batch size, not input size).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import evtx
import numpy as np
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"

_USERS = [f"user{i:04d}" for i in range(2000)]
_HOSTS = [f"WS{i:05d}.corp.example" for i in range(3000)]
_FILE_SERVERS = [f"FS{i:02d}.corp.example" for i in range(20)]


def generate_windows_json(path: Path, events: int, seed: int = 7, pad: int = 0) -> int:
    """Write ``events`` NXLog-style Windows events (4624/4634/4663/5145/4688 mix); bytes written.

    ``pad`` adds a Message text of that many characters, as real NXLog exports carry.
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64("2020-01-01T00:00:00", "ms")
    message = ("An account was successfully logged on. " * (pad // 38 + 1))[:pad]
    written = 0
    with open(path, "wb") as out:
        for first in range(0, events, 100_000):
            n = min(100_000, events - first)
            codes = rng.choice([4624, 4634, 4663, 5145, 4688], size=n, p=[0.2, 0.2, 0.3, 0.2, 0.1])
            offsets = np.sort(rng.integers(0, 86_400_000 * 120, size=n))
            stamps = np.datetime_as_string(start + offsets.astype("timedelta64[ms]"), unit="ms")
            users = rng.integers(0, len(_USERS), size=n)
            hosts = rng.integers(0, len(_HOSTS), size=n)
            servers = rng.integers(0, len(_FILE_SERVERS), size=n)
            lines = []
            for i in range(n):
                code = int(codes[i])
                record = {
                    "EventID": code, "Channel": "Security",
                    "Hostname": _FILE_SERVERS[servers[i]] if code in (4663, 5145) else _HOSTS[hosts[i]],
                    "SourceName": "Microsoft-Windows-Security-Auditing",
                    "@timestamp": f"{stamps[i]}Z", "RecordNumber": first + i + 1,
                    "TargetUserName": _USERS[users[i]], "SubjectUserName": _USERS[users[i]],
                    "TargetDomainName": "CORP", "LogonType": "3", "TargetLogonId": f"0x{first + i:x}",
                    "IpAddress": f"10.{users[i] % 250}.{hosts[i] % 250}.{i % 250}", "IpPort": "50000",
                    "WorkstationName": _HOSTS[hosts[i]].split(".")[0],
                    "AuthenticationPackageName": "Kerberos",
                    "ObjectName": f"D:\\shares\\clients\\C{users[i] % 1000:04d}\\doc{i % 97}.docx",
                    "ShareName": "\\\\*\\clients", "RelativeTargetName": f"C{users[i] % 1000:04d}\\doc.docx",
                    "NewProcessName": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd.exe /c dir",
                }  # fmt: skip
                if pad:
                    record["Message"] = message
                lines.append(orjson.dumps(record))
            chunk = b"\n".join(lines) + b"\n"
            out.write(chunk)
            written += len(chunk)
    return written


def _ingest_child(case: Path, inputs: list[Path]) -> tuple[float, int, int]:
    """Run ``breachtrace ingest`` in a child process: (seconds, events, peak RSS bytes).

    The child's resident memory is sampled every 50 ms (psutil), so the peak is this child's
    alone.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "breachtrace", "ingest", "--case", str(case), *map(str, inputs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed:\n{(proc.stderr.read() if proc.stderr else '')[-3000:]}")
    from breachtrace.case import Case

    events = sum(e.records_read for e in Case.open(case).manifest())
    return seconds, events, peak


def bench_evtx(work: Path) -> list[tuple[str, str, str]]:
    from breachtrace.ingest.runner import ingest

    folder = CORPUS / "evtx-mitre"
    if not folder.is_dir():
        return [("evtx", "skipped", f"no corpus at {folder}")]
    files = sorted(folder.rglob("*.evtx"))
    best_raw = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        records = sum(sum(1 for _ in evtx.PyEvtxParser(str(f)).records_json()) for f in files)
        best_raw = min(best_raw, time.perf_counter() - started)
    best_ingest = float("inf")
    for k in range(3):
        case = work / f"evtx-case-{k}"
        started = time.perf_counter()
        summary = ingest(case, [folder])
        best_ingest = min(best_ingest, time.perf_counter() - started)
        shutil.rmtree(case)
    raw_rate, ingest_rate = records / best_raw, summary.events / best_ingest
    floor, floor_cpu = _evtx_floor(files, work / "floor.parquet")
    cores = os.cpu_count() or 1
    budget = cores * best_raw / 0.8  # CPU-seconds an ingest at 0.8x of the parser may use
    return [
        ("evtx raw parser", f"{records:,} records", f"{raw_rate:,.0f} records/s ({best_raw:.3f} s)"),
        ("evtx full ingest", f"{summary.events:,} events ({len(files)} files, 2 duplicates)",
         f"{ingest_rate:,.0f} events/s ({best_ingest:.3f} s)"),
        ("evtx ratio ingest/raw", "target >= 0.8", f"{ingest_rate / raw_rate:.2f}x"),
        ("evtx floor", "parse + SHA-256 + raw-only Parquet, one after another",
         f"{floor:.3f} s, {floor_cpu:.3f} CPU-s: {best_raw / floor:.2f}x of the raw parser"),
        ("evtx CPU budget", f"{cores} cores x raw parser time / 0.8",
         f"{budget:.3f} CPU-s; the floor alone uses {floor_cpu:.3f}"),
    ]  # fmt: skip


def _evtx_floor(files: list[Path], target: Path) -> tuple[float, float]:
    """Best of three (wall seconds, and the CPU-seconds of that run): what an ingest cannot
    skip, in sequence: parse every record (as the raw parser run does), hash every file (chain
    of custody), write the records to Parquet unnormalized."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    best, best_cpu = float("inf"), 0.0
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        records = [r["data"] for f in files for r in evtx.PyEvtxParser(str(f)).records_json()]
        for f in files:
            hashlib.sha256(f.read_bytes()).hexdigest()
        pq.write_table(pa.table({"raw": records}), target, compression="zstd")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if seconds < best:
            best, best_cpu = seconds, cpu
    target.unlink()
    return best, best_cpu


def bench_json(work: Path, events: int) -> list[tuple[str, str, str]]:
    path = work / "windows-events.json"
    started = time.perf_counter()
    size = generate_windows_json(path, events)
    generated = time.perf_counter() - started
    seconds, ingested, peak = _ingest_child(work / "json-case", [path])
    floor, floor_cpu = _json_floor(path, work / "floor.parquet")
    normalize, normalize_cpu = _json_normalize_only(path)
    path.unlink()
    shutil.rmtree(work / "json-case")
    cores = os.cpu_count() or 1
    budget = cores * events / 300_000
    return [
        ("json generate", f"{events:,} events, {size / 2**30:.2f} GiB", f"{generated:.1f} s"),
        ("json ingest", f"{ingested:,} events", f"{ingested / seconds:,.0f} events/s ({seconds:.1f} s)"),
        ("json floor", "DuckDB's reader, raw kept + 3 fields, no normalization",
         f"{events / floor:,.0f} events/s ({floor:.1f} s, {floor_cpu:.1f} CPU-s); "
         f"ingest at {floor / seconds:.2f}x of it"),
        ("json normalize only", "the reader's lines and SQL, nothing written",
         f"{events / normalize:,.0f} events/s ({normalize:.1f} s, {normalize_cpu:.1f} CPU-s)"),
        ("json CPU budget", f"{cores} cores x {events:,} events / 300,000 per s",
         f"{budget:.1f} CPU-s; floor + normalize alone use {floor_cpu + normalize_cpu:.1f}"),
        ("json ingest peak RSS", "", f"{peak / 2**20:,.0f} MiB" if peak > 0 else "n/a"),
        ("json target", ">= 300,000 events/s", "met" if ingested / seconds >= 300_000 else "NOT met"),
    ]  # fmt: skip


def _json_floor(path: Path, target: Path) -> tuple[float, float]:
    """Seconds (wall, CPU of this process's threads) for DuckDB's own JSON-lines reader to
    write the records to Parquet with the raw line kept and three fields extracted: what any
    ingest keeping the original record pays, before normalizing anything. Our ingest's distance
    to it is the room left."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    started, cpu = time.perf_counter(), time.process_time()
    con.execute(
        "COPY (SELECT json AS raw, json->>'EventID' AS event_id, json->>'Hostname' AS host, "
        f"json->>'@timestamp' AS ts FROM read_ndjson_objects('{path}')) TO '{target}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    con.close()
    target.unlink()
    return seconds, cpu


def _json_normalize_only(path: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) of the normalization alone: the reader's line tables, each run
    through its SQL by DuckDB with every column computed, nothing written or hashed. Beside
    the floor, it shows where a CPU budget goes."""
    import duckdb
    import pyarrow as pa

    from breachtrace.engines.duckdb import expand_macros
    from breachtrace.ingest.base import RejectLog, line_batches
    from breachtrace.ingest.windows_json import NxlogReader

    sql = expand_macros(NxlogReader().normalize_sql("batch_in"))
    con = duckdb.connect()
    query = ""
    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as stream:
        for table in line_batches(stream, RejectLog()):
            ids = pa.array([""] * table.num_rows)
            rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
            con.register(
                "batch_in", table.append_column("input_id", ids).append_column("row_no", rows)
            )
            if not query:
                columns = con.sql(f"SELECT * FROM ({sql}) LIMIT 0").columns
                query = f"SELECT {', '.join(f'count({c})' for c in columns)} FROM ({sql})"
            con.execute(query).fetchall()
            con.unregister("batch_in")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    con.close()
    return seconds, cpu


def bench_memory(work: Path, gigabytes: float) -> list[tuple[str, str, str]]:
    path = work / "big.json"
    pad = 1500  # long Message texts, as NXLog exports carry: bytes per event ~2.3 KB
    per_event = 2300
    events = int(gigabytes * 2**30 / per_event)
    size = generate_windows_json(path, events, seed=11, pad=pad)
    seconds, ingested, peak = _ingest_child(work / "mem-case", [path])
    case_size = sum(p.stat().st_size for p in (work / "mem-case").rglob("*") if p.is_file())
    path.unlink()
    shutil.rmtree(work / "mem-case")
    return [
        ("memory input", f"{size / 2**30:.2f} GiB, {ingested:,} events", f"{seconds:.1f} s, {size / 2**20 / seconds:,.0f} MiB/s"),
        ("memory peak RSS", "target < 2 GiB", f"{peak / 2**20:,.0f} MiB" if peak > 0 else "n/a"),
        ("memory case size", "Parquet zstd + manifest", f"{case_size / 2**20:,.0f} MiB"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json-events", type=int, default=5_000_000)
    parser.add_argument("--memory-gb", type=float, default=5.2)
    parser.add_argument("--only", default="evtx,json,memory")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    parts = args.only.split(",")
    try:
        if "evtx" in parts:
            rows += bench_evtx(work)
        if "json" in parts:
            rows += bench_json(work, args.json_events)
        if "memory" in parts:
            rows += bench_memory(work, args.memory_gb)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    widths = [max(len(r[i]) for r in [*rows, ("measure", "input", "result")]) for i in range(3)]
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    for row in [("measure", "input", "result"), tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
