"""How runs look in notebooks: an HTML card, a one-line text form, and a plot of the history.

Everything here works on a *view*: a plain mapping that :class:`mplogger.Run` and
:class:`mplogger.StoredRun` build from what they know. Its keys (all optional but ``id``):

``kind`` ("Run" or "StoredRun"), ``id``, ``name``, ``project``, ``group``, ``job_type``, ``tags``,
``notes``, ``state``, ``exit_code``, ``root``, ``dir``, ``created`` and ``finished`` (Unix
seconds), ``rows``, ``config``, ``summary`` and ``latest`` (mappings, nested dicts allowed) and
``note`` (a line saying what could not be read).

Only the standard library is imported here; matplotlib is imported by :func:`plot_history` when
it is called.
"""

from __future__ import annotations

import html
import math
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mplogger._values import flatten, pick

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["run_html", "run_text", "plot_history", "format_value", "format_time", "format_duration"]

MAX_VALUE_CHARS = 80
MAX_TABLE_ROWS = 40
OPEN_TABLE_ROWS = 12  # sections with more rows than this start folded

_STATE_COLOURS = {
    "running": "#1f6feb",
    "finished": "#1a7f37",
    "failed": "#cf222e",
    "crashed": "#bc4c00",
}
_BORDER = "1px solid rgba(127,127,127,.35)"
_MUTED = "opacity:.7"


