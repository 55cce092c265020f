"""simulate(): build the organisation, plan the scenario, and write logs day by day.

Events are generated one local day at a time for every site, merged with the scenario's
injected events, and flushed in time order once no later day can produce anything earlier
(the flush point trails the UTC day by the easternmost site's offset). Memory therefore holds
about one day of events, whatever the period.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from breachtrace.simulate import events as ev
from breachtrace.simulate.benign import Benign
from breachtrace.simulate.columns import Rows
from breachtrace.simulate.org import DAY, US, build_org
from breachtrace.simulate.scenarios import SCENARIOS
from breachtrace.simulate.truth import build_truth, iso, write_truth
from breachtrace.simulate.writers.context import write_context
from breachtrace.simulate.writers.syslog import AuthLogWriter
from breachtrace.simulate.writers.vpn import VpnWriter
from breachtrace.simulate.writers.windows import WindowsWriter
from breachtrace.simulate.writers.zeek import ZeekWriter

MARKER = ".breachtrace-simulation"
OUTPUTS = (
    "logs",
    "mappings",
    "assets.csv",
    "networks.csv",
    "data_inventory.csv",
    "identities.csv",
    "truth.json",
    MARKER,
)


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote."""

    out: Path
    scenario: str
    seed: int
    hosts: int
    users: int
    days: int
    start: str  # ISO-8601 UTC
    end: str
    truth: Path
    events_by_format: dict[str, int] = field(default_factory=dict)
    events_by_file: dict[str, int] = field(default_factory=dict)  # relative path -> records
    files_by_format: dict[str, int] = field(default_factory=dict)
    context_rows: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(self.events_by_format.values())


def simulate(
    out: Path,
    scenario: str,
    *,
    hosts: int = 200,
    users: int | None = None,
    days: int = 60,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Simulate ``days`` days of an organisation of ``hosts`` hosts (and ``users`` people) with
    the incident ``scenario`` injected, writing logs, context files and truth.json under ``out``.

    The same arguments always give byte-identical files. ``out`` must be new, empty, or hold an
    earlier simulation (which is replaced).
    """
    began = time.perf_counter()
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if days < 1:
        raise ValueError(f"--days must be at least 1 (got {days})")
    out = Path(out)
    _prepare(out)
    spec = SCENARIOS[scenario]
    org = build_org(seed, spec.start(seed, days), days, hosts, users)
    plan = spec.plan(org)
    benign = Benign(org)
    windows = WindowsWriter(out, org, plan.gaps)
    zeek, auth, vpn = ZeekWriter(out, org), AuthLogWriter(out, org), VpnWriter(out, org)
    sinks = ((ev.WIN, windows), (ev.CONN, zeek), (ev.SMB, zeek), (ev.AUTH, auth), (ev.VPN, vpn))
    injected = {s.name: plan.events.rows(s).sorted_by_time() for s, _ in sinks}
    taken = dict.fromkeys(injected, 0)
    carry = {s.name: s.empty() for s, _ in sinks}
    lead = max(0, int(org.offsets.max()))
    first_us, end_us = org.start * US, (org.start + days * DAY) * US
    for d in range(days):
        today = benign.day(d)
        flush_at = (org.day_start(d + 1) - lead) * US if d < days - 1 else end_us
        written = 0
        for schema, writer in sinks:
            inj = injected[schema.name]
            upto = int(np.searchsorted(inj["ts"], flush_at))
            rows = Rows.concat(
                schema,
                [
                    carry[schema.name],
                    today.rows(schema),
                    inj.take(np.arange(taken[schema.name], upto)),
                ],
            )
            taken[schema.name] = upto
            rows = rows.take(rows["ts"] >= first_us)
            if schema is ev.SMB:  # SMB of a connection that began before the period: unseen
                rows = rows.take(rows["conn_ts"] >= first_us)
            due = rows["ts"] < flush_at
            carry[schema.name] = rows.take(~due)
            now = rows.take(due).sorted_by_time()
            writer.write(now)
            written += now.n
        if progress is not None:
            progress(f"day {d + 1}/{days}: {written:,} events")
    zeek.close()
    auth.close()
    vpn.write_mapping()
    context = write_context(out, org)
    by_format = {
        "windows": sum(windows.events_by_file.values()),
        "zeek_conn": sum(n for f, n in zeek.events_by_file.items() if f.endswith("conn.log")),
        "zeek_dns": sum(n for f, n in zeek.events_by_file.items() if f.endswith("dns.log")),
        "zeek_smb_files": sum(
            n for f, n in zeek.events_by_file.items() if f.endswith("smb_files.log")
        ),
        "zeek_smb_mapping": sum(
            n for f, n in zeek.events_by_file.items() if f.endswith("smb_mapping.log")
        ),
        "auth_log": sum(auth.events_by_file.values()),
        "vpn": sum(vpn.events_by_file.values()),
    }
    by_file = {
        **windows.events_by_file,
        **zeek.events_by_file,
        **auth.events_by_file,
        **vpn.events_by_file,
    }
    firsts = [
        w.first_malicious for w in (windows, zeek, auth, vpn) if w.first_malicious is not None
    ]
    truth = build_truth(
        org,
        scenario,
        plan,
        malicious_ids=windows.malicious + zeek.malicious + auth.malicious + vpn.malicious,
        first_detectable=min(firsts) if firsts else None,
        events_by_file=by_file,
        events_by_format=by_format,
    )
    write_truth(out / "truth.json", truth)
    return SimulationSummary(
        out=out,
        scenario=scenario,
        seed=seed,
        hosts=len(org.hosts),
        users=len(org.users),
        days=days,
        start=iso(first_us) or "",
        end=iso(end_us) or "",
        truth=out / "truth.json",
        events_by_format=by_format,
        events_by_file=dict(sorted(by_file.items())),
        files_by_format={
            "windows": len(windows.events_by_file),
            "zeek": len(zeek.events_by_file),
            "auth_log": len(auth.events_by_file),
            "vpn": len(vpn.events_by_file),
        },
        context_rows=context,
        elapsed_seconds=round(time.perf_counter() - began, 3),
    )


def _prepare(out: Path) -> None:
    """Make ``out`` ready: create it, or clear an earlier simulation's outputs from it."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} is a file; give a directory")
    if out.exists() and any(out.iterdir()):
        if not ((out / MARKER).exists() or (out / "truth.json").exists()):
            raise FileExistsError(
                f"{out} is not empty and holds no earlier simulation; give a new or empty directory"
            )
        for name in OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by breachtrace simulate; the directory may be replaced\n")
