"""The Markdown report: the same sections as the HTML page, as text a ticket or wiki can take.
Strings from the logs are escaped (Markdown punctuation backslashed, ``<``, ``>`` and ``&`` as
entities, line breaks flattened) so they cannot become links, markup or table cells."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jinja2

from breachtrace.report.html import join_list

# inline markup (emphasis, code, links, tables, strikethrough); <, > and & become entities
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_BLOCK_START = re.compile(r"^([#+\-=>!])")  # headings, lists, quotes at line start
_ORDERED_LIST = re.compile(r"^(\d+)([.)])")


def md(value: Any) -> str:
    """Text safe inside Markdown paragraphs and table cells."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _BLOCK_START.sub(r"\\\1", _SPECIAL.sub(r"\\\1", text))
    return _ORDERED_LIST.sub(r"\1\\\2", text)


def render_markdown(data: dict[str, Any], links: dict[str, str]) -> str:
    return _environment().get_template("report.md.j2").render(d=data, links=links)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("breachtrace.report", "templates"), autoescape=False,
        undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
    )  # fmt: skip
    env.filters["md"] = md
    env.filters["mdlist"] = lambda v, total=None, limit=8: md(join_list(v, total, limit))
    return env
