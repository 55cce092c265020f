"""The real corpora in ../shared/corpus: every EVTX file and the OTRF zips, read in place."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import evtx
import pytest

from conftest import CORPUS, ingest_and_query, needs_corpus, rows

pytestmark = [needs_corpus, pytest.mark.corpus]


@pytest.fixture(scope="module")
def evtx_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return ingest_and_query(tmp_path_factory.mktemp("evtx") / "case", CORPUS / "evtx-mitre")


def test_every_evtx_file_ingests_with_the_parsers_count(evtx_case: tuple[Any, Any]) -> None:
    summary, _ = evtx_case
    files = sorted((CORPUS / "evtx-mitre").rglob("*.evtx"))
    assert len(files) == 281 and len(summary.files) == 281
    by_path = {f.path: f for f in summary.files}
    by_sha = {f.sha256: f for f in summary.files if f.status == "ingested"}
    mismatches = []
    for path in files:
        expected = sum(1 for _ in evtx.PyEvtxParser(str(path)).records_json())
        result = by_path[str(path)]
        if result.status == "duplicate":  # byte-identical to another file: counted there
            twin = by_sha[hashlib.sha256(path.read_bytes()).hexdigest()]
            got = twin.records_read
        else:
            assert result.status == "ingested", result.message
            got = result.records_read
        if got != expected:
            mismatches.append((path.name, expected, got))
    assert mismatches == []
    assert summary.rejected == 0


def test_evtx_corpus_channels_and_mapped_actions(evtx_case: tuple[Any, Any]) -> None:
    _, con = evtx_case
    channels = {r["channel"] for r in rows(con, "SELECT DISTINCT channel FROM events")}
    for expected in ("Security", "System", "Microsoft-Windows-Sysmon/Operational",
                     "Microsoft-Windows-PowerShell/Operational"):  # fmt: skip
        assert expected in channels
    assert (
        rows(con, "SELECT count(*) AS n FROM events WHERE ts IS NULL OR host IS NULL")[0]["n"] == 0
    )
    actions = {r["action"] for r in rows(con, "SELECT DISTINCT action FROM events")}
    assert {"logon", "logon_failed", "process_start", "share_access", "service_install",
            "log_cleared", "kerberos_tgt", "scheduled_task"} <= actions  # fmt: skip


def test_otrf_zips_read_in_place(tmp_path: Path) -> None:
    zips = sorted((CORPUS / "otrf").glob("*.zip"))
    expected: dict[str, int] = {}
    for archive in zips:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".json"):
                    with zf.open(info) as fh:
                        expected[f"{archive}!{info.filename}"] = sum(1 for ln in fh if ln.strip())
    summary, con = ingest_and_query(tmp_path / "case", CORPUS / "otrf")
    got = {f.path: f.records_read for f in summary.files if f.format == "nxlog"}
    assert got == expected
    assert summary.rejected == 0
    zeek = {f.path.rsplit("!", 1)[1]: f.records_read for f in summary.files if f.format == "zeek"}
    assert zeek["conn.log"] > 0 and zeek["dns.log"] > 0
    assert rows(con, "SELECT count(*) AS n FROM events WHERE action = 'logon'")[0]["n"] > 0
