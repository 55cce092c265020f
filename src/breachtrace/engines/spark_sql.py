"""DuckDB-dialect SQL to Spark SQL: sqlglot's transpiler plus the rewrites it does not make.

sqlglot maps most functions (list_filter -> filter, arg_max -> max_by, list -> collect_list,
1-based to 0-based indexing, EXCLUDE -> EXCEPT). What it leaves as DuckDB-only, and is
rewritten here on the parsed tree, keeping DuckDB's meaning:

- ``UNION [ALL] BY NAME``: each branch's projections reordered to the union of the names
  (DuckDB's order: first appearance), missing names as NULL;
- ``WITH x AS MATERIALIZED``: the hint dropped (Spark decides reuse itself);
- ``json_extract_string(j, [paths])``: an array of ``get_json_object`` per path; a path
  ending in ``[*]``: the JSON array parsed with ``from_json``;
- ``regexp_full_match``, and the ``'i'`` option of ``regexp_matches``/``regexp_replace``:
  anchored / ``(?i)`` patterns (Spark's ``regexp_replace`` replaces every match, DuckDB's the
  first; the SQL here only uses anchored patterns, where the two agree); ``\\1`` in a
  replacement becomes Java's ``$1``;
- ``quantile_cont`` and ``median`` -> ``percentile`` (exact, interpolated); ``mad`` from the sorted list;
- ``to_hours(n)`` and kin: ``n * INTERVAL '1' HOUR``; ``parse_dirpath``: a regexp;
- ``CAST(unnest(list) AS T)``: the elements cast, then exploded;
- several ``unnest`` side by side in one SELECT: DuckDB zips them (the i-th elements make a
  row), Spark would multiply them; they become one ``inline(arrays_zip(...)) AS (a, b)``;
- ``time_bucket(width, ts)``: arithmetic on microseconds from DuckDB's origin (2000-01-03);
- ``epoch(ts)``: seconds with their fraction (Spark's ``unix_timestamp`` truncates);
- ``to_microseconds(n)``: an interval literal; ``UBIGINT`` casts: DECIMAL(20, 0);
- ``list(x ORDER BY k)``: the collected list sorted (Spark keeps no order);
- ``list[a:b]``: ``slice(list, a, b - a + 1)``; ``list[-k]``: ``element_at(list, -k)``;
- ``LIKE``/``ILIKE`` patterns: backslashes doubled (Spark's LIKE escapes with them);
- ``json_valid(j)``: ``get_json_object(j, '$')`` not NULL (JSON text that is ``null`` aside);
  ``json_extract(j, '$.*')``, an object's members: ``map_values(from_json(j, map<string,string>))``;
- ``json_object(k, v, ...)``: ``to_json(named_struct(...))`` (Spark leaves null values out);
  ``json(text)`` inside it stays text (a JSON string rather than a nested object).

Query parameters (``?``) are bound before parsing, as SQL literals (``bind_parameters``): a
statement whose MATERIALIZED CTEs run as separate Spark queries cannot share positional
arguments, and a literal timestamp means UTC whatever the driver's own time zone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

_DUCKDB = Dialect.get_or_raise("duckdb")  # parses JSON paths ($."Key") as DuckDB does
WITH_KEY = "with_" if "with_" in exp.Select.arg_types else "with"  # sqlglot renamed it


@functools.lru_cache(maxsize=512)
def transpile(sql: str) -> str:
    """One DuckDB statement as Spark SQL."""
    return to_spark(sqlglot.parse_one(sql, read="duckdb"))


ColumnsOf = Callable[[exp.Expression], list[str]]


def bind_parameters(sql: str, params: Sequence[Any] | None) -> str:
    """DuckDB SQL with each ``?`` placeholder (in text order) replaced by its value as a
    DuckDB literal: strings, numbers, booleans, None, dates, timestamps (aware ones in UTC)
    and lists of those."""
    if not params:
        return sql
    holes = [t for t in _DUCKDB.tokenize(sql) if t.token_type == TokenType.PLACEHOLDER]
    if len(holes) != len(params):
        raise ValueError(f"{len(holes)} placeholders for {len(params)} parameters")
    out, pos = [], 0
    for token, value in zip(holes, params, strict=True):
        out += [sql[pos : token.start], _literal(value)]
        pos = token.end + 1
    out.append(sql[pos:])
    return "".join(out)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)"  # a bare 1.5 is a DECIMAL to Spark
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, list | tuple):
        if not value:
            return "CAST([] AS VARCHAR[])"
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"no SQL literal for a parameter of type {type(value).__name__}")


def to_spark(tree: exp.Expression, columns_of: ColumnsOf | None = None) -> str:
    """A parsed DuckDB statement as Spark SQL (the tree is not modified). ``columns_of``
    names the columns of a ``SELECT *`` (asked of the engine) where UNION BY NAME needs them."""
    tree = tree.copy()
    # children first, so a rewritten node is built from rewritten parts
    for node in reversed(list(tree.dfs())):
        new = _rewrite(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    for union in list(tree.find_all(exp.Union)):
        if union.args.get("by_name"):
            _union_by_name(union, tree, columns_of)
    return tree.sql(dialect="spark")


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DayOfWeekIso):
        # ISO day (Monday 1 .. Sunday 7) from Spark's dayofweek (Sunday 1 .. Saturday 7);
        # sqlglot's own mapping gives Sunday 2 .. Saturday 1
        return exp.Paren(this=exp.Add(
            this=exp.Mod(
                this=exp.Paren(this=exp.Add(
                    this=exp.func("dayofweek", node.this.copy()),
                    expression=exp.Literal.number(5),
                )),
                expression=exp.Literal.number(7),
            ),
            expression=exp.Literal.number(1),
        ))  # fmt: skip
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
        return node
    if isinstance(node, exp.JSONExtractScalar) and isinstance(node.expression, exp.Array):
        return exp.Array(
            expressions=[
                exp.JSONExtractScalar(this=node.this.copy(), expression=_DUCKDB.to_json_path(p))
                for p in node.expression.expressions
            ]
        )
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        return _ordered_list(node.this)
    if isinstance(node, exp.Bracket) and any(isinstance(e, exp.Slice) for e in node.expressions):
        return _slice(node)
    if (
        isinstance(node, exp.Bracket)
        and len(node.expressions) == 1
        and isinstance(node.expressions[0], exp.Neg)
        and isinstance(node.expressions[0].this, exp.Literal)
    ):
        # DuckDB's list[-k] counts from the end (sqlglot has shifted k by its 0-based offset)
        from_end = int(node.expressions[0].this.name) - 1
        return exp.func("element_at", node.this, exp.Literal.number(-from_end))
    if isinstance(node, exp.Like | exp.ILike) and not isinstance(node.parent, exp.Escape):
        return _like(node)
    if isinstance(node, exp.JSONExtract) and _members(node.expression):
        # an object's members (DuckDB's '$.*', as JSON): Spark's JSON paths have no wildcard
        # for members; a map of each member's JSON text keeps their order
        members = exp.Literal.string("map<string,string>")
        parsed = exp.Anonymous(this="from_json", expressions=[node.this, members])
        return exp.Anonymous(this="map_values", expressions=[parsed])
    if isinstance(node, exp.JSONExtractScalar) and _wildcard_last(node.expression):
        # a wildcard path gives DuckDB a list; Spark's get_json_object gives the JSON array text
        base = node.expression.copy()
        base.expressions.pop()
        text = exp.JSONExtractScalar(this=node.this, expression=base)
        return exp.func("from_json", text, exp.Literal.string("array<string>"))
    if isinstance(node, exp.RegexpFullMatch):
        return _anchored_rlike(node.this, node.expression, node.args.get("options"))
    if isinstance(node, exp.RegexpLike):
        return _regexp_like(node)
    if isinstance(node, exp.RegexpReplace):
        return _regexp_replace(node)
    if isinstance(node, exp.PercentileCont):
        return exp.func("percentile", node.this, node.expression)
    if isinstance(node, exp.Median):  # Spark's median takes no window frame; percentile does
        return exp.func("percentile", node.this, exp.Literal.number(0.5))
    if isinstance(node, exp.Filter) and _is_call(node.this, "mad"):
        return _mad(node.this.expressions[0], node.expression)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Explode):
        # Spark takes no generator inside an expression: cast the elements, then explode
        to = node.args["to"].sql("spark")
        cast = sqlglot.parse_one(f"transform(bt_x, bt_e -> CAST(bt_e AS {to}))", read="spark")
        cast.set("this", node.this.this)
        return exp.Explode(this=cast)
    if isinstance(node, exp.Select):
        return _zipped_unnests(node)
    if isinstance(node, exp.DateBin):
        return _time_bucket(node)
    if isinstance(node, exp.TimeToUnix):
        return exp.Div(this=_micros(node.this), expression=exp.Literal.number("1000000.0"))
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.UBIGINT:
        return exp.DataType.build("DECIMAL(20, 0)")
    if isinstance(node, exp.Anonymous):
        return _anonymous(node)
    if isinstance(node, exp.ParseJSON):
        return node.this  # JSON text stays text: Spark has no JSON type to embed it as
    if isinstance(node, exp.JSONObject):
        return _json_object(node)
    return node


def _zipped_unnests(select: exp.Select) -> exp.Select:
    """Side-by-side ``unnest(a) AS x, unnest(b) AS y`` as ``inline(arrays_zip(a, b)) AS (x, y)``
    (both pad the shorter lists with NULL). Only consecutive, aliased ones: that is all the SQL
    here writes; anything else is left as it was."""
    projections = select.expressions
    places = [
        i for i, p in enumerate(projections)
        if isinstance(p, exp.Alias) and isinstance(p.this, exp.Explode)
    ]  # fmt: skip
    if len(places) < 2 or places != list(range(places[0], places[-1] + 1)):
        return select
    lists = [projections[i].this.this for i in places]
    names = [projections[i].args["alias"] for i in places]
    zipped = exp.Aliases(this=exp.func("inline", exp.func("arrays_zip", *lists)), expressions=names)
    select.set("expressions", [*projections[: places[0]], zipped, *projections[places[-1] + 1 :]])
    return select


def _ordered_list(order: exp.Order) -> exp.Expression:
    """``list(x ORDER BY k)``: Spark's collect_list keeps no order, so sort what it collected
    (by ``k`` through a struct when ``k`` is not ``x``)."""
    value, keys = order.this, order.expressions
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        value = value.expressions[0]
    key = keys[0]
    if len(keys) == 1 and key.this == value:
        collected = exp.func("collect_set" if distinct else "collect_list", value)
        result: exp.Expression = exp.func("array_sort", collected)
    else:
        fields = [exp.alias_(k.this, f"k{i}") for i, k in enumerate(keys)] + [
            exp.alias_(value, "v")
        ]
        struct = exp.func("struct", *fields)
        collected = exp.func("collect_set" if distinct else "collect_list", struct)
        result = sqlglot.parse_one("transform(s, e -> e.v)", read="spark")
        result.set("this", exp.func("array_sort", collected))
    if key.args.get("desc"):
        result = exp.func("reverse", result)
    return result


_UNIT_MICROS = {"MICROSECOND": 1, "SECOND": 1_000_000, "MINUTE": 60_000_000,
                "HOUR": 3_600_000_000, "DAY": 86_400_000_000}  # fmt: skip
_BUCKET_ORIGIN = 946_857_600_000_000  # DuckDB's time_bucket origin, 2000-01-03, in micros


def _time_bucket(node: exp.DateBin) -> exp.Expression:
    """``time_bucket(width, ts)``: ts floored to a multiple of width from DuckDB's origin."""
    width = node.this
    unit = width.args.get("unit")
    unit_name = unit.name.upper().rstrip("S") if unit is not None else ""
    if not isinstance(width, exp.Interval) or unit_name not in _UNIT_MICROS:
        raise ValueError(f"time_bucket width {width.sql()} is not supported on Spark")
    micros = int(float(width.this.name) * _UNIT_MICROS[unit_name])
    ts = exp.Anonymous(this="unix_micros", expressions=[exp.cast(node.expression, "timestamp")])
    return sqlglot.parse_one(
        f"CAST(timestamp_micros(CAST(floor(({ts.sql('spark')} - {_BUCKET_ORIGIN}) / {micros}) "
        f"AS BIGINT) * {micros} + {_BUCKET_ORIGIN}) AS TIMESTAMP_NTZ)",
        read="spark",
    )


