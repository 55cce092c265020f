"""The executive summary: a few plain sentences with the numbers management asks for (entry,
routes, dwell time, accounts, files, owners), from the trace and scope when they exist and from
the findings otherwise."""

from __future__ import annotations

from typing import Any

NOT_TRACED = "Not traced yet: run `breachtrace trace` (or `investigate`) to reconstruct entry, routes and dwell time."  # fmt: skip
NOT_SCOPED = "Not scoped yet: run `breachtrace scope` to list the files read and whose data they hold."  # fmt: skip


def executive_summary(
    findings: dict[str, Any], incidents: list[dict[str, Any]] | None, scope: dict[str, Any] | None
) -> dict[str, Any]:
    """``{"numbers": {...}, "sentences": [...]}``; a number is None where it is not known."""
    numbers: dict[str, Any] = {
        "findings": findings["total"], "critical": findings["by_severity"].get("critical", 0),
        "high": findings["by_severity"].get("high", 0), "incidents": None, "entry": None,
        "routes": None, "dwell_days": None, "accounts": None, "hosts": None, "c2": None,
        "files": None, "owners": None, "overlap_owners": None,
    }  # fmt: skip
    sentences: list[str] = []
    if incidents is None:
        sentences.append(NOT_TRACED)
        sentences.append(_findings_sentence(findings))
    else:
        sentences += _trace_sentences(incidents, numbers)
        sentences.append(_findings_sentence(findings))
    if scope is None:
        sentences.append(NOT_SCOPED)
    else:
        sentences += _scope_sentences(scope, numbers)
    return {"numbers": numbers, "sentences": sentences}


def _findings_sentence(f: dict[str, Any]) -> str:
    if not f["total"]:
        return (
            "No findings in the case yet: run `breachtrace detect` (and `hunt` with Sigma rules)."
        )
    sev = ", ".join(f"{n:,} {s}" for s, n in f["by_severity"].items() if n)
    return (f"{f['total']:,} findings ({sev}) name {f['hosts']:,} hosts and {f['accounts']:,} "
            f"accounts, from {f['first']} to {f['last']} UTC.")  # fmt: skip


def _trace_sentences(incidents: list[dict[str, Any]], numbers: dict[str, Any]) -> list[str]:
    if not incidents:
        numbers.update(incidents=0, routes=0)
        return ["The trace found no incident in this case."]
    entries = [e for inc in incidents for e in inc.get("entry_points") or []]
    routes = [r for inc in incidents for r in inc.get("routes") or []]
    accounts = {a.get("name") for inc in incidents for a in inc.get("accounts") or []}
    hosts = {h.get("name") for inc in incidents for h in inc.get("hosts") or []}
    c2 = [c for inc in incidents for c in inc.get("c2") or []]
    dwell = [inc.get("dwell") or {} for inc in incidents]
    days = max((d.get("days") for d in dwell if d.get("days") is not None), default=None)
    numbers.update(
        incidents=len(incidents), entry=", ".join(str(e.get("host")) for e in entries) or None,
        routes=len(routes), dwell_days=days, accounts=len(accounts - {None}),
        hosts=len(hosts - {None}), c2=len(c2),
    )  # fmt: skip
    out = []
    for e in entries:
        reasons = "; ".join(str(r) for r in e.get("reasons") or [])
        out.append(f"Entry point: {e.get('host')} at {e.get('time')} UTC"
                   + (f" from {e.get('source')}" if e.get("source") else "")
                   + (f" ({reasons})." if reasons else "."))  # fmt: skip
    if routes:
        out.append(f"{len(routes)} route(s): " + "; ".join(
            f"{r.get('route_id')} {r.get('name')} ({len(r.get('hosts') or [])} hosts, "
            f"{len(r.get('hops') or [])} hops, {str(r.get('first'))[:10]} to {str(r.get('last'))[:10]})"
            for r in routes) + ".")  # fmt: skip
    for d in dwell:
        if d.get("days") is not None:
            out.append(f"Dwell time about {float(d['days']):.0f} days: first compromise "
                       f"{d.get('first_compromise')}, detected {d.get('detection')} UTC.")  # fmt: skip
    out.append(f"{numbers['accounts']} account(s) and {numbers['hosts']} host(s) involved; "
               f"{len(c2)} command-and-control channel(s).")  # fmt: skip
    return out


def _scope_sentences(scope: dict[str, Any], numbers: dict[str, Any]) -> list[str]:
    owners = scope.get("owners") or []
    union = scope.get("union") or [o.get("owner") for o in owners]
    files = sum(int(o.get("files") or 0) for o in owners) + len(scope.get("unowned_files") or [])
    overlap = {o for ov in scope.get("overlaps") or [] for o in ov.get("owners") or []}
    numbers.update(files=files, owners=len(union), overlap_owners=len(overlap))
    per_route = "; ".join(f"{r.get('route_id')}: {len(r.get('owners') or [])} owners, "
                          f"{r.get('files')} files" for r in scope.get("routes") or [])  # fmt: skip
    out = [f"{files:,} files read, holding data of {len(union):,} owners"
           + (f" ({per_route})" if per_route else "")
           + f"; {len(overlap):,} owners were reached by more than one route (counted once)."]  # fmt: skip
    crossed = [t for t in scope.get("thresholds") or [] if t.get("crossed")]
    if crossed:
        out.append("Notification thresholds crossed: " + "; ".join(
            f"{t.get('jurisdiction')}: {t.get('rule')}"
            + (f" (deadline {t.get('deadline')})" if t.get("deadline") else "") for t in crossed) + ".")  # fmt: skip
    return out
