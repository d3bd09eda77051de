"""A run's history as a file (a reader): CSV, JSON Lines or Parquet, complete (never downsampled).

- ``jsonl``: one object a row, as logged (nested dicts kept), plus ``_step``, ``_timestamp`` and
  ``_runtime``. Non-finite floats are written ``NaN``/``Infinity``/``-Infinity``, which Python's
  ``json``, pandas and jq read. Media are their stored references (paths relative to the run's
  folder).
- ``csv``: one column a flattened (dotted) key, in first-seen order after ``_step``,
  ``_runtime`` and ``_timestamp`` (a key's dotted keys where it held dicts); a key a row lacks is
  an empty cell; lists and media are JSON text. The columns come from the store's lists of keys
  (only columns holding dicts are read first, for their dotted keys), then the rows are written
  block by block, so memory stays flat for any run length.
- ``parquet``: the flattened rows through pyarrow (``pip install 'mplogger[parquet]'``), typed
  as pandas would type them, in row groups of 65,536 rows: one pass over the store learns each
  column's type, a second writes the rows, so memory holds one row group.

JSON Lines and CSV write a block of rows at a time, a column at a time (a column of numbers as
the text the store holds, in Python's spelling); the bytes are those of writing each row with
:func:`json.dumps` or :class:`csv.DictWriter`. With ``keys``, the rows holding them are read
row by row (only those columns are read).

Written to a terminal (no file, stdout a terminal), each line is escaped by
:func:`mplogger._shared._terminal.printable`: stored keys and values cannot drive the terminal. Written to
a file or a pipe, the data is exact.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from mplogger import _store
from mplogger._shared._files import write_atomically
from mplogger._shared._terminal import printable
from mplogger._shared._values import flatten

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

    return write_atomically(output, write_text)


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
        self.until = run.last_seq()

    def scan(self) -> Iterator[Dict[str, Any]]:
        return self.run.scan_rows(self.keys, load_media=False, until=self.until)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for row in self.scan():
            yield row
            if self.progress is not None:
                self.progress(1)


_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False), built once


def _write_jsonl(rows: _Rows, stream: IO[str]) -> int:
    """A row a line; the rows of blocks written a column at a time, as :func:`json.dumps` writes rows."""
    if rows.keys is not None:
        return _write_jsonl_rows(rows, rows, stream)
    run = rows.run
    conn, count = run.conn, 0
    count = _write_jsonl_rows(rows, (values for _, values, _ in _store.legacy_rows(conn, run.id, rows.until)),
                              stream)
    for block in _store.block_columns(conn, run.id, None, rows.until, raw=True):
        if not block.rows:
            continue
        stream.write("".join([f"{{{line}}}\n" for line in _jsonl_lines(block)]))
        count += block.rows
        if rows.progress is not None:
            rows.progress(block.rows)
    return count


def _write_jsonl_rows(rows: _Rows, source: Iterator[Dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for row in source:
        ordered = {key: row.pop(key) for key in _FIRST}
        ordered.update(row)
        stream.write(_encode(ordered) + "\n")
        count += 1
        if rows.progress is not None and source is not rows:  # iterating ``rows`` tells progress itself
            rows.progress(1)
    return count


def _jsonl_lines(block: "_store.BlockColumns") -> Iterator[str]:
    """One block's rows as the inside of their JSON objects (``_FIRST``, then the row's keys in order)."""
    rows, info = block.rows, block.info
    stamps, runtimes = info.times()
    parts: List[List[Optional[str]]] = [
        [f'"_step": {step}' for step in info.step_list()[:rows]],
        [f'"_runtime": {runtime!r}' for runtime in runtimes[:rows]],
        [f'"_timestamp": {stamp!r}' for stamp in stamps[:rows]],
    ]
    sparse = False
    for key in _key_order(block):
        offsets, text = block.columns[key]
        prefix = _encode(key) + ": "
        if _plain_numbers(text):
            values = [prefix + cell for cell in _number_cells(text)]
        else:
            offsets, decoded = _decoded(offsets, text, rows)
            values = [prefix + _encode(value) for value in decoded]
        if offsets is not None or len(values) < rows:
            values = _spread(offsets, values, rows, None)
            sparse = True
        parts.append(values[:rows])
    if not sparse:
        return map(", ".join, zip(*parts))
    return (", ".join([part for part in row if part is not None]) for row in zip(*parts))


def _flat(row: Dict[str, Any]) -> Dict[str, Any]:
    return {key: _cell_value(value) for key, value in flatten(row).items()}


def _cell_value(value: Any) -> Any:
    """A flattened value as the CSV and Parquet exports hold it: lists and dicts (media) as JSON text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value


