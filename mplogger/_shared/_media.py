"""Media values with wandb's names and semantics: ``Histogram``, ``Table`` and ``Image`` (every
process: built in the user process or a child, read back by readers).

A media object is turned into a small JSON reference by :meth:`Media.to_json`, which also writes
the file the object needs (if any) under ``<run_dir>/media/<kind>/``:

- ``Histogram`` → ``{"_type": "histogram", "values": [...], "bins": [...]}`` inline, no file.
- ``Table`` → ``media/table/<key>_<step>_<hash>.table.json`` holding
  ``{"version": 2, "columns": [...], "data": [[...], ...]}`` (strict JSON: a non-finite float is
  written as ``{"_type": "float", "value": "NaN"}`` (or ``"Infinity"``, ``"-Infinity"``), as in
  the store, so a cell holding the string ``"NaN"`` reads back as that string), and a
  ``"table-file"`` reference. Files without ``"version"`` (written before) hold non-finite floats
  as those strings and are read as they were written.
- ``Image`` → ``media/images/<key>_<step>_<hash>.png`` (a JPEG file given by path is copied as
  is) and an ``"image-file"`` reference.

File names are made from the key (anything but ``[A-Za-z0-9._-]`` becomes ``_``), the step and a
short hash of the content, so they are safe for any key and never leave ``run_dir``. The items of
a logged list of media are named by :func:`item_key` (the key and the item's index), so each item
has a file of its own. Files are written to a temporary name and renamed, so a reader never sees
half a file. Nothing is pickled.

:func:`load_media` is the reader's side. Only the standard library is imported here: numpy, PIL
and pandas are imported when a value comes from them or a feature needs them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import operator
import os
import re
import struct
import zlib
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from mplogger._shared._files import write_atomically

__all__ = [
    "Media",
    "Histogram",
    "Table",
    "Image",
    "load_media",
    "is_media",
]

PathLike = Union[str, "os.PathLike[str]"]

_HASH_CHARS = 12
_INT_END = 2**63  # ints are kept within SQLite's 64-bit range, as mplogger._shared._values.INT_END says
_MAX_KEY_CHARS = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# --------------------------------------------------------------------------- helpers


def _require(module: str, package: str, feature: str) -> Any:
    """Import ``module`` or raise an ImportError that names the pip package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{feature} needs {package}: pip install {package}") from exc


def _is_numpy_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _is_pil_image(value: Any) -> bool:
    module = type(value).__module__ or ""
    if not (module == "PIL" or module.startswith("PIL.")):
        return False
    from PIL import Image as PILImage  # already imported: the value comes from PIL

    return isinstance(value, PILImage.Image)


def _safe_name(key: str) -> str:
    """``key`` as a file-name stem: ASCII letters, digits, ``.``, ``_``, ``-``; never hidden."""
    name = _UNSAFE.sub("_", key)[:_MAX_KEY_CHARS]
    if name.startswith("."):
        name = "_" + name[1:]
    return name or "media"


def item_key(key: str, index: int) -> str:
    """The key that names item ``index`` of a list of media logged under ``key``: ``<key>_<index>``.

    The key is cut first where its file-name stem would be cut, so the index always survives.
    """
    suffix = f"_{index}"
    return key[:max(0, _MAX_KEY_CHARS - len(suffix))] + suffix


def _check_key_step(key: Any, step: Any) -> Tuple[str, int]:
    if not isinstance(key, str):
        raise TypeError(f"to_json(): key must be a str, not {type(key).__name__}")
    if isinstance(step, bool):
        raise TypeError("to_json(): step must be an int, not bool")
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"to_json(): step must be an int, not {type(step).__name__}") from None
    return key, step


def _media_path(run_dir: PathLike, kind: str, key: str, step: int, digest: str, suffix: str) -> Tuple[str, str]:
    """(absolute path, path relative to run_dir with '/' separators) for a new media file."""
    name = f"{_safe_name(key)}_{step}_{digest[:_HASH_CHARS]}{suffix}"
    relative = f"media/{kind}/{name}"
    root = os.path.abspath(os.fspath(run_dir))
    target = os.path.join(root, "media", kind, name)
    _check_inside(root, target)
    return target, relative


