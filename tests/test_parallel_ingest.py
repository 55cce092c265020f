"""Several ingests into one case at once (one process per input, as on shared storage): all
commit, nothing is lost or doubled, and the store is the same as after one sequential ingest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from breachtrace.case import Case
from breachtrace.ingest.runner import ingest

DATA = Path(__file__).parent / "data"
INPUTS = [
    DATA / "authlog" / "auth.log",
    DATA / "zeek" / "conn.log",
    DATA / "zeek" / "dns.log",
    DATA / "nxlog" / "otrf-schtask-sample.json",
    DATA / "lanl" / "auth.txt",
]


def _store(case_dir: Path) -> list[tuple[str, str, str]]:
    """(input file, event uid, ts) of every stored event, sorted: the store's content."""
    con = Case.open(case_dir).connect()
    try:
        rows = con.execute(
            "SELECT m.path, e.input_record, e.ts FROM events e JOIN (SELECT unnest(files) AS f "
            f"FROM read_json('{case_dir}/manifest/*.json')) j ON j.f.input_id = e.input_id "
            "CROSS JOIN LATERAL (SELECT j.f.path AS path) m ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    return [(Path(p).name, str(r), str(t)) for p, r, t in rows]


def test_parallel_ingests_into_one_case_all_commit(tmp_path: Path) -> None:
    case_dir = tmp_path / "parallel"
    Case.open(case_dir, create=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "breachtrace", "ingest", "--case", str(case_dir), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in INPUTS
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(INPUTS), outputs
    case = Case.open(case_dir)
    assert len(case.committed_batches()) == len(INPUTS)  # one batch per process
    assert sorted(Path(e.path).name for e in case.manifest()) == sorted(p.name for p in INPUTS)
    assert not [p for p in case.staging_dir.iterdir() if p.name != "duckdb-tmp"]
    # file names start with their batch's id, so no batch can overwrite another's files
    parts = [p.name for p in case.events_dir.rglob("*.parquet")]
    assert {p.split("_")[0] for p in parts} == case.committed_batches()

    sequential = tmp_path / "sequential"
    ingest(sequential, INPUTS)
    stored = _store(case_dir)
    assert stored and stored == _store(sequential)

    # a second round of the same files is a no-op, in parallel too
    _ingest_at_once(case_dir, INPUTS[:2])
    assert _store(case_dir) == stored

    # one new file given to two ingests at once is stored once, whichever commits first
    flows = DATA / "lanl" / "flows.txt"
    _ingest_at_once(case_dir, [flows, flows])
    alone = tmp_path / "alone"
    ingest(alone, [flows])
    added = [row for row in _store(case_dir) if row[0] == flows.name]
    assert added and added == [row for row in _store(alone)]
    assert [Path(e.path).name for e in Case.open(case_dir).manifest()].count(flows.name) == 1


def _ingest_at_once(case_dir: Path, paths: list[Path]) -> None:
    """Run one ingest process per path, all at once; each must succeed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "breachtrace", "ingest", "--case", str(case_dir), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in paths
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(paths), outputs
