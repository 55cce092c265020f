"""Windows events normalize to exactly the recorded output (a guard for ingest speed work).

The fixtures in tests/data/windows_json hold Winlogbeat/ECS, NXLog and flat JSON lines with the
awkward cases (ECS fall-back fields, UserData, '-' and '(null)' values, ::ffff: addresses,
DOMAIN\\user and user@domain, offsets in timestamps, nested values) and bad lines of every kind;
the EVTX fixtures go through the same generated SQL. ``windows_normalized.jsonl`` is their
normalized rows and rejects as recorded before the SQL was reshaped for speed; any change to
the output is a failure. After an intended change of the mapping, re-record it with
``python tests/test_windows_normalized.py`` and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from breachtrace.case import Case
from breachtrace.engines.duckdb import expand_macros
from breachtrace.ingest.windows_mapping import after_null

from conftest import DATA, ingest_and_query, rows

INPUTS = [
    DATA / "windows_json" / "winlogbeat-edge.json",
    DATA / "windows_json" / "nxlog-edge.json",
    DATA / "windows_json" / "flat-edge.json",
    *sorted((DATA / "evtx").glob("*.evtx")),
]
EXPECTED = DATA / "windows_normalized.jsonl"


def normalized(case_dir: Path) -> list[dict[str, Any]]:
    """Every event and reject of the fixtures, keyed by file name and record, as JSON values
    (NULL columns left out)."""
    _, con = ingest_and_query(case_dir, *INPUTS)
    names = {e.input_id: Path(e.path).name for e in Case.open(case_dir).manifest()}
    out: list[dict[str, Any]] = []
    for r in rows(con, "SELECT * EXCLUDE (month) FROM events"):
        assert r.pop("event_uid") == f"{r['input_id']}:{r['input_record']}"
        r["file"] = names[r.pop("input_id")]
        r["raw_sha256"] = hashlib.sha256(r.pop("raw").encode()).hexdigest()
        r["ts"] = r["ts"].isoformat()
        out.append({"kind": "event", **{k: v for k, v in r.items() if v is not None}})
    for r in rows(con, "SELECT input_id, input_record, reason, excerpt FROM rejects"):
        r["file"] = names[r.pop("input_id")]
        out.append({"kind": "reject", **r})
    return sorted(out, key=lambda r: (r["file"], r["input_record"], r["kind"]))


def test_windows_events_normalize_as_recorded(tmp_path: Path) -> None:
    got = normalized(tmp_path / "case")
    expected = [json.loads(line) for line in EXPECTED.read_text().splitlines()]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == e, f"{e['file']} record {e['input_record']} differs"


def test_json_raw_is_the_line_verbatim(tmp_path: Path) -> None:
    _, con = ingest_and_query(tmp_path / "case", *INPUTS[:3])
    names = {e.input_id: Path(e.path).name for e in Case.open(tmp_path / "case").manifest()}
    for r in rows(
        con, "SELECT input_id, input_record, raw FROM events WHERE source_format <> 'evtx'"
    ):
        lines = (DATA / "windows_json" / names[r["input_id"]]).read_bytes().split(b"\n")
        assert r["raw"].encode() == lines[r["input_record"] - 1].rstrip(b"\r")


@pytest.mark.parametrize("months", [1, 3, 15])
def test_events_land_in_their_month_folder(tmp_path: Path, months: int) -> None:
    """One file per month from a chunk, by filtered copies (a few months) or one partitioned
    copy (many); every event once, in the folder of its own month."""
    lines = [
        json.dumps({"EventID": 4624, "Channel": "Security", "Hostname": "h", "RecordNumber": i,
                    "@timestamp": f"{2020 + (i % months) // 12}-{(i % months) % 12 + 1:02d}-28T23:59:59.9Z"})
        for i in range(300)
    ]  # fmt: skip
    path = tmp_path / "spread.json"
    path.write_text("\n".join(lines) + "\n")
    summary, con = ingest_and_query(tmp_path / "case", path)
    assert summary.events == 300
    got = rows(
        con, "SELECT month, strftime(ts, '%Y-%m') AS m, count(*) AS n FROM events GROUP BY ALL"
    )
    assert len(got) == months and all(r["month"] == r["m"] for r in got)
    assert sum(r["n"] for r in got) == 300
    folders = {p.parent.name for p in (tmp_path / "case" / "events").rglob("*.parquet")}
    assert folders == {f"month={r['m']}" for r in got}


def test_field_values_are_nulled_once() -> None:
    """The mapping applies bt_user/bt_ip/bt_host without their bt_null step to field reads,
    which went through bt_null already: sound because bt_null is idempotent."""
    values = [None, "", " ", "-", " - ", "(null)", "null", "NULL", "Null", " a b ", "\tx\t", "é"]
    values += ["::ffff:10.0.0.1", " \\\\WS01.corp.example ", "10.1.2.3", "-.x"]
    pairs = [("bt_null(v)", "bt_null(bt_null(v))")] + [
        (f"{h}(v)", after_null(h).format(x="bt_null(bt_null(v))"))
        for h in ("bt_user", "bt_ip", "bt_host")
    ]
    con = duckdb.connect()
    for direct, split in pairs:
        sql = (
            f"SELECT {expand_macros(direct)}, {expand_macros(split)} FROM (SELECT ?::VARCHAR AS v)"
        )
        for v in values:
            row = con.execute(sql, [v]).fetchone()
            assert row is not None and row[0] == row[1], (direct, v)


if __name__ == "__main__":  # re-record the expected output
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        records = normalized(Path(tmp) / "case")
    EXPECTED.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    print(f"{len(records)} rows -> {EXPECTED}", file=sys.stderr)