def _check_inside(root: str, target: str) -> None:
    real_root = os.path.realpath(root)
    real_target = os.path.realpath(target)
    if os.path.commonpath([real_root, real_target]) != real_root:
        raise ValueError(f"media path {target!r} is outside the run directory {root!r}")


def _write_atomic(path: str, payload: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            handle.write(payload)

    write_atomically(path, write, keep_mode=False)


def _resolve_ref_path(ref: dict, run_dir: PathLike) -> str:
    relative = ref.get("path")
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"media reference of type {ref.get('_type')!r} has no 'path': {ref!r:.120}")
    root = os.path.abspath(os.fspath(run_dir))
    if relative.startswith("/") or os.path.isabs(relative):
        raise ValueError(f"media path {relative!r} is outside the run directory {root!r}")
    target = os.path.abspath(os.path.join(root, *relative.split("/")))
    _check_inside(root, target)
    return target


def _finite_number(value: Any, what: str) -> Union[int, float]:
    """A Python int/float from a real number (numpy scalars, 0-d tensors); TypeError otherwise."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) or (
        hasattr(value, "__float__") and not isinstance(value, (str, bytes, numbers.Complex))
    ):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{what} must contain numbers, got {type(value).__name__}: {value!r:.60}")


# --------------------------------------------------------------------------- Media


class Media:
    """Base class of the media types: ``to_json`` writes the object's file and returns its reference."""

    _type: str = "media"

    def to_json(self, run_dir: str, key: str, step: int) -> dict:
        """Write any file this object needs under ``<run_dir>/media/<kind>/``; return a JSON-able reference."""
        raise NotImplementedError(f"{type(self).__name__}.to_json")


def is_media(value: Any) -> bool:
    """Whether ``value`` is a media object (a :class:`Media` instance)."""
    return isinstance(value, Media)


# --------------------------------------------------------------------------- Histogram

MAX_HISTOGRAM_BINS = 512


def _flatten_numbers(sequence: Any) -> List[float]:
    """Finite floats from an iterable of numbers (nested lists and ``tolist()`` objects flattened)."""
    out: List[float] = []
    stack: List[Iterator[Any]] = [iter(sequence)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, (list, tuple)):
                stack.append(iter(item))
                break
            if hasattr(item, "tolist") and not isinstance(item, numbers.Number):
                listed = item.tolist()  # a tensor, an array, a Series
                if isinstance(listed, list):
                    stack.append(iter(listed))
                    break
                item = listed
            number = float(_finite_number(item, "Histogram: sequence"))
            if math.isfinite(number):
                out.append(number)
        else:
            stack.pop()
    return out


def _outer_edges(lo: float, hi: float, num_bins: int) -> Tuple[float, float, List[float]]:
    """(first edge, last edge, edges) as numpy.histogram computes them for equal-width bins.

    Where numpy would fail (a range too narrow for ``num_bins`` distinct edges), the range is
    widened around its middle until the edges are distinct.
    """
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if not math.isfinite(hi - lo):
        raise ValueError(f"Histogram: sequence spans [{lo}, {hi}], too wide a range for float bins")
    edges = _linspace(lo, hi, num_bins)
    if all(a < b for a, b in zip(edges, edges[1:])):
        return lo, hi, edges
    mid = lo + (hi - lo) / 2
    half = max(0.5, math.ulp(abs(mid)) * num_bins)
    while True:
        lo, hi = mid - half, mid + half
        edges = _linspace(lo, hi, num_bins)
        if all(a < b for a, b in zip(edges, edges[1:])):
            return lo, hi, edges
        half *= 2


def _linspace(lo: float, hi: float, num_bins: int) -> List[float]:
    step = (hi - lo) / num_bins
    edges = [i * step + lo for i in range(num_bins)]
    edges.append(hi)
    return edges


def _histogram_pure(values: List[float], num_bins: int) -> Tuple[List[int], List[float]]:
    """numpy.histogram(values, bins=num_bins) in pure Python, bin for bin."""
    if values:
        lo, hi, edges = _outer_edges(min(values), max(values), num_bins)
    else:
        lo, hi, edges = _outer_edges(0.0, 1.0, num_bins)
    counts = [0] * num_bins
    span = hi - lo
    last = num_bins - 1
    for x in values:
        index = int((x - lo) / span * num_bins)
        if index >= num_bins:
            index = last
        if x < edges[index]:
            index -= 1
        if index != last and x >= edges[index + 1]:
            index += 1
        counts[index] += 1
    return counts, edges


