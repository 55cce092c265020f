"""The demo's report in a real browser: the telecom-2020 scenario (simulated at test size,
cached), detected, traced, reported, then opened in headless Debian chromium. The graph,
timeline and tables render with the counts of report.json, filtering works, the console stays
clean, and a screenshot is kept in test-artifacts/."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from breachtrace.detect.behaviour import detect
from breachtrace.report import write_report

from detect_support import fresh_copy, simulated
from report_support import ARTIFACTS, open_report


@pytest.fixture(scope="module")
def demo_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = simulated(request, "telecom-2020", 60, 21, 1)  # shared with the detect tests
    root = tmp_path_factory.mktemp("report-demo")
    case_dir = fresh_copy(built / "case", root / "case")
    sim = built / "sim"
    detect(case_dir, assets=sim / "assets.csv", networks=sim / "networks.csv",
           identities=sim / "identities.csv")  # fmt: skip
    from breachtrace.trace import trace

    trace(case_dir)
    from breachtrace.scope import scope

    scope(case_dir, inventory=sim / "data_inventory.csv")
    write_report(case_dir, root / "report", ("html", "json"))
    return root / "report"


def test_demo_report_renders_and_filters(demo_report: Path, chromium: Any) -> None:
    data = json.loads((demo_report / "report.json").read_text())
    assert data["status"] == {"traced": True, "scoped": True} and data["graph"]["hops"] > 0
    page, log = open_report(chromium, demo_report / "report.html")
    try:
        hosts = page.locator("#graph .scatterlayer .trace:last-child .point")
        assert hosts.count() == data["graph"]["hosts"]
        rows = data["timeline"]["rows"]
        timeline_points = "#timeline .cartesianlayer .scatterlayer .point"
        assert page.locator(timeline_points).count() == len(rows)
        assert page.locator("#findings tbody tr").count() == len(data["findings"])
        assert page.locator("#kinds tbody tr").count() == len(data["findings_summary"]["by_kind"])
        assert page.locator("#inputs tbody tr").count() == len(data["evidence"]["inputs"])
        assert page.locator("#containment-list li").count() == len(data["containment"]["items"])
        assert page.locator("#scope-routes tbody tr").count() == len(data["scope"]["routes"])
        assert page.get_attribute("#notification-link", "href") == "notification_list.csv"
        assert (demo_report / "notification_list.csv").is_file()

        host, n = Counter(r["host"] for r in rows if r["host"]).most_common(1)[0]
        page.select_option("#timeline-host", host)
        assert page.evaluate("window.btReport.timelineShown") == n
        assert page.locator(timeline_points).count() == n
        assert page.inner_text("#timeline-count") == str(n)
        page.click("#timeline-reset")
        assert page.evaluate("window.btReport.timelineShown") == len(rows)

        critical = sum(f["severity"] == "critical" for f in data["findings"])
        page.select_option("#findings-severity", "critical")
        assert page.evaluate("window.btReport.findingsShown") == critical
        assert page.locator("#findings tbody tr:not([hidden])").count() == critical
        page.select_option("#findings-severity", "")

        page.click("#findings thead th:nth-child(3)")  # score, ascending
        scores = page.eval_on_selector_all(
            "#findings tbody tr td:nth-child(3)", "els => els.map(e => parseFloat(e.textContent))"
        )
        assert scores == sorted(scores)

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-demo.png"), full_page=False)
        page.locator("#timeline-section").screenshot(path=str(ARTIFACTS / "report-demo-timeline.png"))  # fmt: skip
        assert log.errors == [] and log.dialogs == []
    finally:
        page.close()
