"""The options shared by the commands that run SQL over events: ``--engine`` and
``--spark-master`` (hunt, detect, trace, scope, investigate) and ``--rules`` (hunt,
investigate, demo)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class EngineName(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


EngineOpt = Annotated[
    EngineName,
    typer.Option(
        "--engine",
        help="SQL engine: duckdb (this machine) or spark (PySpark, the same SQL transpiled; "
        "install with pip install 'breachtrace[spark]').",
    ),
]
SparkMasterOpt = Annotated[
    str,
    typer.Option(
        "--spark-master",
        help="Spark master URL for --engine spark (local[*], spark://host:7077, yarn, ...).",
    ),
]
DEFAULT_MASTER = "local[*]"
RulesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--rules",
        "-r",
        help="Sigma rule files or directories (repeatable; default: BREACHTRACE_SIGMA_RULES or "
        "sigma_rules in the config file).",
    ),
]