def _slice(node: exp.Bracket) -> exp.Expression:
    """DuckDB's ``list[a:b]`` (1-based, both ends included) as Spark's ``slice(list, a, n)``."""
    part = node.expressions[0]
    start = part.this or exp.Literal.number(1)
    stop = part.expression
    if stop is None:
        length: exp.Expression = exp.func("size", node.this.copy())
    elif isinstance(start, exp.Literal) and isinstance(stop, exp.Literal):
        length = exp.Literal.number(max(0, int(stop.name) - int(start.name) + 1))
    else:
        length = exp.paren(exp.Sub(this=stop, expression=start)) + exp.Literal.number(1)
    return exp.func("slice", node.this, start, length)


def _like(node: exp.Like | exp.ILike) -> exp.Expression:
    """DuckDB's LIKE has no escape character, Spark's is the backslash: double backslashes."""
    pattern = node.expression
    if isinstance(pattern, exp.Literal):
        pattern = exp.Literal.string(pattern.name.replace("\\", "\\\\"))
    else:
        pattern = exp.func("replace", pattern, exp.Literal.string("\\"), exp.Literal.string("\\\\"))
    return type(node)(this=node.this, expression=pattern)


def _members(path: exp.Expression) -> bool:
    """Whether a JSON path is ``$.*``: every member of an object."""
    return (
        isinstance(path, exp.JSONPath)
        and len(path.expressions) == 2
        and isinstance(path.expressions[1], exp.JSONPathKey)
        and isinstance(path.expressions[1].this, exp.JSONPathWildcard)
    )