def _names(key: str, value: Any) -> Iterator[Tuple[str, Any]]:
    """The flattened (dotted name, value) pairs of one top-level value, as :func:`flatten` makes them."""
    if isinstance(value, Mapping) and value and "_type" not in value:
        return iter(flatten(value, f"{key}.").items())
    return iter(((key, value),))


class _Plan:
    """What the store holds up to the export's last row: its block keys, which of them hold dicts
    (to be flattened), and the flattened columns, first seen first.

    The keys come from the store's lists of each block's keys; only the columns holding dicts
    are read to learn their dotted names (and rows of mplogger 0.1, one JSON object a row).
    """

    def __init__(self, rows: _Rows) -> None:
        run = rows.run
        self.conn, self.run_id, self.until = run.conn, run.id, rows.until
        seen: Dict[str, None] = dict.fromkeys(_FIRST)
        for _, values, _ in _store.legacy_rows(self.conn, self.run_id, self.until):
            seen.update(dict.fromkeys(flatten(values)))
        keys = _store.block_keys(self.conn, self.run_id, self.until)
        self.nested = set(_store.object_keys(self.conn, self.run_id)) & set(keys)
        found: Dict[str, Dict[str, None]] = {key: {} for key in self.nested}
        for block in self.blocks(sorted(self.nested)):
            for key, (_, values) in block.columns.items():
                names = found[key]
                for value in values:
                    names.update((name, None) for name, _ in _names(key, value))
        for key in keys:
            seen.update(found[key] if key in self.nested else {key: None})
        self.columns = list(seen)

    def blocks(self, keys: Optional[Sequence[str]] = None, raw: bool = False) -> Iterator["_store.BlockColumns"]:
        if keys is not None and not keys:
            return iter(())
        return _store.block_columns(self.conn, self.run_id, keys, self.until, raw=raw)


def _spread(offsets: Optional[Sequence[int]], values: Sequence[Any], rows: int, blank: Any) -> List[Any]:
    """One value per row of a block: ``values`` at ``offsets`` (every row when None), ``blank`` elsewhere."""
    if offsets is None:
        return values[:rows] if len(values) >= rows else list(values) + [blank] * (rows - len(values))
    cells = [blank] * rows
    for offset, value in zip(offsets, values):
        if offset < rows:
            cells[offset] = value
    return cells


def _key_order(block: "_store.BlockColumns") -> List[str]:
    """The block's columns in its rows' key order (what :func:`flatten` of a row would follow)."""
    order = [key for key in _store.decode_column(block.info.keys) if key in block.columns]
    if len(order) < len(block.columns):
        order += [key for key in block.columns if key not in set(order)]
    return order


def _merge_nested(cells: Dict[str, List[Any]], key: str, offsets: Optional[List[int]], values: List[Any],
                  rows: int, gap: Any) -> None:
    """A nested-dict column spread into one cell column per dotted name, ``gap`` where absent."""
    spread: Dict[str, List[Any]] = {}
    for offset, value in zip(range(rows) if offsets is None else offsets, values):
        for name, item in _names(key, value):
            column = spread.get(name)
            if column is None:
                column = spread[name] = [gap] * rows
            column[offset] = _cell_value(item)
    for name, column in spread.items():
        _merge(cells, name, column, gap)


