"""YAML reading shared by every module: libyaml's C parser when PyYAML has it.

The pure-Python parser took 0.03-0.05 s per data file (windows.yaml, sigma_logsources.yaml),
paid by every command at start; the C one gives the same documents several times faster.
Both raise ``yaml.YAMLError`` with the line and column of a mistake.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """The document in ``text``, loaded safely (plain data, no Python objects)."""
    return yaml.load(text, Loader=_LOADER)
