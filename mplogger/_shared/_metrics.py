"""wandb's ``define_metric`` semantics as a pure, process-local rules engine (the user process
checks with it, the worker applies it).

A :class:`MetricRules` holds the rules made by ``define()`` and the running state they need
(aggregates per metric, last value of every step metric). It does no I/O and starts nothing:
rules travel between processes as plain dicts (``to_list``/``from_list``) and the state as a
plain dict (``state_dict``/``load_state``), both JSON-able (non-finite floats are kept as floats,
as in logged rows; ``mplogger._shared._values.to_json`` writes them as strict JSON).

Semantics, per metric key of a committed row (top-level keys only):

- The rule of a key is the rule of that exact name, else the glob (``"val/*"``) with the longest
  prefix that the key starts with. Keys starting with ``_`` never match a glob.
- No rule, or a rule without ``summary``, or ``summary="copy"``: ``summary[key]`` is the last value.
- ``"none"`` anywhere in the list: the key is never written to the summary (it wins over the rest).
- Any of ``min max mean last best first``: ``summary[key]`` is a dict holding only those
  aggregates (``"copy"`` next to them adds ``"last"``); the plain last value is not kept.
  ``min max mean best`` skip NaN and non-numbers (``bool`` is not a number here); ``first`` and
  ``last`` take any value. ``best`` is ``min`` for goal minimize (the default), ``max`` for
  maximize. An aggregate with no value yet is left out; an empty dict is not written.
- Aggregates start when the rule first applies to the key (earlier rows are not replayed).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple

from mplogger._shared._values import as_number

__all__ = ["MetricRules", "SUMMARY_OPS", "AGGREGATES"]

SUMMARY_OPS: Tuple[str, ...] = ("min", "max", "mean", "last", "best", "first", "none", "copy")
AGGREGATES: Tuple[str, ...] = ("min", "max", "mean", "last", "best", "first")
_FIELDS = ("name", "step_metric", "step_sync", "hidden", "summary", "goal")
_GOALS = {"min": "minimize", "max": "maximize"}
_STATE_VERSION = 1


def _check_type(arg: str, value: Any, kind: type, kind_name: str) -> None:
    if value is not None and (type(value) is not kind):
        raise TypeError(
            f"define_metric() argument {arg!r} must be {kind_name} or None, "
            f"not {type(value).__name__}: {value!r:.60}"
        )


def _parse_summary(summary: str) -> Tuple[str, ...]:
    """The summary words, lower-cased, stripped and deduplicated in the order given."""
    words: List[str] = []
    for raw in summary.split(","):
        word = raw.strip().lower()
        if word not in SUMMARY_OPS:
            raise ValueError(
                f"define_metric() summary: unknown option {raw.strip()!r} in {summary!r}; "
                f"allowed: {', '.join(SUMMARY_OPS)} (comma-separated)"
            )
        if word not in words:
            words.append(word)
    return tuple(words)


def _parse_goal(goal: str) -> str:
    """``"minimize"`` or ``"maximize"`` from the first three letters of ``goal``."""
    full = _GOALS.get(goal[:3].lower())
    if full is None:
        raise ValueError(
            f"define_metric() goal: {goal!r} is not a goal; use 'minimize' or 'maximize' "
            f"(only the first three letters count: 'min', 'max')"
        )
    return full


def _number(value: Any) -> Optional[float]:
    """``value`` as an int/float for min/max/mean/best, or None (non-number, bool or NaN)."""
    number = as_number(value)
    return None if number is None or number != number else number


class _Compiled:
    """A rule in the form ``observe``/``fill_step`` use it."""

    __slots__ = ("name", "step_metric", "sync", "none", "outputs", "maximize")

    def __init__(self, rule: Mapping[str, Any]) -> None:
        self.name: str = rule["name"]
        self.step_metric: Optional[str] = rule["step_metric"]
        self.sync = bool(rule["step_metric"] and rule["step_sync"])
        ops = _parse_summary(rule["summary"]) if rule["summary"] is not None else ()
        self.none = "none" in ops
        outputs = [op for op in ops if op in AGGREGATES]
        if outputs and "copy" in ops and "last" not in outputs:
            outputs.append("last")
        #: the aggregates to write, in the order given; empty means "the plain last value"
        self.outputs: Tuple[str, ...] = tuple(outputs)
        self.maximize = rule["goal"] == "maximize"


class MetricRules:
    """wandb's ``define_metric`` rules and the running summary state they need."""

    def __init__(self) -> None:
        self._rules: Dict[str, Dict[str, Any]] = {}
        self._exact: Dict[str, _Compiled] = {}
        self._globs: List[Tuple[str, _Compiled]] = []  # (prefix, rule), longest prefix first
        self._step_names: frozenset = frozenset()
        self._resolved: Dict[str, Optional[_Compiled]] = {}
        self._stats: Dict[str, Dict[str, Any]] = {}
        self._steps: Dict[str, Any] = {}

    # -- rules -------------------------------------------------------------------------------

    def define(
        self,
        name: str,
        step_metric: Optional[str] = None,
        step_sync: Optional[bool] = None,
        hidden: Optional[bool] = None,
        summary: Optional[str] = None,
        goal: Optional[str] = None,
        overwrite: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Validate and record a rule; return it as a plain dict (``define(**rule)`` redoes it)."""
        if type(name) is not str:
            raise TypeError(
                f"define_metric() argument 'name' must be str, not {type(name).__name__}: {name!r:.60}"
            )
        _check_type("step_metric", step_metric, str, "str")
        _check_type("step_sync", step_sync, bool, "bool")
        _check_type("hidden", hidden, bool, "bool")
        _check_type("summary", summary, str, "str")
        _check_type("goal", goal, str, "str")
        _check_type("overwrite", overwrite, bool, "bool")
        if not name:
            raise ValueError("define_metric() name: must not be empty")
        if "*" in name[:-1]:
            raise ValueError(
                f"define_metric() name {name!r}: '*' is only allowed once, as the last character"
            )
        if name.endswith("*") and name.startswith("_"):
            raise ValueError(
                f"define_metric() name {name!r}: globs never match keys starting with '_'"
            )
        if step_metric is not None:
            if not step_metric:
                raise ValueError("define_metric() step_metric: must not be empty")
            if "*" in step_metric:
                raise ValueError(
                    f"define_metric() step_metric {step_metric!r}: must be a metric name, not a glob"
                )
            if step_sync is None:
                step_sync = True
        new: Dict[str, Any] = {
            "name": name,
            "step_metric": step_metric,
            "step_sync": step_sync,
            "hidden": hidden,
            "summary": ",".join(_parse_summary(summary)) if summary is not None else None,
            "goal": _parse_goal(goal) if goal is not None else None,
        }
        old = self._rules.get(name)
        if old is not None and overwrite is False:
            new = {key: (new[key] if new[key] is not None else old[key]) for key in _FIELDS}
        self._rules[name] = new
        if step_metric is not None and step_metric not in self._rules:
            self._rules[step_metric] = {**dict.fromkeys(_FIELDS), "name": step_metric}
        self._compile()
        return dict(new)

    def _compile(self) -> None:
        exact: Dict[str, _Compiled] = {}
        globs: List[Tuple[str, _Compiled]] = []
        for name, rule in self._rules.items():
            compiled = _Compiled(rule)
            if name.endswith("*"):
                globs.append((name[:-1], compiled))
            else:
                exact[name] = compiled
        globs.sort(key=lambda item: len(item[0]), reverse=True)
        self._exact, self._globs = exact, globs
        self._step_names = frozenset(r["step_metric"] for r in self._rules.values() if r["step_metric"])
        self._resolved = {}

    def _rule(self, key: str) -> Optional[_Compiled]:
        try:
            return self._resolved[key]
        except KeyError:
            pass
        rule = self._exact.get(key)
        if rule is None and not key.startswith("_"):
            for prefix, compiled in self._globs:
                if key.startswith(prefix):
                    rule = compiled
                    break
        self._resolved[key] = rule
        return rule

    def match(self, key: str) -> Optional[Dict[str, Any]]:
        """The rule that applies to metric ``key`` (exact name, else longest glob), or None."""
        rule = self._rule(key)
        return dict(self._rules[rule.name]) if rule is not None else None

    def to_list(self) -> List[Dict[str, Any]]:
        """Every rule as a plain dict, in the order first defined."""
        return [dict(rule) for rule in self._rules.values()]

    @classmethod
    def from_list(cls, rules: Iterable[Mapping[str, Any]]) -> "MetricRules":
        """Rules made by ``to_list`` (or any list of ``define`` keyword dicts), in order."""
        if isinstance(rules, (str, bytes, Mapping)):
            raise TypeError(f"from_list() takes a list of rule dicts, not {type(rules).__name__}")
        made = cls()
        for rule in rules:
            if not isinstance(rule, Mapping):
                raise TypeError(f"from_list(): a rule must be a dict, not {type(rule).__name__}")
            unknown = set(rule) - set(_FIELDS) - {"overwrite"}
            if unknown:
                raise TypeError(f"from_list(): unknown rule field(s) {sorted(unknown)}")
            if "name" not in rule:
                raise TypeError(f"from_list(): rule {dict(rule)!r:.80} has no 'name'")
            made.define(**rule)
        return made

    # -- rows --------------------------------------------------------------------------------

    def fill_step(self, row: Mapping[str, Any]) -> Dict[str, Any]:
        """A copy of ``row`` with the last seen step metric added for keys whose rule syncs it."""
        if not isinstance(row, Mapping):
            raise TypeError(f"fill_step() takes a dict, not {type(row).__name__}")
        out = dict(row)
        if not self._step_names:
            return out
        steps = self._steps
        for key in row:
            rule = self._rule(key)
            if rule is not None and rule.sync:
                name = rule.step_metric
                if name not in out and name in steps:
                    out[name] = steps[name]
        return out

    def observe(self, row: Mapping[str, Any], summary: MutableMapping[str, Any]) -> None:
        """Update ``summary`` in place for one committed ``row`` (and the running state)."""
        if not isinstance(row, Mapping):
            raise TypeError(f"observe() takes a dict, not {type(row).__name__}")
        if not self._rules:
            summary.update(row)
            return
        step_names = self._step_names
        for key, value in row.items():
            if key in step_names:
                self._steps[key] = value
            rule = self._rule(key)
            if rule is None:
                summary[key] = value
            elif rule.none:
                continue
            elif not rule.outputs:
                summary[key] = value
            else:
                entry = self._update(key, value)
                out = self._outputs(rule, entry)
                if out:
                    summary[key] = out

    def _update(self, key: str, value: Any) -> Dict[str, Any]:
        entry = self._stats.get(key)
        if entry is None:
            entry = self._stats[key] = {"count": 0, "sum": 0, "first": value}
        entry["last"] = value
        number = _number(value)
        if number is not None:
            if entry["count"]:
                if number < entry["min"]:
                    entry["min"] = number
                if number > entry["max"]:
                    entry["max"] = number
            else:
                entry["min"] = entry["max"] = number
            entry["count"] += 1
            entry["sum"] += number
        return entry

    @staticmethod
    def _outputs(rule: _Compiled, entry: Mapping[str, Any]) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        counted = entry["count"] > 0
        for op in rule.outputs:
            if op == "last" or op == "first":
                out[op] = entry[op]
            elif counted:
                if op == "mean":
                    out[op] = entry["sum"] / entry["count"]
                elif op == "best":
                    out[op] = entry["max" if rule.maximize else "min"]
                else:
                    out[op] = entry[op]
        return out

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """The running state (aggregates, last step values) as a plain, JSON-able dict."""
        return {
            "version": _STATE_VERSION,
            "stats": copy.deepcopy(self._stats),
            "steps": copy.deepcopy(self._steps),
        }

    def snapshot(self) -> tuple:
        """A quick exact copy of the running state, to put back with :meth:`restore`."""
        return ({key: dict(entry) for key, entry in self._stats.items()}, dict(self._steps))

    def restore(self, saved: tuple) -> None:
        """Put back a :meth:`snapshot` (each snapshot is restored at most once)."""
        self._stats, self._steps = saved

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the running state with one from ``state_dict`` (e.g. for a resumed run)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state() takes a dict, not {type(state).__name__}")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"load_state(): unsupported state version {state.get('version')!r}")
        stats, steps = state.get("stats", {}), state.get("steps", {})
        if not isinstance(stats, Mapping) or not isinstance(steps, Mapping):
            raise TypeError("load_state(): 'stats' and 'steps' must be dicts")
        checked: Dict[str, Dict[str, Any]] = {}
        for key, entry in stats.items():
            if (
                not isinstance(entry, Mapping)
                or type(entry.get("count")) is not int
                or entry["count"] < 0
                or not {"first", "last", "sum"} <= set(entry)
                or (entry["count"] > 0 and not {"min", "max"} <= set(entry))
            ):
                raise ValueError(f"load_state(): bad state for metric {key!r}: {entry!r:.80}")
            checked[str(key)] = copy.deepcopy(dict(entry))
        self._stats = checked
        self._steps = copy.deepcopy(dict(steps))

    def __repr__(self) -> str:
        return f"MetricRules({self.to_list()!r})"