def _merge(cells: Dict[str, List[Any]], name: str, values: List[Any], blank: Any) -> None:
    """Put a block's column ``name`` in ``cells``; a later key landing on the same dotted name wins
    in the rows it holds (those not ``blank``), as in a flattened row."""
    known = cells.get(name)
    if known is None:
        cells[name] = values
        return
    cells[name] = [known_value if value is blank else value for known_value, value in zip(known, values)]


class _Absent:
    """A row's missing value in a chunk of Parquet columns (a None is a value)."""

    __slots__ = ()


_GAP = _Absent()


# --- CSV ----------------------------------------------------------------------------------
_QUIET = frozenset('"{tfn ')  # in a column's JSON text: strings, markers, dicts, true, false, null, spacing
_NUMBERS = frozenset({int, float})
_TEXTS = frozenset({int, float, bool, type(None)})


def _plain_numbers(text: str) -> bool:
    """Whether a column's JSON array text holds only numbers (then its items are the cells)."""
    return not any(char in text for char in _QUIET) and text.find("[", 1) < 0


def _python_number(cell: str) -> str:
    """A JSON number as Python (and so the csv module) writes it: ``1e-05`` where JSON has ``0.00001``."""
    return repr(float(cell)) if "e" in cell or "0.0000" in cell else cell


def _number_cells(text: str) -> List[str]:
    cells = text[1:-1].split(",")
    if "e" in text or "0.0000" in text:
        cells = [_python_number(cell) for cell in cells]
    return cells


def _text(value: Any) -> str:
    if value is None:
        return ""
    return float.__repr__(value) if type(value) is float else str(value)


def _csv_cells(plan: _Plan, block: "_store.BlockColumns") -> Tuple[List[List[Any]], bool]:
    """One block's cells, a list per column of ``plan``; and whether they are all safe text already
    (numbers: no cell needs quoting), else some are values left to the csv module."""
    rows, info = block.rows, block.info
    stamps, runtimes = info.times()
    steps = info.step_list()
    cells: Dict[str, List[Any]] = {}
    safe = True
    for key in _key_order(block):
        offsets, text = block.columns[key]
        if key in plan.nested:
            offsets, values = _decoded(offsets, text, rows)
            _merge_nested(cells, key, offsets, values, rows, None)
            safe = False
        elif _plain_numbers(text):
            _merge(cells, key, _spread(offsets, _number_cells(text), rows, ""), "")
        else:
            offsets, values = _decoded(offsets, text, rows)
            kinds = set(map(type, values))
            if kinds == {float}:
                values = list(map(float.__repr__, values))
            elif kinds <= _TEXTS:
                values = list(map(_text, values))
            else:
                values = [_cell_value(value) for value in values]
                safe = False
            _merge(cells, key, _spread(offsets, values, rows, ""), "")
    blank = [""] * rows
    ordered = [list(map(str, steps[:rows])), list(map(float.__repr__, runtimes[:rows])),
               list(map(float.__repr__, stamps[:rows]))]
    ordered += [cells.get(name, blank) for name in plan.columns[len(_FIRST):]]
    return ordered, safe


def _decoded(offsets: Optional[List[int]], text: str, rows: int) -> Tuple[Optional[List[int]], List[Any]]:
    """A raw column's values, it and its offsets cut to the block's ``rows``."""
    values = _store.decode_column(text)
    if offsets is None:
        return None, values[:rows]
    kept = [(offset, value) for offset, value in zip(offsets, values) if offset < rows]
    return [offset for offset, _ in kept], [value for _, value in kept]


def _csv_failed(exc: csv.Error, step: Any) -> ValueError:
    return ValueError(f"step {step} of the run cannot be written as CSV by Python "
                      f"{sys.version_info.major}.{sys.version_info.minor} ({exc}); export it as "
                      "JSON Lines (.jsonl) or Parquet instead")


