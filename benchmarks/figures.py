"""What every section measures, as one type (:class:`Figure`), and the one table every section prints
(:func:`render`): rows × measures, a ratio column where a figure names its baseline row."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from benchmarks.common import format_number, table_lines

Value = Union[float, int, str, None]


@dataclasses.dataclass(frozen=True)
class Figure:
    """One measured value: ``row`` × ``measure`` of a section, the median of ``samples`` when there
    are several. ``baseline`` names the row (same section and measure, same run) a ratio is taken
    against: value / baseline, or baseline / value for a rate (a unit ending in ``/s``), so above 1
    is always slower or larger than the baseline. ``value`` None: not measured (``note`` says why)."""

    section: str
    row: str
    measure: str
    value: Value
    unit: str = ""
    samples: Tuple[float, ...] = ()
    baseline: Optional[str] = None
    note: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    """What a section returns: its figures, lines said under its table, which way the table goes
    (``turn``: a line per measure; None: whichever is longer goes down), and what failed to be
    measured (``failures``: the harness then exits 1)."""

    figures: List[Figure] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)
    turn: Optional[bool] = None
    failures: List[str] = dataclasses.field(default_factory=list)

    def render(self) -> str:
        return render(self.figures, self.notes, self.turn)

    def add(self, section: str, row: str, measure: str, samples: Union[Value, Sequence[float]], unit: str = "",
            baseline: Optional[str] = None, note: str = "") -> Figure:
        """A figure from one value, or the median of several samples (None samples dropped)."""
        if isinstance(samples, (list, tuple)):
            kept = tuple(s for s in samples if s is not None)
            value: Value = statistics.median(kept) if kept else None
        else:
            kept, value = (), samples
        figure = Figure(section, row, measure, value, unit, kept if len(kept) > 1 else (), baseline, note)
        self.figures.append(figure)
        return figure

    def value(self, row: str, measure: str) -> Value:
        """The value of ``row`` × ``measure`` (None if there is none)."""
        for figure in self.figures:
            if figure.row == row and figure.measure == measure:
                return figure.value
        return None


def is_rate(unit: str) -> bool:
    return unit.endswith("/s")


def ratio(figure: Figure, base: Optional[Figure]) -> Optional[float]:
    """``figure`` / ``base`` (``base`` / ``figure`` for a rate); None where either is not a number."""
    a = figure.value
    b = base.value if base is not None else None
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or isinstance(a, bool) or not a or not b:
        return None
    return b / a if is_rate(figure.unit) else a / b


def _ordered(names: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(names))


def _cell(figure: Optional[Figure], with_unit: bool) -> str:
    if figure is None:
        return ""
    if figure.value is None:
        return figure.note or "-"
    text = format_number(figure.value)
    if len(figure.samples) > 1:
        text += f" [{format_number(min(figure.samples))}–{format_number(max(figure.samples))}]"
    return f"{text} {figure.unit}" if with_unit and figure.unit else text


def _ratio_cell(figure: Optional[Figure], base: Optional[Figure]) -> str:
    if figure is None or figure.baseline is None:
        return ""
    value = ratio(figure, base)
    return "-" if value is None else f"{value:.2f}×"


def _label(name: str, figures: List[Figure]) -> Tuple[str, bool]:
    """A measure's (or row's) label with its unit when all its figures share one; whether the
    cells must carry their units instead."""
    units = {f.unit for f in figures}
    if len(units) == 1:
        unit = units.pop()
        return (f"{name}, {unit}" if unit else name), False
    return name, True


def _base_header(figures: List[Figure]) -> str:
    bases = {f.baseline for f in figures if f.baseline is not None}
    return f"÷ {bases.pop()}" if len(bases) == 1 else "÷ base"


def render(figures: Sequence[Figure], notes: Sequence[str] = (), turn: Optional[bool] = None) -> str:
    """The figures as a table, then ``notes``. One line per row and a column per measure, turned
    the other way (``turn``; by default when there are more measures than rows); after each column
    holding a figure with a baseline, the ratios to it."""
    if not figures:
        return "\n".join(notes)
    index = {(f.row, f.measure): f for f in figures}
    rows = _ordered(f.row for f in figures)
    measures = _ordered(f.measure for f in figures)
    transposed = len(measures) > len(rows) if turn is None else turn
    lines_of, columns_of = (measures, rows) if transposed else (rows, measures)

    def at(line: str, column: str) -> Optional[Figure]:
        return index.get((column, line) if transposed else (line, column))

    def base_of(figure: Optional[Figure]) -> Optional[Figure]:
        if figure is None or figure.baseline is None:
            return None
        return index.get((figure.baseline, figure.measure))

    headers = [""]
    plan: List[Tuple[str, bool, bool]] = []  # column, cells carry units, is a ratio column
    for column in columns_of:
        cells = [f for f in (at(line, column) for line in lines_of) if f is not None]
        label, with_units = _label(column, cells) if not transposed else (column, False)
        headers.append(label)
        plan.append((column, with_units, False))
        with_base = [f for f in cells if f.baseline is not None]
        if with_base:
            headers.append(_base_header(with_base))
            plan.append((column, False, True))
    body = []
    for line in lines_of:
        if transposed:
            label, with_units = _label(line, [f for f in (at(line, c) for c in columns_of) if f is not None])
        else:
            label, with_units = line, False
        cells = [label]
        for column, column_units, is_ratio in plan:
            figure = at(line, column)
            cells.append(_ratio_cell(figure, base_of(figure)) if is_ratio else _cell(figure, column_units or with_units))
        body.append(cells)
    return "\n".join([*table_lines(headers, body), *([""] + list(notes) if notes else [])])