# --- values ----------------------------------------------------------------------------------
def _truncate(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def format_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A short, readable text for one value (not escaped); NaN and infinities as text."""
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, float):
        if math.isnan(value):
            text = "NaN"
        elif math.isinf(value):
            text = "inf" if value > 0 else "-inf"
        else:
            text = format(value, ".6g")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(format_value(v, limit) for v in value[:limit]) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k}: {format_value(v, limit)}" for k, v in list(value.items())[:limit]) + "}"
    else:
        try:
            text = repr(value)
        except Exception:  # a broken __repr__ must not break the display
            text = f"<{type(value).__name__}>"
    return _truncate(text, limit)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_time(stamp: Any) -> Optional[str]:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; None when it is not a time."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(stamp)))
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def format_duration(seconds: float) -> str:
    """Seconds as ``12.3 s``, ``4m 05s`` or ``2h 03m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


# --- text ------------------------------------------------------------------------------------
def run_text(view: Mapping[str, Any]) -> str:
    """One line for ``repr()``: ``<mplogger.Run abcd1234 'name' project='demo' state=running rows=120>``."""
    kind = view.get("kind") or "Run"
    parts = [f"<mplogger.{kind}", str(view.get("id", "?"))]
    if view.get("name") is not None:
        parts.append(repr(_truncate(str(view["name"]), 40)))
    if view.get("project") is not None:
        parts.append(f"project={_truncate(str(view['project']), 40)!r}")
    parts.append(f"state={view.get('state') or 'unknown'}")
    if view.get("rows") is not None:
        parts.append(f"rows={view['rows']}")
    return " ".join(parts) + ">"


# --- HTML ------------------------------------------------------------------------------------
def _badge(state: Any) -> str:
    text = str(state) if state else "unknown"
    colour = _STATE_COLOURS.get(text, "#6e7781")
    return (f'<span style="background:{colour};color:#fff;border-radius:9px;padding:1px 8px;'
            f'font-size:11px;font-weight:600;vertical-align:middle">{_e(text)}</span>')


_TD_KEY = '<td style="padding:1px 8px;text-align:left;white-space:nowrap">'
_TD_VALUE = '<td style="padding:1px 8px;text-align:left;overflow-wrap:anywhere">'


def _row(key: str, value: str, muted: bool = False) -> str:
    style = f"border-top:{_BORDER};{_MUTED}" if muted else f"border-top:{_BORDER}"
    return f'<tr style="{style}">{_TD_KEY}{key}</td>{_TD_VALUE}{value}</td></tr>'


def _table(title: str, values: Optional[Mapping[str, Any]]) -> str:
    """A folded-or-open section with a two-column table of flattened values."""
    try:
        items: List[Tuple[str, Any]] = list(flatten(values or {}).items())
    except Exception as exc:  # a mapping that cannot be read
        items = [("(unreadable)", f"{type(exc).__name__}: {exc}")]
    shown = items[:MAX_TABLE_ROWS]
    body = []
    for key, value in shown:
        short = format_value(value)
        if short.endswith("\u2026"):
            text = f'<span title="{_e(format_value(value, 1000))}">{_e(short)}</span>'
        else:
            text = _e(short)
        body.append(_row(_e(_truncate(str(key), 48)), text, muted=value is None))
    if len(items) > len(shown):
        body.append(_row(f"\u2026 and {len(items) - len(shown)} more", "", muted=True))
    if not items:
        body.append(_row("(empty)", "", muted=True))
    opened = " open" if len(items) <= OPEN_TABLE_ROWS else ""
    return (
        f'<details{opened} style="margin:0;min-width:180px;max-width:440px;flex:1 1 220px">'
        f'<summary style="cursor:pointer;font-weight:600">{_e(title)} '
        f'<span style="{_MUTED};font-weight:400">({len(items)})</span></summary>'
        '<table style="border-collapse:collapse;table-layout:auto;margin:2px 0 0 0;font-size:12px;'
        'font-family:monospace;width:100%">' + "".join(body) + "</table></details>"
    )


def run_html(view: Mapping[str, Any]) -> str:
    """A self-contained HTML fragment (inline styles, no scripts) showing one run."""
    kind = view.get("kind") or "Run"
    name = view.get("name")
    header = [
        f'<span style="font-weight:600;font-size:14px">{_e(_truncate(str(name), 80)) if name else "(unnamed)"}</span>',
        f'<code style="{_MUTED}">{_e(view.get("id", "?"))}</code>',
        _badge(view.get("state")),
    ]
    if view.get("exit_code") not in (None, 0):
        header.append(f'<span style="{_MUTED}">exit code {_e(view["exit_code"])}</span>')

    facts: List[Tuple[str, str]] = []
    for label, key in (("project", "project"), ("group", "group"), ("job type", "job_type")):
        if view.get(key) is not None:
            facts.append((label, _e(_truncate(str(view[key])))))
    tags = view.get("tags")
    if tags:
        facts.append(("tags", _e(_truncate(", ".join(str(t) for t in tags)))))
    created = format_time(view.get("created"))
    if created:
        when = created
        finished = view.get("finished")
        if isinstance(finished, (int, float)) and isinstance(view.get("created"), (int, float)):
            when += f" (ran {format_duration(finished - view['created'])})"
        facts.append(("created", _e(when)))
    if view.get("rows") is not None:
        facts.append(("rows", _e(view["rows"])))
    line = " &middot; ".join(f'<span style="{_MUTED}">{label}</span> {value}' for label, value in facts)

    where = []
    if view.get("root") is not None:
        where.append(f'<span style="{_MUTED}">root</span> <code>{_e(view["root"])}</code>')
    if view.get("dir") is not None:
        where.append(f'<span style="{_MUTED}">files</span> <code>{_e(view["dir"])}</code>')

    parts = [
        f'<div class="mplogger-{_e(kind.lower())}" style="font-family:system-ui,-apple-system,'
        f'Segoe UI,Roboto,sans-serif;font-size:12px;line-height:1.45;border:{_BORDER};'
        f'border-radius:6px;padding:6px 10px;margin:2px 0;max-width:960px;color:inherit">',
        '<div style="display:flex;gap:8px;align-items:center;flex-wrap:wrap">' + " ".join(header) + "</div>",
    ]
    if line:
        parts.append(f"<div>{line}</div>")
    if where:
        parts.append('<div style="word-break:break-all">' + " &middot; ".join(where) + "</div>")
    if view.get("notes"):
        parts.append(f'<div style="font-style:italic">{_e(_truncate(str(view["notes"]), 200))}</div>')
    if view.get("note"):
        parts.append(f'<div style="color:#cf222e">{_e(_truncate(str(view["note"]), 300))}</div>')
    sections = [_table("config", view.get("config")), _table("summary", view.get("summary"))]
    if view.get("latest") is not None:
        latest = dict(view["latest"])
        step = latest.pop("_step", None)
        for key in ("_timestamp", "_runtime"):
            latest.pop(key, None)
        sections.append(_table("latest" if step is None else f"latest (step {step})", latest))
    parts.append('<div style="display:flex;gap:14px;flex-wrap:wrap;margin-top:4px">' + "".join(sections) + "</div>")
    parts.append("</div>")
    return "".join(parts)


# --- plots -----------------------------------------------------------------------------------
def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)):  # bool included: plotted as 0/1
        return float(value)
    return None


