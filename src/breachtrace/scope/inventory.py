"""The data inventory: path prefix -> owner (client), classification and, where known, the
number of individuals (data subjects) whose records sit under it.

CSV with a header row: ``path_prefix`` and ``owner`` required, ``classification`` and
``individuals`` optional. Prefixes are UNC (``\\\\server\\share\\folder\\``) or local
(``D:\\shares\\folder\\``) paths, matched case-insensitively on whole folders. Given once, the
file is validated and kept as CASE/context/data_inventory.csv, where later runs find it.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from breachtrace import atomic_write
from breachtrace.case import Case
from breachtrace.context import ContextError, context_dir
from breachtrace.engines.base import Engine, materialize

COLUMNS = ("path_prefix", "owner", "classification", "individuals")


@dataclass(frozen=True)
class Inventory:
    prefixes: tuple[str, ...]
    owners: tuple[str, ...]
    classifications: tuple[str | None, ...]
    individuals: tuple[int | None, ...]
    source: str
    sha256: str

    def table(self) -> pa.Table:
        """The inventory as rows (prefix, owner, classification, individuals)."""
        return pa.table(
            {
                "prefix": pa.array([normal_prefix(p) for p in self.prefixes], pa.string()),
                "owner": pa.array(self.owners, pa.string()),
                "classification": pa.array(self.classifications, pa.string()),
                "individuals": pa.array(self.individuals, pa.int64()),
            },
            schema=TABLE_SCHEMA,
        )


TABLE_SCHEMA = pa.schema(
    [("prefix", pa.string()), ("owner", pa.string()), ("classification", pa.string()),
     ("individuals", pa.int64())]
)  # fmt: skip


def register_inventory(engine: Engine, inventory: Inventory | None) -> None:
    """The table sc_inventory(prefix, owner, classification, individuals), empty without an
    inventory (files read are then listed without owners)."""
    materialize(
        engine, "sc_inventory", inventory.table() if inventory else TABLE_SCHEMA.empty_table()
    )


def normal_prefix(prefix: str) -> str:
    """Lower case, forward slashes as backslashes, one trailing backslash."""
    return prefix.strip().replace("/", "\\").lower().rstrip("\\") + "\\"


def parse_inventory(path: Path) -> Inventory:
    """Read and validate a data inventory CSV (errors name the file and the row)."""
    try:
        data = Path(path).read_bytes()
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ContextError(f"{path}: data inventory not found") from None
    except UnicodeDecodeError as exc:
        raise ContextError(f"{path}: not UTF-8 text ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS[:2] if c not in header]
    if missing:
        raise ContextError(
            f"{path}: the data inventory needs the columns {', '.join(COLUMNS[:2])} "
            f"(optional: {', '.join(COLUMNS[2:])}); missing: {', '.join(missing)}"
        )
    reader.fieldnames = header
    rows: list[tuple[str, str, str | None, int | None]] = []
    for number, row in enumerate(reader, start=2):
        prefix, owner = (row.get("path_prefix") or "").strip(), (row.get("owner") or "").strip()
        if not prefix or not owner:
            raise ContextError(f"{path}: row {number}: path_prefix and owner are required")
        count = (row.get("individuals") or "").strip().replace(",", "")
        if count and not count.isdigit():
            raise ContextError(f"{path}: row {number}: individuals {count!r} is not a number")
        rows.append(
            (prefix, owner, (row.get("classification") or "").strip() or None,
             int(count) if count else None)
        )  # fmt: skip
    return Inventory(
        prefixes=tuple(r[0] for r in rows),
        owners=tuple(r[1] for r in rows),
        classifications=tuple(r[2] for r in rows),
        individuals=tuple(r[3] for r in rows),
        source=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def stored_inventory_path(case: Case) -> Path:
    return context_dir(case) / "data_inventory.csv"


def load_inventory(case: Case, given: Path | None = None) -> Inventory | None:
    """The inventory given here (validated and stored in the case), else the stored copy."""
    stored = stored_inventory_path(case)
    if given is not None:
        inventory = parse_inventory(Path(given))
        stored.parent.mkdir(parents=True, exist_ok=True)
        atomic_write.write_bytes(stored, Path(given).read_bytes())
        return inventory
    return parse_inventory(stored) if stored.exists() else None