class Histogram(Media):
    """Counts of a sequence of numbers in ``num_bins`` equal-width bins, or a given ``np_histogram``.

    ``bins`` are the ``len(values) + 1`` bin edges and ``values`` the counts, as
    ``numpy.histogram`` returns them. NaN and infinite inputs are dropped.
    """

    _type = "histogram"
    MAX_LENGTH = MAX_HISTOGRAM_BINS

    def __init__(
        self,
        sequence: Optional[Iterable[Any]] = None,
        np_histogram: Optional[Tuple[Sequence[Any], Sequence[Any]]] = None,
        num_bins: int = 64,
    ) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral):
            raise TypeError(f"Histogram: num_bins must be an int, not {type(num_bins).__name__}")
        num_bins = int(num_bins)
        if not 1 <= num_bins <= self.MAX_LENGTH:
            raise ValueError(f"Histogram: num_bins must be between 1 and {self.MAX_LENGTH}, got {num_bins}")
        if np_histogram is not None:
            if sequence is not None:
                raise ValueError("Histogram: pass either sequence or np_histogram, not both")
            self.values, self.bins = self._from_np_histogram(np_histogram)
        elif sequence is None:
            raise ValueError("Histogram: pass a sequence of numbers or np_histogram=(values, bin_edges)")
        elif isinstance(sequence, (str, bytes)):
            raise TypeError(f"Histogram: sequence must contain numbers, not be a {type(sequence).__name__}")
        elif _is_numpy_array(sequence):
            self.values, self.bins = self._from_numpy(sequence, num_bins)
        else:
            try:
                iterable = iter(sequence)
            except TypeError:
                raise TypeError(
                    f"Histogram: sequence must be an iterable of numbers, not {type(sequence).__name__}"
                ) from None
            self.values, self.bins = _histogram_pure(_flatten_numbers(iterable), num_bins)

    @property
    def histogram(self) -> List[Union[int, float]]:
        """The counts (wandb's name for :attr:`values`)."""
        return self.values

    @classmethod
    def _from_np_histogram(cls, np_histogram: Any) -> Tuple[List[Union[int, float]], List[float]]:
        try:
            values, edges = np_histogram
        except (TypeError, ValueError):
            raise ValueError("Histogram: np_histogram must be a pair (values, bin_edges)") from None
        values = [_count(v) for v in _as_list(values)]
        edges = [float(_finite_number(e, "Histogram: np_histogram bin_edges")) for e in _as_list(edges)]
        if len(edges) != len(values) + 1:
            raise ValueError(
                f"Histogram: np_histogram needs len(bin_edges) == len(values) + 1; "
                f"got {len(values)} values and {len(edges)} bin edges"
            )
        if not values:
            raise ValueError("Histogram: np_histogram has no values")
        if len(values) > cls.MAX_LENGTH:
            raise ValueError(
                f"Histogram: np_histogram has {len(values)} bins; the maximum is {cls.MAX_LENGTH}"
            )
        if not all(math.isfinite(v) for v in values) or not all(math.isfinite(e) for e in edges):
            raise ValueError("Histogram: np_histogram values and bin_edges must be finite")
        if any(a > b for a, b in zip(edges, edges[1:])):
            raise ValueError("Histogram: np_histogram bin_edges must be non-decreasing")
        return values, edges

    @staticmethod
    def _from_numpy(array: Any, num_bins: int) -> Tuple[List[int], List[float]]:
        import numpy as np  # the value is a numpy array, so numpy is there

        if array.dtype.kind not in "biuf":
            raise TypeError(f"Histogram: sequence must hold numbers, got a numpy array of dtype {array.dtype}")
        flat = np.asarray(array, dtype=np.float64).ravel()
        flat = flat[np.isfinite(flat)]
        if flat.size:
            lo, hi, _ = _outer_edges(float(flat.min()), float(flat.max()), num_bins)
        else:
            lo, hi, _ = _outer_edges(0.0, 1.0, num_bins)
        counts, edges = np.histogram(flat, bins=num_bins, range=(lo, hi))
        return [int(c) for c in counts.tolist()], [float(e) for e in edges.tolist()]

    def to_json(self, run_dir: str, key: str, step: int) -> dict:
        """``{"_type": "histogram", "values": [...], "bins": [...]}``; no file is written."""
        _check_key_step(key, step)
        return {"_type": self._type, "values": list(self.values), "bins": list(self.bins)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.values == other.values and self.bins == other.bins

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        lo, hi = (self.bins[0], self.bins[-1]) if self.bins else (None, None)
        return f"Histogram({len(self.values)} bins over [{lo}, {hi}], {sum(self.values)} counts)"


def _count(value: Any) -> Union[int, float]:
    """One np_histogram value: a number, an int within the 64-bit range every stored int keeps."""
    number = _finite_number(value, "Histogram: np_histogram values")
    if type(number) is int and not -_INT_END <= number < _INT_END:
        from mplogger._shared._values import int_error

        raise int_error("Histogram: np_histogram values", number)
    return number


def _as_list(values: Any) -> List[Any]:
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes)):
        raise TypeError("Histogram: np_histogram entries must be sequences of numbers")
    return list(values)