def _pick(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, where a dotted key reaches into nested dicts; None when absent."""
    try:
        return pick(row, key)
    except KeyError:
        return None


def _numeric_keys(rows: Iterable[Mapping[str, Any]]) -> List[str]:
    """Every non-underscore (flattened) key with at least one non-bool number, in first-seen order."""
    seen: Dict[str, None] = {}
    for row in rows:
        for key, value in flatten(row).items():
            if key.startswith("_") or key in seen:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                seen[key] = None
    return list(seen)


def _choose_backend(matplotlib: Any) -> None:
    """Agg, unless a backend was chosen already (MPLBACKEND, matplotlib.use, an inline kernel)."""
    if "matplotlib.pyplot" in sys.modules:
        return  # pyplot is up: its backend is chosen (or will resolve as the user set it up)
    try:
        chosen = matplotlib.get_backend(auto_select=False)  # matplotlib >= 3.10
    except TypeError:
        getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
        if getter is not None:
            chosen = getter()
        else:  # older matplotlib: the unresolved value is a sentinel object
            sentinel = getattr(getattr(matplotlib, "rcsetup", None), "_auto_backend_sentinel", None)
            chosen = None if dict.__getitem__(matplotlib.rcParams, "backend") is sentinel else "set"
    if chosen is None:
        matplotlib.use("Agg")


def plot_history(rows: Sequence[Mapping[str, Any]], keys: Optional[Sequence[str]] = None,
                 title: str = "") -> "Figure":
    """One subplot per numeric key against ``_step``; returns the figure (nothing is shown).

    ``keys=None`` plots every numeric key not starting with ``_`` (nested dicts as dotted keys).
    Raises ``ValueError`` naming the keys when there is nothing numeric to plot, and
    ``ImportError`` when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("run.plot() needs matplotlib: pip install 'mplogger[plot]'") from None
    if isinstance(keys, str):
        keys = [keys]
    wanted = list(keys) if keys is not None else _numeric_keys(rows)
    series: Dict[str, Tuple[List[float], List[float]]] = {key: ([], []) for key in wanted}
    for index, row in enumerate(rows):
        step = row.get("_step", index)
        for key in wanted:
            number = _number(_pick(row, key))
            if number is not None:
                series[key][0].append(step)
                series[key][1].append(number)
    empty = [key for key in wanted if not series[key][0]]
    if not wanted or empty:
        available = _numeric_keys(rows)
        if keys is None:
            raise ValueError(f"nothing to plot: no numeric values in {len(rows)} rows "
                             f"(keys seen: {sorted({k for r in rows for k in flatten(r)})})")
        raise ValueError(f"nothing to plot for {empty or wanted}: no numeric values under "
                         f"{'that key' if len(empty) == 1 else 'those keys'} in {len(rows)} rows; "
                         f"numeric keys: {available}")
    _choose_backend(matplotlib)
    import matplotlib.pyplot as plt

    count = len(wanted)
    columns = 1 if count == 1 else 2
    lines = -(-count // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5.5 * columns, 2.6 * lines), squeeze=False,
                             layout="constrained")
    flat = [ax for line in axes for ax in line]
    for ax, key in zip(flat, wanted):
        steps, values = series[key]
        ax.plot(steps, values, marker="." if len(steps) < 50 else None, linewidth=1.2)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("_step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
    for ax in flat[count:]:
        fig.delaxes(ax)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
