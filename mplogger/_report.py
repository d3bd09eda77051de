"""A self-contained HTML report of stored runs: a chart per metric, the runs, config and summary.

The report is one file that needs no network when viewed: charts are inline SVG drawn here (they
render with scripts off), the styles and the small hover script are inline, a Content-Security-
Policy forbids every fetch, and every text taken from the store is HTML-escaped. Histories are
read key by key and downsampled per series as they are read (min and max per bucket), so memory
stays bounded by ``max_points`` per series whatever the number of rows; a key stored in many
blocks is read from the minimum, maximum, first and last value the store keeps per block, not
point by point.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import html
import json
import math
import os
import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from mplogger import _store
from mplogger._display import format_duration, format_time, format_value
from mplogger._values import flatten

if TYPE_CHECKING:  # pragma: no cover
    from mplogger._api import StoredRun

__all__ = ["PALETTE", "render_report", "write_report"]

PALETTE = (
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951",
    "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0",
)
CELL_CHARS = 48
PROGRESS_EVERY = 1000

_W, _H = 440, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 50, 12, 10, 24
_DOT = " \u00b7 "
_DIFF_NOTE = "rows where runs differ are highlighted"
_STATE_COLOURS = {"running": "#1f6feb", "finished": "#1a7f37", "failed": "#cf222e", "crashed": "#bc4c00"}
_RUN_COLUMNS = ("", "id", "name", "project", "group", "state", "started", "duration", "rows", "tags")
_NUMERIC_COLUMNS = {"duration", "rows"}
_LARGEST = 1e300  # beyond this a value is drawn as a gap: an axis cannot span it


@dataclasses.dataclass(frozen=True)
class _XKind:
    """What a section's x axis is: its read-out label, whether ticks are whole, the grid's class."""

    label: str
    integer: bool
    css: str


_STEPS = _XKind("step", integer=True, css="charts")
_SECONDS = _XKind("s", integer=False, css="charts small")

_Point = Tuple[float, Optional[float]]  # (x, y); y None marks a gap (NaN or infinity)
_FLOATS = {float}


# --- downsampling ----------------------------------------------------------------------------
class _Bucket:
    """Consecutive values of one series reduced to their lowest and highest point and their gaps."""

    __slots__ = ("n", "lo", "hi", "gaps")

    def __init__(self) -> None:
        self.n = 0
        self.lo: Optional[Tuple[float, float]] = None
        self.hi: Optional[Tuple[float, float]] = None
        self.gaps: List[float] = []

    def add(self, x: float, y: float) -> None:
        self.n += 1
        if not math.isfinite(y):
            self._gap(x)
            return
        if self.lo is None or y < self.lo[1]:
            self.lo = (x, y)
        if self.hi is None or y > self.hi[1]:
            self.hi = (x, y)

    def _gap(self, x: float) -> None:
        """Keep the first and the last gap: enough to break the line on both sides."""
        if len(self.gaps) < 2:
            self.gaps.append(x)
        else:
            self.gaps[1] = x

    def merge(self, other: "_Bucket") -> "_Bucket":
        self.n += other.n
        for point in (other.lo, other.hi):
            if point is not None:
                if self.lo is None or point[1] < self.lo[1]:
                    self.lo = point
                if self.hi is None or point[1] > self.hi[1]:
                    self.hi = point
        for x in other.gaps:
            self._gap(x)
        return self

    def add_many(self, xs: Sequence[float], ys: Sequence[float], start: int, end: int) -> None:
        """``add`` each of ``xs[start:end]``, ``ys[start:end]`` (floats), in one go when all are plottable."""
        chunk = ys[start:end]
        total = sum(chunk)
        if total - total == 0:  # no NaN or infinity (an overflow only sends it the slow way)
            lo, hi = min(chunk), max(chunk)
            if -_LARGEST <= lo and hi <= _LARGEST:
                self.n += len(chunk)
                if self.lo is None or lo < self.lo[1]:
                    self.lo = (xs[start + chunk.index(lo)], lo)
                if self.hi is None or hi > self.hi[1]:
                    self.hi = (xs[start + chunk.index(hi)], hi)
                return
        for x, y in zip(xs[start:end], chunk):
            self.add(x, y if -_LARGEST <= y <= _LARGEST else math.inf)

    def points(self) -> List[_Point]:
        found: List[_Point] = [] if self.lo is None else [self.lo]
        if self.hi is not None and self.hi != self.lo:
            found.append(self.hi)
        found.extend((x, None) for x in self.gaps)
        return sorted(found, key=lambda point: point[0])


class _Series:
    """One run's values of one metric, kept to at most ``max_points`` points as they stream in.

    Values fill buckets of ``width`` values; when the buckets would overflow, neighbours merge
    and the width doubles. Each bucket keeps its extremes, so the global min and max survive.
    """

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.count = 0
        self.width = 1
        self.buckets: List[_Bucket] = []
        self.summarised = False  # fed with per-block summaries, not every point

    def add(self, x: float, y: float) -> None:
        self.count += 1
        last = self.buckets[-1] if self.buckets else None
        if last is None or last.n >= self.width:
            last = self._open_bucket()
        last.add(x, y)

    def extend(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """``add`` each (x, y) of ``xs`` and ``ys`` (floats, as :func:`_number` gives them), a
        bucket's worth at a time."""
        start, end = 0, len(ys)
        while start < end:
            last = self.buckets[-1] if self.buckets else None
            if last is None or last.n >= self.width:
                last = self._open_bucket()
            stop = min(end, start + self.width - last.n)
            if stop - start == 1:
                y = ys[start]
                last.add(xs[start], y if -_LARGEST <= y <= _LARGEST else math.inf)
            else:
                last.add_many(xs, ys, start, stop)
            self.count += stop - start
            start = stop

    def _open_bucket(self) -> _Bucket:
        """A new last bucket, or the merged last one once the buckets are full."""
        while len(self.buckets) >= self._capacity():
            self._merge_pairs()
            if self.buckets[-1].n < self.width:
                return self.buckets[-1]
        self.buckets.append(_Bucket())
        return self.buckets[-1]

    def _capacity(self) -> int:
        """Buckets allowed: one point each while exact, two (min and max) once downsampled."""
        return self.max_points if self.width == 1 else max(1, self.max_points // 2)

    def _merge_pairs(self) -> None:
        pairs = zip(self.buckets[0::2], self.buckets[1::2])
        merged = [left.merge(right) for left, right in pairs]
        if len(self.buckets) % 2:
            merged.append(self.buckets[-1])
        self.buckets = merged
        self.width *= 2

    @property
    def downsampled(self) -> bool:
        return self.width > 1 or self.summarised

    def points(self) -> List[_Point]:
        return [point for bucket in self.buckets for point in bucket.points()]

    def finite(self) -> List[Tuple[float, float]]:
        return [(x, y) for x, y in self.points() if y is not None]


# --- reading ---------------------------------------------------------------------------------
def _number(value: Any) -> Optional[float]:
    """The value as a float when it is a plottable number (bools and everything else: None)."""
    kind = type(value)
    if kind is int:
        try:
            value = float(value)
        except OverflowError:
            return math.inf
    elif kind is not float:
        return None
    return value if -_LARGEST <= value <= _LARGEST else math.inf


def _metric_values(row: Mapping[str, Any]) -> Iterator[Tuple[str, float]]:
    """The row's numeric metrics by dotted key, mplogger's own ``_`` keys left out."""
    for key, value in row.items():
        if key.startswith("_"):
            continue
        if type(value) is dict:
            yield from ((k, n) for k, n in _metric_values(flatten(value, key + ".")) if "._" not in k)
            continue
        number = _number(value)
        if number is not None:
            yield key, number


def _without_media(value: Any) -> Any:
    """A stored value with its media references (dicts with ``_type``) as None: their fields are
    not metrics (read with media loaded, they are media objects, which have no numbers)."""
    if type(value) is dict:
        return None if "_type" in value else {key: _without_media(item) for key, item in value.items()}
    return value


class _Charts:
    """Series per metric per run, in the order metrics are first seen."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.metrics: Dict[str, Dict[int, _Series]] = {}

    def add(self, run_index: int, x: float, row: Mapping[str, Any]) -> None:
        for key, y in _metric_values(row):
            self.series(key, run_index).add(x, y)

    def series(self, key: str, run_index: int) -> _Series:
        """The series of ``key`` for run ``run_index``, made when first asked for."""
        by_run = self.metrics.setdefault(key, {})
        series = by_run.get(run_index)
        if series is None:
            series = by_run[run_index] = _Series(self.max_points)
        return series


class _RowsRead:
    """Tells ``progress`` the rows read while a run is read key by key: ``rows`` in all, spread
    over ``parts`` passes (one per key), so the counts add up to the rows whatever the keys."""

    def __init__(self, progress: Optional[Callable[[int], None]], rows: int, parts: int) -> None:
        self.progress, self.rows, self.parts = progress, rows, max(1, parts)
        self.told = 0
        self.part = 0

    def within(self, done: int, of: int) -> None:
        """The current pass has read ``done`` of its ``of`` rows."""
        share = (self.part + (min(done, of) / of if of else 1.0)) / self.parts
        self._tell(int(self.rows * share))

    def next_part(self) -> None:
        self.part += 1
        self._tell(self.rows * self.part // self.parts)

    def finish(self) -> None:
        self._tell(self.rows)

    def _tell(self, total: int) -> None:
        total = min(total, self.rows)
        if self.progress is not None and total - self.told >= (PROGRESS_EVERY if total < self.rows else 1):
            self.progress(total - self.told)
            self.told = total


def _read_history(charts: _Charts, index: int, run: "StoredRun",
                  progress: Optional[Callable[[int], None]]) -> None:
    """Read one run's history into ``charts`` (x = ``_step``) key by key, telling ``progress`` the rows read.

    A key stored in few blocks is read point by point; one in many blocks (at least half as
    many as a chart keeps points) from the blocks' minimum, maximum, first and last values,
    which keeps each stretch's extremes as downsampling would. Keys holding dicts are read
    value by value and charted by dotted key. Rows of mplogger 0.1 are read row by row first.
    The run's new metrics take their places in the order of their first numbers.
    """
    conn = run._api.conn
    until = run._last_seq()
    pending = 0
    for _, row, media in _store.legacy_rows(conn, run.id, until):
        charts.add(index, row["_step"], _without_media(row) if media else row)
        pending += 1
        if progress is not None and pending >= PROGRESS_EVERY:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    rows = _store.block_rows(conn, run.id, until)
    keys = [key for key in _store.block_keys(conn, run.id, until) if not key.startswith("_")]
    reader = _KeyReader(charts, index, conn, run.id, until, _RowsRead(progress, rows, len(keys)))
    if rows:
        known = list(charts.metrics)
        nested = set(_store.object_keys(conn, run.id))
        for rank, key in enumerate(keys):
            if key in nested:
                reader.values(key, rank)
            else:
                summaries = _store.column_summaries(conn, run.id, key)
                if len(summaries) >= max(1, charts.max_points // 2):
                    reader.summaries(key, rank, summaries)
                else:
                    reader.points(key, rank)
            reader.told.next_part()
        before = set(known)
        new = sorted((metric for metric in charts.metrics if metric not in before),
                     key=lambda metric: reader.first.get(metric, (math.inf,)))
        charts.metrics = {metric: charts.metrics[metric] for metric in known + new}
    reader.told.finish()


class _KeyReader:
    """Reads one run's keys into ``charts``, noting where each new metric got its first number
    (step, the key's rank, its place among a dict's keys): the order a row-by-row read finds them."""

    def __init__(self, charts: _Charts, index: int, conn: Any, run_id: str, until: int, told: _RowsRead) -> None:
        self.charts, self.index, self.conn, self.run_id, self.until, self.told = charts, index, conn, run_id, until, told
        self.first: Dict[str, Tuple[float, int, int]] = {}

    def _blocks(self, key: str) -> Iterator[Tuple[Sequence[int], List[Any]]]:
        """(steps, values) of each block holding ``key``, telling progress the rows passed."""
        done = 0
        for block in _store.block_columns(self.conn, self.run_id, [key], self.until):
            done += block.rows
            column = block.columns.get(key)
            if column is not None:
                offsets, values = column
                steps = block.info.step_list()
                yield (steps[:block.rows] if offsets is None else [steps[offset] for offset in offsets]), values
            self.told.within(done, self.told.rows)

    def _series(self, metric: str, x: float, rank: int, place: int = 0) -> _Series:
        self.first.setdefault(metric, (x, rank, place))
        return self.charts.series(metric, self.index)

    def points(self, key: str, rank: int) -> None:
        """Every point of a key of numbers."""
        for xs, values in self._blocks(key):
            if set(map(type, values)) != _FLOATS:
                numbers = [(x, _number(value)) for x, value in zip(xs, values)]
                xs = [x for x, number in numbers if number is not None]
                values = [number for _, number in numbers if number is not None]
            if values:
                self._series(key, xs[0], rank).extend(xs, values)

    def values(self, key: str, rank: int) -> None:
        """A key whose values include dicts: each value's numbers by dotted key, as a row's are."""
        for xs, values in self._blocks(key):
            for x, value in zip(xs, values):
                for place, (metric, y) in enumerate(_metric_values({key: _without_media(value)})):
                    self._series(metric, x, rank, place).add(x, y)

    def summaries(self, key: str, rank: int, summaries: Sequence[tuple]) -> None:
        """A long key from its per-block summaries: each block's first and last value at its
        first and last step, and its minimum and maximum in between (the one nearer the first
        value first); a block without a finite number is a gap."""
        xs: List[float] = []
        ys: List[float] = []
        count = 0
        start = math.inf
        for first_step, last_step, values, low, high, first, last in summaries:
            count += values
            if low is None:
                xs.append((first_step + last_step) // 2)
                ys.append(math.inf)
                continue
            start = min(start, first_step)
            span = last_step - first_step
            early, late = (high, low) if first is not None and last is not None and first >= last else (low, high)
            for x, y in ((first_step, first), (first_step + span // 3, early), (first_step + 2 * span // 3, late),
                         (last_step, last)):
                if y is not None:
                    xs.append(x)
                    ys.append(_number(float(y)))
        if start == math.inf:  # no number at all: nothing to draw
            return
        series = self._series(key, start, rank)
        series.extend(xs, ys)
        series.count = count
        series.summarised = True


def _read_system(charts: _Charts, index: int, run: "StoredRun") -> None:
    """One run's system metrics into ``charts``, x = seconds since the run started."""
    for sample in run.system_metrics():
        charts.add(index, sample["_timestamp"] - run.created, sample)


# --- axes ------------------------------------------------------------------------------------
def _nice_step(span: float, count: int, integer: bool) -> float:
    raw = span / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    return max(step, 1.0) if integer else step


def _ticks(lo: float, hi: float, step: float) -> List[float]:
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [i * step for i in range(first, last + 1)]


def _tick_labels(ticks: Sequence[float], step: float) -> List[str]:
    """Short labels with one unit for the whole axis: ``0 5k 10k``, ``0 0.25 0.5``, ``1e-05``."""
    top = max((abs(value) for value in ticks), default=0.0)
    if step < 1e-3 or top >= 1e15:
        return ["0" if abs(value) < step * 1e-6 else f"{value:.3g}" for value in ticks]
    divisor, suffix = next(((d, s) for d, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if top >= 10 * d), (1.0, ""))
    return ["0" if abs(value) < step * 1e-6 else _fixed(value / divisor, step / divisor) + suffix
            for value in ticks]


def _fixed(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _extent(values: Sequence[float]) -> Tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo <= max(abs(hi), abs(lo)) * 1e-12 or hi - lo < 1e-290:  # flat, or a span floats cannot tick
        pad = abs(lo) * 0.1 if abs(lo) > 1e-290 else 1.0
        return lo - pad, hi + pad
    return lo, hi


class _Axis:
    """A linear map from data to pixels, with nicely rounded ticks."""

    def __init__(self, values: Sequence[float], start: float, end: float, integer: bool, snap: bool) -> None:
        lo, hi = _extent(values)
        self.step = _nice_step(hi - lo, 5, integer)
        if snap:
            lo, hi = math.floor(lo / self.step) * self.step, math.ceil(hi / self.step) * self.step
        self.lo, self.hi, self.start, self.end = lo, hi, start, end
        self.ticks = _ticks(lo, hi, self.step)

    def __call__(self, value: float) -> float:
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


# --- SVG -------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _segments(points: Sequence[_Point]) -> Iterator[List[Tuple[float, float]]]:
    """Runs of finite points between gaps."""
    current: List[Tuple[float, float]] = []
    for x, y in points:
        if y is None:
            if current:
                yield current
            current = []
        else:
            current.append((x, y))
    if current:
        yield current


def _series_svg(points: Sequence[_Point], x: _Axis, y: _Axis, colour: str, run_id: str, dash: str = "") -> str:
    """One run's line: a path (a move per segment, so gaps stay gaps) and a dot per lone point."""
    strokes, dots = [], []
    for segment in _segments(points):
        coords = [f"{x(px):.1f} {y(py):.1f}" for px, py in segment]
        if len(coords) == 1:
            dots.append(f'<circle cx="{x(segment[0][0]):.1f}" cy="{y(segment[0][1]):.1f}" r="3"/>')
        else:
            strokes.append("M" + coords[0] + "L" + " ".join(coords[1:]))
    path = f'<path d="{"".join(strokes)}"/>' if strokes else ""
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<g class="series" data-run="{_e(run_id)}" stroke="{colour}" fill="{colour}"{dashes}>'
            f'{path}{"".join(dots)}</g>')


def _axes_svg(x: _Axis, y: _Axis) -> str:
    parts = ['<g class="grid">']
    parts += [f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>' for v in y.ticks]
    parts.append('</g><g class="axis">')
    parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}"/>')
    parts += [f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM + 4}"/>'
              for v in x.ticks]
    parts += [f'<text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{label}</text>'
              for v, label in zip(y.ticks, _tick_labels(y.ticks, y.step))]
    parts += [f'<text x="{x(v):.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">{label}</text>'
              for v, label in zip(x.ticks, _tick_labels(x.ticks, x.step))]
    parts.append("</g>")
    return "".join(parts)


