"""A run's history in blocks: how the worker writes it and how readers read it back.

A run's rows are cut into blocks of up to :data:`BLOCK_ROWS` rows. Each block is one row of
``history_blocks`` (the rows' steps and runtimes, and the keys they hold) and one row of
``history_columns`` per key (that key's values as a JSON array, the offsets of the rows that
hold it when not every row does, and the block's minimum, maximum, first and last number). A
reader of one key touches only that key's column rows; a chart of a long run can read the
per-block minimum and maximum instead of every point. Everything is JSON text: non-finite
floats are written as ``{"_type": "float", "value": "NaN"}`` markers, as elsewhere.

The rows of the block being filled are kept in memory by the worker (:class:`HistoryWriter`)
and written when the block is full, when a flush or finish asks for them, and at the latest
:data:`TAIL_AGE_S` after they arrived; a partly filled block is rewritten whole as it grows.
Rows written by mplogger 0.1 (schema 1) stay in ``history_v1``, one JSON object a row, and are
read before a run's blocks.
"""

from __future__ import annotations

import json
import sqlite3
import time
from operator import itemgetter
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from mplogger._shared._values import from_json, pick, to_json

try:
    import msgspec

    _encode_bytes = msgspec.json.Encoder().encode
    _fast_decode = msgspec.json.Decoder().decode
except ImportError:  # pragma: no cover - msgspec is a dependency; the standard library still works
    msgspec = None
    _encode_bytes = None
    _fast_decode = json.loads


def _decode(text: str) -> Any:
    """JSON text as Python values (msgspec, else the standard library, which also reads the
    escaped lone surrogates that Python strings may hold)."""
    try:
        return _fast_decode(text)
    except ValueError:
        return json.loads(text)

__all__ = ["BLOCK_ROWS", "TAIL_AGE_S", "HistoryWriter", "BlockInfo", "Lost", "encode_column", "decode_column",
           "next_block", "stored_rows", "last_seq", "last_step", "blocks", "scan_rows", "read_keys",
           "read_table", "keys_of", "column_summaries", "last_row", "delete_history"]

BLOCK_ROWS = 1024
TAIL_AGE_S = 0.5
_MISSING = object()
_NUMBERS = frozenset({int, float})
_SIMPLE = frozenset({int, bool, str, type(None)})
_PLAIN = _SIMPLE | {float}
_FLOAT = {float}


# --- encoding -----------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return type(value) in _NUMBERS and value - value == 0


def encode_column(values: List[Any], floats: bool = False
                  ) -> Tuple[str, Optional[float], Optional[float], Optional[float], Optional[float]]:
    """(JSON array text, min, max, first, last) of a column; the numbers over its finite values only.

    ``floats``: every value is known to be a float (then msgspec writes NaN and infinities as
    ``null``, which no float otherwise becomes: seeing one sends the column the careful way).
    """
    if floats and _encode_bytes is not None and values:
        text = _encode_bytes(values)
        if b"null" not in text:
            return text.decode(), min(values), max(values), values[0], values[-1]
    kinds = set(map(type, values))
    if kinds <= _NUMBERS and values:
        total = sum(values)
        if total - total == 0 and _encode_bytes is not None:  # every value finite (an overflow only slows)
            return _encode_bytes(values).decode(), min(values), max(values), values[0], values[-1]
        numbers = [value for value in values if value - value == 0]
    elif kinds <= _SIMPLE:
        numbers = [value for value in values if type(value) is int]
        if _encode_bytes is not None:
            try:
                text = _encode_bytes(values).decode()
            except (UnicodeEncodeError, OverflowError, TypeError):  # a lone surrogate: the ASCII route keeps it
                text = to_json(values)
            return text, _low(numbers), _high(numbers), _edge(values[0]), _edge(values[-1])
    else:
        numbers = [value for value in values if _finite(value)]
    return to_json(values), _low(numbers), _high(numbers), _edge(values[0]), _edge(values[-1])


def _low(numbers: List[Any]) -> Optional[float]:
    return min(numbers) if numbers else None


def _high(numbers: List[Any]) -> Optional[float]:
    return max(numbers) if numbers else None


def _edge(value: Any) -> Optional[float]:
    return value if _finite(value) else None


def decode_column(text: str) -> List[Any]:
    """The values of a column's JSON text, non-finite markers (at any depth) read as floats;
    ValueError for text that is not a JSON list (a store may come from someone else)."""
    try:
        if '"_type"' in text or "\\ud" in text or "\\uD" in text:
            values = from_json(text)
        else:
            values = _decode(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"a history column is not JSON this version can read ({type(exc).__name__})") from None
    if not isinstance(values, list):
        raise ValueError("a history column is not a JSON list")
    return values


def _json(values: Any) -> str:
    return _encode_bytes(values).decode() if _encode_bytes is not None else json.dumps(values, separators=(",", ":"))


# --- writing ------------------------------------------------------------------------------
class Lost(NamedTuple):
    """Rows that were not stored: how many, and their first and last steps."""

    count: int
    first_step: Optional[int]
    last_step: Optional[int]