def _write_csv(rows: _Rows, stream: IO[str]) -> int:
    """The header, then the rows block by block: a block of numbers is joined as text, any other
    goes through the csv module; both write what :class:`csv.DictWriter` would."""
    if rows.keys is not None:  # the rows holding those keys, read by key
        return _write_keyed_csv(rows, stream)
    plan = _Plan(rows)
    writer = csv.writer(stream)
    writer.writerow(plan.columns)
    count = 0
    for _, values, _ in _store.legacy_rows(plan.conn, plan.run_id, plan.until):
        flat = _flat(values)
        try:
            writer.writerow([flat.get(name) for name in plan.columns])
        except csv.Error as exc:  # Python 3.10's csv cannot write a NUL character at all
            raise _csv_failed(exc, values.get("_step")) from exc
        count += 1
        if rows.progress is not None:
            rows.progress(1)
    for block in plan.blocks(raw=True):
        if not block.rows:
            continue
        columns, safe = _csv_cells(plan, block)
        if safe:
            stream.write("\r\n".join(map(",".join, zip(*columns))))
            stream.write("\r\n")
        else:
            try:
                writer.writerows(zip(*columns))
            except csv.Error as exc:
                raise _csv_failed(exc, _failing_step(columns)) from exc
        count += block.rows
        if rows.progress is not None:
            rows.progress(block.rows)
    return count


def _columns(rows: _Rows) -> List[str]:
    seen: Dict[str, None] = dict.fromkeys(_FIRST)
    for row in rows.scan():
        seen.update(dict.fromkeys(flatten(row)))
    return list(seen)


def _write_keyed_csv(rows: _Rows, stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=_columns(rows), restval="")
    writer.writeheader()
    count = 0
    for row in rows:
        try:
            writer.writerow(_flat(row))
        except csv.Error as exc:  # Python 3.10's csv cannot write a NUL character at all
            raise _csv_failed(exc, row.get("_step")) from exc
        count += 1
    return count


def _failing_step(columns: List[List[Any]]) -> Any:
    """The step of the first row the csv module refuses."""
    probe = csv.writer(io.StringIO())
    for row in zip(*columns):
        try:
            probe.writerow(row)
        except csv.Error:
            return row[0]
    return None


# --- Parquet ------------------------------------------------------------------------------
_CHUNK_ROWS = 65536  # rows per Parquet row group: what is held in memory at a time


def _dict_chunks(columns: Sequence[str], dicts: Iterator[Dict[str, Any]]) -> Iterator[Tuple[int, Dict[str, List[Any]]]]:
    """Rows (flattened) as chunks of columns, ``_GAP`` where a row lacks a column."""
    chunk: List[Dict[str, Any]] = []
    for row in dicts:
        chunk.append(_flat(row))
        if len(chunk) >= _CHUNK_ROWS:
            yield len(chunk), {name: [row.get(name, _GAP) for row in chunk] for name in columns}
            chunk = []
    if chunk:
        yield len(chunk), {name: [row.get(name, _GAP) for row in chunk] for name in columns}


def _block_values(plan: _Plan, block: "_store.BlockColumns") -> Dict[str, List[Any]]:
    """One block as columns of flattened values (``_GAP`` where a row lacks one), ``_FIRST`` included."""
    rows, info = block.rows, block.info
    stamps, runtimes = info.times()
    cells: Dict[str, List[Any]] = {"_step": list(info.step_list()[:rows]), "_runtime": runtimes[:rows],
                                   "_timestamp": stamps[:rows]}
    for key in _key_order(block):
        offsets, values = block.columns[key]
        if key in plan.nested:
            _merge_nested(cells, key, offsets, values, rows, _GAP)
        else:
            if not set(map(type, values)) <= _TEXTS:
                values = [_cell_value(value) for value in values]
            _merge(cells, key, _spread(offsets, values, rows, _GAP), _GAP)
    return cells


