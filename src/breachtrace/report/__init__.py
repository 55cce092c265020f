"""The report: what the case holds, for the responder, management and other tools.

    from breachtrace.report import write_report
    summary = write_report(case_dir, out_dir, ("html", "json", "md", "csv", "timesketch"))

Formats and the files they write under ``out_dir``:

- ``html``: ``report.html``, one self-contained offline page (needs the CSV tables it links to,
  so it writes them too)
- ``json``: ``report.json``, the report's data (findings and timeline cut as on the page)
- ``md``: ``report.md``
- ``csv``: ``findings.csv``, ``timeline.csv``, ``inputs.csv``, and with a scope
  ``owners.csv`` and ``notification_list.csv``
- ``timesketch``: ``timesketch.jsonl`` and ``timesketch.csv``
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breachtrace.case import Case
from breachtrace.report import html, markdown, tabular, timesketch
from breachtrace.report.inputs import ReportError
from breachtrace.report.model import Limits, build_report_data

FORMATS = ("html", "json", "md", "csv", "timesketch")

__all__ = ["FORMATS", "Limits", "ReportError", "ReportSummary", "parse_formats", "write_report"]


@dataclass
class ReportSummary:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # name -> path written
    seconds: dict[str, float] = field(default_factory=dict)  # step -> seconds
    findings: int = 0
    timeline: int = 0
    traced: bool = False
    scoped: bool = False

    @property
    def html_bytes(self) -> int:
        path = self.files.get("html")
        return path.stat().st_size if path else 0


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"html,csv"`` or a sequence -> validated format names, in FORMATS order."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    unknown = [n for n in names if n and n not in FORMATS]
    if unknown:
        raise ReportError(f"unknown report format {', '.join(unknown)}: choose from {', '.join(FORMATS)}")  # fmt: skip
    chosen = tuple(f for f in FORMATS if f in names)
    if not chosen:
        raise ReportError(f"no report format given: choose from {', '.join(FORMATS)}")
    return chosen


def write_report(
    case: Case | str | Path,
    out_dir: str | Path,
    formats: str | Sequence[str] = FORMATS,
    *,
    limits: Limits | None = None,
) -> ReportSummary:
    """Write the case's report into ``out_dir`` (created) in the given formats.

    ``case``: an opened Case or its directory. ``formats``: names from FORMATS (a sequence or
    a comma-separated string). Works before trace and scope have run (the report says what is
    missing). Raises ReportError for an unknown format or an unreadable trace/scope file.
    """
    chosen = parse_formats(formats)
    c = case if isinstance(case, Case) else Case.open(case)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = ReportSummary(out)
    mark = time.perf_counter()
    data = build_report_data(c, limits or Limits())
    summary.seconds["gather"] = time.perf_counter() - mark
    summary.findings = data["findings_summary"]["total"]
    summary.timeline = data["timeline"]["total"]
    summary.traced, summary.scoped = data["status"]["traced"], data["status"]["scoped"]
    links: dict[str, str] = {}
    if "csv" in chosen or "html" in chosen:
        _step(summary, "csv", lambda: _write_tables(c, data, out, summary, links))
    if "json" in chosen:
        _step(summary, "json", lambda: _write_json(data, out / "report.json", summary))
    if "md" in chosen:
        path = out / "report.md"
        _step(summary, "md", lambda: path.write_text(markdown.render_markdown(data, links), encoding="utf-8"))  # fmt: skip
        summary.files["md"] = path
    if "timesketch" in chosen:
        jsonl, csv_path = out / "timesketch.jsonl", out / "timesketch.csv"
        _step(summary, "timesketch", lambda: timesketch.write_timesketch(data["_all_timeline"], jsonl, csv_path))  # fmt: skip
        summary.files.update(timesketch_jsonl=jsonl, timesketch_csv=csv_path)
    if "html" in chosen:
        path = out / "report.html"
        _step(summary, "html", lambda: html.write_html(path, data, links))
        summary.files["html"] = path
    return summary


def _step(summary: ReportSummary, name: str, work: Any) -> None:
    mark = time.perf_counter()
    work()
    summary.seconds[name] = time.perf_counter() - mark


def _write_tables(
    case: Case, data: dict[str, Any], out: Path, summary: ReportSummary, links: dict[str, str]
) -> None:
    tables = {
        "findings_csv": ("findings.csv", lambda p: tabular.write_findings_csv(case, p)),
        "timeline_csv": (
            "timeline.csv",
            lambda p: tabular.write_timeline_csv(data["_all_timeline"], p),
        ),
        "inputs_csv": ("inputs.csv", lambda p: tabular.write_inputs_csv(data["_all_inputs"], p)),
    }
    if data["scope"] is not None:
        tables["owners_csv"] = ("owners.csv", lambda p: tabular.write_owners_csv(data["scope"], p))
    if data["_notification_csv"] is not None:
        source = data["_notification_csv"]
        tables["notification_csv"] = ("notification_list.csv", lambda p: tabular.copy_notification_csv(source, p))  # fmt: skip
    for key, (name, write) in tables.items():
        write(out / name)
        summary.files[key] = out / name
        links[key] = name


def _write_json(data: dict[str, Any], path: Path, summary: ReportSummary) -> None:
    public = {k: v for k, v in data.items() if not k.startswith("_")}
    public["graph"] = {k: v for k, v in data["graph"].items() if k != "figure"}
    public["timeline"] = {k: v for k, v in data["timeline"].items() if k != "figure"}
    path.write_text(json.dumps(public, indent=1, default=str), encoding="utf-8")
    summary.files["json"] = path
