"""Choosing runs: wandb-style ``filters`` (a MongoDB-like dict) and the CLI's ``--where`` terms.

``{"config.lr": 0.1, "summary.acc": {"$gt": 0.9}, "tags": "best"}`` keeps the runs whose config
``lr`` is 0.1, whose summary ``acc`` is above 0.9 and whose tags include ``best``. Operators:
``$eq $ne $gt $gte $lt $lte $in $nin $regex $exists`` and ``$and $or $nor $not``. A missing key
matches nothing but ``$ne``, ``$nin`` and ``{"$exists": False}``. A list field (tags) matches when
any element does, as in MongoDB.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from mplogger._shared._values import pick

__all__ = ["matches", "parse_where", "check_filters"]

_MISSING = object()

# Field names wandb's public API uses, mapped onto ours.
_ALIASES = {
    "summary_metrics": "summary", "display_name": "name", "displayName": "name",
    "jobType": "job_type", "createdAt": "created", "run_group": "group",
}
_TOP_FIELDS = frozenset({
    "id", "name", "project", "group", "job_type", "state", "tags", "notes", "created", "finished",
    "duration", "rows", "host", "exit_code",
})

_COMPARISONS: Dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}
_OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$regex", "$exists", "$not", *_COMPARISONS})


def field_value(run: Any, field: str) -> Any:
    """The value a filter field names on a run (``config.lr``, ``summary.acc``, ``state``, ...)."""
    head, _, rest = field.partition(".")
    head = _ALIASES.get(head, head)
    if head in ("config", "summary"):
        values = getattr(run, head)
        if not rest:
            return values
        try:
            return pick(values, rest)
        except KeyError:
            return _MISSING
    if head in _TOP_FIELDS and not rest:
        return getattr(run, head)
    raise ValueError(
        f"unknown filter field {field!r}: use config.<key>, summary.<key> or one of "
        f"{', '.join(sorted(_TOP_FIELDS))}")


def matches(run: Any, filters: Mapping[str, Any]) -> bool:
    """Whether ``run`` passes every condition of ``filters`` (checked first by :func:`check_filters`)."""
    for key, condition in filters.items():
        if key in ("$and", "$or", "$nor"):
            results = (matches(run, part) for part in condition)
            passed = all(results) if key == "$and" else any(results)
            if passed == (key == "$nor"):
                return False
        elif not _field_matches(field_value(run, key), condition):
            return False
    return True


def _field_matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(k.startswith("$") for k in condition):
        return all(_operator_matches(value, op, operand) for op, operand in condition.items())
    return _operator_matches(value, "$eq", condition)


def _operator_matches(value: Any, op: str, operand: Any) -> bool:
    if op == "$exists":
        return (value is not _MISSING) == bool(operand)
    if op == "$not":
        return not _field_matches(value, operand)
    if op == "$ne":
        return not _operator_matches(value, "$eq", operand)
    if op == "$nin":
        return not _operator_matches(value, "$in", operand)
    if value is _MISSING:
        return False
    if isinstance(value, list) and (op == "$in" or not isinstance(operand, list)):
        return any(_operator_matches(item, op, operand) for item in value) or (op == "$in" and value in operand)
    if op == "$eq":
        return _equal(value, operand)
    if op == "$in":
        return any(_equal(value, item) for item in operand)
    if op == "$regex":
        return isinstance(value, str) and re.search(str(operand), value) is not None
    if isinstance(value, bool) != isinstance(operand, bool):
        return False
    try:
        return _COMPARISONS[op](value, operand)
    except TypeError:  # a string against a number, None against anything: not a match
        return False


def _equal(value: Any, operand: Any) -> bool:
    """``==``, except that a bool equals only a bool (``True == 1`` in Python, not here)."""
    return isinstance(value, bool) == isinstance(operand, bool) and value == operand


def check_filters(filters: Mapping[str, Any]) -> None:
    """Raise ValueError now for unknown fields or operators, before any run is read."""
    if not isinstance(filters, Mapping):
        raise TypeError(f"filters must be a dict, not {type(filters).__name__}")
    for key, condition in filters.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(condition, (list, tuple)):
                raise ValueError(f"{key} takes a list of filters, not {type(condition).__name__}")
            for part in condition:
                check_filters(part)
        elif key.startswith("$"):
            raise ValueError(f"unknown filter operator {key!r} at the top level")
        else:
            field_value(_Empty(), key)
            _check_condition(condition)


def _check_condition(condition: Any) -> None:
    if not (isinstance(condition, Mapping) and condition and all(k.startswith("$") for k in condition)):
        return
    for op, operand in condition.items():
        if op not in _OPERATORS:
            raise ValueError(f"unknown filter operator {op!r}; known: {', '.join(sorted(_OPERATORS))}")
        if op == "$not":
            _check_condition(operand)
        if op in ("$in", "$nin") and not isinstance(operand, (list, tuple, set, frozenset)):
            raise ValueError(f"{op} takes a list, not {type(operand).__name__}")
        if op == "$regex":
            try:
                re.compile(str(operand))
            except re.error as exc:
                raise ValueError(f"$regex {operand!r} is not a regular expression: {exc}") from None


_WHERE = re.compile(r"^\s*([^\s=!<>~]+)\s*(==|=|!=|>=|<=|>|<|~)\s*(.*?)\s*$")
_WHERE_OPS = {"=": "$eq", "==": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt",
              "<=": "$lte", "~": "$regex"}


def parse_where(terms: Sequence[str]) -> Dict[str, Any]:
    """``["summary.acc>0.9", "config.opt=adam"]`` as a filters dict (values read as JSON if they parse)."""
    parts: List[Tuple[str, Dict[str, Any]]] = []
    for term in terms:
        found = _WHERE.match(term)
        if found is None:
            raise ValueError(
                f"cannot read --where {term!r}: write KEY OP VALUE with OP one of "
                "= != > >= < <= ~ (regex), e.g. summary.acc>0.9")
        key, op, text = found.groups()
        field_value(_Empty(), key)
        value: Any = text if op == "~" else _parse_value(text)
        if op in ("=", "==", "!=") and not isinstance(value, str):  # 123 may be a number or a name
            condition: Dict[str, Any] = {"$in" if op != "!=" else "$nin": [value, text]}
        else:
            condition = {_WHERE_OPS[op]: value}
        check_filters({key: condition})
        parts.append((key, condition))
    return {"$and": [{key: condition} for key, condition in parts]} if parts else {}


class _Empty:
    config: Dict[str, Any] = {}
    summary: Dict[str, Any] = {}

    def __getattr__(self, name: str) -> None:
        return None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
