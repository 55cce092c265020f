"""Sigma hunting: SigmaHQ-format rules compiled to DuckDB SQL and run over the case store."""

from breachtrace.detect.sigma.hunt import HuntSummary, hunt
from breachtrace.detect.sigma.loader import GET_RULES_HELP, NoRulesConfigured, default_rule_paths

__all__ = ["GET_RULES_HELP", "HuntSummary", "NoRulesConfigured", "default_rule_paths", "hunt"]
