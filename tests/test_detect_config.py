"""detect.yaml: every setting documented in one file, user overrides checked key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from breachtrace.detect.behaviour.config import ConfigError, default_config, load_config


def test_defaults_load_and_every_weight_set_sums_to_one() -> None:
    s = load_config()
    for section in ("lateral", "credentials", "bulk", "beacon"):
        assert s[section]
    for weights in (
        s.lateral.path.weights,
        s.credentials.weights,
        s.bulk.weights,
        s.beacon.weights,
    ):
        assert abs(sum(weights.values()) - 1.0) < 1e-9
    assert s.credentials.learning.min_days == 14.0
    assert s.credentials.learning.min_logins == 10
    assert s.credentials.new_country_days == 90.0
    assert s.credentials.new_device_days == 30.0


def test_every_setting_is_commented_in_the_yaml() -> None:
    text = (Path(__file__).resolve().parents[1] / "src/breachtrace/data/detect.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue
        if line.startswith(" ") and ":" in stripped and not stripped.startswith(("-", '"')):
            # a setting: a comment on one of the lines above it, up to its section
            above = [ln.strip() for ln in lines[max(0, i - 12) : i]]
            assert any(a.startswith("#") for a in above), f"undocumented setting: {stripped}"


def test_user_file_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    user = tmp_path / "mine.yaml"
    user.write_text("lateral:\n  path:\n    daily_budget: 2\nbeacon:\n  min_score: 0.8\n")
    s = load_config(user)
    assert s.lateral.path.daily_budget == 2
    assert s.beacon.min_score == 0.8
    assert (
        s.lateral.path.chain_window_days == default_config()["lateral"]["path"]["chain_window_days"]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lateral:\n  pth:\n    daily_budget: 2\n", "unknown setting 'lateral.pth'"),
        ("bulk:\n  min_files: many\n", "bulk.min_files must be int"),
        (
            "beacon:\n  weights: {timestamp: 0.5, data_size: 0.5, histogram: 0.5, duration: 0}\n",
            "must sum to 1",
        ),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_user_files_are_refused_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    user = tmp_path / "bad.yaml"
    user.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(user)
    assert message in str(err.value)
    assert str(user) in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bulk:\n  weights: {own: 0.5}\n", "bulk.weights must sum to 1 (they sum to 1.2500"),
        ("credentials:\n  weights: {failures: 1.5}\n", "credentials.weights.failures must be"),
        ("lateral:\n  path:\n    weights: {novelty: 0.9}\n", "lateral.path.weights must sum"),
    ],
)
def test_bad_weights_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    user = tmp_path / "weights.yaml"
    user.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(user)
    assert str(err.value).startswith(f"{user}: ") and message in str(err.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
