"""The chart renderer of the report and the notebook (reader side): series read from the store,
downsampled, drawn as inline SVG.

Histories are read key by key and downsampled per series as they are read (min and max per
bucket), so memory stays bounded by ``max_points`` per series whatever the number of rows; a key
stored in many blocks is read from the minimum, maximum, first and last value the store keeps
per block, not point by point. The SVG carries its colours as presentation attributes (text and
grid in ``currentColor``), so it reads with no stylesheet and no script, light or dark; the
report's stylesheet refines it. A chart may carry a hover read-out that needs no script: one
``<title>`` per vertical band.
"""

from __future__ import annotations

import bisect
import dataclasses
import html
import math
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from mplogger import _store
from mplogger._shared._values import as_number, flatten

if TYPE_CHECKING:  # pragma: no cover
    from mplogger._readers._api import StoredRun

__all__ = [
    "PALETTE", "CARD", "REPORT", "SECONDS", "STEPS", "Frame", "Series", "SeriesSet", "XKind",
    "chart_number", "chart_section", "chart_svg", "colour", "escape", "figure_html", "legend_html",
    "read_history", "read_system", "reading", "run_label", "swatch",
]

PALETTE = (
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951",
    "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0",
)
PROGRESS_EVERY = 1000

_LARGEST = 1e300  # beyond this a value is drawn as a gap: an axis cannot span it


@dataclasses.dataclass(frozen=True)
class Frame:
    """A chart's size in SVG units and its margins around the plotting area."""

    width: int
    height: int
    left: int = 50
    right: int = 12
    top: int = 10
    bottom: int = 24


REPORT = Frame(440, 240)
CARD = Frame(340, 180, left=46)

@dataclasses.dataclass(frozen=True)
class XKind:
    """What a section's x axis is: its read-out label, whether ticks are whole, the grid's class."""

    label: str
    integer: bool
    css: str


STEPS = XKind("step", integer=True, css="charts")
SECONDS = XKind("s", integer=False, css="charts small")

Point = Tuple[float, Optional[float]]  # (x, y); y None marks a gap (NaN or infinity)
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

    def points(self) -> List[Point]:
        found: List[Point] = [] if self.lo is None else [self.lo]
        if self.hi is not None and self.hi != self.lo:
            found.append(self.hi)
        found.extend((x, None) for x in self.gaps)
        return sorted(found, key=lambda point: point[0])


class Series:
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
        """``add`` each (x, y) of ``xs`` and ``ys`` (floats, as :func:`chart_number` gives them), a
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

    def points(self) -> List[Point]:
        return [point for bucket in self.buckets for point in bucket.points()]

    def finite(self) -> List[Tuple[float, float]]:
        return [(x, y) for x, y in self.points() if y is not None]


# --- reading ---------------------------------------------------------------------------------
def chart_number(value: Any) -> Optional[float]:
    """The value as a float when it is a plottable number (bools and everything else: None); one
    beyond what an axis can span (an int past the floats, an infinity, NaN) is a gap (inf)."""
    number = as_number(value)
    if number is None:
        return None
    try:
        number = float(number)
    except OverflowError:
        return math.inf
    return number if -_LARGEST <= number <= _LARGEST else math.inf


def _metric_values(row: Mapping[str, Any]) -> Iterator[Tuple[str, float]]:
    """The row's numeric metrics by dotted key, mplogger's own ``_`` keys left out."""
    for key, value in row.items():
        if key.startswith("_"):
            continue
        if type(value) is dict:
            yield from ((k, n) for k, n in _metric_values(flatten(value, key + ".")) if "._" not in k)
            continue
        number = chart_number(value)
        if number is not None:
            yield key, number


def _without_media(value: Any) -> Any:
    """A stored value with its media references (dicts with ``_type``) as None: their fields are
    not metrics (read with media loaded, they are media objects, which have no numbers)."""
    if type(value) is dict:
        return None if "_type" in value else {key: _without_media(item) for key, item in value.items()}
    return value


class SeriesSet:
    """Series per metric per run, in the order metrics are first seen."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.metrics: Dict[str, Dict[int, Series]] = {}

    def add(self, run_index: int, x: float, row: Mapping[str, Any], wanted: Optional[set] = None) -> None:
        for key, y in _metric_values(row):
            if wanted is None or key in wanted:
                self.series(key, run_index).add(x, y)

    def drawable(self, run_index: int) -> int:
        """How many metrics of run ``run_index`` have a finite point to draw."""
        return sum(1 for by_run in self.metrics.values()
                   if run_index in by_run and by_run[run_index].finite())

    def series(self, key: str, run_index: int) -> Series:
        """The series of ``key`` for run ``run_index``, made when first asked for."""
        by_run = self.metrics.setdefault(key, {})
        series = by_run.get(run_index)
        if series is None:
            series = by_run[run_index] = Series(self.max_points)
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