def _wildcard_last(path: exp.Expression) -> bool:
    return (
        isinstance(path, exp.JSONPath)
        and len(path.expressions) > 1
        and isinstance(path.expressions[-1], exp.JSONPathSubscript)
        and isinstance(path.expressions[-1].this, exp.JSONPathWildcard)
    )


def _micros(value: exp.Expression) -> exp.Expression:
    """Microseconds of ``epoch``'s argument: a timestamp since 1970, or an interval written as
    a difference of timestamps (possibly inside an aggregate such as arg_max(b - a, n))."""
    if isinstance(value, exp.Paren):
        return _micros(value.this)
    if isinstance(value, exp.Sub) and not isinstance(value.expression, exp.Interval):
        return exp.paren(exp.Sub(this=_micros(value.this), expression=_micros(value.expression)))
    if isinstance(value, exp.AggFunc) and isinstance(value.this, exp.Sub | exp.Paren):
        inner = value.copy()
        inner.set("this", _micros(value.this))
        return inner
    return exp.Anonymous(this="unix_micros", expressions=[exp.cast(value, "timestamp")])


def _anonymous(node: exp.Anonymous) -> exp.Expression:
    name = node.name.lower()
    args = node.expressions
    if name == "mad":
        return node if isinstance(node.parent, exp.Filter) else _mad(args[0], None)
    if name in _TO_INTERVAL:
        return exp.Mul(this=exp.paren(args[0]), expression=sqlglot.parse_one(
            f"INTERVAL '1' {_TO_INTERVAL[name]}", read="spark"))  # fmt: skip
    if name == "parse_dirpath":
        # the folder part of a path (/ or \ separated); '' when there is none, like DuckDB
        pattern = exp.Literal.string(r"^(.*)[/\\][^/\\]*$")
        return exp.Anonymous(
            this="regexp_extract", expressions=[args[0], pattern, exp.Literal.number(1)]
        )
    if name == "json_valid":  # Spark's JSON functions give NULL for text that is not JSON
        path = exp.Literal.string("$")
        return exp.Not(this=exp.Is(this=exp.Anonymous(
            this="get_json_object", expressions=[args[0], path]), expression=exp.Null()))  # fmt: skip
    if name == "to_microseconds":
        amount = args[0].this if isinstance(args[0], exp.Cast) else args[0]
        return exp.Interval(this=exp.Literal.string(amount.sql()), unit=exp.var("MICROSECOND"))
    return node


