"""How runs look in notebooks (a reader, in the kernel): an HTML card, a one-line text form, and a
plot of the history.

Everything here works on a *view*: a plain mapping that :class:`mplogger.Run` and
:class:`mplogger.StoredRun` build from what they know. Its keys (all optional but ``id``):

``kind`` ("Run" or "StoredRun"), ``id``, ``name``, ``project``, ``group``, ``job_type``, ``tags``,
``notes``, ``state``, ``exit_code``, ``root``, ``dir``, ``created`` and ``finished`` (Unix
seconds), ``rows``, ``config``, ``summary`` and ``latest`` (mappings, nested dicts allowed) and
``note`` (a line saying what could not be read).

The charts are drawn by :mod:`mplogger._readers._charts` (the report's renderer) as inline SVG with
inline styles and no script, so a notebook shows them with nothing installed, and a viewer that
runs no JavaScript shows them too; matplotlib is imported only by :meth:`Charts.figure`.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mplogger._readers._charts import (CARD, REPORT, SECONDS, STEPS, SeriesSet, chart_section, colour, legend_html,
                              read_history, read_system, run_label, swatch)
from mplogger._readers._charts import escape as _e
from mplogger._shared._values import flatten

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from mplogger._readers._api import StoredRun

__all__ = ["Charts", "card_charts", "compare", "run_html", "runs_html", "run_text", "format_value", "format_time",
           "format_duration"]

MAX_VALUE_CHARS = 80
MAX_TABLE_ROWS = 40
OPEN_TABLE_ROWS = 12  # sections with more rows than this start folded

STATE_COLOURS = {
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
        text = "[" + _joined(value[:limit], limit, lambda item, room: format_value(item, room)) + "]"
    elif isinstance(value, Mapping):
        text = "{" + _joined(itertools.islice(value.items(), limit), limit,
                             lambda item, room: f"{item[0]}: {format_value(item[1], room)}") + "}"
    else:
        try:
            text = repr(value)
        except Exception:  # a broken __repr__ must not break the display
            text = f"<{type(value).__name__}>"
    return _truncate(text, limit)


def _joined(items: Iterable[Any], limit: int, show: Any) -> str:
    """``show(item, room)`` of items, comma-joined, each given only the room the text has left, so a
    deeply nested value costs what its first ``limit`` characters cost."""
    parts: List[str] = []
    used = 0
    for item in items:
        if used >= limit:
            parts.append("\u2026")
            break
        text = show(item, max(2, limit - used))
        parts.append(text)
        used += len(text) + 2
    return ", ".join(parts)


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
def badge(state: Any, inline: bool = True) -> str:
    """A run's state as a coloured label; ``inline``: styled by itself (else by the report's class ``badge``)."""
    text = str(state) if state else "unknown"
    shade = STATE_COLOURS.get(text, "#6e7781")
    if not inline:
        return f'<span class="badge" style="background:{shade}">{_e(text)}</span>'
    return (f'<span style="background:{shade};color:#fff;border-radius:9px;padding:1px 8px;'
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
        badge(view.get("state")),
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
    parts.extend(_chart_parts(view))
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


# --- charts ----------------------------------------------------------------------------------
CARD_CHARTS = 6  # metrics a run's card charts; run.plot() charts them all
CARD_POINTS = 300  # points a card's chart keeps per series (min and max of each stretch)
COMPARE_RUNS = 20  # runs a notebook's table of runs overlays in its charts
COMPARE_CHARTS = 12  # shared metrics it charts


def card_charts(run: "StoredRun", limit: int = CARD_CHARTS) -> Dict[str, Any]:
    """What a run's card adds to its view: the charts of its first ``limit`` metrics (``charts``),
    how many stored keys are left out (``more``) and the system metrics' charts (``system``)."""
    history = SeriesSet(CARD_POINTS)
    unread = read_history(history, 0, run, limit=limit)
    charts = chart_section(history, [run], STEPS, [], CARD, inline=True, limit=limit)
    system = SeriesSet(CARD_POINTS)
    read_system(system, 0, run)
    return {"charts": charts, "more": max(0, history.drawable(0) - limit) + unread,
            "system": chart_section(system, [run], SECONDS, [], CARD, inline=True),
            "system_count": system.drawable(0)}


def _chart_parts(view: Mapping[str, Any]) -> List[str]:
    parts = []
    if view.get("charts"):
        parts.append(view["charts"])
    if view.get("more"):
        more = view["more"]
        parts.append(f'<div style="{_MUTED}">{_e(more)} more key{"s" if more != 1 else ""} not charted here: '
                     "<code>run.plot()</code> charts every numeric one, <code>run.plot(keys=[...])</code> the "
                     "ones you name</div>")
    if view.get("system"):
        parts.append(f'<details style="margin:2px 0"><summary style="cursor:pointer;font-weight:600">system '
                     f'<span style="{_MUTED};font-weight:400">({_e(view.get("system_count", ""))}, x: seconds)'
                     f'</span></summary>{view["system"]}</details>')
    return parts


