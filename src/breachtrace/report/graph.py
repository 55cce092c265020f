"""The attack-path graph: hosts grouped by site and country (one column per site, in the order
the attacker reached them), hops as arrows coloured by route, each hop labelled with its time.

Text given to plotly is HTML-escaped first: plotly renders a subset of HTML in labels and hover
text (links included), and host or account names may come from an attacker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from html import escape as html_escape
from typing import Any

import networkx as nx
import plotly.graph_objects as go

# plotly decodes &lt; &gt; &amp; in labels but shows &quot; as is; quotes outside tags are inert
escape = partial(html_escape, quote=False)

ROUTE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                 "#17becf", "#bcbd22", "#7f7f7f")  # fmt: skip


@dataclass(frozen=True)
class Hop:
    route_id: str
    route_name: str
    src: str
    dst: str
    time: str
    account: str
    method: str


@dataclass
class HostInfo:
    name: str
    site: str = "unknown site"
    country: str = ""
    role: str = ""
    first: str = ""
    last: str = ""
    entry: bool = False


@dataclass
class AttackGraph:
    hosts: dict[str, HostInfo]
    hops: list[Hop]
    source: str  # "trace" or "findings"
    routes: list[dict[str, Any]] = field(default_factory=list)


def graph_from_incidents(incidents: list[dict[str, Any]]) -> AttackGraph:
    """Hosts and hops of every traced route."""
    hosts: dict[str, HostInfo] = {}
    hops: list[Hop] = []
    routes: list[dict[str, Any]] = []
    for inc in incidents:
        for h in inc.get("hosts") or []:
            name = str(h.get("name") or "")
            if name:
                hosts[name] = HostInfo(
                    name, str(h.get("site") or "unknown site"), str(h.get("country") or ""),
                    str(h.get("role") or ""), str(h.get("first") or ""), str(h.get("last") or ""),
                )  # fmt: skip
        for e in inc.get("entry_points") or []:
            if e.get("host"):
                hosts.setdefault(str(e["host"]), HostInfo(str(e["host"]))).entry = True
        for r in inc.get("routes") or []:
            rid, rname = str(r.get("route_id") or ""), str(r.get("name") or "")
            routes.append({"route_id": rid, "name": rname, "incident_id": inc.get("incident_id"),
                           "hops": len(r.get("hops") or [])})  # fmt: skip
            for hop in r.get("hops") or []:
                hops.append(_hop(rid, rname, hop))
    return AttackGraph(hosts, hops, "trace", routes)


def graph_from_findings(
    hop_rows: list[dict[str, Any]], assets: dict[str, dict[str, str]]
) -> AttackGraph:
    """Before a trace: one provisional route per lateral-movement finding."""
    number = {fid: f"F{i + 1}" for i, fid in enumerate(dict.fromkeys(r["finding_id"] for r in hop_rows))}  # fmt: skip
    hops = [
        _hop(
            number[r["finding_id"]], f"{r['kind']} ({r['severity']}, finding {r['finding_id']})", r
        )
        for r in hop_rows
    ]
    routes = [{"route_id": n, "name": next(h.route_name for h in hops if h.route_id == n),
               "finding_id": fid, "incident_id": None,
               "hops": sum(h.route_id == n for h in hops)} for fid, n in number.items()]  # fmt: skip
    hosts: dict[str, HostInfo] = {}
    for name in dict.fromkeys(n for h in hops for n in (h.src, h.dst)):
        a = assets.get(name, {})
        hosts[name] = HostInfo(name, a.get("site") or "unknown site", a.get("country") or "",
                               a.get("role") or "")  # fmt: skip
    return AttackGraph(hosts, hops, "findings", routes)


def _hop(route_id: str, route_name: str, hop: dict[str, Any]) -> Hop:
    return Hop(route_id, route_name, str(hop.get("src") or "?"), str(hop.get("dst") or "?"),
               str(hop.get("time") or ""), str(hop.get("account") or ""),
               str(hop.get("method") or ""))  # fmt: skip


def graph_figure(graph: AttackGraph) -> dict[str, Any]:
    """A plotly figure (as JSON-ready dict) of the graph."""
    for h in graph.hops:  # hop ends not described by the trace still get a node
        for name in (h.src, h.dst):
            graph.hosts.setdefault(name, HostInfo(name))
    positions, groups = _layout(graph)
    fig = go.Figure()
    for (site, country), members in groups.items():
        xs = [positions[m][0] for m in members]
        ys = [positions[m][1] for m in members]
        fig.add_shape(type="rect", x0=min(xs) - 0.35, x1=max(xs) + 0.35, y0=min(ys) - 0.3,
                      y1=max(ys) + 0.3, line={"color": "#bbb", "dash": "dot"},
                      fillcolor="rgba(200,200,200,0.12)", layer="below")  # fmt: skip
        fig.add_annotation(x=sum(xs) / len(xs), y=max(ys) + 0.42, showarrow=False,
                           text=escape(f"{site} · {country}" if country else site),
                           font={"size": 12, "color": "#555"})  # fmt: skip
    route_ids = list(dict.fromkeys(h.route_id for h in graph.hops))
    for i, rid in enumerate(route_ids):
        colour = ROUTE_COLOURS[i % len(ROUTE_COLOURS)]
        _add_route(fig, [h for h in graph.hops if h.route_id == rid], positions, colour)
    _add_hosts(fig, graph, positions)
    fig.update_layout(
        showlegend=True, hovermode="closest", margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.05}, height=520,
    )  # fmt: skip
    return fig.to_plotly_json()


def _layout(graph: AttackGraph) -> tuple[dict[str, tuple[float, float]], dict[tuple[str, str], list[str]]]:  # fmt: skip
    """Columns by (site, country) in the order the hops first reach them; networkx's
    multipartite layout places the hosts of each column."""
    first_seen: dict[str, str] = {}
    for h in sorted(graph.hops, key=lambda h: h.time):
        first_seen.setdefault(h.src, h.time)
        first_seen.setdefault(h.dst, h.time)
    hosts = sorted(graph.hosts.values(), key=lambda h: (not h.entry, first_seen.get(h.name, "~"), h.name))  # fmt: skip
    groups: dict[tuple[str, str], list[str]] = {}
    for h in hosts:
        groups.setdefault((h.site, h.country), []).append(h.name)
    g = nx.DiGraph()
    for layer, members in enumerate(groups.values()):
        g.add_nodes_from(members, layer=layer)
    pos = nx.multipartite_layout(g, subset_key="layer", scale=1.0)
    tallest = max((len(m) for m in groups.values()), default=1)
    positions = {n: (float(layer_index), float(p[1]) * max(tallest, 1))
                 for layer_index, members in enumerate(groups.values())
                 for n in members for p in [pos[n]]}  # fmt: skip
    return positions, groups


def _add_route(fig: go.Figure, hops: list[Hop], positions: dict[str, tuple[float, float]], colour: str) -> None:  # fmt: skip
    xs: list[float | None] = []
    ys: list[float | None] = []
    mid_x, mid_y, labels, hovers = [], [], [], []
    for h in hops:
        (x0, y0), (x1, y1) = positions[h.src], positions[h.dst]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
        mid_x.append((x0 + x1) / 2)
        mid_y.append((y0 + y1) / 2)
        labels.append(escape(h.time[:10]))
        hovers.append(escape(f"{h.src} → {h.dst}") + "<br>" + escape(h.time) + "<br>"
                      + escape(f"as {h.account or '?'} ({h.method or 'method unknown'})"))  # fmt: skip
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowsize=1.4, arrowwidth=2,
                           arrowcolor=colour, standoff=12, startstandoff=12, text="")  # fmt: skip
    name = escape(f"{hops[0].route_id}: {hops[0].route_name}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": colour, "width": 2},
                             name=name, legendgroup=hops[0].route_id, hoverinfo="skip"))  # fmt: skip
    fig.add_trace(go.Scatter(
        x=mid_x, y=mid_y, mode="markers+text", text=labels, textposition="top center",
        textfont={"size": 10, "color": colour}, marker={"size": 7, "color": colour},
        hovertext=hovers, hoverinfo="text", legendgroup=hops[0].route_id, showlegend=False,
        name=name, meta="hops",
    ))  # fmt: skip


def _add_hosts(fig: go.Figure, graph: AttackGraph, positions: dict[str, tuple[float, float]]) -> None:  # fmt: skip
    names = list(positions)
    info = [graph.hosts[n] for n in names]
    hover = [
        "<br>".join(escape(x) for x in (
            h.name, f"{h.site} · {h.country}".strip(" ·"), h.role,
            f"first {h.first}" if h.first else "", f"last {h.last}" if h.last else "",
            "entry point" if h.entry else "") if x)
        for h in info
    ]  # fmt: skip
    fig.add_trace(go.Scatter(
        x=[positions[n][0] for n in names], y=[positions[n][1] for n in names],
        mode="markers+text", text=[escape(n) for n in names], textposition="bottom center",
        hovertext=hover, hoverinfo="text", name="hosts", meta="hosts",
        marker={"size": [18 if h.entry else 13 for h in info],
                "symbol": ["star" if h.entry else "circle" for h in info],
                "color": ["#d62728" if h.entry else "#444" for h in info]},
    ))  # fmt: skip