_TO_INTERVAL = {"to_seconds": "SECOND", "to_minutes": "MINUTE", "to_hours": "HOUR",
                "to_days": "DAY"}  # fmt: skip


def _is_call(node: exp.Expression, name: str) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() == name


def _median_of(sorted_list: str) -> str:
    """Spark SQL: the interpolated median of a sorted array (NULL when empty)."""
    n = f"size({sorted_list})"
    return (
        f"CASE WHEN {n} > 0 THEN (element_at({sorted_list}, CAST(floor(({n} - 1) / 2) AS INT) + 1)"
        f" + element_at({sorted_list}, CAST(ceil(({n} - 1) / 2) AS INT) + 1)) / 2.0 END"
    )


def _mad(value: exp.Expression, where: exp.Expression | None) -> exp.Expression:
    """DuckDB's ``mad(x)`` (median absolute deviation from the median), which Spark lacks: the
    values collected and sorted, the median and the deviations' median taken from the list
    (each list bound once to a lambda variable, so the SQL stays small)."""
    collected: exp.Expression = exp.func("collect_list", exp.cast(value, "double"))
    if where is not None:
        collected = exp.Filter(this=collected, expression=where)
    deviations = f"array_sort(transform(bt_a, bt_v -> abs(bt_v - ({_median_of('bt_a')}))))"
    text = (
        f"element_at(transform(array(array_sort({collected.sql('spark')})), bt_a -> "
        f"element_at(transform(array({deviations}), bt_d -> {_median_of('bt_d')}), 1)), 1)"
    )
    return sqlglot.parse_one(text, read="spark")


