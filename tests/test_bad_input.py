"""Bad input: each bad record is skipped and counted with its location; good ones all arrive."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import evtx
import pytest

from conftest import DATA, ingest_and_query, rows

HEADER, CHUNK = 4096, 65536


def _two_chunk_evtx(target: Path) -> tuple[int, int]:
    """An EVTX with the chunks of two fixture files under one header; their record counts."""
    a = (DATA / "evtx" / "psexec-4688-4697-5140-5145.evtx").read_bytes()
    b = (DATA / "evtx" / "log-cleared-104-1102.evtx").read_bytes()
    header = bytearray(a[:HEADER])
    struct.pack_into("<Q", header, 16, 1)  # last chunk number
    struct.pack_into("<H", header, 0x2A, 2)  # chunk count
    struct.pack_into("<I", header, 0x7C, zlib.crc32(bytes(header[:0x78])))
    target.write_bytes(bytes(header) + a[HEADER:] + b[HEADER:])
    counts = [sum(1 for _ in evtx.PyEvtxParser(str(p)).records_json()) for p in
              (DATA / "evtx" / "psexec-4688-4697-5140-5145.evtx", DATA / "evtx" / "log-cleared-104-1102.evtx")]  # fmt: skip
    return counts[0], counts[1]


def test_evtx_truncated_mid_chunk(tmp_path: Path) -> None:
    whole = tmp_path / "whole.evtx"
    first, _ = _two_chunk_evtx(whole)
    cut = tmp_path / "in" / "truncated.evtx"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: HEADER + CHUNK + CHUNK // 2])
    summary, con = ingest_and_query(tmp_path / "case", cut)
    result = summary.files[0]
    assert result.status == "ingested" and result.records_read == first
    assert result.records_rejected == 1
    reject = rows(con, "SELECT * FROM rejects")[0]
    assert reject["input_path"].endswith("truncated.evtx")
    assert "truncated" in reject["reason"] and "chunk 2" in reject["reason"]


def test_evtx_flipped_bytes(tmp_path: Path) -> None:
    whole = tmp_path / "whole.evtx"
    first, second = _two_chunk_evtx(whole)
    data = bytearray(whole.read_bytes())
    rng = random.Random(7)
    for _ in range(60):  # damage records of the second chunk only, past its 512-byte header
        data[rng.randrange(HEADER + CHUNK + 1024, len(data))] ^= 0xFF
    bad = tmp_path / "in" / "flipped.evtx"
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    summary, con = ingest_and_query(tmp_path / "case", bad)
    result = summary.files[0]
    assert result.records_read >= first  # every record of the undamaged chunk arrives
    assert result.records_rejected > 0
    assert result.records_read + result.records_rejected <= first + second + 1
    located = rows(con, "SELECT input_record, reason FROM rejects")
    assert all(r["input_record"] > 0 and "record" in r["reason"] for r in located)
    chunk_one = rows(
        con, "SELECT count(*) AS n FROM events WHERE event_code IN (4624, 4688, 5140, 5145)"
    )
    assert chunk_one[0]["n"] >= 27


def test_json_lines_with_bad_lines(tmp_path: Path) -> None:
    good = (DATA / "winlogbeat" / "winlogbeat-sample.json").read_text().splitlines()
    lines = [
        good[0],
        '{"winlog": {"channel": "Security", "event_id": 4624',  # cut short
        good[1],
        "not json at all",
        '{"@timestamp": "yesterday-ish", "winlog": {"channel": "Security", "event_id": 4624, '
        '"computer_name": "x"}}',  # unparseable timestamp
        good[2],
    ]
    path = tmp_path / "in" / "wlb.json"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    summary, con = ingest_and_query(tmp_path / "case", path)
    assert summary.files[0].format == "winlogbeat"
    assert summary.events == 3 and summary.rejected == 3
    rejects = rows(con, "SELECT input_record, reason FROM rejects ORDER BY input_record")
    assert [r["input_record"] for r in rejects] == [2, 4, 5]
    assert rejects[0]["reason"] == "malformed JSON"
    assert "timestamp" in rejects[2]["reason"] and "yesterday-ish" in rejects[2]["reason"]
    assert sorted(r["input_record"] for r in rows(con, "SELECT input_record FROM events")) == [
        1,
        3,
        6,
    ]


def test_authlog_with_binary_garbage(tmp_path: Path) -> None:
    good = (DATA / "authlog" / "auth.log").read_bytes().splitlines()
    garbage = bytes(range(128, 256)) + b"\x00\x01 not syslog"
    path = tmp_path / "in" / "auth.log"
    path.parent.mkdir()
    path.write_bytes(
        b"\n".join([good[0], garbage, good[1], b"\xff\xfe\xfd", good[2], b"just text"]) + b"\n"
    )
    summary, con = ingest_and_query(tmp_path / "case", path)
    assert summary.files[0].format == "authlog"
    assert summary.events == 3 and summary.rejected == 3
    rejects = rows(con, "SELECT input_record, reason FROM rejects ORDER BY input_record")
    assert [r["input_record"] for r in rejects] == [2, 4, 6]
    assert "not UTF-8" in rejects[0]["reason"] and "not a syslog line" in rejects[2]["reason"]


def test_csv_bad_rows_and_bytes(tmp_path: Path) -> None:
    lines = (DATA / "mapped" / "vpn.csv").read_bytes().splitlines()
    path = tmp_path / "in" / "vpn.csv"
    path.parent.mkdir()
    path.write_bytes(b"\n".join([lines[0], lines[1], b"too,few,columns", b"\xff\xfeoops,1,2,3,4,5,6,7",
                                 b"not-a-time,u,1.2.3.4,,d,true,connect,success", lines[2]]) + b"\n")  # fmt: skip
    summary, con = ingest_and_query(
        tmp_path / "case", path, mappings=[DATA / "mapped" / "vpn.yaml"]
    )
    assert summary.events == 2 and summary.rejected == 3
    rejects = rows(con, "SELECT input_record, reason FROM rejects ORDER BY input_record")
    assert [r["input_record"] for r in rejects] == [3, 4, 5]
    assert "columns" in rejects[0]["reason"] and "UTF-8" in rejects[1]["reason"]
    assert "timestamp" in rejects[2]["reason"]


def test_unrecognised_file_names_formats_tried(tmp_path: Path) -> None:
    path = tmp_path / "in" / "mystery.bin"
    path.parent.mkdir()
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a log")
    summary, _ = ingest_and_query(tmp_path / "case", path)
    result = summary.files[0]
    assert result.status == "failed"
    for name in ("evtx", "nxlog", "winlogbeat", "zeek", "authlog", "lanl_auth"):
        assert name in result.message


def test_unknown_forced_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known formats"):
        ingest_and_query(tmp_path / "case", DATA / "lanl", format="nope")
