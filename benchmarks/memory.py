"""Peak memory of each stage on a large case, under DuckDB's memory limit (issue 8, item 5).

Every stage runs as ``breachtrace <stage>`` in a child process with BREACHTRACE_MEMORY_LIMIT
set; the child's resident memory (with its own children) is sampled every 100 ms. DuckDB
keeps to the limit by spilling to the case's temporary directory; Python-side aggregates come
on top, so the table shows both the limit and the measured peak.

    python benchmarks/memory.py --build --hosts 10000 --days 130 --work /tmp/bt100m  # ~100M
    python benchmarks/memory.py --work /tmp/bt100m --limit 4GB --stages detect,trace,scope
    python benchmarks/memory.py --work /tmp/bt100m --limit 4GB --stages hunt --rules DIR

Building writes the simulated logs (about 300 bytes per event), ingests them, then deletes
the logs (--keep-logs keeps them). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run ``cmd``: (seconds, peak RSS bytes of it and its children, exit code, stderr tail)."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            family = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in family))
        except psutil.Error:
            pass
        time.sleep(0.1)
    tail = (proc.stderr.read() if proc.stderr else "")[-600:]
    return time.perf_counter() - began, peak, proc.returncode, tail


def build(work: Path, hosts: int, days: int, seed: int, keep_logs: bool) -> list[tuple[str, ...]]:
    from breachtrace.ingest.runner import ingest
    from breachtrace.simulate import simulate

    sim, case = work / "sim", work / "case"
    began = time.perf_counter()
    summary = simulate(sim, "telecom-2020", hosts=hosts, days=days, seed=seed)
    simulated = time.perf_counter() - began
    began = time.perf_counter()
    result = ingest(case, [sim / "logs"], mappings=[sim / "mappings" / "vpn.yaml"])
    ingested = time.perf_counter() - began
    if not keep_logs:
        shutil.rmtree(sim / "logs")
    return [
        ("simulate", f"{hosts:,} hosts x {days} days", f"{summary.events:,} events",
         f"{simulated:,.0f} s", "", ""),
        ("ingest", "", f"{result.events:,} events", f"{ingested:,.0f} s",
         f"{result.events / ingested:,.0f} ev/s", ""),
    ]  # fmt: skip


def stage_command(stage: str, work: Path, rules: Path | None) -> list[str]:
    case, sim = work / "case", work / "sim"
    base = [sys.executable, "-m", "breachtrace", stage, "--case", str(case)]
    if stage == "detect":
        return [*base, "--assets", str(sim / "assets.csv"), "--networks",
                str(sim / "networks.csv"), "--identities", str(sim / "identities.csv")]  # fmt: skip
    if stage == "hunt":
        if rules is None:
            raise SystemExit("--stages hunt needs --rules DIR")
        return [*base, "--rules", str(rules)]
    if stage == "scope":
        return [*base, "--inventory", str(sim / "data_inventory.csv")]
    return base


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--build", action="store_true", help="simulate and ingest first")
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=130)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--limit", default="4GB", help="BREACHTRACE_MEMORY_LIMIT for each stage")
    parser.add_argument("--stages", default="detect,trace,scope")
    parser.add_argument("--rules", type=Path, default=None)
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    if args.build:
        rows += build(args.work, args.hosts, args.days, args.seed, args.keep_logs)
    from breachtrace.case import Case

    events = sum(e.records_read for e in Case.open(args.work / "case").manifest())
    env = {**os.environ, "BREACHTRACE_MEMORY_LIMIT": args.limit}
    for stage in args.stages.split(","):
        seconds, peak, code, tail = measured(stage_command(stage, args.work, args.rules), env)
        status = "ok" if code == 0 else f"exit {code}: {' '.join(tail.split())[-200:]}"
        rows.append((stage, f"limit {args.limit}", f"{events:,} events", f"{seconds:,.0f} s",
                     f"{events / seconds:,.0f} ev/s", f"peak RSS {peak / 2**20:,.0f} MiB; {status}"))  # fmt: skip
    header = ("stage", "setting", "input", "time", "rate", "memory")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
          f"load average {os.getloadavg()[0]:.1f} at the end (shared machine)")  # fmt: skip
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
