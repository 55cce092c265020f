"""A responder's lead (``--from host:NAME|user:NAME|ip:ADDR|finding:ID``) and the seeds it gives."""

from __future__ import annotations

from dataclasses import dataclass

from breachtrace.context import short_host
from breachtrace.trace.evidence import CandidateHop, FindingView
from breachtrace.trace.graph import HIGH, LATER, Compromise

LEAD_KINDS = ("host", "user", "ip", "finding")


class LeadError(ValueError):
    """A --from value that cannot be used."""


@dataclass(frozen=True)
class Lead:
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def parse_lead(text: str) -> Lead:
    """``host:jp-fs01`` -> Lead("host", "jp-fs01"); names are normalised like the store's."""
    kind, sep, value = text.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if not sep or kind not in LEAD_KINDS or not value:
        raise LeadError(
            f"--from {text!r}: expected one of {', '.join(k + ':VALUE' for k in LEAD_KINDS)}"
        )
    if kind == "host":
        value = short_host(value)
    elif kind == "user":
        value = value.lower()
    return Lead(kind, value)


def seeds_from_lead(
    lead: Lead,
    findings: list[FindingView],
    candidates: list[CandidateHop],
    host_of_ip: dict[str, str],
) -> Compromise:
    """The lead as compromise seeds: a host is open at any time (traced both ways)."""
    seeds = Compromise()
    if lead.kind == "host":
        named = [f for f in findings if lead.value in f.hosts and f.level >= HIGH]
        if not named:  # a cold lead: whatever suspicious touched it
            seeds.open_hosts.add(lead.value)
        # compromised at some time: every hop into it by an account its findings name counts
        seeds.mark_host(lead.value, LATER)
        for f in named:
            for user in f.users:
                seeds.mark_account(user, f.first_ts)
    elif lead.kind == "user":
        first = [h.time for h in candidates if h.account == lead.value]
        first += [f.first_ts for f in findings if lead.value in f.users]
        if not first:
            raise LeadError(f"--from {lead}: no finding names the account {lead.value!r}")
        seeds.mark_account(lead.value, min(first))
    elif lead.kind == "ip":
        seeds.open_hosts.add(host_of_ip.get(lead.value, lead.value))
        for h in candidates:
            if lead.value in (h.source_ip, h.vpn_source):
                seeds.open_hosts.add(h.src)
                seeds.mark_account(h.account, h.time)
    else:
        match = [f for f in findings if f.finding_id.startswith(lead.value)]
        if not match:
            raise LeadError(f"--from {lead}: no finding with that id in the case")
        for f in match:
            for host in f.hosts:
                seeds.mark_host(host, f.first_ts)
            for user in f.users:
                seeds.mark_account(user, f.first_ts)
    return seeds


def touches(
    lead: Lead, hosts: set[str], accounts: set[str], addresses: set[str], finding_ids: set[str]
) -> bool:
    """Whether an incident with these entities answers the lead."""
    if lead.kind == "host":
        return lead.value in hosts
    if lead.kind == "user":
        return lead.value in accounts
    if lead.kind == "ip":
        return lead.value in addresses
    return any(f.startswith(lead.value) for f in finding_ids)
