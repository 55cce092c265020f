"""The HTML report: one self-contained file (plotly's bundled script, our script and styles
inline; no network) rendered by jinja2 with autoescaping.

Attacker-controlled strings reach the page in three ways, each kept as data: as text in
autoescaped markup; inside a ``<script type="application/json">`` island with ``<``, ``>`` and
``&`` written as JSON escapes (so no ``</script>`` can close it); and in plotly labels, which
are HTML-escaped when the figures are built. A Content-Security-Policy allows only the page's
own scripts, by hash, so an injected script or event handler would not run either.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from plotly.offline import get_plotlyjs

from breachtrace.schema import SEVERITIES

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"}  # fmt: skip


def render_html(data: dict[str, Any], files_written: dict[str, str]) -> str:
    """The report page for ``data`` (from ``build_report_data``); ``files_written`` maps
    names (findings_csv, timeline_csv, ...) to the relative links of the full tables."""
    scripts = [_plotly_js(), _asset("report.js")]
    island = json_island({
        "graph": data["graph"]["figure"],
        "timeline": data["timeline"]["figure"],
        "rows": [[r["host"], r["user"], r["kind"]] for r in data["timeline"]["rows"]],
    })  # fmt: skip
    return _environment().get_template("report.html.j2").render(
        d=data, links=files_written, severities=list(reversed(SEVERITIES)),
        island=island, css=_asset("report.css"), plotly_js=scripts[0], report_js=scripts[1],
        csp=content_security_policy(scripts), timeline_filters=_filters(data["timeline"]["rows"]),
    )  # fmt: skip


def json_island(value: Any) -> str:
    """JSON safe to place inside a script element (no tag can be closed or opened)."""
    return json.dumps(value, default=str, separators=(",", ":")).translate(_JSON_ESCAPES)


def content_security_policy(scripts: list[str]) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
            "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'")  # fmt: skip


def _filters(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        "host": sorted({r["host"] for r in rows if r["host"]}),
        "user": sorted({r["user"] for r in rows if r["user"]}),
        "kind": sorted({r["kind"] for r in rows if r["kind"]}),
    }


@cache
def _plotly_js() -> str:
    script = get_plotlyjs()
    if "</script" in script.lower():  # would end the inline element early
        raise RuntimeError("plotly's bundled script cannot be inlined (contains </script)")
    return script


@cache
def _asset(name: str) -> str:
    return (files("breachtrace.report") / "templates" / name).read_text(encoding="utf-8")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("breachtrace.report", "templates"),
        autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["num"] = _num
    env.filters["join_list"] = join_list
    return env


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def join_list(value: Any, total: int | None = None, limit: int = 8) -> str:
    """A list as "a, b, c" (at most ``limit`` items, then "+N more")."""
    items = [str(v) for v in (value or []) if v is not None]
    more = max((total if total is not None else len(items)) - min(len(items), limit), 0)
    return ", ".join(items[:limit]) + (f" +{more:,} more" if more else "")


def write_html(path: Path, data: dict[str, Any], files_written: dict[str, str]) -> None:
    path.write_text(render_html(data, files_written), encoding="utf-8")