# --------------------------------------------------------------------------- Table

_NONFINITE_TEXT = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
TABLE_VERSION = 2  # non-finite floats as typed markers; before, as the strings "NaN", ...


def _cell(value: Any, column: str) -> Any:
    """A table cell as a JSON scalar: numbers, strings, bools and None kept; anything else as its repr."""
    kind = type(value)
    if kind is int:
        return _int_cell(value, column)
    if value is None or kind in (bool, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return _int_cell(int(value), column)
    if isinstance(value, numbers.Real) and not hasattr(value, "ndim"):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        item = value.item()
        if type(item) is int:
            return _int_cell(item, column)
        if item is None or type(item) in (bool, float, str):
            return item
        return repr(item)
    if kind.__name__ in ("NAType", "NaTType") and kind.__module__.startswith("pandas"):
        return None  # pandas' missing-value markers
    return repr(value)


def _int_cell(value: int, column: str) -> int:
    """An int cell within the 64-bit range; ValueError naming the column otherwise."""
    if -_INT_END <= value < _INT_END:
        return value
    from mplogger._shared._values import int_error  # here: _values imports this module

    raise int_error(f"Table: column {column!r}", value)


def _cell_to_json(value: Any) -> Any:
    """A cell as strict JSON: a non-finite float as the store's typed marker, the rest as it is."""
    if type(value) is float and not math.isfinite(value):
        from mplogger._shared._values import float_marker  # here: _values imports this module

        return float_marker(value)
    return value


def _cell_from_json(value: Any, version: Any) -> Any:
    """A cell as written by :func:`_cell_to_json` (``version`` 2) or by the writer before it."""
    if type(value) is dict:  # cells are never dicts: this is a non-finite float's marker
        text = value.get("value")
        return _NONFINITE_TEXT.get(text, value) if type(text) is str else value
    if version is None and type(value) is str and value in _NONFINITE_TEXT:
        return _NONFINITE_TEXT[value]
    return value


def _nan_equal(a: Any, b: Any) -> bool:
    if type(a) is float and type(b) is float and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


class Table(Media):
    """Rows of cells (numbers, strings, bools, None) under named columns.

    ``columns`` default to ``col0 .. colN-1`` from the first row. ``data`` (or its alias ``rows``)
    is a list of rows or a 2-D numpy array; ``dataframe`` a pandas DataFrame (its index is
    ignored). Cells of other types are stored as their ``repr``.
    """

    _type = "table-file"

    def __init__(
        self,
        columns: Optional[Sequence[str]] = None,
        data: Optional[Iterable[Sequence[Any]]] = None,
        rows: Optional[Iterable[Sequence[Any]]] = None,
        dataframe: Any = None,
    ) -> None:
        if data is not None and rows is not None:
            raise ValueError("Table: pass data or rows (the same thing), not both")
        if rows is not None:
            data = rows
        if dataframe is not None:
            if data is not None or columns is not None:
                raise ValueError("Table: dataframe= cannot be combined with columns, data or rows")
            if not (hasattr(dataframe, "columns") and hasattr(dataframe, "itertuples")):
                raise TypeError(f"Table: dataframe must be a pandas DataFrame, not {type(dataframe).__name__}")
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.itertuples(index=False, name=None)
        self.columns: List[str] = [] if columns is None else self._check_columns(columns)
        self._infer_columns = columns is None
        self.data: List[List[Any]] = []
        if data is not None:
            if hasattr(data, "tolist") and not isinstance(data, (list, tuple)):
                data = data.tolist()
            if isinstance(data, (str, bytes)):
                raise TypeError("Table: data must be a list of rows, not a string")
            try:
                iterator = iter(data)
            except TypeError:
                raise TypeError(f"Table: data must be a list of rows, not {type(data).__name__}") from None
            for row in iterator:
                if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
                    raise TypeError(
                        f"Table: each row of data must be a list or tuple of cells, got "
                        f"{type(row).__name__}: {row!r:.60}"
                    )
                self.add_data(*row)

    @staticmethod
    def _check_columns(columns: Any) -> List[str]:
        if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
            raise TypeError(f"Table: columns must be a list of names, not {type(columns).__name__}")
        names: List[str] = []
        for name in columns:
            if isinstance(name, bool) or not isinstance(name, (str, int)):
                raise TypeError(f"Table: column names must be strings, got {type(name).__name__}: {name!r:.40}")
            names.append(str(name))
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Table: duplicate column names {duplicates}")
        return names

    def add_data(self, *row: Any) -> None:
        """Append one row; it must have one value per column."""
        if self._infer_columns and not self.columns and not self.data:
            self.columns = [f"col{i}" for i in range(len(row))]
        if len(row) != len(self.columns):
            raise ValueError(
                f"Table.add_data: expected {len(self.columns)} values (one per column: "
                f"{', '.join(self.columns)}), got {len(row)}"
            )
        self.data.append([_cell(v, column) for v, column in zip(row, self.columns)])

    @property
    def ncols(self) -> int:
        return len(self.columns)

    @property
    def nrows(self) -> int:
        return len(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        pd = _require("pandas", "pandas", "Table.get_dataframe()")
        return pd.DataFrame(self.data, columns=self.columns)

    def to_json(self, run_dir: str, key: str, step: int) -> dict:
        """Write ``media/table/<name>.table.json`` (strict JSON) and return a ``table-file`` reference."""
        key, step = _check_key_step(key, step)
        document = {"version": TABLE_VERSION, "columns": self.columns,
                    "data": [[_cell_to_json(v) for v in row] for row in self.data]}
        payload = json.dumps(document, allow_nan=False, ensure_ascii=True, separators=(",", ":")).encode("utf-8")
        digest = hashlib.sha256(payload).hexdigest()
        path, relative = _media_path(run_dir, "table", key, step, digest, ".table.json")
        _write_atomic(path, payload)
        return {
            "_type": self._type,
            "path": relative,
            "ncols": self.ncols,
            "nrows": self.nrows,
            "sha256": digest,
            "size": len(payload),
        }

    @classmethod
    def _from_file(cls, path: str) -> "Table":
        with open(path, "rb") as handle:
            document = json.loads(handle.read().decode("utf-8"))
        table = cls(columns=document.get("columns", []))
        version = document.get("version")
        for row in document.get("data", []):
            table.add_data(*[_cell_from_json(v, version) for v in row])
        return table

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return (
            self.columns == other.columns
            and len(self.data) == len(other.data)
            and all(
                len(a) == len(b) and all(_nan_equal(x, y) for x, y in zip(a, b))
                for a, b in zip(self.data, other.data)
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Table(columns={self.columns!r}, {self.nrows} rows)"


# --------------------------------------------------------------------------- PNG encoding

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
_MODE_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode_png(pixels: bytes, width: int, height: int, channels: int) -> bytes:
    """A PNG file of 8-bit pixels given row by row (``channels``: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)."""
    if channels not in _PNG_COLOR_TYPES:
        raise ValueError(f"encode_png: channels must be 1, 2, 3 or 4, got {channels}")
    if width < 1 or height < 1:
        raise ValueError(f"encode_png: empty image ({width}x{height})")
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"encode_png: expected {stride * height} bytes for {width}x{height}x{channels}, got {len(pixels)}")
    raw = bytearray()
    view = memoryview(pixels)
    for y in range(height):
        raw.append(0)  # filter type 0 (None) for every scanline
        raw += view[y * stride:(y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPES[channels], 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(raw), 6))
        + _png_chunk(b"IEND", b"")
    )


def _png_size(payload: bytes) -> Optional[Tuple[int, int]]:
    if payload[:8] == PNG_SIGNATURE and payload[12:16] == b"IHDR" and len(payload) >= 24:
        width, height = struct.unpack(">II", payload[16:24])
        return width, height
    return None


def _jpeg_size(payload: bytes) -> Optional[Tuple[int, int]]:
    if payload[:3] != b"\xff\xd8\xff":
        return None
    i, n = 2, len(payload)
    while i + 4 <= n:
        if payload[i] != 0xFF:
            return None
        marker = payload[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", payload[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", payload[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


# --------------------------------------------------------------------------- Image


def _array_to_uint8(array: Any) -> Any:
    """A uint8 copy of an image array: floats in [0, 1] scaled to 0..255, anything else clipped."""
    import numpy as np

    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "b":
        return array.astype(np.uint8) * 255
    if array.dtype.kind in "iu":
        return np.clip(array, 0, 255).astype(np.uint8)
    if array.dtype.kind == "f":
        data = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if data.size and data.min() < 0:  # as wandb: negative values mean "normalise the range"
            span = data.max() - data.min()
            data = (data - data.min()) / span if span > 0 else np.zeros_like(data)
        if not data.size or data.max() <= 1.0:
            data = data * 255.0
        return np.clip(np.rint(data), 0, 255).astype(np.uint8)
    raise TypeError(f"Image: cannot make an image of a numpy array of dtype {array.dtype}")


def _convert_channels(array: Any, have: str, want: str) -> Any:
    """Convert an HxWxC uint8 array between L, LA, RGB and RGBA (PIL's luma weights for gray)."""
    import numpy as np

    if have == want:
        return array
    color = array[..., :-1] if have in ("LA", "RGBA") else array
    alpha = array[..., -1:] if have in ("LA", "RGBA") else np.full(array.shape[:2] + (1,), 255, np.uint8)
    if want in ("L", "LA") and color.shape[-1] == 3:
        weights = np.array([299, 587, 114], dtype=np.uint32)
        color = ((color.astype(np.uint32) * weights).sum(axis=-1, keepdims=True) + 500) // 1000
        color = color.astype(np.uint8)
    elif want in ("RGB", "RGBA") and color.shape[-1] == 1:
        color = np.repeat(color, 3, axis=-1)
    if want in ("LA", "RGBA"):
        return np.concatenate([color, alpha], axis=-1)
    return color


_PNG_PIL_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})


def _pil_to_png_mode(image: Any) -> Any:
    """A PIL image in a mode the PNG writer takes (16-bit gray kept, alpha kept, else RGB)."""
    if image.mode == "I":
        targets = ["I;16", "L"]
    elif image.mode in ("La", "PA", "RGBa"):
        targets = ["RGBA", "LA", "RGB"]
    else:
        targets = ["RGB", "L"]
    for target in targets:
        try:
            return image.convert(target)
        except ValueError:
            continue
    raise ValueError(f"Image: cannot convert a PIL image of mode {image.mode!r} to a PNG mode")


class Image(Media):
    """An image from a numpy array, a PIL image or the path of an image file, saved as a PNG.

    Arrays may be HxW, HxWx1 (gray), HxWx2 (gray+alpha), HxWx3 (RGB) or HxWx4 (RGBA); float arrays
    in [0, 1] are scaled to 0..255 (rounded), integer arrays are clipped to 0..255. Arrays are
    encoded by a built-in PNG writer, so PIL is not needed for them. A PNG or JPEG file is copied
    unchanged; other formats are converted to PNG with PIL. ``mode`` ("L", "LA", "RGB", "RGBA" or,
    for PIL images, any PIL mode) converts the image first.
    """

    _type = "image-file"

    def __init__(self, data_or_path: Any, caption: Optional[str] = None, mode: Optional[str] = None) -> None:
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"Image: caption must be a str or None, not {type(caption).__name__}")
        if mode is not None and not isinstance(mode, str):
            raise TypeError(f"Image: mode must be a str such as 'RGB', not {type(mode).__name__}")
        self.caption = caption
        self.format = "png"
        if isinstance(data_or_path, (str, os.PathLike)):
            payload = self._from_path(os.fspath(data_or_path), mode)
        elif _is_pil_image(data_or_path):
            payload = self._from_pil(data_or_path, mode)
        elif _is_numpy_array(data_or_path) or hasattr(data_or_path, "__array__") or isinstance(data_or_path, list):
            np = _require("numpy", "numpy", "Image from an array")
            try:
                array = np.asarray(data_or_path)
            except Exception as exc:
                raise TypeError(f"Image: cannot read data_or_path as an array: {exc}") from exc
            payload = self._from_array(array, mode)
        else:
            raise TypeError(
                f"Image: data_or_path must be a numpy array, a PIL image or a file path, "
                f"not {type(data_or_path).__name__}"
            )
        self._payload = payload
        self.sha256 = hashlib.sha256(payload).hexdigest()
        size = _png_size(payload) if self.format == "png" else _jpeg_size(payload)
        if size is None:  # pragma: no cover - our own payloads always carry a size
            raise ValueError("Image: could not read the size of the encoded image")
        self.width, self.height = size

    def _from_array(self, array: Any, mode: Optional[str]) -> bytes:
        shape = tuple(array.shape)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
            raise ValueError(
                f"Image: an array must be HxW, HxWx1, HxWx2, HxWx3 or HxWx4; got shape {shape}"
            )
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(f"Image: empty image array of shape {shape}")
        pixels = _array_to_uint8(array)
        have = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
        if mode is not None:
            if mode not in _MODE_CHANNELS:
                raise ValueError(f"Image: mode for an array must be one of L, LA, RGB, RGBA; got {mode!r}")
            pixels = _convert_channels(pixels, have, mode)
        import numpy as np

        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        height, width, channels = pixels.shape
        return encode_png(pixels.tobytes(), width, height, channels)

    def _from_pil(self, image: Any, mode: Optional[str]) -> bytes:
        if mode is not None and image.mode != mode:
            image = image.convert(mode)
        if image.mode not in _PNG_PIL_MODES:
            image = _pil_to_png_mode(image)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def _from_path(self, path: str, mode: Optional[str]) -> bytes:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Image: data_or_path {path!r} is not an existing file")
        with open(path, "rb") as handle:
            payload = handle.read()
        if mode is None and _png_size(payload) is not None:
            return payload
        if mode is None and _jpeg_size(payload) is not None:
            self.format = "jpeg"
            return payload
        pil = _require("PIL.Image", "pillow", f"Image from {os.path.basename(path)!r} (not a PNG or JPEG file, or mode=)")
        try:
            with pil.open(io.BytesIO(payload)) as opened:
                opened.load()
                return self._from_pil(opened, mode)
        except (OSError, ValueError) as exc:
            raise ValueError(f"Image: cannot read {path!r} as an image: {exc}") from exc

    def to_json(self, run_dir: str, key: str, step: int) -> dict:
        """Write ``media/images/<name>.png`` (``.jpg`` for a copied JPEG) and return an ``image-file`` reference."""
        key, step = _check_key_step(key, step)
        suffix = ".png" if self.format == "png" else ".jpg"
        path, relative = _media_path(run_dir, "images", key, step, self.sha256, suffix)
        _write_atomic(path, self._payload)
        return {
            "_type": self._type,
            "path": relative,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "caption": self.caption,
            "sha256": self.sha256,
            "size": len(self._payload),
        }

    def __repr__(self) -> str:
        return f"Image({self.width}x{self.height} {self.format}, caption={self.caption!r})"


# --------------------------------------------------------------------------- reading


def load_media(ref: dict, run_dir: str) -> Any:
    """The value behind a reference from ``to_json``: a Histogram, a Table, or an image's absolute path.

    Anything else (an unknown ``_type``, not a dict) is returned unchanged.
    """
    if not isinstance(ref, dict):
        return ref
    kind = ref.get("_type")
    if kind == Histogram._type:
        if not isinstance(ref.get("values"), list) or not isinstance(ref.get("bins"), list):
            raise ValueError(f"histogram reference without 'values' and 'bins' lists: {ref!r:.120}")
        return Histogram(np_histogram=(ref["values"], ref["bins"]))
    if kind == Table._type:
        return Table._from_file(_resolve_ref_path(ref, run_dir))
    if kind == Image._type:
        return _resolve_ref_path(ref, run_dir)
    return ref