def _block_chunks(plan: _Plan) -> Iterator[Tuple[int, Dict[str, List[Any]]]]:
    """The blocks as chunks of about ``_CHUNK_ROWS`` rows, a list per column of ``plan``."""
    chunk: Dict[str, List[Any]] = {name: [] for name in plan.columns}
    count = 0
    for block in plan.blocks():
        if not block.rows:
            continue
        cells = _block_values(plan, block)
        for name, column in chunk.items():
            values = cells.get(name)
            column.extend([_GAP] * block.rows if values is None else values)
        count += block.rows
        if count >= _CHUNK_ROWS:
            yield count, chunk
            chunk, count = {name: [] for name in plan.columns}, 0
    if count:
        yield count, chunk


def _parquet_kind(kinds: set) -> str:
    """How a column is written, from the types of its values (``_Absent`` where a row lacks it),
    as pandas infers a frame's column: "null", "int", "float", "bool", "string", or "json" (mixed:
    JSON text, strings as they are)."""
    values = kinds - {type(None), _Absent}
    if not values:
        return "float" if _Absent in kinds else "null"  # pandas: NaN where rows lack it
    if values <= _NUMBERS:
        return "int" if values == {int} and len(kinds) == 1 else "float"
    if values == {bool}:
        return "bool"
    if values == {str}:
        return "string"
    return "json"


def _parquet_array(pa: Any, kind: str, values: List[Any]) -> Any:
    if _Absent in set(map(type, values)):
        values = [None if value is _GAP else value for value in values]
    if kind == "null":
        return pa.nulls(len(values))
    if kind == "int":
        return pa.array(values, type=pa.int64())
    if kind == "float":
        if not set(map(type, values)) <= {float, type(None)}:
            values = [value if value is None else float(value) for value in values]
        return pa.array(values, type=pa.float64(), from_pandas=True)
    if kind == "bool":
        return pa.array(values, type=pa.bool_())
    if kind == "json":
        values = [None if value is None or value != value else value if isinstance(value, str) else json.dumps(value)
                  for value in values]
    return pa.array(values, type=_arrow_type(pa, kind))


def _write_parquet(rows: _Rows, output: str) -> int:
    """Two passes in chunks: the types of each column's values (its Parquet type), then the rows,
    a row group per chunk, so memory holds one chunk whatever the run's length."""
    try:
        import pandas as pd  # noqa: F401  (the files are pandas' Parquet: read back with pandas)
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(f"--format parquet needs pandas and pyarrow ({exc.name} is missing): "
                          "pip install 'mplogger[parquet]'") from None
    if rows.keys is not None:
        columns = _columns(rows)

        def chunks() -> Iterator[Tuple[int, Dict[str, List[Any]]]]:
            return _dict_chunks(columns, rows.scan())
    else:
        plan = _Plan(rows)
        columns = plan.columns

        def chunks() -> Iterator[Tuple[int, Dict[str, List[Any]]]]:
            legacy = _dict_chunks(columns, (values for _, values, _ in
                                            _store.legacy_rows(plan.conn, plan.run_id, plan.until)))
            yield from legacy
            yield from _block_chunks(plan)

    kinds: Dict[str, set] = {name: set() for name in columns}
    for _, chunk in chunks():
        for name, values in chunk.items():
            kinds[name].update(map(type, values))
    plan_kinds = {name: _parquet_kind(kinds[name]) for name in columns}
    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in plan_kinds.items()])

    def write_parquet(path: str) -> int:
        count = 0
        with pq.ParquetWriter(path, schema) as writer:
            for size, chunk in chunks():
                arrays = [_parquet_array(pa, plan_kinds[name], chunk[name]) for name in columns]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                count += size
                if rows.progress is not None:
                    rows.progress(size)
        return count

    return write_atomically(output, write_parquet)


def _arrow_type(pa: Any, kind: str) -> Any:
    """The Arrow type of a kind of column; text as pandas writes it (large strings from pandas 3 on)."""
    if kind in ("string", "json"):
        import pandas as pd
        return pa.large_string() if int(pd.__version__.split(".")[0]) >= 3 else pa.string()
    return {"null": pa.null(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}[kind]