def _chart_svg(metric: str, series: Mapping[int, _Series], runs: Sequence["StoredRun"],
               integer_x: bool) -> Tuple[str, Dict[str, Any]]:
    """The chart's SVG and the data the hover script reads for it."""
    finite = {index: s.finite() for index, s in series.items()}
    xs = [px for pts in finite.values() for px, _ in pts]
    ys = [py for pts in finite.values() for _, py in pts]
    x = _Axis(xs, _LEFT, _W - _RIGHT, integer=integer_x, snap=False)
    y = _Axis(ys, _H - _BOTTOM, _TOP, integer=False, snap=True)
    lines = [_series_svg(s.points(), x, y, _colour(index), runs[index].id, _dash(index))
             for index, s in series.items()]
    svg = (f'<svg class="plot" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(metric)}" '
           f'data-metric="{_e(metric)}">{_axes_svg(x, y)}{"".join(lines)}'
           f'<line class="cursor" y1="{_TOP}" y2="{_H - _BOTTOM}" visibility="hidden"/></svg>')
    data = {"x": [x.lo, x.hi, x.start, x.end],
            "s": [[index, [_short(v) for point in pts for v in point]] for index, pts in finite.items()]}
    return svg, data


def _short(value: float) -> Union[int, float]:
    """Six significant digits: enough for a read-out, and a smaller file."""
    number = float(f"{value:.6g}")
    return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number


