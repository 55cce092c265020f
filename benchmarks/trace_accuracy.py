"""Trace and scope against the simulator's truth, per scenario, size and seed.

Each case is prepared by accuracy.py's runner (simulate, inject sprays, ingest, detect with the
context files), then trace and scope run (timed) and are scored by
breachtrace.trace.evaluation: entry points (and the outside address behind them), every hop,
compromised accounts and hosts (recall / precision), exposed owners per route equal to truth,
the overlap, dwell-time error, and the highest incident severity (quiet: at most medium).

    python benchmarks/trace_accuracy.py                       # 100 and 1,000 hosts, seeds 1-2
    python benchmarks/trace_accuracy.py --hosts 100 --seeds 1
    python benchmarks/trace_accuracy.py --hosts 10000 --seeds 1 --scenarios telecom-2020
    python benchmarks/trace_accuracy.py --workdir DIR --keep ...   then --rescore: trace again
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import run_one

from breachtrace.scope import scope
from breachtrace.trace import trace
from breachtrace.trace.evaluation import TraceScore, score


def run_case(
    work: Path, scenario: str, hosts: int, days: int, seed: int, *, rescore: bool = False
) -> dict[str, Any]:
    """Prepare the case (or, with ``rescore``, reuse a kept one), then trace, scope, score."""
    case_dir, sim_dir = work / "case", work / "sim"
    if rescore:
        truth = json.loads((sim_dir / "truth.json").read_text())
        events = sum(truth["events"]["by_format"].values())
        row: dict[str, Any] = {"scenario": scenario, "hosts": hosts, "seed": seed, "events": events}
    else:
        row = run_one(work, scenario, hosts, days, seed)
    mark = time.perf_counter()
    traced = trace(case_dir)
    row["trace_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    scope(case_dir, inventory=sim_dir / "data_inventory.csv")
    row["scope_s"] = time.perf_counter() - mark
    row["incidents"] = len(traced.incidents)
    row["score"] = score(case_dir, sim_dir)
    return row


def _f(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}" if pair[1] else "-"


def print_rows(rows: list[dict[str, Any]]) -> None:
    cols = ("entries", "entry_src", "hops", "acct rec", "acct prec", "host rec", "host prec",
            "owners=", "owners", "overlap=", "dwell err d", "max sev", "leads", "trace s",
            "scope s", "ok")  # fmt: skip
    print(
        f"\n{'scenario':<13}{'hosts':>6}{'seed':>5}{'events':>11}"
        + "".join(f"{c:>12}" for c in cols)
    )
    for r in rows:
        s: TraceScore = r["score"]
        quiet = r["scenario"] == "quiet"
        ok = s.max_severity in ("none", "informational", "low", "medium") if quiet else s.ok
        cells = [_f(s.entries), _f(s.entry_sources), _f(s.hops), _f(s.accounts_recall),
                 _f(s.accounts_precision), _f(s.hosts_recall), _f(s.hosts_precision),
                 _f(s.owners_exact), _f(s.owners_found), _f(s.overlap_exact),
                 "-" if s.dwell_error_days is None else f"{s.dwell_error_days:.2f}",
                 s.max_severity, str(s.leads), f"{r['trace_s']:.1f}", f"{r['scope_s']:.1f}",
                 "yes" if ok else "NO"]  # fmt: skip
        print(f"{r['scenario']:<13}{r['hosts']:>6}{r['seed']:>5}{r['events']:>11,}"
              + "".join(f"{c:>12}" for c in cells))  # fmt: skip
    missed = [(r, r["score"].missed) for r in rows if r["score"].missed]
    if missed:
        print("\nMissed or extra")
        for r, items in missed:
            print(f"  {r['scenario']} {r['hosts']} seed {r['seed']}: {'; '.join(items[:8])}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="100,1000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--scenarios", default="telecom-2020,maker-2016,quiet")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--rescore", action="store_true", help="trace and score the cases kept in --workdir"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bt-trace-accuracy-"))
    rows = []
    print(f"days {args.days}; work in {workdir}", flush=True)
    for hosts in [int(h) for h in args.hosts.split(",") if h.strip()]:
        for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
            for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
                work = workdir / f"{scenario}-{hosts}-{seed}"
                if work.exists() and not args.rescore:
                    shutil.rmtree(work)
                try:
                    row = run_case(work, scenario, hosts, args.days, seed, rescore=args.rescore)
                except Exception as exc:  # a failed run is reported, the others go on
                    print(f"{scenario} {hosts} seed {seed} failed: {exc!r}", file=sys.stderr)
                    continue
                rows.append(row)
                print(f"done {scenario} {hosts} seed {seed}: trace {row['trace_s']:.1f} s, "
                      f"scope {row['scope_s']:.1f} s", flush=True)  # fmt: skip
                if not (args.keep or args.rescore):
                    shutil.rmtree(work, ignore_errors=True)
    print_rows(rows)


if __name__ == "__main__":
    main()
