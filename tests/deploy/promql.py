"""The metric names a PromQL expression reads, for checking dashboards and rules against the
gateway's metric list (gateway.metrics)."""

from __future__ import annotations

import re

# Functions, aggregations, operators and modifiers: words that are never metric names.
_KEYWORDS = frozenset("""
and or unless by without on ignoring group_left group_right offset bool atan2 start end
sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk limit_ratio
""".split())
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_WORD = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?")
_TEMPLATE_VARIABLE = re.compile(r"\$\{?\w+\}?")


def metric_names(expr: str) -> set[str]:
    """Names of the series `expr` selects (not functions, keywords or label names)."""
    text = _TEMPLATE_VARIABLE.sub("1m", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _WORD.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word in _KEYWORDS or word in ("inf", "nan", "Inf", "NaN"):
            continue
        names.add(word)
    return names
