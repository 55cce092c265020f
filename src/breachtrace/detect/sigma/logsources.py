"""Which stored events a Sigma rule sees, and where each of its fields is: data/sigma_logsources.yaml.

Decision (pySigma 2.x with this pipeline of our own, not pySigma 1.5 + pySigma-pipeline-windows):

- pySigma-pipeline-windows/-sysmon (and the published DuckDB backend) pin pySigma < 2.0; we use
  the maintained 2.x line and would otherwise be stuck on an old parser for every rule.
- Those pipelines write the logsource into each rule's query (``Channel = ... AND EventID IN``)
  and rename fields inside it, so one rule becomes one query per event shape. Here the logsource
  is a *pre-filter per group of rules*: all rules of a logsource share one scan of the events
  that logsource covers, and renames (Security 4688's ``NewProcessName`` for ``Image``) happen
  once when the scan extracts the fields. One compiled rule then runs unchanged over Sysmon and
  Security process creations, and over EVTX, NXLog and Winlogbeat records.
- The mapping is data a responder can read and extend (as chainsaw's mappings), and it reuses
  the per-dialect field paths of data/windows.yaml rather than restating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from breachtrace.ingest.windows_mapping import WindowsDialect, dialect, path_keys
from breachtrace.yaml_files import load_yaml


@dataclass(frozen=True)
class EventSource:
    """One kind of stored event a logsource covers, and how Sigma fields map onto it."""

    formats: tuple[str, ...]
    channels: tuple[str, ...] = ()  # lower case; empty: any
    event_ids: tuple[int, ...] = ()  # empty: any
    providers: tuple[str, ...] = ()  # lower case; empty: any
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()  # extra field values (case-insensitive)
    rename: tuple[tuple[str, str], ...] = ()  # Sigma field -> field in this source

    def covers(self, fmt: str, channel: str | None, provider: str | None, code: int | None) -> bool:
        """Whether events of this (format, channel, provider, event id) class belong here."""
        if fmt not in self.formats:
            return False
        if self.channels and (channel or "").lower() not in self.channels:
            return False
        if self.providers and (provider or "").lower() not in self.providers:
            return False
        return not self.event_ids or code in self.event_ids

    def source_field(self, field: str) -> str:
        return dict(self.rename).get(field, field)


@dataclass(frozen=True)
class Logsource:
    """A resolved Sigma logsource: a display key and the event sources it covers."""

    key: str
    sources: tuple[EventSource, ...]


@dataclass(frozen=True)
class FieldAccess:
    """Where one Sigma field is in one source format: a store column, JSON paths, or nowhere."""

    column: str | None = None  # SQL over the store's columns
    paths: tuple[str, ...] = ()  # JSON paths into raw, first non-null wins
    # fallbacks: (object path, path inside the object's single child element)
    object_paths: tuple[tuple[str, str], ...] = ()


class LogsourceMap:
    """The mapping file, loaded: logsource resolution and field places per format."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.formats: dict[str, dict[str, Any]] = data["formats"]
        self.format_groups: dict[str, list[str]] = data.get("format_groups", {})
        self.header_fields: dict[str, dict[str, str]] = data.get("header_fields", {})
        self.placeholders: dict[str, list[str]] = {
            k: [str(x) for x in (v if isinstance(v, list) else [v])]
            for k, v in (data.get("placeholders") or {}).items()
        }
        self.services: dict[str, list[str]] = data.get("windows_services", {})
        self.categories: dict[str, list[dict[str, Any]]] = data.get("windows_categories", {})
        self.other: list[dict[str, Any]] = data.get("other", [])

    # -- logsources ---------------------------------------------------------------------------
    def resolve(
        self, product: str | None, category: str | None, service: str | None
    ) -> Logsource | None:
        """The entry for a rule's logsource, or None when no stored events can match it."""
        product, category, service = (
            v.lower() if v else None for v in (product, category, service)
        )
        key = "/".join(v for v in (product, category, service) if v) or "(none)"
        if (
            product in (None, "windows")
            and category
            and not service
            and category in self.categories
        ):
            specs = self.categories[category]
            return Logsource(key, tuple(self._windows_source(s) for s in specs))
        if product == "windows" and service and not category and service in self.services:
            return Logsource(
                key, (self._source({"formats": "windows", "channels": self.services[service]}),)
            )
        for entry in self.other:
            ls = {
                k: (str(v).lower() if v is not None else None)
                for k, v in entry["logsource"].items()
            }
            if ls.get("category") != category:
                continue
            if ls.get("service") != service and not (ls.get("service") == "*" and service):
                continue
            if "product" in ls and ls["product"] != product:
                continue
            sources = tuple(self._source(s, service) for s in entry["sources"])
            return Logsource(key, sources)
        return None

    def _windows_source(self, spec: dict[str, Any]) -> EventSource:
        return self._source(
            {"formats": "windows", "channels": self.services[spec["service"]], **spec}
        )

    def _source(self, spec: dict[str, Any], service: str | None = None) -> EventSource:
        formats: list[str] = []
        names = spec["formats"] if isinstance(spec["formats"], list) else [spec["formats"]]
        for name in names:
            formats.extend(self.format_groups.get(name, [name]))
        channels = [
            str(c).replace("{service}", service or "").lower() for c in spec.get("channels", [])
        ]
        return EventSource(
            formats=tuple(formats),
            channels=tuple(channels),
            event_ids=tuple(int(i) for i in spec.get("ids", [])),
            providers=tuple(str(p).lower() for p in spec.get("providers", [])),
            where=tuple(
                (k, tuple(str(x).lower() for x in v)) for k, v in (spec.get("where") or {}).items()
            ),
            rename=tuple((k, str(v)) for k, v in (spec.get("rename") or {}).items()),
        )

    # -- fields ---------------------------------------------------------------------------------
    def object_keys(self) -> dict[str, list[str]]:
        """Per source format, the keys of the objects whose child element's fields it reads
        (EVTX UserData): the ``object_paths`` fallbacks of ``access``. A record without these
        keys has no such fallback to read (``scan.holds_objects_test``)."""
        found: dict[str, list[str]] = {}
        for fmt, spec in self.formats.items():
            win = _windows_dialect(spec)
            keys = sorted({path_keys(o)[-1] for o in _event_field_places(win)[1]}) if win else []
            if keys:
                found[fmt] = keys
        return found

    def access(self, fmt: str, field: str) -> FieldAccess:
        """Where the (already renamed) field ``field`` is in records of format ``fmt``."""
        spec = self.formats.get(fmt, {})
        header = self.header_fields.get(field)
        win = _windows_dialect(spec)
        if header and "column" in header:
            return FieldAccess(column=header["column"])
        if header and win is not None and "windows" in header:
            return FieldAccess(paths=_system_paths(win, header["windows"]))
        if win is not None:
            prefixes, objects = _event_field_places(win)
            return FieldAccess(
                paths=tuple(_field_path(p, field) for p in prefixes),
                object_paths=tuple((o, "$." + _quote_key(field)) for o in objects),
            )
        if "json" in spec:
            root = spec["json"].rstrip(".")
            return FieldAccess(paths=(root + "." + _quote_key(field),))
        return FieldAccess()


