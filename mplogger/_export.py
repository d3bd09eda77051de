"""A run's history as a file: CSV, JSON Lines or Parquet, complete (never downsampled).

- ``jsonl``: one object a row, as logged (nested dicts kept), plus ``_step``, ``_timestamp`` and
  ``_runtime``. Non-finite floats are written ``NaN``/``Infinity``/``-Infinity``, which Python's
  ``json``, pandas and jq read. Media are their stored references (paths relative to the run's
  folder).
- ``csv``: one column a flattened (dotted) key, in first-seen order after ``_step``,
  ``_runtime`` and ``_timestamp``; a key a row lacks is an empty cell; lists and media are JSON
  text. Two passes over the store (keys, then rows), so memory stays flat for any run length.
- ``parquet``: the flattened rows through pandas and pyarrow (``pip install 'mplogger[parquet]'``).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence

from mplogger._values import flatten

__all__ = ["FORMATS", "write_history"]

FORMATS = ("csv", "jsonl", "parquet")
_FIRST = ("_step", "_runtime", "_timestamp")


def write_history(run: Any, output: Optional[str] = None, format: str = "csv",
                  keys: Optional[Sequence[str]] = None,
                  progress: Optional[Callable[[int], None]] = None) -> int:
    """Write ``run``'s rows to ``output`` (a path; stdout when None); returns the rows written."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; formats are {', '.join(FORMATS)}")
    if format == "parquet":
        if output is None:
            raise ValueError("parquet is binary: give a file to write it to (-o FILE)")
        return _write_parquet(run, output, keys, progress)
    writer = _write_csv if format == "csv" else _write_jsonl
    if output is None:
        return writer(run, sys.stdout, keys, progress)

    def write_text(path: str) -> int:
        with open(path, "w", newline="", encoding="utf-8") as stream:
            return writer(run, stream, keys, progress)

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


def _rows(run: Any, keys: Optional[Sequence[str]], progress: Optional[Callable[[int], None]]) -> Iterator[Dict[str, Any]]:
    for row in run._scan(keys, load_media=False):
        yield row
        if progress is not None:
            progress(1)


def _write_jsonl(run: Any, stream: IO[str], keys: Optional[Sequence[str]],
                 progress: Optional[Callable[[int], None]]) -> int:
    count = 0
    for row in _rows(run, keys, progress):
        ordered = {key: row.pop(key) for key in _FIRST}
        ordered.update(row)
        stream.write(json.dumps(ordered, ensure_ascii=False) + "\n")
        count += 1
    return count


def _flat(row: Dict[str, Any]) -> Dict[str, Any]:
    return {key: json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value
            for key, value in flatten(row).items()}


def _columns(run: Any, keys: Optional[Sequence[str]]) -> List[str]:
    seen: Dict[str, None] = dict.fromkeys(_FIRST)
    for row in run._scan(keys, load_media=False):
        seen.update(dict.fromkeys(flatten(row)))
    return list(seen)


def _write_csv(run: Any, stream: IO[str], keys: Optional[Sequence[str]],
               progress: Optional[Callable[[int], None]]) -> int:
    writer = csv.DictWriter(stream, fieldnames=_columns(run, keys), restval="")
    writer.writeheader()
    count = 0
    for row in _rows(run, keys, progress):
        writer.writerow(_flat(row))
        count += 1
    return count


def _write_parquet(run: Any, output: str, keys: Optional[Sequence[str]],
                   progress: Optional[Callable[[int], None]]) -> int:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' parquet engine)
    except ImportError as exc:
        raise ImportError(f"--format parquet needs pandas and pyarrow ({exc.name} is missing): "
                          "pip install 'mplogger[parquet]'") from None
    frame = pd.DataFrame([_flat(row) for row in _rows(run, keys, progress)])
    columns = [c for c in _FIRST if c in frame.columns] + [c for c in frame.columns if c not in _FIRST]
    frame = frame[columns]
    for column in frame.columns:
        if frame[column].dtype == object and not all(isinstance(v, str) or v is None for v in frame[column]):
            frame[column] = [None if v is None or v != v else v if isinstance(v, str) else json.dumps(v)
                             for v in frame[column]]

    def write_parquet(path: str) -> int:
        frame.to_parquet(path, index=False)
        return len(frame)

    return _atomically(output, write_parquet)