def read_history(charts: SeriesSet, index: int, run: "StoredRun",
                 progress: Optional[Callable[[int], None]] = None, keys: Optional[Sequence[str]] = None,
                 limit: Optional[int] = None) -> int:
    """Read one run's history into ``charts`` (x = ``_step``) key by key, telling ``progress`` the rows read.

    A key stored in few blocks is read point by point; one in many blocks (at least half as
    many as a chart keeps points) from the blocks' minimum, maximum, first and last values,
    which keeps each stretch's extremes as downsampling would. Keys holding dicts are read
    value by value and charted by dotted key. Rows of mplogger 0.1 are read row by row first.
    The run's new metrics take their places in the order of their first numbers.

    ``keys``: only these metrics (dotted names). ``limit``: stop once that many metrics can be
    drawn. Returns how many stored keys were left unread because of ``limit``.
    """
    wanted = None if keys is None else set(keys)
    conn = run.conn
    until = run.last_seq()
    pending = 0
    for _, row, media in _store.legacy_rows(conn, run.id, until):
        charts.add(index, row["_step"], _without_media(row) if media else row, wanted)
        pending += 1
        if progress is not None and pending >= PROGRESS_EVERY:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    rows = _store.block_rows(conn, run.id, until)
    stored = [key for key in _store.block_keys(conn, run.id, until) if not key.startswith("_")]
    nested = set(_store.object_keys(conn, run.id)) if rows else set()
    if wanted is not None:
        stored = [key for key in stored if key in wanted
                  or (key in nested and any(name.startswith(key + ".") for name in wanted))]
    reader = _KeyReader(charts, index, conn, run.id, until, _RowsRead(progress, rows, len(stored)), wanted)
    unread = 0
    if rows:
        known = list(charts.metrics)
        for rank, key in enumerate(stored):
            if limit is not None and charts.drawable(index) >= limit:
                unread = len(stored) - rank
                break
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
    return unread


class _KeyReader:
    """Reads one run's keys into ``charts``, noting where each new metric got its first number
    (step, the key's rank, its place among a dict's keys): the order a row-by-row read finds them."""

    def __init__(self, charts: SeriesSet, index: int, conn: Any, run_id: str, until: int, told: _RowsRead,
                 wanted: Optional[set] = None) -> None:
        self.charts, self.index, self.conn, self.run_id, self.until, self.told = charts, index, conn, run_id, until, told
        self.wanted = wanted
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

    def _series(self, metric: str, x: float, rank: int, place: int = 0) -> Series:
        self.first.setdefault(metric, (x, rank, place))
        return self.charts.series(metric, self.index)

    def points(self, key: str, rank: int) -> None:
        """Every point of a key of numbers."""
        for xs, values in self._blocks(key):
            if set(map(type, values)) != _FLOATS:
                numbers = [(x, chart_number(value)) for x, value in zip(xs, values)]
                xs = [x for x, number in numbers if number is not None]
                values = [number for _, number in numbers if number is not None]
            if values:
                self._series(key, xs[0], rank).extend(xs, values)

    def values(self, key: str, rank: int) -> None:
        """A key whose values include dicts: each value's numbers by dotted key, as a row's are."""
        for xs, values in self._blocks(key):
            for x, value in zip(xs, values):
                for place, (metric, y) in enumerate(_metric_values({key: _without_media(value)})):
                    if self.wanted is None or metric in self.wanted:
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
                    ys.append(chart_number(float(y)))
        if start == math.inf:  # no number at all: nothing to draw
            return
        series = self._series(key, start, rank)
        series.extend(xs, ys)
        series.count = count
        series.summarised = True


