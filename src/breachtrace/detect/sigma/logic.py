"""A compiled rule's condition as a small boolean tree, for rules the hunt decides in Python.

Most rules a small case plans are limited by the prefilter to a few rows (``scan.py``), where
DuckDB spends about a millisecond planning each one and microseconds running it. A rule whose
SQL uses only string tests (``contains``, ``starts_with``, ``ends_with``, ``=``, ``IN``,
``IS [NOT] NULL``, ``regexp_matches``, ``LIKE``) joined by ``AND``/``OR``/``NOT``/``coalesce`` is instead
evaluated here on the values of those rows, with SQL's three-valued logic (``None`` is NULL).
Regular expressions run on RE2, DuckDB's own engine, with DuckDB's options (google-re2's
binding): a regular expression that merely lists texts becomes the string tests it stands for,
and a LIKE pattern becomes the regular expression it stands for.

The tree is read off DuckDB's own parse of the rule's SQL (``json_serialize_sql``) when the rule
is compiled, and cached with it as JSON text; anything outside that subset (other regular
(casts, numeric comparisons, a pattern RE2 rejects) leaves the rule to DuckDB.
Trees are plain lists, as stored in the rule cache:

    ["and", t, ...]  ["or", t, ...]  ["not", t]  ["coalesce", t, ...]  ["const", value]
    ["contains" | "starts" | "ends" | "eq", column, text]  ["in", column, [text, ...]]
    ["null", column]  ["notnull", column]  ["regex", column, pattern]

where ``column`` is a field column's name as the hunt's group tables spell it (``l:^image``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import re2

Tree = list[Any]
Row = Mapping[str, str | None]

# DuckDB's SQL text never holds these in a rule the subset covers: skip parsing those rules
_OUTSIDE = ("CAST", "date_part", " < ", " > ", " <= ", " >= ")
_FUNCTIONS = {"contains": "contains", "starts_with": "starts", "ends_with": "ends"}
# RE2's special characters: outside the subset unless escaped (then they stand for themselves)
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


class _Outside(Exception):
    """The SQL uses something the tree does not cover."""


def logic_of(sql: str, parse: Callable[[str], str]) -> Tree | None:
    """The tree of a rule's SQL condition, or None if the SQL is outside the subset.
    ``parse`` returns DuckDB's ``json_serialize_sql`` of a statement."""
    if any(token in sql for token in _OUTSIDE):
        return None
    try:
        parsed = json.loads(parse(f"SELECT {sql}"))
        if parsed.get("error"):
            return None
        (statement,) = parsed["statements"]
        (expression,) = statement["node"]["select_list"]
        return _tree(expression)
    except (_Outside, KeyError, TypeError, ValueError):
        return None


def logic_text(sql: str, parse: Callable[[str], str]) -> str | None:
    """``logic_of`` as the JSON text a compiled rule keeps (``tree`` reads it back)."""
    found = logic_of(sql, parse)
    return None if found is None else json.dumps(found, ensure_ascii=False, separators=(",", ":"))


def tree(text: str) -> Tree:
    """A compiled rule's tree from its JSON text."""
    parsed = json.loads(text)
    if not isinstance(parsed, list):
        raise ValueError("a rule's logic is not a tree")
    return parsed


def _tree(node: dict[str, Any]) -> Tree:
    kind = node.get("type")
    children = node.get("children") or []
    if kind == "CONJUNCTION_AND":
        return ["and", *(_tree(c) for c in children)]
    if kind == "CONJUNCTION_OR":
        return ["or", *(_tree(c) for c in children)]
    if kind == "OPERATOR_NOT" and len(children) == 1:
        return ["not", _tree(children[0])]
    if kind == "OPERATOR_COALESCE":
        return ["coalesce", *(_tree(c) for c in children)]
    if kind in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL") and len(children) == 1:
        return ["null" if kind == "OPERATOR_IS_NULL" else "notnull", _column(children[0])]
    if kind == "VALUE_CONSTANT":
        value = _constant(node)
        if isinstance(value, bool) or value is None:
            return ["const", value]
        raise _Outside
    if kind == "COMPARE_EQUAL":
        return ["eq", _column(node["left"]), _text(node["right"])]
    if kind == "COMPARE_IN" and len(children) > 1:
        return ["in", _column(children[0]), [_text(c) for c in children[1:]]]
    if node.get("class") == "FUNCTION" and node.get("function_name") == "like_escape":
        # column LIKE pattern ESCAPE char: how the backend writes wildcard matches
        column, pattern, escape = (a.get("expression", a) for a in _arguments(node))
        return ["regex", _column(column), _like_regex(_text(pattern), _text(escape))]
    if node.get("class") == "FUNCTION" and not node.get("is_operator"):
        function = node.get("function_name", "")
        arguments = [a.get("expression", a) for a in _arguments(node)]
        if len(arguments) != 2 or node.get("schema") or node.get("distinct"):
            raise _Outside
        if function in _FUNCTIONS:
            return [_FUNCTIONS[function], _column(arguments[0]), _text(arguments[1])]
        if function == "regexp_matches":
            column, pattern = _column(arguments[0]), _text(arguments[1])
            try:
                return _literal_alternation(column, pattern)
            except _Outside:
                _regex(pattern)  # raises if RE2 rejects it: DuckDB reports the rule then
                return ["regex", column, pattern]
    raise _Outside


