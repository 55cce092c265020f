"""Attacker-chosen strings are data in every format. Events carrying <script> tags, quotes that
break attributes with event handlers, javascript: URLs and spreadsheet formulas (in host,
account and command lines) are ingested and detected for real; the trace and scope carry more of
them (route names, owners, file names). Every format is rendered; in a real browser nothing
runs, and every CSV cell is neutralised."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from breachtrace.case import Case
from breachtrace.detect.behaviour import detect
from breachtrace.ingest.runner import ingest
from breachtrace.report import write_report

from report_support import ARTIFACTS, REPORT_DATA, open_report

SCRIPT = '<script>window.__pwned="script";alert(1)</script>'
ATTR = '"><img src=x onerror="window.__pwned=\'img\';alert(2)">'
JS_URL = "javascript:window.__pwned='js';alert(3)"
FORMULAS = ("=cmd|' /C calc'!A0", "+mallory", "-2+3", "@SUM(1+1)", "\tTAB", "\r=CR")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-safety")
    ingest(root / "case", [REPORT_DATA / "payloads" / "nxlog-payloads.json"])
    summary = detect(root / "case", only=["tamper"])
    assert summary.findings >= 4  # the payloads reach findings: titles, accounts, commands
    case = Case.open(root / "case")
    _hostile_stage_outputs(case)
    out = root / "out"
    write_report(case, out)
    return out


def _hostile_stage_outputs(case: Case) -> None:
    """The trace and scope fixtures with attacker strings where logs can put them."""
    trace = json.loads((REPORT_DATA / "trace" / "incidents.json").read_text())
    inc = trace["incidents"][0]
    inc["title"] = SCRIPT
    inc["summary"] = ATTR + " " + JS_URL
    inc["entry_points"][0]["host"] = "ws01" + ATTR
    inc["routes"][0]["name"] = ATTR
    inc["routes"][0]["hops"][0]["src"] = "ws01" + ATTR
    inc["routes"][0]["hops"][1]["account"] = FORMULAS[0] + SCRIPT
    inc["hosts"][0]["name"] = "ws01" + ATTR
    inc["accounts"][0]["name"] = FORMULAS[3] + ATTR
    inc["timeline"][0]["summary"] = JS_URL
    inc["timeline"][1]["user"] = FORMULAS[0]
    inc["containment"][0]["target"] = FORMULAS[1] + SCRIPT
    (case.root / "trace").mkdir()
    (case.root / "trace" / "incidents.json").write_text(json.dumps(trace))
    shutil.copytree(REPORT_DATA / "scope", case.root / "scope")
    scope = json.loads((case.root / "scope" / "latest.json").read_text())
    scope["owners"][0]["owner"] = FORMULAS[0] + SCRIPT
    scope["routes"][0]["owners"] = [FORMULAS[2] + ATTR, JS_URL]
    scope["unowned_files"] = ["\\\\fs\\" + SCRIPT + ".docx", JS_URL, FORMULAS[4]]
    (case.root / "scope" / "latest.json").write_text(json.dumps(scope))
    notification = case.root / "scope" / "runs" / scope["run_id"] / "notification_list.csv"
    with open(notification, "a", newline="") as fh:
        csv.writer(fh).writerows([[f, "R1", "1", "", "", "", "0"] for f in FORMULAS])


def test_every_csv_cell_is_neutralised(report: Path) -> None:
    files = sorted(report.glob("*.csv"))
    assert {p.name for p in files} >= {"findings.csv", "timeline.csv", "owners.csv",
                                       "notification_list.csv", "timesketch.csv", "inputs.csv"}  # fmt: skip
    seen: list[str] = []
    for path in files:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for value in row:
                    assert not value.startswith(FORMULA_START), (path.name, value)
                    seen.append(value)
    # the payloads are there, as text
    assert any(v.startswith("'=cmd|") for v in seen)
    assert any(v.startswith("'@sum(1+1)") or v.startswith("'@SUM(1+1)") for v in seen)
    assert any(v.startswith("'\tTAB") for v in seen) and any(v.startswith("'\r=CR") for v in seen)
    assert any(SCRIPT in v for v in seen)


def test_markdown_and_json_keep_payloads_as_text(report: Path) -> None:
    text = (report / "report.md").read_text()
    for raw in ("<script", "<img", "<svg"):  # no tag can open; the rest is plain text
        assert raw not in text
    assert "&lt;script&gt;" in text
    data = json.loads((report / "report.json").read_text())
    assert data["trace"]["incidents"][0]["title"] == SCRIPT  # data, byte for byte
    for line in (report / "timesketch.jsonl").read_text().splitlines():
        json.loads(line)


def test_nothing_runs_in_a_real_browser(report: Path, chromium: Any) -> None:
    page, log = open_report(chromium, report / "report.html")
    try:
        # exercise the page: filter the timeline by each hostile host and account, search
        for key in ("host", "user", "kind"):
            values = page.eval_on_selector_all(
                f"#timeline-{key} option", "els => els.map(e => e.value).filter(Boolean)"
            )
            for value in values:
                page.select_option(f"#timeline-{key}", value)
            page.select_option(f"#timeline-{key}", "")
        page.fill("#findings-filter", "script")
        # hover labels render the escaped host names (the drag layer is on top, so use the mouse)
        for point in page.locator("#graph .scatterlayer .trace:last-child .point").all():
            box = point.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            hover = page.eval_on_selector("#graph .hoverlayer", "e => e.textContent")
            if "ws01" in hover:
                assert "ws01" + ATTR in hover
        page.screenshot(path=str(_artifact("report-safety.png")), full_page=True)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert log.dialogs == []
        assert log.errors == []
        injected = page.evaluate("""() => {
            const handlers = [...document.querySelectorAll('*')].filter(
                e => [...e.attributes].some(a => a.name.startsWith('on')));
            return {handlers: handlers.length, img: document.images.length,
                    js: document.querySelectorAll('a[href^="javascript" i]').length,
                    scripts: document.scripts.length}; }""")  # fmt: skip
        assert injected == {"handlers": 0, "img": 0, "js": 0, "scripts": 3}
        # and the strings are shown, as text
        assert SCRIPT in page.inner_text("#incidents")
        assert "ws01<svg onload=alert(4)>" in page.inner_text("#findings")
        labels = page.eval_on_selector_all(
            "#graph .textpoint", "els => els.map(e => e.textContent)"
        )
        assert "ws01" + ATTR in labels
    finally:
        page.close()


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