def _flags(option: exp.Expression | None) -> str:
    return "(?i)" if option is not None and "i" in option.name else ""


def _anchored_rlike(
    value: exp.Expression, pattern: exp.Expression, option: exp.Expression | None
) -> exp.Expression:
    if isinstance(pattern, exp.Literal):
        anchored = exp.Literal.string(f"{_flags(option)}^(?:{pattern.name})$")
    else:
        anchored = exp.func("concat", exp.Literal.string(_flags(option) + "^(?:"), pattern,
                            exp.Literal.string(")$"))  # fmt: skip
    return exp.RegexpLike(this=value, expression=anchored)


def _regexp_like(node: exp.RegexpLike) -> exp.Expression:
    flag = node.args.get("flag")
    if flag is None:
        return node
    pattern = node.expression
    if isinstance(pattern, exp.Literal):
        pattern = exp.Literal.string(_flags(flag) + pattern.name)
    else:
        pattern = exp.func("concat", exp.Literal.string(_flags(flag)), pattern)
    return exp.RegexpLike(this=node.this, expression=pattern)


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    option = node.args.get("modifiers")
    pattern = node.expression
    if isinstance(pattern, exp.Literal) and _flags(option):
        pattern = exp.Literal.string(_flags(option) + pattern.name)
    replacement = node.args.get("replacement")
    if isinstance(replacement, exp.Literal):
        text = replacement.name.replace("$", "\\$")
        for n in range(10):
            text = text.replace(f"\\{n}", f"${n}")
        replacement = exp.Literal.string(text)
    return exp.RegexpReplace(this=node.this, expression=pattern, replacement=replacement)


def _json_object(node: exp.JSONObject) -> exp.Expression:
    args: list[exp.Expression] = []
    for pair in node.expressions:
        key, value = (pair.this, pair.expression) if isinstance(pair, exp.JSONKeyValue) else pair
        args += [key, value]
    return exp.func("to_json", exp.func("named_struct", *args))


def _with_ctes(leaf: exp.Select, tree: exp.Expression) -> exp.Expression:
    """A copy of ``leaf`` carrying the CTEs of the statement it sits in (it may read them)."""
    alone = leaf.copy()
    for node in [tree, *tree.find_all(exp.Select)]:
        with_ = node.args.get(WITH_KEY)
        if isinstance(with_, exp.With) and node is not leaf:
            alone.set(WITH_KEY, with_.copy())
            break
    return alone


def _union_by_name(union: exp.Union, tree: exp.Expression, columns_of: ColumnsOf | None) -> None:
    """Rewrite a chain of ``UNION [ALL] BY NAME`` into positional unions (see module doc)."""
    leaves: list[exp.Select] = []

    def collect(node: exp.Expression) -> None:
        if isinstance(node, exp.Union) and node.args.get("by_name"):
            collect(node.this)
            collect(node.expression)
            node.set("by_name", None)
        elif isinstance(node, exp.Subquery):
            collect(node.this)
        elif isinstance(node, exp.Select):
            leaves.append(node)
        else:
            raise ValueError(f"UNION BY NAME over {node.key} is not supported on Spark")

    collect(union)
    names: dict[str, None] = {}
    for leaf in leaves:
        if any(isinstance(p, exp.Star) for p in leaf.expressions):
            if columns_of is None or len(leaf.expressions) != 1:
                raise ValueError("UNION BY NAME over SELECT * needs the engine's column names")
            leaf.set("expressions", [exp.column(n) for n in columns_of(_with_ctes(leaf, tree))])
        names.update(dict.fromkeys(p.alias_or_name for p in leaf.expressions))
    for leaf in leaves:
        by_name = {p.alias_or_name: p for p in leaf.expressions}
        leaf.set(
            "expressions",
            [by_name.get(n) or exp.alias_(exp.Null(), n) for n in names],
        )
