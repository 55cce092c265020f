"""A pySigma 2.x backend of our own that turns a rule's detection into one DuckDB boolean expression.

The expression reads only *field columns* of a per-logsource table the hunt builds (see
``hunt.py``): for each Sigma field ``F`` the column ``field_column(F)`` holds the value as text
as found in the event, and ``field_column(F, lower=True)`` the same lower-cased. Sigma matches
case-insensitively unless ``|cased`` is used, so ordinary comparisons use the lower-cased column
against lower-cased literals (the lowering happens once per event, not once per rule), while
``cased``, ``re``, numeric comparisons, ``exists`` and ``null`` use the value as found. Keywords
(values without a field) search the pseudo-field ``KEYWORD_FIELD``: the whole original record
as stored, with a case-insensitive expression tolerant of JSON escaping.

Because the expression names fields, not places in a record, one compiled rule runs unchanged
over EVTX, NXLog and Winlogbeat events, and over Sysmon and Security 4688 process creations:
where each field comes from is decided when the hunt extracts the columns (``logsources.py``).

Sigma's two-valued logic is kept in SQL's three-valued one by wrapping every negation as
``NOT coalesce(x, false)``: a filter on a field an event lacks does not match, so its negation
does (without this, ``selection and not filter`` would never fire on events lacking the field).

Two things serve speed: a long OR of string matches on one field becomes one RE2 expression
(one scan of the value), and ``rule_anchors`` derives the texts a rule needs, so the hunt can
skip rules whose texts occur in no event without planning their SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCompareExpression,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from breachtrace.detect.sigma.columns import (  # noqa: F401 (re-exported: the backend's names)
    BACKEND_VERSION,
    KEYWORD_FIELD,
    field_column,
    sql_string,
)

# An OR of this many or more plain string matches on one field becomes one regular expression:
# RE2 scans the value once for all of them (measured: 2x faster at 20, slower below ~8).
MERGE_AS_REGEX = 12
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


@dataclass
class ConvertedCondition:
    """One rule's detection as SQL, and the fields it reads."""

    sql: str
    fields: tuple[str, ...]  # every field read (value columns)
    lower_fields: tuple[str, ...]  # fields read lower-cased
    regexes: tuple[str, ...]  # regular expressions, checked against DuckDB's engine (RE2)
    anchors: tuple[tuple[tuple[str, str], ...], ...] | None  # see rule_anchors