def read_system(charts: SeriesSet, index: int, run: "StoredRun") -> None:
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
_TEXT = 'fill="currentColor" fill-opacity=".7" font-size="11"'
_GRID = 'stroke="currentColor" stroke-opacity=".12"'
_AXIS = 'stroke="currentColor" stroke-opacity=".45"'
_LINE = 'fill="none" stroke-width="1.7" stroke-linejoin="round" stroke-linecap="round"'
_BANDS = 48  # vertical bands of a chart's script-free hover read-out


def escape(value: Any) -> str:
    """``value`` as text safe inside HTML and SVG, attributes included."""
    return html.escape(str(value), quote=True)


def _segments(points: Sequence[Point]) -> Iterator[List[Tuple[float, float]]]:
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


def _series_svg(points: Sequence[Point], x: _Axis, y: _Axis, stroke: str, run_id: str, dashes: str = "") -> str:
    """One run's line: a path (a move per segment, so gaps stay gaps) and a dot per lone point."""
    strokes, dots = [], []
    for segment in _segments(points):
        coords = [f"{x(px):.1f} {y(py):.1f}" for px, py in segment]
        if len(coords) == 1:
            dots.append(f'<circle cx="{x(segment[0][0]):.1f}" cy="{y(segment[0][1]):.1f}" r="3"/>')
        else:
            strokes.append("M" + coords[0] + "L" + " ".join(coords[1:]))
    path = f'<path d="{"".join(strokes)}" {_LINE}/>' if strokes else ""
    pattern = f' stroke-dasharray="{dashes}"' if dashes else ""
    return (f'<g class="series" data-run="{escape(run_id)}" stroke="{stroke}" fill="{stroke}"{pattern}>'
            f'{path}{"".join(dots)}</g>')


def _axes_svg(x: _Axis, y: _Axis, frame: Frame, inline: bool) -> str:
    """Grid, axis and tick labels; ``inline``: coloured by attributes (else the report's stylesheet)."""
    grid, axis, text = (f" {_GRID}", f" {_AXIS}", f" {_TEXT}") if inline else ("", "", "")
    right, base = frame.width - frame.right, frame.height - frame.bottom
    parts = [f'<g class="grid"{grid}>']
    parts += [f'<line x1="{frame.left}" x2="{right}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>' for v in y.ticks]
    parts.append(f'</g><g class="axis"{axis}>')
    parts.append(f'<line x1="{frame.left}" x2="{right}" y1="{base}" y2="{base}"/>')
    parts += [f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{base}" y2="{base + 4}"/>' for v in x.ticks]
    parts.append(f'</g><g class="labels"{text}>')
    parts += [f'<text x="{frame.left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{label}</text>'
              for v, label in zip(y.ticks, _tick_labels(y.ticks, y.step))]
    parts += [f'<text x="{x(v):.1f}" y="{base + 16}" text-anchor="middle">{label}</text>'
              for v, label in zip(x.ticks, _tick_labels(x.ticks, x.step))]
    parts.append("</g>")
    return "".join(parts)


def reading(value: float) -> str:
    """A number as a hover read-out shows it: six significant digits, or exponent form."""
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.6g}"


