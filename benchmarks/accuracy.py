"""Precision and recall of the behavioural analytics against the simulator's truth.

For each scenario, size and seed: simulate, inject two password sprays (the simulator has none;
see breachtrace.detect.behaviour.evaluation), ingest, run every analytic with the simulation's
context files, and score the findings against truth.json:

- precision per analytic: findings whose evidence holds a record truth marks malicious (tamper:
  or that match a truth log gap) over all its findings; ``lateral_baseline`` is the
  never-seen-edge rule, kept apart. On ``quiet`` every finding is a false positive.
- recall: injected hops (lateral findings; ``hops_any`` also counts credential findings, which
  is where VPN hops of a stolen credential show), entry points, route accounts and hosts,
  beacons, log gaps, sprays.
- alerts per day after the learning window: the never-seen-edge baseline vs login paths.

    python benchmarks/accuracy.py                          # 100 and 1,000 hosts, seeds 1-2
    python benchmarks/accuracy.py --hosts 100 --seeds 1 --days 21
    python benchmarks/accuracy.py --with-10k               # also 10,000 hosts (long)
    python benchmarks/accuracy.py --workdir DIR --keep     # then --rescore: detect again only
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

from breachtrace.case import Case
from breachtrace.detect.behaviour import detect
from breachtrace.detect.behaviour.evaluation import Evaluation, evaluate, inject_sprays
from breachtrace.ingest.runner import ingest
from breachtrace.simulate import simulate

ANALYTICS = ("lateral", "lateral_baseline", "credentials", "bulk", "beacon", "tamper")
RECALLS = ("hops", "hops_any", "entries", "accounts", "hosts", "beacons", "gaps", "sprays")


def run_one(
    work: Path, scenario: str, hosts: int, days: int, seed: int, *, rescore: bool = False
) -> dict[str, Any]:
    """Simulate, ingest, detect and score one case; ``rescore`` reuses a kept case (detect
    and score only)."""
    sim_dir, case_dir = work / "sim", work / "case"
    began = time.perf_counter()
    if rescore:
        truth = json.loads((sim_dir / "truth.json").read_text())
        events = sum(truth["events"]["by_format"].values())
    else:
        events = simulate(sim_dir, scenario, hosts=hosts, days=days, seed=seed).events
        if scenario != "quiet":
            inject_sprays(sim_dir, seed=seed)
        ingest(case_dir, [sim_dir / "logs"])
    prepared = time.perf_counter() - began
    mark = time.perf_counter()
    summary = detect(
        case_dir,
        assets=sim_dir / "assets.csv",
        networks=sim_dir / "networks.csv",
        identities=sim_dir / "identities.csv",
    )
    detect_s = time.perf_counter() - mark
    result = evaluate(Case.open(case_dir), sim_dir)
    return {
        "scenario": scenario,
        "hosts": hosts,
        "seed": seed,
        "events": events,
        "prepare_s": prepared,
        "detect_s": detect_s,
        "eval": result,
        "findings": summary.findings,
    }


def _p(ev: Evaluation, name: str) -> str:
    tp, n = ev.precision.get(name, (0, 0))
    return f"{tp}/{n}" if n else "-"


def _r(ev: Evaluation, name: str) -> str:
    m = ev.recall[name]
    return f"{m.found}/{m.total}" if m.total else "-"


def print_rows(rows: list[dict[str, Any]]) -> None:
    print("\nPrecision per analytic (true positives / findings; on quiet all findings are false)")
    head = f"{'scenario':<13}{'hosts':>6}{'seed':>5}{'events':>11}" + "".join(
        f"{a:>17}" for a in ANALYTICS
    )
    print(head)
    for r in rows:
        ev = r["eval"]
        print(
            f"{r['scenario']:<13}{r['hosts']:>6}{r['seed']:>5}{r['events']:>11,}"
            + "".join(f"{_p(ev, a):>17}" for a in ANALYTICS)
        )
    print("\nRecall of injected items (found / injected)")
    print(f"{'scenario':<13}{'hosts':>6}{'seed':>5}" + "".join(f"{x:>10}" for x in RECALLS))
    for r in rows:
        ev = r["eval"]
        print(
            f"{r['scenario']:<13}{r['hosts']:>6}{r['seed']:>5}"
            + "".join(f"{_r(ev, x):>10}" for x in RECALLS)
        )
    print("\nLateral alerts per day after the learning window; detect time")
    print(f"{'scenario':<13}{'hosts':>6}{'seed':>5}{'baseline/day':>14}{'paths/day':>11}"
          f"{'detect s':>10}{'events/s':>12}")  # fmt: skip
    for r in rows:
        ev = r["eval"]
        print(
            f"{r['scenario']:<13}{r['hosts']:>6}{r['seed']:>5}"
            f"{ev.alerts_per_day['baseline']:>14.2f}{ev.alerts_per_day['path']:>11.2f}"
            f"{r['detect_s']:>10.1f}{r['events'] / r['detect_s']:>12,.0f}"
        )
    missed = [(r, k, m) for r in rows for k, m in r["eval"].recall.items() if m.missed]
    if missed:
        print("\nMissed items")
        for r, k, m in missed:
            print(f"  {r['scenario']} {r['hosts']} seed {r['seed']} {k}: {'; '.join(m.missed[:5])}")
    print("\nTotals per scenario and size (precision over all seeds)")
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["hosts"]), []).append(r)
    print(f"{'scenario':<13}{'hosts':>6}" + "".join(f"{a:>17}" for a in ANALYTICS))
    for (scenario, hosts), items in groups.items():
        cells = []
        for a in ANALYTICS:
            tp = sum(i["eval"].precision.get(a, (0, 0))[0] for i in items)
            n = sum(i["eval"].precision.get(a, (0, 0))[1] for i in items)
            cells.append(f"{tp / n:.2f} ({n})" if n else "-")
        print(f"{scenario:<13}{hosts:>6}" + "".join(f"{c:>17}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="100,1000", help="comma list of host counts")
    parser.add_argument("--with-10k", action="store_true", help="add 10,000 hosts")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--scenarios", default="telecom-2020,maker-2016,quiet")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep simulations and cases")
    parser.add_argument(
        "--rescore", action="store_true", help="detect and score again the cases kept in --workdir"
    )
    args = parser.parse_args()
    if args.rescore and args.workdir is None:
        parser.error("--rescore needs --workdir (where an earlier --keep run left its cases)")
    sizes = [int(h) for h in args.hosts.split(",") if h.strip()]
    if args.with_10k and 10_000 not in sizes:
        sizes.append(10_000)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bt-accuracy-"))
    rows = []
    print(f"days {args.days}; work in {workdir}", flush=True)
    for hosts in sizes:
        for scenario in scenarios:
            for seed in seeds:
                work = workdir / f"{scenario}-{hosts}-{seed}"
                if args.rescore and not (work / "case").exists():
                    print(
                        f"{scenario} {hosts} seed {seed}: no kept case in {work}", file=sys.stderr
                    )
                    continue
                if work.exists() and not args.rescore:
                    shutil.rmtree(work)
                try:
                    row = run_one(work, scenario, hosts, args.days, seed, rescore=args.rescore)
                except Exception as exc:  # a failed run is reported, the others go on
                    print(f"{scenario} {hosts} seed {seed} failed: {exc!r}", file=sys.stderr)
                    continue
                rows.append(row)
                print(
                    f"done {scenario} {hosts} hosts seed {seed}: {row['events']:,} events, "
                    f"prepare {row['prepare_s']:.0f} s, detect {row['detect_s']:.1f} s",
                    flush=True,
                )
                if not args.keep and not args.rescore:
                    shutil.rmtree(work, ignore_errors=True)
    print_rows(rows)


if __name__ == "__main__":
    main()
