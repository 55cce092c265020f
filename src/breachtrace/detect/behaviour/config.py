"""The behavioural analytics' settings: ``data/detect.yaml``, optionally overridden by a user file.

Every threshold lives in the one YAML file, documented beside its value (in the manner of RITA's
default_config). A user file repeats only the keys it changes; unknown keys, wrong types and
score weights that do not sum to 1 are errors naming the file and the key, so a typo never
silently leaves a default in force.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from breachtrace.yaml_files import load_yaml


class ConfigError(ValueError):
    """A detect configuration that cannot be used: which file, which key, and why."""


class Settings(Mapping[str, Any]):
    """A read-only section of the configuration; keys are also attributes (``s.learning_days``)."""

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self._data = dict(data)
        self._path = path

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if isinstance(value, Mapping):
            return Settings(value, f"{self._path}.{key}" if self._path else key)
        return value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            where = self._path or "(top level)"
            raise AttributeError(f"detect.yaml has no setting {where}.{key}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def plain(self) -> dict[str, Any]:
        """The section as plain dicts and lists (for findings' details)."""
        return _plain(self._data)

    def __repr__(self) -> str:
        return f"Settings({self._path or 'root'})"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _default_path() -> str:
    return str(resources.files("breachtrace.data").joinpath("detect.yaml"))


@cache
def _default_text() -> str:
    return resources.files("breachtrace.data").joinpath("detect.yaml").read_text(encoding="utf-8")


def default_config() -> dict[str, Any]:
    data = load_yaml(_default_text())
    if not isinstance(data, dict):
        raise ConfigError("the packaged detect.yaml is not a mapping")
    return data


def load_config(path: str | Path | None = None) -> Settings:
    """The defaults from ``data/detect.yaml``, with ``path`` (a user YAML file) merged over them."""
    merged = default_config()
    user: Any = {}
    if path is not None:
        user_path = Path(path)
        try:
            user = load_yaml(user_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{user_path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{user_path}: not valid YAML: {exc}") from None
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ConfigError(f"{user_path}: the top level must be a mapping of sections")
        merged = _merge(merged, user, str(user_path), "")
    _check_weights(merged, "", user, str(path), _default_path())
    return Settings(merged)


def _merge(
    base: dict[str, Any], over: Mapping[str, Any], source: str, prefix: str
) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in base:
            known = ", ".join(sorted(str(k) for k in base))
            raise ConfigError(f"{source}: unknown setting {name!r}; known here: {known}")
        default = base[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {name} must be a mapping, got {value!r}")
            out[key] = _merge(default, value, source, name)
        else:
            out[key] = _checked(default, value, source, name)
    return out


def _checked(default: Any, value: Any, source: str, name: str) -> Any:
    """``value`` if it has the default's type (ints are accepted where floats are)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = True
    if not ok:
        raise ConfigError(
            f"{source}: {name} must be {type(default).__name__} like the default "
            f"({default!r}), got {value!r}"
        )
    return value


def _check_weights(node: Any, prefix: str, user: Any, user_file: str, default_file: str) -> None:
    """Every mapping named ``weights`` holds numbers in [0, 1] summing to 1. ``user`` is the
    user file's part at this level: a bad set is blamed on it when it sets any of the weights
    (merged over the defaults, one changed weight breaks the sum), else on the packaged file."""
    if not isinstance(node, dict):
        return
    user = user if isinstance(user, Mapping) else {}
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key == "weights" and isinstance(value, dict):
            source = user_file if isinstance(user.get(key), Mapping) else default_file
            total = 0.0
            for part, weight in value.items():
                if not isinstance(weight, int | float) or not 0 <= weight <= 1:
                    raise ConfigError(
                        f"{source}: {name}.{part} must be a number in [0, 1], got {weight!r}"
                    )
                total += float(weight)
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                parts = ", ".join(f"{part} {float(w):g}" for part, w in value.items())
                raise ConfigError(
                    f"{source}: {name} must sum to 1 (they sum to {total:.4f}: {parts})"
                )
        else:
            _check_weights(value, name, user.get(key), user_file, default_file)
