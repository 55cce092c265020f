"""A synthetic multi-site organisation that replays the 2020 incidents, with ground truth.

``simulate(out, scenario, ...)`` writes, under ``out``:

- ``logs/windows/<site>/<servers|workstations>-<YYYY-MM>.json``: NXLog-style JSON lines
- ``logs/linux/<host>/<YYYY-MM>/auth.log``: syslog auth.log, mtime = last line's time
- ``logs/zeek/zeek-<site>/<YYYY-MM>/{conn,dns,smb_files,smb_mapping}.log``: Zeek TSV with full
  headers (every site has a sensor; SMB file reads are logged by the client's site)
- ``logs/vpn/vpn-<YYYY-MM>.csv`` and ``mappings/vpn.yaml``: VPN sessions and their mapping
- ``assets.csv``, ``networks.csv``, ``data_inventory.csv``, ``identities.csv``: context
- ``truth.json``: what was injected (see ``breachtrace.simulate.truth`` for the record-id
  scheme: ``<host>|<Channel>|<RecordNumber>`` for Windows, ``<path>:<line>`` for auth.log and
  VPN CSV, the ``uid`` for Zeek)

Scenarios: ``telecom-2020``, ``maker-2016``, ``quiet`` (see ``scenarios``).
"""

from breachtrace.simulate.runner import SimulationSummary, simulate
from breachtrace.simulate.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "SimulationSummary", "simulate"]