class _Block:
    """The rows of one block in memory: steps, timestamps, and per key (offsets or None, values)."""

    __slots__ = ("index", "first_seq", "steps", "stamps", "columns", "stored", "mixed")

    def __init__(self, index: int, first_seq: int) -> None:
        self.index = index
        self.first_seq = first_seq
        self.steps: List[int] = []
        self.stamps: List[float] = []
        self.columns: Dict[str, list] = {}  # key -> [offsets (None while every row has it), values]
        self.stored = 0  # rows of this block already in the database
        self.mixed: set = set()  # keys with a value that is not a float

    def copy(self) -> "_Block":
        block = _Block(self.index, self.first_seq)
        block.steps, block.stamps, block.stored, block.mixed = self.steps[:], self.stamps[:], self.stored, set(self.mixed)
        block.columns = {key: [None if offsets is None else offsets[:], values[:]]
                         for key, (offsets, values) in self.columns.items()}
        return block

    def truncated(self, count: int) -> "_Block":
        """A copy holding only the first ``count`` rows."""
        block = _Block(self.index, self.first_seq)
        block.steps, block.stamps, block.stored = self.steps[:count], self.stamps[:count], min(self.stored, count)
        block.mixed = set(self.mixed)
        for key, (offsets, values) in self.columns.items():
            if offsets is None:
                kept = [None, values[:count]]
            else:
                end = next((position for position, offset in enumerate(offsets) if offset >= count), len(offsets))
                kept = [offsets[:end], values[:end]]
            if kept[1]:
                block.columns[key] = kept
        return block

    def add_columns(self, steps: Sequence[int], stamps: Sequence[float], keys: Sequence[str],
                    columns: Sequence[Sequence[Any]], mixed: set) -> None:
        """Rows that all hold exactly ``keys``, given as one sequence of values per key
        (``mixed``: the keys with a value that is not a float)."""
        self.mixed |= mixed
        start = len(self.steps)
        self.steps.extend(steps)
        self.stamps.extend(stamps)
        count = len(steps)
        for key, values in zip(keys, columns):
            column = self.columns.get(key)
            if column is None:
                self.columns[key] = [None if start == 0 else list(range(start, start + count)), list(values)]
                continue
            offsets = column[0]
            if offsets is None and len(column[1]) != start:
                offsets = column[0] = list(range(len(column[1])))
            if offsets is not None:
                offsets.extend(range(start, start + count))
            column[1].extend(values)
        for key, column in self.columns.items():  # keys these rows lack
            if len(column[1]) < start + count and column[0] is None:
                column[0] = list(range(len(column[1])))

    def add_row(self, step: int, stamp: float, values: Dict[str, Any]) -> None:
        offset = len(self.steps)
        self.steps.append(step)
        self.stamps.append(stamp)
        columns = self.columns
        for key, value in values.items():
            if type(value) is not float:
                self.mixed.add(key)
            column = columns.get(key)
            if column is None:
                columns[key] = [None if offset == 0 else [offset], [value]]
                continue
            offsets = column[0]
            if offsets is None:
                if len(column[1]) == offset:
                    column[1].append(value)
                    continue
                offsets = column[0] = list(range(len(column[1])))
            offsets.append(offset)
            column[1].append(value)
        if len(values) < len(columns):
            for key, column in columns.items():
                if column[0] is None and len(column[1]) <= offset:
                    column[0] = list(range(len(column[1])))

    def params(self, run_id: str, started: float) -> Tuple[tuple, List[tuple]]:
        """The ``history_blocks`` row and the ``history_columns`` rows of this block."""
        steps, count = self.steps, len(self.steps)
        first = steps[0]
        dense = steps[-1] - first == count - 1 and steps == list(range(first, first + count))
        runtimes = [int((stamp - started) * 1e6) for stamp in self.stamps]
        block = (run_id, self.index, self.first_seq, count, first, max(steps), None if dense else _json(steps),
                 started, _json(runtimes), _json(list(self.columns)))
        columns = []
        for key, (offsets, values) in self.columns.items():
            text, low, high, first_value, last_value = encode_column(values, key not in self.mixed)
            columns.append((run_id, key, self.index, None if offsets is None else _json(offsets), text,
                            len(values), low, high, first_value, last_value))
        return block, columns


