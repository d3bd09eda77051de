"""benchmarks.figures: one figure type, one table for every section."""

from __future__ import annotations

from benchmarks.figures import Figure, Report, ratio, render


def _lines(text: str) -> list:
    return [line.split("  ")[0].strip() for line in text.splitlines()[2:] if line.strip()]


def test_rows_by_measures_with_a_ratio_column_per_measure_with_a_baseline():
    r = Report()
    for row, us, rate in (("mine", 4.0, 100.0), ("floor", 2.0, 400.0), ("other", 8.0, 50.0)):
        r.add("s", row, "cost", us, "µs", None if row == "floor" else "floor")
        r.add("s", row, "rate", rate, "rows/s", None if row == "floor" else "floor")
        r.add("s", row, "who", row.upper())
    text = render(r.figures, ["a note"])
    header = text.splitlines()[0]
    assert header.split() == ["cost,", "µs", "÷", "floor", "rate,", "rows/s", "÷", "floor", "who"]
    assert _lines(text)[:3] == ["mine", "floor", "other"] and text.endswith("\na note")
    mine = text.splitlines()[2].split()
    assert mine == ["mine", "4.00", "2.00×", "100", "4.00×", "MINE"]  # rates: floor ÷ value


def test_more_measures_than_rows_turns_the_table():
    r = Report()
    for measure in ("a", "b", "c"):
        r.add("s", "live", measure, [1.0, 3.0, 2.0], "ms", "none")
        r.add("s", "none", measure, 1.0, "ms")
    text = render(r.figures)
    assert text.splitlines()[0].split() == ["live", "÷", "none", "none"]
    assert _lines(text) == ["a, ms", "b, ms", "c, ms"]
    assert "2.00 [1.00–3.00]" in text and "2.00×" in text


def test_mixed_units_go_into_the_cells_and_missing_values_show_their_note():
    r = Report()
    r.add("s", "x: time", "value", 1.5, "s")
    r.add("s", "x: size", "value", 3.0, "MiB")
    r.add("s", "x: pandas", "value", [None], "s", note="not installed")
    text = render(r.figures)
    assert "1.50 s" in text and "3.00 MiB" in text and "not installed" in text


def test_ratio_direction_and_gaps():
    base = Figure("s", "b", "m", 2.0, "s")
    assert ratio(Figure("s", "a", "m", 4.0, "s", baseline="b"), base) == 2.0
    assert ratio(Figure("s", "a", "m", 4.0, "rows/s", baseline="b"), Figure("s", "b", "m", 8.0, "rows/s")) == 2.0
    assert ratio(Figure("s", "a", "m", None, "s", baseline="b"), base) is None
    assert ratio(Figure("s", "a", "m", "text", "s", baseline="b"), base) is None
    assert render([Figure("s", "a", "m", 4.0, "s", baseline="gone")]).splitlines()[2].split()[-1] == "-"