class DuckDBSigmaBackend(TextQueryBackend):
    """Sigma detection -> DuckDB boolean expression over field columns (see the module doc)."""

    name: ClassVar[str] = "breachtrace DuckDB"
    formats: ClassVar[dict[str, str]] = {"default": "DuckDB boolean expression over field columns"}
    requires_pipeline: ClassVar[bool] = False

    precedence: ClassVar[tuple[type[ConditionItem], type[ConditionItem], type[ConditionItem]]] = (
        ConditionNOT,
        ConditionAND,
        ConditionOR,
    )
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "
    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = "\\"
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"
    convert_or_as_in: ClassVar[bool] = True
    convert_and_as_in: ClassVar[bool] = False
    in_expressions_allow_wildcards: ClassVar[bool] = False
    field_in_list_expression: ClassVar[str] = "{field} IN ({list})"
    list_separator: ClassVar[str] = ", "
    or_in_operator: ClassVar[str] = "IN"
    empty_or_expression: ClassVar[str] = "false"
    empty_and_expression: ClassVar[str] = "true"
    # No native CIDR: pySigma expands networks into prefix matches on the address text.
    cidr_expression: ClassVar[str | None] = None
    field_equals_field_expression: ClassVar[str] = "{field1} = {field2}"
    field_equals_field_startswith_expression: ClassVar[str] = "starts_with({field1}, {field2})"
    field_equals_field_endswith_expression: ClassVar[str] = "ends_with({field1}, {field2})"
    field_equals_field_contains_expression: ClassVar[str] = "contains({field1}, {field2})"

    _COMPARE: ClassVar[dict[CompareOperators, str]] = {
        CompareOperators.LT: "<",
        CompareOperators.LTE: "<=",
        CompareOperators.GT: ">",
        CompareOperators.GTE: ">=",
        CompareOperators.NEQ: "<>",
    }
    _TIMESTAMP_PART: ClassVar[dict[TimestampPart, str]] = {
        TimestampPart.MINUTE: "minute",
        TimestampPart.HOUR: "hour",
        TimestampPart.DAY: "day",
        TimestampPart.WEEK: "week",
        TimestampPart.MONTH: "month",
        TimestampPart.YEAR: "year",
    }

    def __init__(self, processing_pipeline: ProcessingPipeline | None = None) -> None:
        super().__init__(processing_pipeline, collect_errors=False)
        self._fields: dict[str, None] = {}
        self._lower: dict[str, None] = {}
        self._regexes: list[str] = []

    # -- entry point --------------------------------------------------------------------------
    def convert_detection(self, rule: SigmaRule) -> ConvertedCondition:
        """The rule's condition(s) as one SQL boolean expression (several conditions are OR-ed)."""
        self._fields, self._lower, self._regexes = {}, {}, []
        self.convert_rule(rule)
        # The conversion result, not convert_rule's return: pySigma returns nothing for rules a
        # correlation references (they are not output alone), but the hunt needs their SQL.
        queries = [str(q) for q in rule.get_conversion_result()]
        if not queries:
            raise SigmaFeatureNotSupportedByBackendError("the rule has no condition to convert")
        sql = queries[0] if len(queries) == 1 else " OR ".join(f"({q})" for q in queries)
        anchors = rule_anchors([c.parsed for c in rule.detection.parsed_condition])
        return ConvertedCondition(
            sql, tuple(self._fields), tuple(self._lower), tuple(self._regexes), anchors
        )

    # -- columns --------------------------------------------------------------------------------
    def _value(self, field: str) -> str:
        self._fields.setdefault(field, None)
        return field_column(field)

    def _lowered(self, field: str) -> str:
        self._fields.setdefault(field, None)
        self._lower.setdefault(field, None)
        return field_column(field, lower=True)

    def escape_and_quote_field(self, field_name: str) -> str:
        # Used by the base class for field references (|fieldref): compared case-insensitively.
        return self._lowered(field_name)

    # -- strings --------------------------------------------------------------------------------
    @staticmethod
    def _plain(value: SigmaString) -> str:
        for part in value.s:
            if isinstance(part, Placeholder):
                raise SigmaFeatureNotSupportedByBackendError(
                    f"placeholder %{part.name}% has no value: define it under 'placeholders:' "
                    "in sigma_logsources.yaml or pass placeholders= to hunt()"
                )
        return "".join(p for p in value.s if isinstance(p, str))

    def _string_match(self, column: str, value: SigmaString) -> str:
        """Equality, prefix, suffix, substring or LIKE match of a column against a Sigma string."""
        parts = value.s
        inner = parts
        starts = bool(parts) and parts[0] == SpecialChars.WILDCARD_MULTI
        ends = bool(parts) and parts[-1] == SpecialChars.WILDCARD_MULTI and len(parts) > int(starts)
        inner = parts[int(starts) : len(parts) - int(ends)]
        if not any(isinstance(p, SpecialChars) for p in inner):
            text = sql_string(self._plain(_with_parts(value, inner)))
            if starts and ends:
                return f"contains({column}, {text})"
            if starts:
                return f"ends_with({column}, {text})"
            if ends:
                return f"starts_with({column}, {text})"
            return f"{column} = {text}"
        self._plain(value)  # raises on placeholders
        pattern = value.convert("\\", "%", "_", "\\")
        return f"{column} LIKE {sql_string(pattern)} ESCAPE '\\'"

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return self._string_match(self._lowered(cond.field), _lower(cond.value))

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaString)
        return self._string_match(self._value(cond.field), cond.value)

    def decide_convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> bool:
        if any(
            isinstance(a, ConditionFieldEqualsValueExpression)
            and isinstance(a.value, SigmaCasedString)
            for a in cond.args
        ):
            return False
        return super().decide_convert_condition_as_in_expression(cond, state)

    def convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> str:
        args = [a for a in cond.args if isinstance(a, ConditionFieldEqualsValueExpression)]
        values = []
        for arg in args:
            v = arg.value
            text = self._plain(_lower(v)) if isinstance(v, SigmaString) else str(v)
            values.append(sql_string(text))
        return f"{self._lowered(args[0].field)} IN ({', '.join(values)})"

    # -- other value types ----------------------------------------------------------------------
    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        # Compared as text: "3" and 3 in the record both read as '3'.
        return f"{self._lowered(cond.field)} = {sql_string(str(cond.value))}"

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        assert isinstance(cond.value, SigmaBool)
        return f"{self._lowered(cond.field)} = {sql_string(str(cond.value.boolean).lower())}"

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"regexp_matches({self._value(cond.field)}, {self._regex(cond.value)})"

    convert_condition_field_eq_val_re_contains = convert_condition_field_eq_val_re

    def _regex(self, value: Any) -> str:
        assert isinstance(value, SigmaRegularExpression)
        if value.regexp.contains_placeholder():
            self._plain(value.regexp)  # raises with the placeholder's name
        flags = "".join(
            sorted(value.sigma_to_re_flag[f] for f in value.flags if f in value.sigma_to_re_flag)
        )
        pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
        self._regexes.append(pattern)
        return sql_string(pattern)

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        value = cond.value
        assert isinstance(value, SigmaCompareExpression)
        column = f"TRY_CAST({self._value(cond.field)} AS DOUBLE)"
        if isinstance(value.number, SigmaTimestampPart):
            column = self._timestamp_part(cond.field, value.number.timestamp_part)
        return f"{column} {self._COMPARE[value.op]} {value.number.number}"

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        value = cond.value
        assert isinstance(value, SigmaTimestampPart)
        return f"{self._timestamp_part(cond.field, value.timestamp_part)} = {value.number}"

    def _timestamp_part(self, field: str, part: TimestampPart) -> str:
        return f"date_part('{self._TIMESTAMP_PART[part]}', TRY_CAST({self._value(field)} AS TIMESTAMP))"

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"{self._value(cond.field)} IS NULL"

    def convert_condition_field_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"{self._value(cond.field)} IS NOT NULL"

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"{self._value(cond.field)} IS NULL"

    def convert_condition_field_eq_query_expr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        raise SigmaFeatureNotSupportedByBackendError("query expressions are not supported")

    # -- keywords: values without a field search the whole record --------------------------------
    # The record is searched as stored (JSON text for most formats) with one case-insensitive
    # regular expression that also accepts the JSON-escaped spelling of backslashes and quotes,
    # so no lower-cased or unescaped copy of every record is made.
    def convert_condition_val_str(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        return self._keyword_match([cond.value])

    def convert_condition_val_num(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        return self._keyword_match([SigmaString(str(cond.value))])

    def convert_condition_val_re(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        return f"regexp_matches({self._value(KEYWORD_FIELD)}, {self._regex(cond.value)})"

    def _keyword_match(self, values: list[Any]) -> str:
        for value in values:
            self._plain(value)  # raises on placeholders
        pattern = "(?is)" + "|".join(_keyword_alternative(v) for v in values)
        return f"regexp_matches({self._value(KEYWORD_FIELD)}, {sql_string(pattern)})"

    def convert_condition_query_expr(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        raise SigmaFeatureNotSupportedByBackendError("query expressions are not supported")

    # -- long ORs of string matches on one field: one regular expression --------------------------
    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Any:
        merged = self._or_as_regex(cond)
        return merged if merged is not None else super().convert_condition_or(cond, state)

    def _or_as_regex(self, cond: ConditionOR) -> str | None:
        keywords = [a.value for a in cond.args if isinstance(a, ConditionValueExpression)]
        if len(keywords) == len(cond.args) and all(
            isinstance(k, SigmaString | SigmaNumber) for k in keywords
        ):  # keywords: always one expression (one scan of the record)
            return self._keyword_match(
                [k if isinstance(k, SigmaString) else SigmaString(str(k)) for k in keywords]
            )
        if len(cond.args) < MERGE_AS_REGEX:
            return None
        fields, alternatives = set(), []
        for arg in cond.args:
            if not isinstance(arg, ConditionFieldEqualsValueExpression):
                return None
            fields.add(arg.field)
            value = arg.value
            if (
                not isinstance(value, SigmaString)
                or isinstance(value, SigmaCasedString)
                or value.contains_placeholder()
                or len(fields) > 1
            ):
                return None
            alternatives.append(_regex_alternative(value.lower()))
        pattern = "(?s)" + "|".join(alternatives)
        return f"regexp_matches({self._lowered(fields.pop())}, {sql_string(pattern)})"

    # -- negation in two-valued logic -----------------------------------------------------------
    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> str:
        arg = cond.args[0]
        inner = self.convert_condition(arg, state)
        if not isinstance(inner, str):
            raise SigmaFeatureNotSupportedByBackendError("deferred expressions are not supported")
        return f"NOT coalesce(({inner}), false)"

    def finalize_query_default(
        self, rule: Any, query: Any, index: int, state: ConversionState
    ) -> Any:
        return query


Clause = frozenset[tuple[str, str]]  # (field, lower-case text) pairs; one must occur
Clauses = list[Clause] | None  # all must hold; None: nothing known
MAX_CLAUSES = 16


def rule_anchors(conditions: list[Any]) -> tuple[tuple[tuple[str, str], ...], ...] | None:
    """Necessary texts of a rule, as clauses: for the rule to match an event, each clause needs
    one of its (field, text) pairs to occur (the lower-cased field value contains the text).
    None when nothing is implied (only negations, regexes, numeric tests...).

    A hunt uses them to skip, before planning any SQL, rules whose texts appear in no event of
    their logsource: on a small case that is most rules, and planning costs ~1 ms a rule.
    """
    clauses = _or([_anchors(c) for c in conditions])
    if not clauses:
        return None
    return tuple(tuple(sorted(c)) for c in clauses)


def _anchors(node: Any) -> Clauses:
    if isinstance(node, ConditionOR):
        return _or([_anchors(a) for a in node.args])
    if isinstance(node, ConditionAND):
        known = [c for c in (_anchors(a) for a in node.args) if c]
        return [clause for clauses in known for clause in clauses][:MAX_CLAUSES] or None
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _value_anchors(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _value_anchors(KEYWORD_FIELD, node.value)
    return None  # NOT, and anything unforeseen


def _or(parts: list[Clauses]) -> Clauses:
    """Clauses implied by any of several alternatives: pairwise unions of their clauses."""
    known = [p for p in parts if p]
    if not parts or len(known) < len(parts):
        return None
    result: list[Clause] = [frozenset()]
    for clauses in known:
        if len(result) * len(clauses) > MAX_CLAUSES:  # keep the cheapest clause of each side
            result = [min(result, key=len)]
            clauses = [min(clauses, key=len)]
        result = [a | b for a in result for b in clauses]
    return result


def _value_anchors(field: str, value: Any) -> Clauses:
    if isinstance(value, SigmaExpansion):
        return _or([_value_anchors(field, v) for v in value.values])
    if isinstance(value, SigmaString):
        if value.contains_placeholder():
            return None
        texts = [p for p in value.s if isinstance(p, str)]
        longest = max(texts, key=len, default="").lower()
        return [frozenset({(field, longest)})] if longest else None
    if isinstance(value, SigmaNumber | SigmaBool) and not isinstance(value, SigmaTimestampPart):
        return [frozenset({(field, str(value).lower())})]
    return None


def _regex_alternative(value: SigmaString) -> str:
    """A Sigma string as an RE2 alternative matching a whole field value."""
    body = "".join(
        _RE2_SPECIAL.sub(r"\\\1", p) if isinstance(p, str)
        else ".*" if p == SpecialChars.WILDCARD_MULTI else "."
        for p in value.s
    )  # fmt: skip
    start = "" if body.startswith(".*") else "^"
    end = "" if body.endswith(".*") and not body.endswith("\\.*") else "$"
    body = body.removeprefix(".*") if not start else body
    body = body.removesuffix(".*") if not end else body
    return f"(?:{start}{body}{end})"


def _keyword_alternative(value: SigmaString) -> str:
    """A keyword as an RE2 alternative found anywhere in a record, raw or JSON-escaped."""
    out = []
    for part in value.s:
        if part == SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part == SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        elif isinstance(part, str):
            for char in part:
                if char == "\\":
                    out.append("\\\\{1,2}")
                elif char == '"':
                    out.append('\\\\?"')
                else:
                    out.append(_RE2_SPECIAL.sub(r"\\\1", char))
    return "(?:" + "".join(out) + ")"


def _with_parts(value: SigmaString, parts: list[Any]) -> SigmaString:
    copy = SigmaString()
    copy.s = tuple(parts) if isinstance(value.s, tuple) else list(parts)
    return copy


def _lower(value: Any) -> Any:
    """Sigma strings lower-cased for case-insensitive matching (cased strings untouched)."""
    if isinstance(value, SigmaString) and not isinstance(value, SigmaCasedString):
        return value.lower()
    return value
