"""Time per million events of each behavioural analytic.

Each analytic runs alone on a fresh connection, so the tables it shares with others (addresses,
hosts, logins, flows) are built for it and charged to it: "standalone" is what ``detect --only
NAME`` costs. A full run (all analytics, shared tables built once) is timed too.

    python benchmarks/detect.py                                  # maker-2016, 100 hosts, 30 days
    python benchmarks/detect.py --hosts 1000 --days 14 --scenario telecom-2020
    python benchmarks/detect.py --case CASE --sim SIMDIR          # an existing case

Target (issue 5): every analytic >= 1 million events/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from breachtrace.case import Case
from breachtrace.context import Context, load_context
from breachtrace.detect.behaviour import detect
from breachtrace.detect.behaviour.config import load_config
from breachtrace.detect.behaviour.registry import Run, analytics
from breachtrace.engines.duckdb import DuckDBEngine


def prepare(args: argparse.Namespace) -> tuple[Path, Path | None]:
    if args.case:
        return Path(args.case), Path(args.sim) if args.sim else None
    from breachtrace.ingest.runner import ingest
    from breachtrace.simulate import simulate

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bt-detect-bench-"))
    sim = work / "sim"
    began = time.perf_counter()
    simulate(sim, args.scenario, hosts=args.hosts, days=args.days, seed=args.seed)
    ingest(work / "case", [sim / "logs"])
    print(f"simulated and ingested in {time.perf_counter() - began:.0f} s under {work}")
    return work / "case", sim


def context_for(case: Case, sim: Path | None) -> Context:
    if sim is None:
        return load_context(case, store=False)
    return load_context(
        case, assets=sim / "assets.csv", networks=sim / "networks.csv",
        identities=sim / "identities.csv", store=False,
    )  # fmt: skip


def standalone(
    case: Case, ctx: Context, name: str, threads: int | None
) -> tuple[float, float, int]:
    """(own seconds, shared seconds, findings) of one analytic on a fresh connection."""
    con = case.connect(threads=threads)
    try:
        # fetchall: a result left half-read blocks the connection's next statement
        events, first, last = con.execute(
            "SELECT count(*), min(ts), max(ts) FROM events"
        ).fetchall()[0]
        run = Run(case, DuckDBEngine(con), load_config(), ctx, first, last, int(events))
        began = time.perf_counter()
        result = analytics()[name].run(run)
        total = time.perf_counter() - began
    finally:
        con.close()
    shared = sum(run.shared_seconds.values())
    return total - shared, shared, len(result.findings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="maker-2016")
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--case", help="an existing case directory (skips the simulation)")
    parser.add_argument("--sim", help="the simulation directory of --case (context files)")
    parser.add_argument("--workdir")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per analytic (best kept)")
    parser.add_argument("--only", default="", help="comma-separated analytics (default: all)")
    args = parser.parse_args()
    case_dir, sim = prepare(args)
    case = Case.open(case_dir)
    ctx = context_for(case, sim)
    con = case.connect()
    events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    con.close()
    print(
        f"case {case_dir}: {events:,} events; {os.cpu_count()} CPUs; threads {args.threads or 'all'}"
    )
    print(f"{'analytic':<12}{'findings':>9}{'own s':>8}{'shared s':>9}{'total s':>8}"
          f"{'s / 1M ev':>10}{'events/s':>12}")  # fmt: skip
    names = [n for n in analytics() if not args.only or n in args.only.split(",")]
    for name in names:
        best = None
        for _ in range(max(1, args.repeat)):
            own, shared, n = standalone(case, ctx, name, args.threads)
            if best is None or own + shared < best[0] + best[1]:
                best = (own, shared, n)
        assert best is not None
        own, shared, n = best
        total = own + shared
        print(f"{name:<12}{n:>9,}{own:>8.2f}{shared:>9.2f}{total:>8.2f}"
              f"{total / events * 1e6:>10.2f}{events / total:>12,.0f}")  # fmt: skip
    if args.only:
        return
    began = time.perf_counter()
    summary = detect(case_dir, context=ctx, write=False, threads=args.threads)
    full = time.perf_counter() - began
    print(f"{'all (one run)':<12}{summary.findings:>9,}{'':>8}{sum(summary.shared_seconds.values()):>9.2f}"
          f"{full:>8.2f}{full / events * 1e6:>10.2f}{events / full:>12,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