class HistoryWriter:
    """One run's history as a worker writes it: rows kept in an open block, written as blocks.

    :meth:`write` puts what is complete (or, when asked, everything) into the transaction the
    worker has open; :meth:`committed` and :meth:`rolled_back` follow that transaction's fate, so
    what the writer counts as stored is what is in the database.
    """

    def __init__(self, run_id: str, started: float, stored: int, next_index: int) -> None:
        self.run_id = run_id
        self.started = started
        self.full: List[_Block] = []
        self.tail = _Block(next_index, stored + 1)
        self.added = self.stored = self.committed_rows = stored
        self.since: Optional[float] = None  # when the oldest row not yet written arrived
        self._saved = self.tail.copy()
        self._first_pending_step: Optional[int] = None

    @property
    def pending(self) -> int:
        """Rows added and not yet written."""
        return self.added - self.stored

    def _room(self) -> int:
        if len(self.tail.steps) >= BLOCK_ROWS:
            self.full.append(self.tail)
            self.tail = _Block(self.tail.index + 1, self.tail.first_seq + len(self.tail.steps))
        return BLOCK_ROWS - len(self.tail.steps)

    def _arrived(self, count: int, first_step: int) -> None:
        if self.since is None:
            self.since = time.monotonic()
        if self.added == self.committed_rows:
            self._first_pending_step = first_step
        self.added += count

    def _step_at(self, seq: int) -> Optional[int]:
        for block in self.full + [self.tail]:
            if block.first_seq <= seq < block.first_seq + len(block.steps):
                return block.steps[seq - block.first_seq]
        return None

    @staticmethod
    def problem(values: Dict[str, Any]) -> Optional[Exception]:
        """Why a row's values cannot be stored as JSON (None when they can)."""
        for value in values.values():
            if type(value) not in _PLAIN:
                try:
                    to_json(value)
                except Exception as exc:  # got past the call-site check somehow
                    return exc
        return None

    def add_rows(self, rows: Sequence[Tuple[int, float, Dict[str, Any]]]) -> Tuple[bool, List[Exception]]:
        """Rows of (step, timestamp, values), in order: all of them, or (when some cannot be
        stored) none, with their problems. True first when the rows shared their keys (columns)."""
        if not rows:
            return True, []
        steps, stamps, dicts = zip(*rows)
        keys = tuple(dicts[0])
        columns = None
        if len(keys) > 1 and set(map(len, dicts)) == {len(keys)}:
            try:
                columns = list(zip(*map(itemgetter(*keys), dicts)))
            except KeyError:
                columns = None
        elif len(keys) == 1 and set(map(len, dicts)) == {1}:
            key = keys[0]
            try:
                columns = [[values[key] for values in dicts]]
            except KeyError:
                columns = None
        if columns is None:
            failed = [problem for problem in map(self.problem, dicts) if problem is not None]
            if failed:
                return False, failed
            for row in rows:
                self.add_row(*row)
            return False, []
        return True, self.add_columns(steps, stamps, keys, columns)

    def add_columns(self, steps: Sequence[int], stamps: Sequence[float], keys: Sequence[str],
                    columns: Sequence[Sequence[Any]]) -> List[Exception]:
        """Rows that all hold exactly ``keys``, as one sequence of values per key: all of them,
        or (when some value cannot be stored) none, with the problems."""
        mixed = set()
        for key, column in zip(keys, columns):
            kinds = set(map(type, column))
            if kinds != _FLOAT:
                mixed.add(key)
                if not kinds <= _PLAIN:
                    failed = [problem for problem in map(self.problem, map(dict, map(zip, [keys] * len(steps),
                                                                                       zip(*columns))))
                              if problem is not None]
                    if failed:
                        return failed
        count = len(steps)
        if not count:
            return []
        self._arrived(count, steps[0])
        start = 0
        while start < count:
            end = start + self._room()
            self.tail.add_columns(steps[start:end], stamps[start:end], keys, [c[start:end] for c in columns], mixed)
            start = end
        return []

    def add_row(self, step: int, timestamp: float, values: Dict[str, Any]) -> None:
        """One row (its values already known to be storable, see :meth:`problem`)."""
        self._arrived(1, step)
        self._room()
        self.tail.add_row(step, timestamp, values)

    def due(self, now: float, idle: bool = False) -> bool:
        """Whether the rows waiting should be written now: a full block, rows ``TAIL_AGE_S`` old,
        or (``idle``) as many rows as the open block has stored, so rewriting a growing block
        costs at most twice writing it once, however small the batches."""
        if self.full:
            return True
        if self.since is None:
            return False
        return now - self.since >= TAIL_AGE_S or (idle and self.pending >= self.tail.stored)

    def deadline(self) -> Optional[float]:
        """When (monotonic seconds) the waiting rows must be written; None when none wait."""
        return None if self.since is None else self.since + TAIL_AGE_S

    def write(self, conn: sqlite3.Connection, everything: bool = True) -> int:
        """Write the full blocks and (with ``everything``) the open block; the rows newly written."""
        blocks = self.full + ([self.tail] if everything and len(self.tail.steps) > self.tail.stored else [])
        if not blocks:
            return 0
        block_rows, column_rows = [], []
        for block in blocks:
            row, columns = block.params(self.run_id, self.started)
            block_rows.append(row)
            column_rows.extend(columns)
        conn.execute("SAVEPOINT history")
        try:
            conn.executemany("INSERT OR REPLACE INTO history_blocks (run_id, block, first_seq, count, first_step, "
                             "last_step, steps, started, runtime_us, keys) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             block_rows)
            conn.executemany("INSERT OR REPLACE INTO history_columns (run_id, key, block, rows, vals, count, vmin, "
                             "vmax, vfirst, vlast) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", column_rows)
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled the whole transaction back already
                conn.execute("ROLLBACK TO history")
                conn.execute("RELEASE history")
            raise
        conn.execute("RELEASE history")
        written = sum(len(block.steps) - block.stored for block in blocks)
        for block in blocks:
            block.stored = len(block.steps)
        self.full = []
        self.stored += written
        if self.stored == self.added:
            self.since = None
        return written

    def committed(self) -> None:
        """The transaction holding the writes so far was committed."""
        if self.committed_rows != self.stored:
            self.committed_rows = self.stored
            self._saved = self.tail.truncated(self.tail.stored)
            self._first_pending_step = self._step_at(self.committed_rows + 1)

    def rolled_back(self) -> Optional[Lost]:
        """The transaction was not stored: forget every row not committed; what was lost, if any."""
        lost = self.added - self.committed_rows
        newest = self.tail if self.tail.steps or not self.full else self.full[-1]
        last = newest.steps[-1] if newest.steps else None
        first = self._first_pending_step
        self.tail, self.full = self._saved.truncated(self._saved.stored), []
        self.added = self.stored = self.committed_rows
        self.since = None
        self._first_pending_step = None
        return Lost(lost, first, last) if lost else None


def next_block(conn: sqlite3.Connection, run_id: str) -> int:
    """The index the next block of ``run_id`` gets (a resumed run starts a new block)."""
    row = conn.execute("SELECT max(block) FROM history_blocks WHERE run_id = ?", (run_id,)).fetchone()
    return 0 if row[0] is None else row[0] + 1


def delete_history(conn: sqlite3.Connection, run_id: str) -> int:
    """Delete a run's history; the number of rows it held."""
    count = stored_rows(conn, run_id)
    for table in ("history_blocks", "history_columns", "history_v1"):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    return count


# --- reading ------------------------------------------------------------------------------
class BlockInfo(NamedTuple):
    """A block's row of ``history_blocks``, its JSON arrays decoded when used."""

    index: int
    first_seq: int
    count: int
    first_step: int
    last_step: int
    steps: Optional[str]
    started: float
    runtime_us: str
    keys: str

    def step_list(self) -> Sequence[int]:
        if self.steps is None:
            return range(self.first_step, self.first_step + self.count)
        return self._array(self.steps, "steps", (int,), any_length=False)

    def times(self) -> Tuple[List[float], List[float]]:
        """(timestamps, runtimes) of the block's rows."""
        runtimes = [micros / 1e6 for micros in self._array(self.runtime_us, "runtime_us", (int, float), any_length=False)]
        started = self.started
        return [started + runtime for runtime in runtimes], runtimes

    def key_list(self) -> List[str]:
        return self._array(self.keys, "keys", (str,))

    def _array(self, text: str, what: str, kinds: tuple, any_length: bool = True) -> list:
        """A JSON list of this block of ``kinds`` (one per row unless ``any_length``), else
        ValueError: a store may come from someone else."""
        try:
            values = _decode(text)
        except (ValueError, RecursionError):
            values = None
        if (not isinstance(values, list) or (not any_length and len(values) != self.count)
                or not all(type(value) in kinds for value in values)
                or (kinds == (int,) and not all(-2 ** 63 <= value < 2 ** 63 for value in values))):
            raise ValueError(f"history block {self.index}: its {what} column is not a JSON list of "
                             f"{' or '.join(kind.__name__ for kind in kinds)}{'' if any_length else ' with one per row'}")
        return values


_BLOCK_COLUMNS = "block, first_seq, count, first_step, last_step, steps, started, runtime_us, keys"


def _legacy(conn: sqlite3.Connection) -> bool:
    """Whether the store has rows of schema 1 (``history_v1``) at all."""
    found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'history_v1'").fetchone()
    return found is not None and conn.execute("SELECT 1 FROM history_v1 LIMIT 1").fetchone() is not None


def _v1_table(conn: sqlite3.Connection) -> Optional[str]:
    """The table of one-JSON-object rows: ``history_v1``, or ``history`` in a store not upgraded yet."""
    names = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('history', 'history_v1')")}
    return "history_v1" if "history_v1" in names else ("history" if "history" in names else None)


def _has_blocks(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'history_blocks'").fetchone() is not None


def stored_rows(conn: sqlite3.Connection, run_id: str) -> int:
    """How many history rows of ``run_id`` are stored."""
    count = 0
    table = _v1_table(conn)
    if table is not None:
        count += conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
    if _has_blocks(conn):
        count += conn.execute("SELECT coalesce(sum(count), 0) FROM history_blocks WHERE run_id = ?",
                              (run_id,)).fetchone()[0]
    return count


def last_seq(conn: sqlite3.Connection, run_id: str) -> int:
    """The sequence number of the last stored row (0 for none)."""
    if _has_blocks(conn):
        row = conn.execute("SELECT first_seq + count - 1 FROM history_blocks WHERE run_id = ? "
                           "ORDER BY block DESC LIMIT 1", (run_id,)).fetchone()
        if row is not None:
            return row[0]
    table = _v1_table(conn)
    if table is None:
        return 0
    return conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]


def last_step(conn: sqlite3.Connection, run_id: str) -> Optional[int]:
    """The largest stored step of ``run_id`` (None without rows)."""
    steps = []
    table = _v1_table(conn)
    if table is not None:
        steps.append(conn.execute(f"SELECT max(step) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0])
    if _has_blocks(conn):
        steps.append(conn.execute("SELECT max(last_step) FROM history_blocks WHERE run_id = ?", (run_id,)).fetchone()[0])
    steps = [step for step in steps if step is not None]
    return max(steps) if steps else None


def blocks(conn: sqlite3.Connection, run_id: str, after_seq: int = 0, until_seq: Optional[int] = None,
           limit: int = -1, from_block: int = 0) -> List[BlockInfo]:
    """The blocks of ``run_id`` (from index ``from_block`` on) holding rows after ``after_seq``
    (up to ``until_seq``), in order. A reader paging through a live run pages by ``from_block``:
    the open block may have grown since it was read, and must not be read again."""
    if not _has_blocks(conn):
        return []
    rows = conn.execute(
        f"SELECT {_BLOCK_COLUMNS} FROM history_blocks WHERE run_id = ? AND block >= ? AND first_seq + count - 1 > ? "
        "AND first_seq <= ? ORDER BY block LIMIT ?",
        (run_id, from_block, after_seq, until_seq if until_seq is not None else 2 ** 62, limit)).fetchall()
    return [_checked(run_id, BlockInfo(*row)) for row in rows]


MAX_BLOCK_ROWS = 1 << 16  # what a reader accepts in a block (a store may come from someone else)


def _checked(run_id: str, info: BlockInfo) -> BlockInfo:
    """``info`` if its numbers are what a block holds, else ValueError naming the run and block."""
    numbers = (info.index, info.first_seq, info.count, info.first_step, info.last_step)
    if (not all(type(n) is int for n in numbers) or not 0 < info.count <= MAX_BLOCK_ROWS
            or not isinstance(info.started, (int, float)) or not isinstance(info.runtime_us, str)
            or not isinstance(info.keys, str) or not (info.steps is None or isinstance(info.steps, str))):
        raise ValueError(f"run {run_id!r}: history block {info.index!r} is not a block this version can read")
    return info


def _key_names(text: Any) -> List[str]:
    """A block's ``keys`` column: a JSON list of strings, else ValueError."""
    try:
        names = _decode(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("a history block holds keys that are not a JSON list of strings")
    return names


def keys_of(conn: sqlite3.Connection, run_id: str) -> List[str]:
    """The top-level keys of ``run_id``'s rows, first seen first."""
    seen: Dict[str, None] = {}
    table = _v1_table(conn)
    if table is not None:
        for (key,) in conn.execute(f"SELECT DISTINCT j.key FROM {table} h, json_each(h.data) j "
                                   "WHERE h.run_id = ?", (run_id,)):
            seen[key] = None
    if _has_blocks(conn):
        for (text,) in conn.execute("SELECT keys FROM history_blocks WHERE run_id = ? ORDER BY block", (run_id,)):
            seen.update(dict.fromkeys(_key_names(text)))
    return list(seen)


def _v1_rows(conn: sqlite3.Connection, run_id: str, after: int, until: int,
             page_size: int) -> Iterator[Tuple[int, Dict[str, Any], bool]]:
    table = _v1_table(conn)
    if table is None:
        return
    while True:
        page = conn.execute(
            f"SELECT seq, step, timestamp, runtime, data FROM {table} "
            "WHERE run_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (run_id, after, until, page_size)).fetchall()
        for seq, step, timestamp, runtime, data in page:
            values = from_json(data)
            values.update(_step=step, _timestamp=timestamp, _runtime=runtime)
            yield seq, values, '"_type"' in data
        if len(page) < page_size:
            return
        after = page[-1][0]


def _columns_of(conn: sqlite3.Connection, run_id: str, first: int, last: int,
                keys: Optional[Sequence[str]]) -> Dict[int, Dict[str, tuple]]:
    """{block: {key: (offsets or None, values, has media)}} for blocks ``first``..``last``."""
    query = "SELECT block, key, rows, vals FROM history_columns WHERE run_id = ? AND block BETWEEN ? AND ?"
    params: list = [run_id, first, last]
    if keys is not None:
        query += f" AND key IN ({', '.join('?' * len(keys))})"
        params.extend(keys)
    found: Dict[int, Dict[str, tuple]] = {}
    for block, key, offsets, text in conn.execute(query, params):
        found.setdefault(block, {})[key] = (None if offsets is None else _decode(offsets), decode_column(text),
                                           '"_type"' in text)
    return found


def _fit(columns: Dict[str, tuple], count: int) -> Dict[str, tuple]:
    """Columns cut to a block of ``count`` rows: offsets in range, one value per row at most."""
    fitted = {}
    for key, (offsets, values, media) in columns.items():
        if not isinstance(values, list):
            continue
        if offsets is None:
            fitted[key] = (None, values[:count], media)
        elif isinstance(offsets, list):
            pairs = [(o, v) for o, v in zip(offsets, values) if type(o) is int and 0 <= o < count]
            fitted[key] = ([o for o, _ in pairs], [v for _, v in pairs], media)
    return fitted


_PAGE_BLOCKS = 8


def _in_snapshot(conn: sqlite3.Connection, read: Any) -> Any:
    """``read()`` in one read transaction: the blocks and their columns as of one moment, though
    the worker rewrites a run's open block meanwhile."""
    if conn.in_transaction:
        return read()
    conn.execute("BEGIN")
    try:
        return read()
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _page(conn: sqlite3.Connection, run_id: str, after: int, until: int, limit: int,
          keys: Optional[Sequence[str]], from_block: int = 0) -> Tuple[List[BlockInfo], Dict[int, Dict[str, tuple]]]:
    """A page of blocks after ``after`` and their columns (of ``keys``, or all), consistently."""
    def read() -> Tuple[List[BlockInfo], Dict[int, Dict[str, tuple]]]:
        infos = blocks(conn, run_id, after, until, limit, from_block)
        return infos, (_columns_of(conn, run_id, infos[0].index, infos[-1].index, keys) if infos else {})
    return _in_snapshot(conn, read)


def scan_rows(conn: sqlite3.Connection, run_id: str, after_seq: int = 0,
              until_seq: Optional[int] = None) -> Iterator[Tuple[int, Dict[str, Any], bool]]:
    """(seq, row with ``_step``/``_timestamp``/``_runtime``, whether it holds media) after ``after_seq``."""
    until = until_seq if until_seq is not None else 2 ** 62
    yield from _v1_rows(conn, run_id, after_seq, until, 1000)
    after, next_block = after_seq, 0
    while True:
        page, columns = _page(conn, run_id, after, until, _PAGE_BLOCKS, None, next_block)
        if not page:
            return
        for info in page:
            yield from _block_rows(info, columns.get(info.index, {}), after, until)
        next_block = page[-1].index + 1
        if len(page) < _PAGE_BLOCKS:
            return


def _block_rows(info: BlockInfo, columns: Dict[str, tuple], after: int,
                until: int) -> Iterator[Tuple[int, Dict[str, Any], bool]]:
    count = info.count
    columns = _fit(columns, count)
    rows: List[Dict[str, Any]] = [{} for _ in range(count)]
    media = [False] * count
    for key in info.key_list():
        column = columns.get(key)
        if column is None:
            continue
        offsets, values, has_media = column
        if offsets is None:
            for row, value in zip(rows, values):
                row[key] = value
            if has_media:
                media = [True] * count
        else:
            for offset, value in zip(offsets, values):
                rows[offset][key] = value
                if has_media:
                    media[offset] = True
    stamps, runtimes = info.times()
    for offset, (row, step, stamp, runtime) in enumerate(zip(rows, info.step_list(), stamps, runtimes)):
        seq = info.first_seq + offset
        if after < seq <= until:
            row["_step"], row["_timestamp"], row["_runtime"] = step, stamp, runtime
            yield seq, row, media[offset]


def _candidates(key: str) -> List[str]:
    """The columns that may hold dotted ``key``: itself, then each shorter prefix (a nested dict)."""
    parts = key.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]


def read_keys(conn: sqlite3.Connection, run_id: str, keys: Sequence[str], until_seq: Optional[int] = None,
              page_blocks: int = 64) -> Iterator[Tuple[List[Dict[str, Any]], bool]]:
    """Pages of rows holding every one of ``keys`` (dotted keys reach into nested dicts), each row
    with just those keys and ``_step``/``_timestamp``/``_runtime``; with whether a page holds media."""
    until = until_seq if until_seq is not None else 2 ** 62
    keys = list(dict.fromkeys(keys))
    page: List[Dict[str, Any]] = []
    media = False
    for _, values, has_media in _v1_rows(conn, run_id, 0, until, 1000):
        try:
            picked = {key: pick(values, key) for key in keys}
        except KeyError:
            continue
        picked.update(_step=values["_step"], _timestamp=values["_timestamp"], _runtime=values["_runtime"])
        page.append(picked)
        media = media or has_media
    if page:
        yield page, media
    wanted = sorted({column for key in keys for column in _candidates(key)})
    next_block = 0
    while True:
        infos, columns = _page(conn, run_id, 0, until, page_blocks, wanted, next_block)
        if not infos:
            return
        rows: List[Dict[str, Any]] = []
        media = False
        for info in infos:
            found = columns.get(info.index, {})
            media = _picked_rows(info, found, keys, until, rows) or media
        if rows:
            yield rows, media
        next_block = infos[-1].index + 1
        if len(infos) < page_blocks:
            return


def _key_values(info: BlockInfo, found: Dict[str, tuple], key: str) -> Tuple[Optional[List[Any]], bool]:
    """One value per row of the block for ``key`` (``_MISSING`` where absent), and whether any is media."""
    candidates = [column for column in _candidates(key) if column in found]
    if not candidates:
        return None, False
    first = found[candidates[0]]
    if len(candidates) == 1 and first[0] is None and candidates[0] == key and len(first[1]) == info.count:
        return first[1], first[2]
    values: List[Any] = [_MISSING] * info.count
    media = False
    for column in reversed(candidates):  # the exact key wins over a nested dict's entry
        offsets, column_values, has_media = found[column]
        positions = range(info.count) if offsets is None else offsets
        if column == key:
            for offset, value in zip(positions, column_values):
                values[offset] = value
        else:
            rest = key[len(column) + 1:]
            for offset, value in zip(positions, column_values):
                if isinstance(value, dict):
                    try:
                        values[offset] = pick(value, rest)
                    except KeyError:
                        pass
        media = media or has_media
    return values, media


def _picked_rows(info: BlockInfo, found: Dict[str, tuple], keys: Sequence[str], until: int,
                 out: List[Dict[str, Any]]) -> bool:
    found = _fit(found, info.count)
    per_key = []
    media = False
    for key in keys:
        values, has_media = _key_values(info, found, key)
        if values is None:
            return False
        per_key.append(values)
        media = media or has_media
    stamps, runtimes = info.times()
    steps = info.step_list()
    limit = min(info.count, until - info.first_seq + 1)
    if len(keys) == 1 and len(per_key[0]) == info.count and _MISSING not in per_key[0]:
        key = keys[0]
        out.extend([{key: value, "_step": step, "_timestamp": stamp, "_runtime": runtime}
                    for value, step, stamp, runtime in zip(per_key[0][:limit], steps, stamps, runtimes)])
        return media
    for offset in range(limit):
        row = {}
        for key, values in zip(keys, per_key):
            value = values[offset]
            if value is _MISSING:
                break
            row[key] = value
        else:
            row.update(_step=steps[offset], _timestamp=stamps[offset], _runtime=runtimes[offset])
            out.append(row)
    return media


def read_table(conn: sqlite3.Connection, run_id: str, keys: Optional[Sequence[str]] = None,
               missing: Any = None) -> Tuple[Dict[str, List[Any]], List[str]]:
    """The run's history as columns (``missing`` where a row lacks a key), and the columns holding media.

    Without ``keys``: every top-level key, then ``_step``, ``_timestamp``, ``_runtime``; with
    them, the rows holding every one of them, as :func:`read_keys` reads them.
    """
    if keys is not None:
        names = list(dict.fromkeys(keys)) + ["_step", "_timestamp", "_runtime"]
        table: Dict[str, List[Any]] = {name: [] for name in names}
        media_keys = set()
        for page, media in read_keys(conn, run_id, keys):
            for name in names:
                table[name].extend(row[name] for row in page)
            if media:
                media_keys.update(keys)
        return table, sorted(media_keys)
    all_keys = keys_of(conn, run_id)
    table = {name: [] for name in all_keys + ["_step", "_timestamp", "_runtime"]}
    media_keys = set()
    for _, values, has_media in _v1_rows(conn, run_id, 0, 2 ** 62, 1000):
        for name, column in table.items():
            column.append(values.get(name, missing))
        if has_media:
            media_keys.update(key for key, value in values.items() if isinstance(value, (dict, list)))
    next_block = 0
    while True:
        infos, columns = _page(conn, run_id, 0, 2 ** 62, 64, None, next_block)
        if not infos:
            break
        for info in infos:
            found = _fit(columns.get(info.index, {}), info.count)
            for name in all_keys:
                column = found.get(name)
                if column is None:
                    table[name].extend([missing] * info.count)
                elif column[0] is None:
                    table[name].extend(column[1] + [missing] * (info.count - len(column[1])))
                else:
                    values: List[Any] = [missing] * info.count
                    for offset, value in zip(column[0], column[1]):
                        values[offset] = value
                    table[name].extend(values)
                if column is not None and column[2]:
                    media_keys.add(name)
            stamps, runtimes = info.times()
            table["_step"].extend(info.step_list())
            table["_timestamp"].extend(stamps)
            table["_runtime"].extend(runtimes)
        next_block = infos[-1].index + 1
        if len(infos) < 64:
            break
    return table, sorted(media_keys)


def column_summaries(conn: sqlite3.Connection, run_id: str, key: str) -> List[tuple]:
    """Per block of ``key``: (first_step, last_step, count, min, max, first, last), in order."""
    return conn.execute(
        "SELECT b.first_step, b.last_step, c.count, c.vmin, c.vmax, c.vfirst, c.vlast FROM history_columns c "
        "JOIN history_blocks b ON b.run_id = c.run_id AND b.block = c.block "
        "WHERE c.run_id = ? AND c.key = ? ORDER BY c.block", (run_id, key)).fetchall() if _has_blocks(conn) else []


def last_row(conn: sqlite3.Connection, run_id: str) -> Optional[Dict[str, Any]]:
    """The last stored row (with ``_step``, ``_timestamp``, ``_runtime``), or None."""
    infos = conn.execute(f"SELECT {_BLOCK_COLUMNS} FROM history_blocks WHERE run_id = ? ORDER BY block DESC LIMIT 1",
                         (run_id,)).fetchall() if _has_blocks(conn) else []
    if infos:
        info = BlockInfo(*infos[0])
        seq = info.first_seq + info.count - 1
        for _, values, _ in scan_rows(conn, run_id, seq - 1, seq):
            return values
    table = _v1_table(conn)
    if table is None:
        return None
    row = conn.execute(f"SELECT step, timestamp, runtime, data FROM {table} WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
                       (run_id,)).fetchone()
    if row is None:
        return None
    values = from_json(row[3])
    values.update(_step=row[0], _timestamp=row[1], _runtime=row[2])
    return values


# --- block by block, for exports and charts -------------------------------------------------
__all__ += ["BlockColumns", "legacy_rows", "block_columns", "object_keys"]
_MARKERS = tuple(to_json(value) for value in (float("nan"), float("inf"), float("-inf")))


class BlockColumns(NamedTuple):
    """One block as :func:`block_columns` reads it.

    ``rows``: how many of the block's rows to read (fewer than ``info.count`` where ``until_seq``
    cuts the block); ``columns``: key -> (offsets in the block, or None when every row has it;
    the values, or their JSON array text with ``raw``), limited to those rows unless ``raw``.
    """

    info: BlockInfo
    rows: int
    columns: Dict[str, Tuple[Optional[List[int]], Any]]


def legacy_rows(conn: sqlite3.Connection, run_id: str,
                until_seq: Optional[int] = None) -> Iterator[Tuple[int, Dict[str, Any], bool]]:
    """(seq, row with ``_step``/``_timestamp``/``_runtime``, whether it holds media) of the rows
    written by mplogger 0.1 (schema 1), which come before a run's blocks."""
    yield from _v1_rows(conn, run_id, 0, until_seq if until_seq is not None else 2 ** 62, 1000)


def _texts_page(conn: sqlite3.Connection, run_id: str, after: int, until: int, limit: int,
                wanted: Optional[List[str]], from_block: int = 0
                ) -> Tuple[List[BlockInfo], Dict[int, Dict[str, Tuple[Optional[str], str]]]]:
    infos = blocks(conn, run_id, after, until, limit, from_block)
    return infos, (_column_texts(conn, run_id, infos[0].index, infos[-1].index, wanted) if infos else {})


def block_columns(conn: sqlite3.Connection, run_id: str, keys: Optional[Sequence[str]] = None,
                  until_seq: Optional[int] = None, raw: bool = False,
                  page_blocks: int = 16) -> Iterator[BlockColumns]:
    """The run's blocks in order (its schema-1 rows left out: :func:`legacy_rows`), each with the
    columns of ``keys`` (top-level keys; all of them when None) it holds.

    With ``raw`` a column's values are its JSON array text, undecoded, and the caller cuts them
    (and their offsets) to ``rows``: the text may hold more rows when the block grew meanwhile.
    """
    until = until_seq if until_seq is not None else 2 ** 62
    wanted = None if keys is None else list(dict.fromkeys(keys))
    if wanted is not None and not wanted:
        return
    next_block = 0
    while True:
        infos, found = _in_snapshot(conn, lambda: _texts_page(conn, run_id, 0, until, page_blocks, wanted, next_block))
        if not infos:
            return
        for info in infos:
            rows = min(info.count, until - info.first_seq + 1)
            columns: Dict[str, Tuple[Optional[List[int]], Any]] = {}
            for key, (offsets, text) in found.get(info.index, {}).items():
                if offsets is not None:
                    offsets = _decode(offsets)
                if raw:
                    columns[key] = (offsets, text)
                    continue
                values = decode_column(text)
                if offsets is None:
                    if len(values) > rows:
                        del values[rows:]
                elif offsets and offsets[-1] >= rows:
                    end = next(position for position, offset in enumerate(offsets) if offset >= rows)
                    if not end:
                        continue
                    del offsets[end:], values[end:]
                columns[key] = (offsets, values)
            yield BlockColumns(info, rows, columns)
        next_block = infos[-1].index + 1
        if len(infos) < page_blocks:
            return


def _column_texts(conn: sqlite3.Connection, run_id: str, first: int, last: int,
                  keys: Optional[Sequence[str]]) -> Dict[int, Dict[str, Tuple[Optional[str], str]]]:
    """{block: {key: (offsets JSON or None, values JSON)}} for blocks ``first``..``last``."""
    query = "SELECT block, key, rows, vals FROM history_columns WHERE run_id = ? AND block BETWEEN ? AND ?"
    params: list = [run_id, first, last]
    if keys is not None:
        query += f" AND key IN ({', '.join('?' * len(keys))})"
        params.extend(keys)
    found: Dict[int, Dict[str, Tuple[Optional[str], str]]] = {}
    for block, key, offsets, text in conn.execute(query, params):
        found.setdefault(block, {})[key] = (offsets, text)
    return found


def object_keys(conn: sqlite3.Connection, run_id: str) -> List[str]:
    """The keys of ``run_id``'s blocks whose values include a JSON object (a nested dict or a media
    reference; non-finite float markers do not count) or a string holding ``{``, in no order."""
    if not _has_blocks(conn):
        return []
    stripped = "vals"
    for _ in _MARKERS:
        stripped = f"replace({stripped}, ?, '')"
    return [key for (key,) in conn.execute(
        f"SELECT DISTINCT key FROM history_columns WHERE run_id = ? AND vals LIKE '%{{%' "
        f"AND instr({stripped}, '{{') > 0", (run_id, *_MARKERS))]


__all__ += ["block_keys", "block_rows"]


def block_keys(conn: sqlite3.Connection, run_id: str, until_seq: Optional[int] = None) -> List[str]:
    """The top-level keys of ``run_id``'s blocks holding rows up to ``until_seq``, first seen first
    (its schema-1 rows left out), read from each block's list of keys."""
    if not _has_blocks(conn):
        return []
    seen: Dict[str, None] = {}
    for (text,) in conn.execute("SELECT keys FROM history_blocks WHERE run_id = ? AND first_seq <= ? ORDER BY block",
                                (run_id, until_seq if until_seq is not None else 2 ** 62)):
        seen.update(dict.fromkeys(_key_names(text)))
    return list(seen)


def block_rows(conn: sqlite3.Connection, run_id: str, until_seq: Optional[int] = None) -> int:
    """How many rows of ``run_id``'s blocks are stored up to ``until_seq`` (schema-1 rows left out)."""
    if not _has_blocks(conn):
        return 0
    until = until_seq if until_seq is not None else 2 ** 62
    return conn.execute("SELECT coalesce(sum(min(count, ? - first_seq + 1)), 0) FROM history_blocks "
                        "WHERE run_id = ? AND first_seq <= ?", (until, run_id, until)).fetchone()[0]