def _keys_argument(keys: Any) -> Optional[List[str]]:
    if keys is None:
        return None
    if isinstance(keys, str):
        return [keys]
    if not isinstance(keys, (list, tuple)) or not all(isinstance(key, str) for key in keys):
        raise TypeError(f"keys must be a metric name or a list of them, not {keys!r:.80}")
    if not keys:
        raise ValueError("keys is empty: name at least one metric, or pass keys=None for all of them")
    return list(keys)


class Charts:
    """Charts of runs' metrics, one per metric with the runs overlaid. A notebook shows them as
    inline SVG (no plotting library needed); :meth:`figure` draws them with matplotlib instead.

    ``keys``: the metrics (dotted names for nested dicts); all numeric ones when None. Raises
    ``ValueError`` naming the keys when there is nothing numeric to draw.
    """

    def __init__(self, runs: Sequence["StoredRun"], keys: Optional[Sequence[str]] = None, title: str = "",
                 max_points: int = 1000) -> None:
        self.runs = list(runs)
        if not self.runs:
            raise ValueError("no runs to chart: pass at least one run")
        wanted = _keys_argument(keys)
        self.title = title
        self._series = SeriesSet(max_points)
        for index, run in enumerate(self.runs):
            read_history(self._series, index, run, keys=wanted)
        drawn = [metric for metric, by_run in self._series.metrics.items()
                 if any(series.finite() for series in by_run.values())]
        rows = sum(run.rows for run in self.runs)
        if wanted is not None:
            missing = [key for key in wanted if key not in drawn]
            if missing:
                available = SeriesSet(2)
                for index, run in enumerate(self.runs):
                    read_history(available, index, run)
                numeric = [metric for metric in available.metrics if any(available.metrics[metric].values())]
                raise ValueError(f"nothing to plot for {missing}: no numeric values under "
                                 f"{'that key' if len(missing) == 1 else 'those keys'} in {rows} rows; "
                                 f"numeric keys: {numeric}")
            drawn = list(dict.fromkeys(wanted))
        elif not drawn:
            raise ValueError(f"nothing to plot: no numeric metrics in the {rows} rows of "
                             f"{', '.join(run.id for run in self.runs)}")
        self._series.metrics = {metric: self._series.metrics[metric] for metric in drawn}
        self.metrics: List[str] = drawn
        self.html = self._render()

    def _render(self) -> str:
        frame = CARD if len(self.runs) == 1 else REPORT
        charts = chart_section(self._series, self.runs, STEPS, [], frame, inline=True)
        title = f'<div style="font-weight:600;font-size:13px">{_e(self.title)}</div>' if self.title else ""
        legend = legend_html(list(range(len(self.runs))), self.runs, inline=True) if len(self.runs) > 1 else ""
        return (f'<div class="mplogger-charts" style="font-family:system-ui,-apple-system,Segoe UI,Roboto,'
                f'sans-serif;font-size:12px;line-height:1.45;color:inherit">{title}{legend}{charts}</div>')

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<mplogger.Charts: {len(self.metrics)} metrics of {len(self.runs)} run{'s' if len(self.runs) != 1 else ''}>"

    def figure(self) -> "Figure":
        """The same charts as a matplotlib figure, one subplot per metric (needs matplotlib)."""
        try:
            import matplotlib
        except ImportError:
            raise ImportError("Charts.figure() needs matplotlib: pip install 'mplogger[plot]' "
                              "(displaying the charts needs nothing)") from None
        _choose_backend(matplotlib)
        import matplotlib.pyplot as plt

        count = len(self.metrics)
        columns = 1 if count == 1 else 2
        lines = -(-count // columns)
        fig, axes = plt.subplots(lines, columns, figsize=(5.5 * columns, 2.6 * lines), squeeze=False,
                                 layout="constrained")
        flat = [ax for line in axes for ax in line]
        for ax, metric in zip(flat, self.metrics):
            for index, series in self._series.metrics[metric].items():
                points = series.points()
                xs = [x for x, _ in points]
                ys = [math.nan if y is None else y for _, y in points]
                ax.plot(xs, ys, marker="." if len(points) < 50 else None, linewidth=1.2, color=colour(index),
                        label=run_label(self.runs[index]))
            ax.set_title(metric, fontsize=10)
            ax.set_xlabel("_step", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(True, alpha=0.3)
            if len(self.runs) > 1:
                ax.legend(fontsize=7)
        for ax in flat[count:]:
            fig.delaxes(ax)
        if self.title:
            fig.suptitle(self.title, fontsize=11)
        return fig


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


# --- several runs ----------------------------------------------------------------------------
_TH = "padding:2px 10px 2px 0;text-align:left;font-weight:600;opacity:.75;white-space:nowrap"
_TD = "padding:2px 10px 2px 0;text-align:left;white-space:nowrap;border-top:" + _BORDER


def runs_html(runs: Sequence["StoredRun"]) -> str:
    """A table of runs and overlaid charts of the metrics they share (of the first
    :data:`COMPARE_RUNS` runs), as one HTML fragment with inline styles and no script."""
    runs = list(runs)
    shown = runs[:COMPARE_RUNS]
    head = "".join(f'<th style="{_TH}">{name}</th>'
                   for name in ("", "id", "name", "project", "state", "created", "duration", "rows", "tags"))
    body = []
    for index, run in enumerate(runs):
        mark = swatch(index, inline=True) if index < len(shown) else ""
        cells = [mark, f"<code>{_e(run.id)}</code>", _e(_truncate(str(run.name or ""), 48)),
                 _e(_truncate(str(run.project), 32)), badge(run.state), _e(format_time(run.created) or ""),
                 _e(format_duration(run.duration)), f"{run.rows:,}", _e(_truncate(", ".join(map(str, run.tags)), 48))]
        body.append("<tr>" + "".join(f'<td style="{_TD}">{cell}</td>' for cell in cells) + "</tr>")
    parts = ['<div class="mplogger-runs" style="font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;'
             'font-size:12px;line-height:1.45;color:inherit;max-width:1100px">',
             f'<div style="font-weight:600">{len(runs)} run{"s" if len(runs) != 1 else ""}</div>',
             f'<div style="overflow-x:auto"><table style="border-collapse:collapse;font-size:12px">'
             f'<tr>{head}</tr>{"".join(body)}</table></div>']
    if shown:
        try:
            parts.extend(_shared_charts(runs, shown))
        except Exception as exc:  # a display must never raise: the table stands without charts
            parts.append(f'<div style="color:#cf222e">charts: {_e(_truncate(f"{type(exc).__name__}: {exc}", 300))}'
                         "</div>")
    parts.append("</div>")
    return "".join(parts)


def _shared_charts(runs: Sequence["StoredRun"], shown: Sequence["StoredRun"]) -> List[str]:
    """The overlaid charts of the metrics ``shown`` runs share, and notes on what was left out."""
    parts: List[str] = []
    series = SeriesSet(CARD_POINTS)
    for index, run in enumerate(shown):
        read_history(series, index, run)
    least = 2 if len(shown) > 1 else 1
    shared = {metric: by_run for metric, by_run in series.metrics.items()
              if sum(1 for s in by_run.values() if s.finite()) >= least}
    more = max(0, len(shared) - COMPARE_CHARTS)
    series.metrics = dict(list(shared.items())[:COMPARE_CHARTS])
    parts.append(chart_section(series, shown, STEPS, [], REPORT, inline=True))
    notes = []
    if len(runs) > len(shown):
        notes.append(f"charts overlay the first {len(shown)} runs")
    if more:
        notes.append(f"{more} more shared metric{'s' if more != 1 else ''}: "
                     "<code>mplogger.compare(runs, keys=[...])</code>")
    if not shared:
        notes.append("no numeric metric is shared by two of these runs" if least == 2 else "no numeric metrics")
    if notes:
        parts.append(f'<div style="{_MUTED}">{"; ".join(notes)}</div>')
    return parts


def compare(runs: Iterable[Any], keys: Optional[Sequence[str]] = None, *, dir: Optional[str] = None,
            max_points: int = 1000) -> Charts:
    """Charts of several runs overlaid, one per metric (``keys``, or every metric they log).

    ``runs``: run ids (read from the store ``dir``), stored runs, or live runs (flushed first).
    """
    from mplogger._readers._api import Api, StoredRun

    items = [runs] if isinstance(runs, (str, StoredRun)) else list(runs)
    opened: Dict[Any, Any] = {}

    def api_for(root: Optional[str]) -> Any:
        if root not in opened:
            opened[root] = Api(root)
        return opened[root]

    try:
        chosen = []
        for item in items:
            if isinstance(item, StoredRun):
                chosen.append(item)
            elif isinstance(item, str):
                chosen.append(api_for(dir).run(item))
            elif callable(getattr(item, "flush", None)) and isinstance(getattr(item, "root", None), str):
                item.flush()
                chosen.append(api_for(item.root).run(item.id))
            else:
                raise TypeError(f"compare() takes run ids, stored runs or runs, not {type(item).__name__}: "
                                f"{item!r:.80}")
        return Charts(chosen, keys, max_points=max_points)
    finally:
        for api in opened.values():
            api.close()
