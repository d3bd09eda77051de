"""A run's history as a file: CSV, JSON Lines or Parquet, complete (never downsampled).

- ``jsonl``: one object a row, as logged (nested dicts kept), plus ``_step``, ``_timestamp`` and
  ``_runtime``. Non-finite floats are written ``NaN``/``Infinity``/``-Infinity``, which Python's
  ``json``, pandas and jq read. Media are their stored references (paths relative to the run's
  folder).
- ``csv``: one column a flattened (dotted) key, in first-seen order after ``_step``,
  ``_runtime`` and ``_timestamp``; a key a row lacks is an empty cell; lists and media are JSON
  text. Two passes over the store (keys, then rows), so memory stays flat for any run length.
- ``parquet``: the flattened rows through pandas and pyarrow (``pip install 'mplogger[parquet]'``).

Written to a terminal (no file, stdout a terminal), each line is escaped by
:func:`mplogger._terminal.printable`: stored keys and values cannot drive the terminal. Written to
a file or a pipe, the data is exact.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence

from mplogger._terminal import printable
from mplogger._values import flatten

__all__ = ["FORMATS", "write_history"]

FORMATS = ("csv", "jsonl", "parquet")
_FIRST = ("_step", "_runtime", "_timestamp")


def write_history(run: Any, output: Optional[str] = None, format: str = "csv",
                  keys: Optional[Sequence[str]] = None,
                  progress: Optional[Callable[[int], None]] = None) -> int:
    """Write ``run``'s rows to ``output`` (a path; stdout when None); returns the rows written.

    The rows are those stored when it starts: a run still being written exports consistently.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; formats are {', '.join(FORMATS)}")
    if format == "parquet" and output is None:
        raise ValueError("parquet is binary: give a file to write it to (-o FILE)")
    if output is not None:
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot write {output}: there is no folder {folder}")
    rows = _Rows(run, keys, progress)
    if format == "parquet":
        return _write_parquet(rows, output)
    writer = _write_csv if format == "csv" else _write_jsonl
    if output is None:
        return writer(rows, _TerminalText(sys.stdout) if sys.stdout.isatty() else sys.stdout)

    def write_text(path: str) -> int:
        # backslashreplace: text the store holds with lone surrogates stays readable, never fails
        with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as stream:
            return writer(rows, stream)

    return _atomically(output, write_text)


def _atomically(output: str, write: Callable[[str], int]) -> int:
    """``write`` a temporary file beside ``output``, then rename it: no half-written exports."""
    temporary = f"{output}.part-{os.getpid()}"
    try:
        count = write(temporary)
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return count


class _TerminalText:
    """A text stream to a terminal that escapes each line it is given (line ends are kept)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        lines = (line[:-1] if line.endswith("\r") else line for line in text.split("\n"))
        return self.stream.write("\n".join(printable(line) for line in lines))


class _Rows:
    """A run's rows up to the last one stored when the export began; iterable more than once."""

    def __init__(self, run: Any, keys: Optional[Sequence[str]], progress: Optional[Callable[[int], None]]) -> None:
        self.run, self.keys, self.progress = run, keys, progress
        self.until = run._last_seq()

    def scan(self) -> Iterator[Dict[str, Any]]:
        return self.run._scan(self.keys, load_media=False, until=self.until)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for row in self.scan():
            yield row
            if self.progress is not None:
                self.progress(1)


def _write_jsonl(rows: _Rows, stream: IO[str]) -> int:
    count = 0
    for row in rows:
        ordered = {key: row.pop(key) for key in _FIRST}
        ordered.update(row)
        stream.write(json.dumps(ordered, ensure_ascii=False) + "\n")
        count += 1
    return count


def _flat(row: Dict[str, Any]) -> Dict[str, Any]:
    return {key: json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value
            for key, value in flatten(row).items()}


def _columns(rows: _Rows) -> List[str]:
    seen: Dict[str, None] = dict.fromkeys(_FIRST)
    for row in rows.scan():
        seen.update(dict.fromkeys(flatten(row)))
    return list(seen)


def _write_csv(rows: _Rows, stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=_columns(rows), restval="")
    writer.writeheader()
    count = 0
    for row in rows:
        try:
            writer.writerow(_flat(row))
        except csv.Error as exc:  # Python 3.10's csv cannot write a NUL character at all
            raise ValueError(f"step {row.get('_step')} of the run cannot be written as CSV by Python "
                             f"{sys.version_info.major}.{sys.version_info.minor} ({exc}); export it as "
                             "JSON Lines (.jsonl) or Parquet instead") from exc
        count += 1
    return count


def _write_parquet(rows: _Rows, output: str) -> int:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' parquet engine)
    except ImportError as exc:
        raise ImportError(f"--format parquet needs pandas and pyarrow ({exc.name} is missing): "
                          "pip install 'mplogger[parquet]'") from None
    frame = pd.DataFrame([_flat(row) for row in rows], columns=_columns(rows))
    for column in frame.columns:
        values = [v for v in frame[column] if v is not None and v == v]
        if frame[column].dtype == object and not (all(isinstance(v, str) for v in values)
                                                   or all(isinstance(v, bool) for v in values)):
            frame[column] = [None if v is None or v != v else v if isinstance(v, str) else json.dumps(v)
                             for v in frame[column]]

    def write_parquet(path: str) -> int:
        frame.to_parquet(path, index=False)
        return len(frame)

    return _atomically(output, write_parquet)
