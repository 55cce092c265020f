"""Generation (and, once available, ingest) rate and peak memory of the simulator, by size.

Each size runs in a fresh child process so its peak RSS is its own. Sizes are named by the
approximate number of events they produce (about 75-80 events per host per day):

    python benchmarks/scale.py                       # 0.1M, 1M, 3M: about a minute on 2 cores
    python benchmarks/scale.py --sizes 1M,10M,100M   # the issue's sizes
    python benchmarks/scale.py --sizes 10M --ingest  # also time ingest of the output

Disk: roughly 300 bytes per event (1M ~ 0.3 GB, 10M ~ 2.8 GB, 100M ~ 30 GB); outputs go to
--workdir (default: a temporary directory) and are deleted after each size unless --keep.

Measured on the 2-core development machine (generation only): 1M 220-240k events/s, 140 MB;
10M 340k events/s, 270 MB. 100M (10,000 hosts x 130 days) was not run there; a 10,000-host run
generated 338k events/s with a 640 MB peak, so expect about 5 minutes and under 1 GB.
Memory grows with --hosts (one day of events is held at a time), not with --days.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> (hosts, days)
SIZES: dict[str, tuple[int, int]] = {
    "0.1M": (100, 14),
    "0.3M": (200, 20),
    "1M": (200, 63),
    "3M": (1000, 40),
    "10M": (2000, 65),
    "30M": (5000, 80),
    "50M": (6500, 100),
    "100M": (10000, 130),
}


def child(out: Path, scenario: str, hosts: int, days: int, seed: int, do_ingest: bool) -> None:
    """Run one size and print one JSON line of measurements."""
    from breachtrace.simulate import simulate

    began = time.perf_counter()
    summary = simulate(out, scenario, hosts=hosts, days=days, seed=seed)
    generate = time.perf_counter() - began
    gen_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, object] = {
        "events": summary.events,
        "generate_s": generate,
        "generate_rss_mb": gen_rss,
        "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
    }
    if do_ingest:
        result.update(_ingest(out))
    print(json.dumps(result))


def _ingest(out: Path) -> dict[str, object]:
    try:
        from breachtrace.ingest.runner import ingest
    except ImportError as exc:
        return {"ingest_error": f"ingest not available: {exc}"}
    began = time.perf_counter()
    summary = ingest(out / "case", [out / "logs"], mappings=[out / "mappings" / "vpn.yaml"])
    seconds = time.perf_counter() - began
    files = getattr(summary, "files", [])
    read = sum(getattr(f, "records_read", 0) for f in files)
    rejected = sum(getattr(f, "records_rejected", 0) for f in files)
    return {
        "ingest_s": seconds,
        "ingest_read": read,
        "ingest_rejected": rejected,
        "ingest_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="0.1M,1M,3M", help=f"comma list of {', '.join(SIZES)}")
    parser.add_argument("--scenario", default="telecom-2020")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep each size's output")
    parser.add_argument("--ingest", action="store_true", help="also ingest each output")
    parser.add_argument(
        "--child", nargs=4, metavar=("OUT", "HOSTS", "DAYS", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        out, hosts, days, seed = args.child
        child(Path(out), args.scenario, int(hosts), int(days), int(seed), args.ingest)
        return
    names = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bt-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'size':>5} {'hosts':>6} {'days':>5} {'events':>12} {'seconds':>8} {'events/s':>10} "
        f"{'events/min':>12} {'peak MB':>8} {'disk GB':>8}"
    )
    if args.ingest:
        header += f" {'ingest ev/s':>12} {'rejects':>8} {'ingest MB':>9}"
    print(f"scenario {args.scenario}, seed {args.seed}, output under {workdir}")
    print(header)
    for name in names:
        hosts, days = SIZES[name]
        out = workdir / f"scale-{name}"
        cmd = [
            sys.executable,
            __file__,
            "--scenario",
            args.scenario,
            "--child",
            str(out),
            str(hosts),
            str(days),
            str(args.seed),
        ] + (["--ingest"] if args.ingest else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name:>5} failed:\n{done.stderr[-2000:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rate = r["events"] / r["generate_s"]
        line = (
            f"{name:>5} {hosts:>6} {days:>5} {r['events']:>12,} {r['generate_s']:>8.1f} "
            f"{rate:>10,.0f} {rate * 60:>12,.0f} {r['generate_rss_mb']:>8.0f} "
            f"{r['bytes'] / 1e9:>8.2f}"
        )
        if args.ingest:
            if "ingest_error" in r:
                line += f"  ({r['ingest_error']})"
            else:
                line += (
                    f" {r['ingest_read'] / r['ingest_s']:>12,.0f} {r['ingest_rejected']:>8,} "
                    f"{r['ingest_rss_mb']:>9.0f}"
                )
        print(line, flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
