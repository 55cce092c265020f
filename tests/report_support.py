"""Helpers for the report tests: a small case with hand-made findings and the trace/scope
fixtures of tests/data/report, and a headless Debian chromium driven by Playwright."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from breachtrace.case import Case
from breachtrace.findings import findings_table, write_findings
from breachtrace.schema import Finding

from conftest import DATA
from detect_support import write_events

REPORT_DATA = DATA / "report"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def finding(fid: str, kind: str, severity: str, day: int, **kw: Any) -> Finding:
    when = dt.datetime(2020, 2, 1) + dt.timedelta(days=day)
    values: dict[str, Any] = {
        "finding_id": fid, "source": "behaviour", "kind": kind, "rule_id": kind,
        "title": f"{kind} {fid}", "severity": severity, "score": 0.8,
        "techniques": ("T1021.001",), "tags": (), "first_ts": when,
        "last_ts": when + dt.timedelta(hours=1), "hosts": ("vn-srv01",), "users": ("aben",),
        "addresses": (), "files": (), "evidence": ("a1b2c3d4e5f6:101",),
        "explanation": f"{kind} seen.", "details": "{}",
    }  # fmt: skip
    values.update(kw)
    return Finding(**values)


def small_case(root: Path, *, traced: bool, scoped: bool) -> Case:
    """Six events, six findings (one lateral chain with hops), optional trace and scope."""
    uids = ["a1b2c3d4e5f6:101", "a1b2c3d4e5f6:202", "a1b2c3d4e5f6:303", "b2c3d4e5f6a1:7",
            "a1b2c3d4e5f6:505", "a1b2c3d4e5f6:50"]  # fmt: skip
    rows = [{"ts": dt.datetime(2020, 2, 7 + i, 20), "host": "jp-fs01", "action": "logon",
             "user": "aben", "event_uid": uid} for i, uid in enumerate(uids)]  # fmt: skip
    case = write_events(root, rows)
    hops = ('{"hops": [{"src": "vn-srv01", "dst": "gb-srv01", "time": "2020-02-07T20:04:22", '
            '"account": "lewism", "method": "explicit"}, {"src": "gb-srv01", "dst": "jp-fs01", '
            '"time": "2020-02-20T03:10:00", "account": "aben", "method": "rdp"}]}')  # fmt: skip
    findings = [
        finding("f-chain-1", "lateral_chain", "critical", 6, details=hops,
                hosts=("vn-srv01", "gb-srv01", "jp-fs01")),
        finding("f-beacon-1", "beacon", "critical", 5, techniques=("T1071.001",)),
        finding("f-cred-1", "credential_anomalous_login", "high", 33, users=("tanakah",)),
        finding("f-tamper-1", "log_cleared", "high", 40, hosts=("jp-fs01",)),
        finding("f-bulk-1", "bulk_read", "critical", 48, files=("\\\\jp-fs01\\a.docx",)),
        finding("f-edge-1", "lateral_new_edge", "informational", 10),
    ]  # fmt: skip
    write_findings(case, "unit", findings_table(findings))
    if traced:
        shutil.copytree(REPORT_DATA / "trace", case.root / "trace")
    if scoped:
        shutil.copytree(REPORT_DATA / "scope", case.root / "scope")
    return case


@dataclass
class PageLog:
    """What a page said while open: console errors, uncaught errors, dialogs."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def launch_chromium() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (its own browsers are never fetched);
    the ``chromium`` fixture of conftest.py. Skips when either is missing."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def open_report(browser: Any, html: Path) -> tuple[Any, PageLog]:
    """A page with the report loaded and its script finished; the log keeps what it said."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log = PageLog()
    page.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        log.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(html.resolve().as_uri())
    page.wait_for_function("window.btReport && window.btReport.ready", timeout=30_000)
    return page, log