# --- HTML pieces -----------------------------------------------------------------------------
def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


_DASHES = ("", "7 4", "2 3", "10 3 2 3")


def _dash(index: int) -> str:
    """A dash pattern after the palette's first round, so run 11 is not drawn as run 1."""
    return _DASHES[(index // len(PALETTE)) % len(_DASHES)]


def _swatch(index: int) -> str:
    colour = _colour(index)
    if not _dash(index):
        return f'<i class="sw" style="background:{colour}"></i>'
    gap = 2 + index // len(PALETTE)
    return (f'<i class="sw" style="background:repeating-linear-gradient(90deg,{colour} 0 3px,'
            f'transparent 3px {3 + gap}px);outline:1px solid {colour}"></i>')


def _label(run: "StoredRun") -> str:
    return run.name or run.id


def _cell(value: Any) -> str:
    """A compact, escaped value; a truncated one carries the longer text as a tooltip."""
    short = format_value(value, CELL_CHARS)
    if short.endswith("\u2026"):
        return f'<span title="{_e(format_value(value, 2000))}">{_e(short)}</span>'
    return _e(short)


def _badge(state: str) -> str:
    colour = _STATE_COLOURS.get(state, "#6e7781")
    return f'<span class="badge" style="background:{colour}">{_e(state)}</span>'


def _runs_table(runs: Sequence["StoredRun"]) -> str:
    head = "".join(f"<th>{name}</th>" for name in _RUN_COLUMNS)
    body = []
    for index, run in enumerate(runs):
        cells = [
            _swatch(index), f"<code>{_e(run.id)}</code>", _cell(run.name), _cell(run.project),
            _cell(run.group) if run.group is not None else "", _badge(run.state),
            _e(format_time(run.created) or ""), format_duration(run.duration), f"{run.rows:,}",
            _cell(", ".join(str(tag) for tag in run.tags)) if run.tags else "",
        ]
        body.append("<tr>" + "".join(f'<td class="num">{cell}</td>' if name in _NUMERIC_COLUMNS else f"<td>{cell}</td>"
                                     for name, cell in zip(_RUN_COLUMNS, cells)) + "</tr>")
    return f'<div class="scroll"><table class="runs"><tr>{head}</tr>{"".join(body)}</table></div>'


class _MediaRef:
    """A stored media reference shown as ``<histogram>`` instead of its JSON."""

    def __init__(self, kind: Any) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{self.kind}>"


_MEDIA_TYPES = frozenset({"histogram", "table-file", "image-file"})


def _collapse_media(values: Any) -> Any:
    if isinstance(values, Mapping):
        if values.get("_type") in _MEDIA_TYPES:
            return _MediaRef(values["_type"])
        return {key: _collapse_media(value) for key, value in values.items()}
    if isinstance(values, list):
        return [_collapse_media(value) for value in values]
    return values


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


_MISSING = object()


def _compare_table(columns: Sequence[Mapping[str, Any]], runs: Sequence["StoredRun"]) -> str:
    """Keys down, runs across; a row whose runs disagree is marked ``diff``."""
    flat = [flatten(_collapse_media(values)) for values in columns]
    keys = sorted({key for values in flat for key in values})
    if not keys:
        return '<p class="empty">(none)</p>'
    head = "<th>key</th>" + "".join(f"<th>{_swatch(i)}{_e(_label(run))}</th>" for i, run in enumerate(runs))
    body = []
    for key in keys:
        row = [values.get(key, _MISSING) for values in flat]
        differs = len(runs) > 1 and len({"\0" if v is _MISSING else _canonical(v) for v in row}) > 1
        cells = "".join('<td class="missing">\u2013</td>' if v is _MISSING else f"<td>{_cell(v)}</td>" for v in row)
        body.append(f'<tr{" class=diff" if differs else ""}><th>{_e(key)}</th>{cells}</tr>')
    return f'<div class="scroll"><table class="kv">{"<tr>" + head + "</tr>"}{"".join(body)}</table></div>'


def _legend(indices: Sequence[int], runs: Sequence["StoredRun"]) -> str:
    items = "".join(f'<li title="{_e(runs[i].id)}">{_swatch(i)}{_e(_label(runs[i]))}</li>' for i in indices)
    return f'<ul class="legend">{items}</ul>'


def _figure(number: int, metric: str, series: Mapping[int, _Series], runs: Sequence["StoredRun"],
            kind: _XKind) -> Tuple[str, Dict[str, Any]]:
    """One chart card (caption, SVG, legend) and its hover data."""
    svg, data = _chart_svg(metric, series, runs, kind.integer)
    note = ""
    if any(s.downsampled for s in series.values()):
        total = sum(s.count for s in series.values())
        note = f'<span class="note">downsampled from {total:,} points</span>'
    figure = (f'<figure class="chart" data-chart="{number}"><figcaption><span class="metric">{_e(metric)}</span>'
              f'{note}</figcaption>{svg}{_legend(list(series), runs)}<div class="tip" hidden></div></figure>')
    return figure, {**data, "l": kind.label}


def _chart_section(charts: _Charts, runs: Sequence["StoredRun"], kind: _XKind,
                   chart_data: List[Dict[str, Any]]) -> str:
    """The charts of one section; their hover data is appended to ``chart_data``."""
    figures = []
    for metric, series in charts.metrics.items():
        drawn = {index: s for index, s in series.items() if s.finite()}
        if drawn:
            figure, data = _figure(len(chart_data), metric, drawn, runs, kind)
            chart_data.append(data)
            figures.append(figure)
    return f'<div class="{kind.css}">{"".join(figures)}</div>' if figures else ""


def _safe_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open markup."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _stores(runs: Sequence["StoredRun"]) -> List[str]:
    return list(dict.fromkeys(run.root for run in runs))


# --- page ------------------------------------------------------------------------------------
_CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--grid:#eaeef2;--axis:#8c959f;
--line:#d1d9e0;--card:#f6f8fa;--diff:#fff3b0}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--grid:#262c36;
--axis:#656c76;--line:#3d444d;--card:#151b23;--diff:#3d3000}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1320px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 2px;overflow-wrap:anywhere}
h2{font-size:16px;margin:28px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h2 small{font-weight:400;color:var(--muted);font-size:12px;margin-left:8px}
.meta{color:var(--muted);margin:0;font-size:13px}
code,.kv td,.kv th{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 12px 4px 0;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
tr:first-child th{color:var(--muted);font-weight:600;font-size:12px;font-family:inherit}
.kv th{font-weight:400}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.diff td,tr.diff th{background:var(--diff)}
td.missing,.empty{color:var(--muted)}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.badge{color:#fff;border-radius:9px;padding:1px 8px;font-size:11px;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.charts.small{grid-template-columns:repeat(auto-fill,minmax(290px,1fr))}
.small .plot text{font-size:13px}
.chart{margin:0;padding:10px 12px 8px;border:1px solid var(--line);border-radius:8px;background:var(--card);position:relative}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px;overflow-wrap:anywhere}
.note{font-weight:400;color:var(--muted);font-size:11px;margin-left:8px}
.plot{display:block;width:100%;height:auto;overflow:visible}
.plot .grid line{stroke:var(--grid)}
.plot .axis line,.plot .cursor{stroke:var(--axis)}
.plot text{fill:var(--muted);font-size:11px;font-family:inherit}
.plot path{fill:none;stroke-width:1.7;stroke-linejoin:round;stroke-linecap:round}
.legend{list-style:none;margin:2px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:0 14px;font-size:12px;color:var(--muted)}
.tip{position:absolute;top:34px;pointer-events:none;background:var(--bg);border:1px solid var(--line);border-radius:6px;
padding:4px 8px;font-size:12px;box-shadow:0 2px 8px rgba(0,0,0,.18);white-space:nowrap;z-index:1}
.tip b{font-weight:600}
footer{margin-top:32px;color:var(--muted);font-size:12px}
"""

_JS = """(function(){
var D=JSON.parse(document.getElementById("report-data").textContent);
function near(p,x){var lo=0,hi=p.length/2-1;if(hi<0)return -1;while(lo<hi){var m=(lo+hi)>>1;if(p[2*m]<x)lo=m+1;else hi=m;}
if(lo>0&&x-p[2*lo-2]<p[2*lo]-x)lo--;return lo;}
function fmt(v){return Math.abs(v)>=1e6||(v!==0&&Math.abs(v)<1e-3)?v.toExponential(3):String(+v.toPrecision(6));}
document.querySelectorAll("figure[data-chart]").forEach(function(f){
var c=D.charts[+f.dataset.chart],a=c.x,s=f.querySelector("svg"),t=f.querySelector(".tip"),k=s.querySelector(".cursor");
s.addEventListener("mousemove",function(ev){var q=s.createSVGPoint();q.x=ev.clientX;q.y=ev.clientY;
var p=q.matrixTransform(s.getScreenCTM().inverse()),x=a[0]+(p.x-a[2])/(a[3]-a[2])*(a[1]-a[0]),hx=null,rows=[];
c.s.forEach(function(e){var i=near(e[1],x);if(i<0)return;var px=e[1][2*i];rows.push([D.runs[e[0]],px,e[1][2*i+1]]);
if(hx===null||Math.abs(px-x)<Math.abs(hx-x))hx=px;});
if(hx===null)return;t.textContent="";var h=document.createElement("b");h.textContent=c.l+" "+fmt(hx);t.appendChild(h);
rows.forEach(function(r){var d=document.createElement("div"),w=document.createElement("i");w.className="sw";
w.style.background=r[0].c;d.appendChild(w);
d.appendChild(document.createTextNode(r[0].n+": "+fmt(r[2])+(r[1]===hx?"":" ("+c.l+" "+fmt(r[1])+")")));t.appendChild(d);});
var hp=a[2]+(hx-a[0])/(a[1]-a[0])*(a[3]-a[2]);k.setAttribute("x1",hp);k.setAttribute("x2",hp);
k.setAttribute("visibility","visible");t.hidden=false;
var b=f.getBoundingClientRect(),l=ev.clientX-b.left+14;if(l+t.offsetWidth>b.width)l=ev.clientX-b.left-14-t.offsetWidth;
t.style.left=Math.max(0,l)+"px";});
s.addEventListener("mouseleave",function(){t.hidden=true;k.setAttribute("visibility","hidden");});});
document.documentElement.setAttribute("data-hover","ready");
})();"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()}'")


def _header(title: str, runs: Sequence["StoredRun"]) -> str:
    stores = ", ".join(f"<code>{_e(root)}</code>" for root in _stores(runs))
    projects = list(dict.fromkeys(run.project for run in runs))
    facts = [f"generated {_e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}", f"store {stores}",
             f"{len(runs)} run{'s' if len(runs) != 1 else ''}",
             f"project{'s' if len(projects) != 1 else ''} " + ", ".join(_e(p) for p in projects)]
    return f'<header><h1>{_e(title)}</h1><p class="meta">{_DOT.join(facts)}</p></header>'


def _section(title: str, body: str, note: str = "") -> str:
    small = f"<small>{note}</small>" if note else ""
    return f"<section><h2>{_e(title)}{small}</h2>{body}</section>" if body else ""


def _read(runs: Sequence["StoredRun"], max_points: int,
          progress: Optional[Callable[[int], None]]) -> Tuple[_Charts, _Charts]:
    history, system = _Charts(max_points), _Charts(max_points)
    for index, run in enumerate(runs):
        _read_history(history, index, run, progress)
        _read_system(system, index, run)
    return history, system


def render_report(runs: Sequence["StoredRun"], title: Optional[str] = None, max_points: int = 1000,
                  progress: Optional[Callable[[int], None]] = None) -> str:
    """The report as one self-contained HTML page; ``progress(n)`` is told the history rows read."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to report on: pass at least one stored run (mplogger.Api(dir).runs())")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points!r}")
    title = title or "mplogger report"
    history, system = _read(runs, max_points, progress)
    chart_data: List[Dict[str, Any]] = []
    metrics = _chart_section(history, runs, _STEPS, chart_data)
    machine = _chart_section(system, runs, _SECONDS, chart_data)
    data = {"runs": [{"n": _label(run), "c": _colour(i)} for i, run in enumerate(runs)], "charts": chart_data}
    body = "".join([
        _header(title, runs),
        _section("Runs", _runs_table(runs)),
        _section("Metrics", metrics or '<p class="empty">(no numeric metrics logged)</p>', "x: step"),
        _section("Config", _compare_table([run.config for run in runs], runs), _DIFF_NOTE),
        _section("Summary", _compare_table([run.summary for run in runs], runs), _DIFF_NOTE),
        _section("System", machine, "x: seconds since the run started"),
    ])
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}<footer>mplogger report \u00b7 charts keep at most {max_points:,} points "
            "per run and metric (the min and max of each stretch)</footer></main>"
            f'<script type="application/json" id="report-data">{_safe_json(data)}</script>'
            f"<script>{_JS}</script></body></html>\n")


def write_report(runs: Sequence["StoredRun"], path: str, title: Optional[str] = None, max_points: int = 1000,
                 progress: Optional[Callable[[int], None]] = None) -> str:
    """Write the report to ``path`` atomically (a reader never sees half a file); return the path."""
    text = render_report(runs, title=title, max_points=max_points, progress=progress)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: there is no folder {folder}")
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:  # lone surrogates
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