def _hover_bands(finite: Mapping[int, List[Tuple[float, float]]], x: _Axis, frame: Frame,
                 names: Mapping[int, str], label: str) -> str:
    """Transparent vertical bands, each with a ``<title>`` naming every series' nearest point:
    a hover read-out that works where scripts do not run."""
    columns = {index: ([px for px, _ in pts], [py for _, py in pts]) for index, pts in finite.items() if pts}
    width = (frame.width - frame.right - frame.left) / _BANDS
    height = frame.height - frame.bottom - frame.top
    bands = []
    for band in range(_BANDS):
        left = frame.left + band * width
        at = x.lo + (left + width / 2 - x.start) / (x.end - x.start) * (x.hi - x.lo)
        found = []
        for index, (xs, ys) in columns.items():
            i = bisect.bisect_left(xs, at)
            if i == len(xs) or (i > 0 and at - xs[i - 1] < xs[i] - at):
                i -= 1
            found.append((abs(xs[i] - at), xs[i], names.get(index, ""), ys[i]))
        nearest = min(found)[1]
        lines = [f"{label} {reading(nearest)}"]
        lines += [f"{name}: {reading(py)}" + ("" if px == nearest else f" ({label} {reading(px)})")
                  for _, px, name, py in found]
        bands.append(f'<rect x="{left:.1f}" y="{frame.top}" width="{width:.1f}" height="{height}" '
                     f'fill="transparent"><title>{escape(chr(10).join(lines))}</title></rect>')
    return f'<g class="hover">{"".join(bands)}</g>'


def chart_svg(metric: str, series: Mapping[int, Series], runs: Sequence["StoredRun"], kind: "XKind",
              frame: Frame = REPORT, inline: bool = False) -> Tuple[str, Dict[str, Any]]:
    """The chart's SVG and the data the report's hover script reads for it; ``inline``: styled by
    its own attributes (no stylesheet), with the script-free read-out."""
    finite = {index: s.finite() for index, s in series.items()}
    xs = [px for pts in finite.values() for px, _ in pts]
    ys = [py for pts in finite.values() for _, py in pts]
    x = _Axis(xs, frame.left, frame.width - frame.right, integer=kind.integer, snap=False)
    y = _Axis(ys, frame.height - frame.bottom, frame.top, integer=False, snap=True)
    lines = [_series_svg(s.points(), x, y, colour(index), runs[index].id, dash(index))
             for index, s in series.items()]
    names = {index: (run_label(runs[index]) if len(series) > 1 else metric) for index in series}
    bands = _hover_bands(finite, x, frame, names, kind.label) if inline else ""
    svg = (f'<svg class="plot" viewBox="0 0 {frame.width} {frame.height}" role="img" aria-label="{escape(metric)}" '
           f'data-metric="{escape(metric)}" style="display:block;width:100%;height:auto;overflow:visible">'
           f'{_axes_svg(x, y, frame, inline)}{"".join(lines)}{bands}'
           f'<line class="cursor" y1="{frame.top}" y2="{frame.height - frame.bottom}" visibility="hidden"/></svg>')
    data = {"x": [x.lo, x.hi, x.start, x.end],
            "s": [[index, [_short(v) for point in pts for v in point]] for index, pts in finite.items()]}
    return svg, data


def _short(value: float) -> Union[int, float]:
    """Six significant digits: enough for a read-out, and a smaller file."""
    number = float(f"{value:.6g}")
    return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number


# --- HTML pieces -----------------------------------------------------------------------------
def colour(index: int) -> str:
    """Run ``index``'s line colour."""
    return PALETTE[index % len(PALETTE)]


_DASHES = ("", "7 4", "2 3", "10 3 2 3")