def _literal_alternation(column: str, pattern: str) -> Tree:
    """A regular expression that only lists texts, each ``(?:^text$)``, ``(?:^text)``,
    ``(?:text$)`` or ``(?:text)`` (how the backend merges a long OR of one field's values into
    one scan), as the OR of the string tests it stands for. ``^`` and ``$`` are the ends of
    the value (RE2 without the ``m`` flag); the ``s`` flag only changes ``.``, never used."""
    body = pattern.removeprefix("(?s)")
    if not body.startswith("(?:") or not body.endswith(")"):
        raise _Outside
    tests: Tree = ["or"]
    for alternative in body[3:-1].split(")|(?:"):
        start = alternative.startswith("^")
        # a final $ is the end anchor unless escaped (an odd run of backslashes before it)
        end = (
            alternative.endswith("$")
            and (len(alternative) - 1 - len(alternative[:-1].rstrip("\\"))) % 2 == 0
        )
        text = _re2_literal(alternative[int(start) : len(alternative) - int(end)])
        kind = "eq" if start and end else "starts" if start else "ends" if end else "contains"
        tests.append([kind, column, text])
    return tests


def _like_regex(pattern: str, escape: str) -> str:
    """The RE2 pattern a LIKE pattern stands for: the whole value (``^...$``, ``.`` matching
    newlines too), ``%`` any text, ``_`` any one character, ``escape`` + a character that
    character."""
    if len(escape) != 1:
        raise _Outside
    out, i = ["(?s)^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == escape:
            if i + 1 == len(pattern):
                raise _Outside  # DuckDB refuses a pattern ending in its escape
            out.append(re2.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re2.escape(char))
        i += 1
    out.append("$")
    regex = "".join(out)
    _regex(regex)  # raises if RE2 cannot take it
    return regex


def _re2_literal(escaped: str) -> str:
    """The text an RE2 pattern of plain and backslash-escaped special characters matches."""
    out, i = [], 0
    while i < len(escaped):
        char = escaped[i]
        if char == "\\" and i + 1 < len(escaped) and escaped[i + 1] in _RE2_SPECIAL:
            out.append(escaped[i + 1])
            i += 2
        elif char in _RE2_SPECIAL:
            raise _Outside  # a wildcard, a class, a group: a real regular expression
        else:
            out.append(char)
            i += 1
    return "".join(out)


@cache
def _regex(pattern: str) -> re2._Regexp:
    """The pattern compiled as DuckDB's ``regexp_matches`` compiles it: RE2's default options
    (``.`` does not match a newline, ``^``/``$`` are the ends of the text; the backend writes
    its flags into the pattern) without logging errors."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise _Outside from exc


def _arguments(node: dict[str, Any]) -> list[dict[str, Any]]:
    # DuckDB 2 names a function's arguments; 1.x lists its children
    return node.get("arguments") or node.get("children") or []


def _column(node: dict[str, Any]) -> str:
    names = node.get("column_names")
    if node.get("type") != "COLUMN_REF" or not names or len(names) != 1:
        raise _Outside
    return str(names[0])


def _text(node: dict[str, Any]) -> str:
    value = _constant(node) if node.get("type") == "VALUE_CONSTANT" else None
    if not isinstance(value, str):
        raise _Outside
    return value


def _constant(node: dict[str, Any]) -> str | bool | None:
    literal = node.get("literal")
    if literal is not None:  # DuckDB 2: {"kind": "STRING", "text": ...}
        kind = literal.get("kind")
        if kind == "STRING":
            return str(literal["text"])
        if kind == "BOOLEAN":
            return _boolean(literal.get("text", literal.get("value")))
        if kind in ("NULL", "NULL_LITERAL"):
            return None
        raise _Outside
    value = node["value"]  # DuckDB 1.x: {"type": {"id": "VARCHAR"}, "is_null": ..., "value": ...}
    if value.get("is_null"):
        return None
    type_id = value["type"]["id"]
    if type_id == "VARCHAR":
        return str(value["value"])
    if type_id == "BOOLEAN":
        return _boolean(value["value"])
    raise _Outside


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise _Outside


def columns(tree: Tree) -> set[str]:
    """The columns a tree reads."""
    op = tree[0]
    if op in ("and", "or", "not", "coalesce"):
        return set().union(*(columns(t) for t in tree[1:]))
    if op == "const":
        return set()
    return {tree[1]}


def evaluate(tree: Tree, row: Row) -> bool | None:
    """The tree's value on one row (column -> value, None for NULL), as SQL would give it."""
    op = tree[0]
    if op in ("and", "or"):
        settles = op == "or"  # the value one part needs to settle it: False for AND, True for OR
        unknown = False
        for part in tree[1:]:
            value = evaluate(part, row)
            if value is settles:
                return settles
            unknown = unknown or value is None
        return None if unknown else not settles
    if op == "not":
        value = evaluate(tree[1], row)
        return None if value is None else not value
    if op == "coalesce":
        for part in tree[1:]:
            value = evaluate(part, row)
            if value is not None:
                return value
        return None
    if op == "const":
        return tree[1]
    found = row.get(tree[1])
    if op == "null":
        return found is None
    if op == "notnull":
        return found is not None
    if found is None:
        return None
    if op == "contains":
        return tree[2] in found
    if op == "starts":
        return found.startswith(tree[2])
    if op == "ends":
        return found.endswith(tree[2])
    if op == "eq":
        return found == tree[2]
    if op == "in":
        return found in tree[2]
    if op == "regex":
        return _regex(tree[2]).search(found) is not None
    raise ValueError(f"unknown operation in a rule's logic: {op!r}")
