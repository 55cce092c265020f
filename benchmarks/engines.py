"""DuckDB versus Spark (local mode): wall time and peak memory of detect, hunt, trace and
scope, by size.

Each size is simulated and ingested once (kept under --workdir), then each (engine, stage) runs
in a fresh child process; its peak memory is the largest resident set of the child and its
children (Spark's JVM included), sampled every 0.2 s. Sizes are benchmarks/scale.py's:

    python benchmarks/engines.py                          # 1M
    python benchmarks/engines.py --sizes 1M,10M,50M
    python benchmarks/engines.py --sizes 1M --engines spark --spark-master local[2]
    python benchmarks/engines.py --sizes 1M,10M --stages hunt,trace,scope,detect --timeout 900

--timeout stops a stage (and its Spark JVM) that runs longer, and says so in its row: an
unfinished stage is reported as not measured, never as a figure. Each row ends with the
one-minute load average when the stage finished.

hunt runs the rule set in tests/data/sigma/engines (a handful of rules and a correlation)
unless --rules says otherwise. trace and scope need the case's findings: a DuckDB detect writes
them once per size (untimed, in its own child) before the first trace; the "findings" column
is then the number of incidents (trace) and of exposed owners (scope). The machine the figures
come from is printed with them: on a shared 2-core box, other people's work shows up in the
times. Measured figures and where Spark's time goes: docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from scale import SIZES

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ROOT / "tests" / "data" / "sigma" / "engines"
STAGES = ("detect", "hunt", "trace", "scope")


def build(out: Path, hosts: int, days: int, seed: int) -> int:
    """Simulate and ingest one size into ``out`` (once); returns the number of events."""
    from breachtrace.case import Case
    from breachtrace.ingest.runner import ingest
    from breachtrace.simulate import simulate

    done = out / ".built"
    if not done.exists():
        simulate(out, "telecom-2020", hosts=hosts, days=days, seed=seed)
        ingest(out / "case", [out / "logs"], mappings=[out / "mappings" / "vpn.yaml"])
        done.write_text("ok\n")
    con = Case.open(out / "case").connect()
    try:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def stage(out: Path, stage_name: str, engine: str, master: str, rules: Path) -> None:
    """Run one stage on one engine; prints one JSON line (seconds, findings)."""
    from breachtrace.case import Case
    from breachtrace.detect.behaviour import detect
    from breachtrace.detect.sigma import hunt
    from breachtrace.scope import scope
    from breachtrace.trace import trace

    case_dir = out / "case"
    began = time.perf_counter()
    if stage_name == "findings":  # preparation for trace and scope, not a measured stage
        detect(case_dir, assets=out / "assets.csv", networks=out / "networks.csv",
               identities=out / "identities.csv")  # fmt: skip
        (out / ".findings").write_text("ok\n")
        findings = 0
    elif stage_name == "detect":
        summary = detect(
            case_dir, assets=out / "assets.csv", networks=out / "networks.csv",
            identities=out / "identities.csv", write=False, engine=engine, spark_master=master,
        )  # fmt: skip
        findings = summary.findings
    elif stage_name == "trace":
        findings = len(trace(case_dir, engine=engine, spark_master=master).incidents)
    elif stage_name == "scope":
        done = scope(case_dir, inventory=out / "data_inventory.csv", engine=engine,
                     spark_master=master)  # fmt: skip
        findings = len(done.document["union"])
    else:
        hunted = hunt(Case.open(case_dir), [rules], engine=engine, spark_master=master)
        findings = hunted.findings
    print(json.dumps({"seconds": time.perf_counter() - began, "findings": findings}))


def run_child(
    args: list[str], timeout: float | None = None, log: Path | None = None
) -> tuple[dict[str, object], float]:
    """Run this script as a child; its JSON result and the peak RSS (MB) of its process tree.
    A child still running after ``timeout`` seconds is stopped with its tree (Spark's JVM) and
    reported as such: a stage that did not finish is not a measurement. The child's stderr
    goes to ``log`` (a file, not a pipe nobody reads while it runs: Spark's traces would fill
    it and block the child); a failure is reported by its exception line and that file."""
    began = time.perf_counter()
    log = log or Path(tempfile.mkstemp(prefix="bt-engines-", suffix=".stderr")[1])
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=err, text=True
        )
        parent = psutil.Process(proc.pid)
        peak = 0
        tree: list[psutil.Process] = [parent]
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            if timeout is not None and time.perf_counter() - began > timeout:
                for p in reversed(tree):  # children first, so none is orphaned
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                proc.communicate()
                return {"error": f"stopped after {timeout:.0f} s (not finished)"}, peak / 2**20
            time.sleep(0.2)
        stdout, _ = proc.communicate()
    if proc.returncode != 0:
        return {"error": f"{_exception_line(log.read_text())} (whole trace: {log})"}, peak / 2**20
    return json.loads(stdout.strip().splitlines()[-1]), peak / 2**20


def _exception_line(stderr: str) -> str:
    """The line naming the exception in a child's stderr: the last unindented line that names
    an error (a Py4J error is followed by the Java stack), else the last line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    named = [
        line for line in lines
        if not line[0].isspace() and ("Error" in line or "Exception" in line)
    ]  # fmt: skip
    return (named or lines or ["failed"])[-1][:500]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M", help=f"comma list of {', '.join(SIZES)}")
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the built cases")
    parser.add_argument(
        "--timeout", type=float, default=None, help="stop a stage after this many seconds"
    )
    parser.add_argument("--build", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--stage", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        out, hosts, days, seed = args.build
        print(json.dumps({"events": build(Path(out), int(hosts), int(days), int(seed))}))
        return
    if args.stage:
        out, name, engine = args.stage
        stage(Path(out), name, engine, args.spark_master, args.rules)
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bt-engines-"))
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB RAM, "
          f"load average {load:.1f} at start (a shared machine: others' work is in the times); "
          f"spark master {args.spark_master}; cases under {workdir}")  # fmt: skip
    print(f"{'size':>5} {'events':>12} {'stage':>7} {'engine':>7} {'seconds':>8} "
          f"{'ev/s':>10} {'peak MB':>8} {'findings':>9} {'load':>5}")  # fmt: skip
    for name in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        hosts, days = SIZES[name]
        out = workdir / f"engines-{name}"
        built, _ = run_child(["--build", str(out), str(hosts), str(days), str(args.seed)])
        if "error" in built:
            print(f"{name:>5} build failed: {built['error']}")
            continue
        events = int(built["events"])  # type: ignore[call-overload]
        for stage_name in args.stages.split(","):
            if stage_name in ("trace", "scope") and not (out / ".findings").exists():
                prepared, _ = run_child(["--stage", str(out), "findings", "duckdb"])
                if "error" in prepared:
                    print(f"{name:>5} findings for trace/scope failed: {prepared['error']}")
                    continue
            for engine in args.engines.split(","):
                result, peak = run_child(
                    ["--stage", str(out), stage_name, engine, "--spark-master", args.spark_master,
                     "--rules", str(args.rules)], args.timeout, out / f"{stage_name}-{engine}.stderr",
                )  # fmt: skip
                if "error" in result:
                    print(f"{name:>5} {events:>12,} {stage_name:>7} {engine:>7} failed: "
                          f"{result['error']}; peak {peak:.0f} MB", flush=True)  # fmt: skip
                    continue
                seconds = float(result["seconds"])  # type: ignore[arg-type]
                print(f"{name:>5} {events:>12,} {stage_name:>7} {engine:>7} {seconds:>8.1f} "
                      f"{events / seconds:>10,.0f} {peak:>8.0f} {result['findings']:>9} "
                      f"{os.getloadavg()[0]:>5.1f}",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