def dash(index: int) -> str:
    """A dash pattern after the palette's first round, so run 11 is not drawn as run 1."""
    return _DASHES[(index // len(PALETTE)) % len(_DASHES)]


_SWATCH = "display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px;"


def swatch(index: int, inline: bool = False) -> str:
    """A small square in run ``index``'s colour and dash; ``inline``: sized by its own style, with
    no stylesheet (the report's sizes its class ``sw``)."""
    shade = colour(index)
    shape = _SWATCH if inline else ""
    if not dash(index):
        return f'<i class="sw" style="{shape}background:{shade}"></i>'
    gap = 2 + index // len(PALETTE)
    return (f'<i class="sw" style="{shape}background:repeating-linear-gradient(90deg,{shade} 0 3px,'
            f'transparent 3px {3 + gap}px);outline:1px solid {shade}"></i>')


def run_label(run: "StoredRun") -> str:
    return run.name or run.id


_LEGEND = "list-style:none;margin:2px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:0 14px;font-size:12px;opacity:.8"


def legend_html(indices: Sequence[int], runs: Sequence["StoredRun"], inline: bool = False) -> str:
    items = "".join(f'<li title="{escape(runs[i].id)}">{swatch(i, inline)}{escape(run_label(runs[i]))}</li>'
                    for i in indices)
    return f'<ul class="legend"{_style(inline, _LEGEND)}>{items}</ul>'


_FIGURE = ("margin:0;padding:6px 8px 4px;border:1px solid rgba(127,127,127,.3);border-radius:6px;"
           "position:relative;min-width:0;width:{width}px;max-width:100%;box-sizing:border-box")
_CAPTION = "font-weight:600;font-size:12px;margin-bottom:2px;overflow-wrap:anywhere"
_NOTE = "font-weight:400;font-size:11px;margin-left:8px;opacity:.7"


def figure_html(number: int, metric: str, series: Mapping[int, Series], runs: Sequence["StoredRun"],
                kind: "XKind", frame: Frame = REPORT, inline: bool = False) -> Tuple[str, Dict[str, Any]]:
    """One chart card (caption, SVG, legend) and its hover data. ``inline``: styled by its own
    attributes, with the script-free read-out and no legend for a single run (a notebook's card)."""
    svg, data = chart_svg(metric, series, runs, kind, frame, inline)
    note = ""
    if any(s.downsampled for s in series.values()):
        total = sum(s.count for s in series.values())
        note = f'<span class="note"{_style(inline, _NOTE)}>downsampled from {total:,} points</span>'
    legend = legend_html(list(series), runs, inline) if not inline or len(series) > 1 else ""
    tip = "" if inline else '<div class="tip" hidden></div>'
    figure = (f'<figure class="chart" data-chart="{number}"{_style(inline, _FIGURE.format(width=frame.width + 18))}>'
              f'<figcaption{_style(inline, _CAPTION)}><span class="metric">{escape(metric)}</span>{note}</figcaption>'
              f'{svg}{legend}{tip}</figure>')
    return figure, {**data, "l": kind.label}


def _style(inline: bool, style: str) -> str:
    return f' style="{style}"' if inline else ""


_GRID_STYLE = "display:flex;flex-wrap:wrap;gap:10px;margin:4px 0"


def chart_section(charts: SeriesSet, runs: Sequence["StoredRun"], kind: XKind,
                  chart_data: List[Dict[str, Any]], frame: Frame = REPORT, inline: bool = False,
                  limit: Optional[int] = None) -> str:
    """The charts of one section, at most ``limit``; their hover data is appended to ``chart_data``."""
    figures = []
    for metric, series in charts.metrics.items():
        if limit is not None and len(figures) >= limit:
            break
        drawn = {index: s for index, s in series.items() if s.finite()}
        if drawn:
            figure, data = figure_html(len(chart_data), metric, drawn, runs, kind, frame, inline)
            chart_data.append(data)
            figures.append(figure)
    return f'<div class="{kind.css}"{_style(inline, _GRID_STYLE)}>{"".join(figures)}</div>' if figures else ""