def _windows_dialect(spec: dict[str, Any]) -> WindowsDialect | None:
    return dialect(spec["windows"]) if "windows" in spec else None


def _event_field_places(win: WindowsDialect) -> tuple[list[str], list[str]]:
    """Where a dialect keeps event fields: path prefixes (``<prefix>."Name"``), and objects
    whose single child element holds them (EVTX UserData)."""
    prefixes = list(getattr(win, "field_prefixes", ()) or ())
    objects: list[str] = []
    data = getattr(win, "event_data", None)
    for path in (data,) if isinstance(data, str) else tuple(data or ()):
        if path.endswith(".*"):
            objects.append(path[:-2])
        else:
            prefixes.append(path)
    user = getattr(win, "user_data", None)
    if isinstance(user, str):
        objects.append(user)
    return prefixes, objects


def _system_paths(win: WindowsDialect, key: str) -> tuple[str, ...]:
    """Absolute JSON paths of a System value (``computer``, ``record_id``...) in a dialect."""
    system = getattr(win, "system", None)
    if isinstance(system, dict):
        base = getattr(win, "system_object", None)
        return tuple(base + p[1:] if base else p for p in system[key])
    return tuple(getattr(win, key))


def _field_path(prefix: str, name: str) -> str:
    return ("$" if prefix == "$" else prefix) + "." + _quote_key(name)


def _quote_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@cache
def load_logsources() -> LogsourceMap:
    text = resources.files("breachtrace.data").joinpath("sigma_logsources.yaml").read_text()
    return LogsourceMap(load_yaml(text))
