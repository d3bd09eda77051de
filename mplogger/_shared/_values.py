"""What ``log()`` accepts, checked at the call site, and how values are written as JSON (every
process: the user process checks, the worker and readers read).

One rule says what is storable (:func:`check_value`), and every path that takes values applies it
at the call site, naming the key: ``Run.log`` (its fast path through :func:`scalars_fit`), a child
process's ``log()``, ``summary[key] = ...`` and ``summary.update``, and ``config`` (through
:func:`jsonable`, which converts more types first but keeps the same limits). Storable:

- ``None``, ``bool``, ``float`` (NaN and infinities too), ``str``, and ``int`` in
  ``[-2**63, 2**63)``, SQLite's integers. A larger int raises ``ValueError``: stored as a float
  it would silently be a different number, so the caller chooses ``float(x)`` or ``str(x)``;
- numpy, torch and jax scalars and one-element arrays, taken as the Python scalar (same rule);
- dicts with string keys that do not start with ``_``, nested at most :data:`MAX_DEPTH` deep and
  without cycles (``ValueError`` naming the key path otherwise);
- media (``Histogram``, ``Table``, ``Image``), and larger arrays (a ``Histogram``, as wandb does).
  :func:`store_media` writes their files under the run folder and keeps a JSON reference;
- a non-empty list or tuple of media, at most :data:`MAX_MEDIA_LIST` of them (wandb's gallery,
  e.g. ``{"samples": [Image(a), Image(b)]}``), stored as a list of references, one file per item.
  Other lists are refused: a list may hold only media.

So every row that leaves the process pickles and encodes: nothing accepted here can fail later.

On disk every value is plain JSON that ``sqlite3``'s JSON functions and ``jq`` accept. JSON has no
NaN or infinity, so a non-finite float is written as ``{"_type": "float", "value": "NaN"}``
(or ``"Infinity"`` / ``"-Infinity"``) and read back as the float; a string is always read back as
the string.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import math
import numbers
import operator
import os
import types
from typing import Any, Callable, Dict, Iterable, Mapping, Union

from mplogger._shared._media import Histogram, is_media, item_key

__all__ = [
    "as_number",
    "float_marker",
    "replace_nonfinite",
    "SCALAR_TYPES",
    "FAST_TYPES",
    "RESERVED_KEYS",
    "INT_MIN",
    "INT_END",
    "MAX_DEPTH",
    "MAX_MEDIA_LIST",
    "check_row",
    "check_value",
    "check_step",
    "scalars_fit",
    "store_media",
    "same_value",
    "int_error",
    "is_float_marker",
    "to_json",
    "from_json",
    "jsonable",
    "pick",
    "flatten",
]

FAST_TYPES = frozenset({float, str, bool, type(None)})  # stored as they are, whatever the value
SCALAR_TYPES = FAST_TYPES | {int}
RESERVED_KEYS = frozenset({"_step", "_timestamp", "_runtime"})
INT_MIN, INT_END = -(2**63), 2**63  # SQLite's 64-bit integers: every stored int is in [INT_MIN, INT_END)
# Pickling (done at the caller's stack depth) spends two of Python's 1000 recursion levels per
# nested dict, JSON one: 64 levels use ~130 of them, so log() works from 800 frames deep.
MAX_DEPTH = 64
MAX_MEDIA_LIST = 1000  # media in one list-valued key: each is a file written at the call site
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

# ASCII-only JSON: any string Python holds (lone surrogates included) is stored as valid JSON;
# sqlite3's json functions and JSON tools decode the \u escapes.
_encode = json.JSONEncoder(allow_nan=True, separators=(",", ":"), ensure_ascii=True).encode
try:  # the C encoder, built once: json.dumps builds one per call, which costs ~0.8 us a row
    from json.encoder import c_make_encoder, encode_basestring_ascii

    _c_encode = c_make_encoder(None, None, encode_basestring_ascii, None, ":", ",", False, False, True)
    _c_encode({"probe": [1.5, None, "s", True]}, 0)
except Exception:  # pragma: no cover - pure-Python json
    _c_encode = None


def as_number(value: Any, bools: bool = False) -> Union[int, float, None]:
    """``value`` as a Python int or float when it is a real number (numpy scalars too), else None;
    a bool only with ``bools`` (as 0 or 1). NaN and the infinities stay as they are: each reader
    (summaries, charts, exports) says what it makes of them."""
    kind = type(value)
    if kind is float or kind is int:
        return value
    if kind is bool:
        return int(value) if bools else None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _encode_fast(value: Any) -> str:
    if _c_encode is None:
        return _encode(value)
    return "".join(_c_encode(value, 0))


def check_row(data: Any, on_reserved: Callable[[str], None], what: str = "log()") -> Dict[str, Any]:
    """A checked copy of one row (``log()``, ``summary``); TypeError/ValueError name the bad key."""
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{what} takes a dict of metric names to values, not {type(data).__name__}: {data!r:.80}"
        )
    out: Dict[str, Any] = {}
    for key, value in data.items():
        if type(key) is not str:
            raise TypeError(
                f"{what} keys must be strings; got key {key!r} of type {type(key).__name__}"
            )
        if key in RESERVED_KEYS:
            on_reserved(key)
            continue
        if not key or key[0] == "_":
            raise ValueError(
                f"{what} key {key!r}: keys starting with '_' are reserved for mplogger"
                if key
                else f"{what} keys must not be empty"
            )
        out[key] = _check_value(key, value, what, {})
    return out


def check_value(path: str, value: Any, what: str = "log()") -> Any:
    """The one rule of what is storable: a storable copy of ``value``, or an error naming ``path``."""
    return _check_value(path, value, what, {})


def _check_value(path: str, value: Any, what: str, ancestors: Dict[int, str]) -> Any:
    """:func:`check_value` inside the containers ``ancestors`` (id -> key path), for cycles and depth."""
    kind = type(value)
    if kind in FAST_TYPES:
        return value
    if kind is int:
        return _check_int(path, value, what)
    if isinstance(value, Mapping):
        return _check_dict(path, value, what, ancestors)
    scalar = _array_scalar(value)
    if scalar is not _NOT_SCALAR:
        return _check_int(path, scalar, what) if type(scalar) is int else scalar
    if is_media(value):
        return value
    if _is_array(value) and _element_count(value) > 1:  # as wandb: a histogram of the values
        return Histogram(_host_values(value))
    if isinstance(value, (list, tuple)):
        media = _check_media_list(path, value, what, ancestors)
        if media is not None:
            return media
    raise TypeError(
        f"{what} key {path!r}: cannot store a value of type {kind.__module__}.{kind.__qualname__} "
        f"({value!r:.60}); log numbers, strings, None, media (Histogram, Table, Image), arrays "
        "or dicts of them"
    )


def _check_media_list(path: str, value: Any, what: str, ancestors: Dict[int, str]) -> Any:
    """A list or tuple of media as a new list; None for a list without media (refused as before).

    The items are read as the list or tuple holds them, never through a subclass's own methods.
    A list longer than :data:`MAX_MEDIA_LIST` is refused without reading every item.
    """
    base = list if isinstance(value, list) else tuple
    count = base.__len__(value)
    if not count:
        raise TypeError(
            f"{_named(what, path)}: cannot store an empty {base.__name__}; a list may hold only media "
            "(Histogram, Table, Image), at least one"
        )
    if count > MAX_MEDIA_LIST:
        if not is_media(base.__getitem__(value, 0)):
            return None
        raise ValueError(
            f"{_named(what, path)}: a {base.__name__} of {count} media; at most {MAX_MEDIA_LIST} can be "
            "logged in one key (log them under several keys or steps)"
        )
    items = list(base.__iter__(value))
    bad = [i for i, item in enumerate(items) if not is_media(item)]
    if len(bad) == len(items):
        return None
    if bad:
        item = items[bad[0]]
        item_kind = type(item)
        raise TypeError(
            f"{_named(what, path)}: a list may hold only media (Histogram, Table, Image); item "
            f"{bad[0]} is of type {item_kind.__module__}.{item_kind.__qualname__} ({item!r:.60})"
        )
    _enter(path, value, what, ancestors)  # a level of nesting, as a dict is
    del ancestors[id(value)]
    return items


def _check_dict(path: str, value: Mapping, what: str, ancestors: Dict[int, str]) -> Dict[str, Any]:
    """A checked copy of a nested dict: string keys not starting with ``_``, values by the rule."""
    _enter(path, value, what, ancestors)
    nested: Dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise TypeError(
                f"{what} key {path!r}: nested keys must be strings; got {key!r} "
                f"of type {type(key).__name__}"
            )
        if not key or key[0] == "_":
            raise ValueError(
                f"{what} key {path}.{key}: keys starting with '_' (or empty) are reserved"
            )
        nested[key] = _check_value(f"{path}.{key}", item, what, ancestors)
    del ancestors[id(value)]
    return nested


def _enter(path: str, container: Any, what: str, ancestors: Dict[int, str]) -> None:
    """Refuse a container inside itself or nested too deep: pickle and JSON would fail on it later."""
    kind = type(container).__name__
    if id(container) in ancestors:
        raise ValueError(
            f"{_named(what, path)}: the {kind} contains itself (this is {ancestors[id(container)] or 'the value'!r} "
            "again); a cyclic value cannot be stored"
        )
    if len(ancestors) >= MAX_DEPTH:
        raise ValueError(
            f"{_named(what, _short(path))}: a {kind} nested more than {MAX_DEPTH} levels deep; mplogger "
            f"stores at most {MAX_DEPTH} levels (pickling deeper values can exhaust Python's recursion limit)"
        )
    ancestors[id(container)] = path


def _named(what: str, path: str) -> str:
    """How a message names the value: ``log() key 'a.b'``, or ``config value`` without a key."""
    return f"{what} key {path!r}" if path else f"{what} value"


def _short(path: str) -> str:
    """A long key path cut to its start, for messages about deep nesting."""
    return path if len(path) <= 60 else path[:60] + "..."


def _check_int(path: str, value: int, what: str) -> int:
    """``value`` if SQLite can store it as an integer, else ValueError naming the key and the range."""
    if INT_MIN <= value < INT_END:
        return value
    raise int_error(_named(what, path), value)


def int_error(name: str, value: int) -> ValueError:
    """The error for an int outside ``[-2**63, 2**63)``, naming what holds it (``name``)."""
    return ValueError(
        f"{name}: int {_int_text(value)} is outside the 64-bit range [-2**63, 2**63) that the store "
        "keeps exactly; pass float(value) for an approximate number or str(value) for the digits"
    )


def _int_text(value: int) -> str:
    """An int for a message; a huge one by its size (str() refuses ints over 4300 digits)."""
    if value.bit_length() <= 256:
        return repr(value)
    digits = int(value.bit_length() * math.log10(2)) + 1
    return f"{'-' if value < 0 else ''}<about {digits} digits>"


def check_step(step: Any) -> int:
    """``log(step=...)`` as an int in ``[0, 2**63)``, SQLite's range; TypeError/ValueError otherwise."""
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"log() step must be an int, not {type(step).__name__}") from None
    if not 0 <= step < INT_END:
        raise ValueError(f"log() step must be an int in [0, 2**63), got {_int_text(step)}")
    return step


def scalars_fit(values: Iterable[Any]) -> bool:
    """Whether every value is a scalar stored as it is: ``log()``'s fast path for rows with ints.

    One pass, exact, ~30 ns a value; False sends the row to the full check, which names the key.
    """
    for value in values:
        kind = type(value)
        if kind is int:
            if not INT_MIN <= value < INT_END:
                return False
        elif kind not in FAST_TYPES:
            return False
    return True


def store_media(values: Dict[str, Any], run_dir: str, step: int, prefix: str = "") -> Dict[str, Any]:
    """Media in a checked row written under ``run_dir``, replaced (in place) by their JSON references.

    The parent's ``log()`` and ``summary`` and a child's ``log()`` all call this, so only plain
    JSON-able values ever leave the process that logged them. A list of media becomes a list of
    references, each item written to a file of its own (named by the key and the item's index).
    """
    for key, value in values.items():
        if is_media(value):
            values[key] = value.to_json(run_dir, prefix + key, step)
        elif type(value) is dict:
            store_media(value, run_dir, step, f"{prefix}{key}.")
        elif type(value) is list:
            name = prefix + key
            values[key] = [item.to_json(run_dir, item_key(name, index), step) if is_media(item) else item
                           for index, item in enumerate(value)]
    return values


def same_value(a: Any, b: Any) -> bool:
    """``a == b`` for stored values, with NaN equal to NaN (inside dicts and lists too)."""
    if type(a) is float and type(b) is float and a != a and b != b:
        return True
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


_ARRAY_MODULES = ("numpy", "torch", "jax", "jaxlib", "tensorflow")


def _is_array(value: Any) -> bool:
    """An array or tensor of numpy, torch, jax or tensorflow, recognised without importing them."""
    return type(value).__module__.split(".", 1)[0] in _ARRAY_MODULES and hasattr(value, "shape")


def _host_values(value: Any) -> Any:
    """The values of an array or tensor as something iterable on the host (GPU tensors copied)."""
    for step in ("detach", "cpu"):
        method = getattr(value, step, None)
        if callable(method):
            value = method()
    if hasattr(value, "numpy") and type(value).__module__.split(".", 1)[0] != "numpy":
        try:
            return value.numpy()
        except Exception:
            pass
    return value


_NOT_SCALAR = object()


def _array_scalar(value: Any) -> Any:
    """A numpy scalar or 0-d array as a Python scalar, without importing numpy ourselves."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # the value itself, never a subclass's own __int__/__str__/__float__
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if _is_array(value) and hasattr(value, "item"):
        size = getattr(value, "size", None)
        size = size() if callable(size) else size  # torch: size() is the shape; numel() the count
        count = value.numel() if hasattr(value, "numel") else size
        if getattr(value, "ndim", None) == 0 or count == 1:
            item = value.item()  # a training loop's loss tensor; .item() copies it from a GPU
            if type(item) in SCALAR_TYPES:
                return item
    return _NOT_SCALAR


def _element_count(value: Any) -> int:
    """How many elements an array or tensor holds (numpy: size; torch: numel())."""
    count = value.numel() if hasattr(value, "numel") else getattr(value, "size", 0)
    return count if isinstance(count, int) else 0


def float_marker(value: float) -> Dict[str, str]:
    """How a non-finite float is stored: ``{"_type": "float", "value": "NaN"}`` (or ``[-]Infinity``)."""
    return {"_type": "float", "value": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}


def replace_nonfinite(value: Any, make: Callable[[float], Any] = float_marker) -> Any:
    """``value`` with every NaN and infinity in its dicts, lists and tuples (as lists) made ``make(x)``."""
    if isinstance(value, float) and not math.isfinite(value):
        return make(value)
    if isinstance(value, dict):
        return {k: replace_nonfinite(v, make) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [replace_nonfinite(v, make) for v in value]
    return value


def to_json(value: Any) -> str:
    """Strict JSON text for ``value``; non-finite floats become typed markers."""
    text = _encode_fast(value)
    if "NaN" in text or "Infinity" in text:
        text = _encode(replace_nonfinite(value))
    return text


def is_float_marker(obj: Mapping) -> bool:
    """Whether ``obj`` is how :func:`to_json` writes a non-finite float (read back as the float)."""
    if len(obj) != 2 or obj.get("_type") != "float":
        return False
    value = obj.get("value")
    return type(value) is str and value in _NONFINITE


def _object_hook(obj: dict) -> Any:
    """json.loads' hook: a non-finite float's marker becomes the float; other dicts stay dicts."""
    return _NONFINITE[obj["value"]] if is_float_marker(obj) else obj


def pick(values: Mapping[str, Any], key: str) -> Any:
    """``values[key]``, where a dotted key reaches into nested dicts; KeyError when absent."""
    if key in values:
        return values[key]
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def from_json(text: str) -> Any:
    """Read what :func:`to_json` wrote, with non-finite floats restored."""
    return json.loads(text, object_hook=_object_hook)


def jsonable(value: Any, path: str = "") -> Any:
    """A JSON-able copy of a config value (``path`` its key), as wandb stores config.

    Containers are kept (sets and tuples as lists), paths become strings, enums their value,
    dataclasses and namespaces dicts, numpy scalars and arrays numbers and lists; anything else
    (functions, classes, objects) is stored as its ``repr``, never dropped and never pickled.
    The limits of :func:`check_value` hold (ints within 64 bits, at most ``MAX_DEPTH`` levels, no
    cycles), and a dict that reads as a non-finite float marker is refused: ``ValueError`` names
    the key. Without ``path``, a dict is a whole config and its keys are the top-level keys.
    """
    if not path and isinstance(value, Mapping):
        return {str(k): _jsonable(v, str(k), {}) for k, v in value.items()}
    return _jsonable(value, path, {})


def _jsonable(value: Any, path: str, ancestors: Dict[int, str]) -> Any:
    """:func:`jsonable` inside the containers ``ancestors`` (id -> key path), for cycles and depth."""
    kind = type(value)
    if kind in FAST_TYPES:
        return value
    if kind is int:
        return _check_int(path, value, "config")
    if isinstance(value, Mapping):
        return _jsonable_dict(path, value, value.items(), ancestors)
    if isinstance(value, (list, tuple, set, frozenset)):
        _enter(path, value, "config", ancestors)
        items = [_jsonable(v, f"{path}[{i}]", ancestors) for i, v in enumerate(value)]
        del ancestors[id(value)]
        return items
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, path, ancestors)
    if isinstance(value, os.PathLike):
        return _jsonable(os.fspath(value), path, ancestors)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
        return _jsonable_dict(path, value, fields, ancestors)
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        return _jsonable_dict(path, value, vars(value).items(), ancestors)
    scalar = _array_scalar(value)
    if scalar is not _NOT_SCALAR:
        return _check_int(path, scalar, "config") if type(scalar) is int else scalar
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        listed = value.tolist()
        if isinstance(listed, list) or type(listed) in SCALAR_TYPES:  # longdouble lists as itself
            return _jsonable(listed, path, ancestors)
    return repr(value)


def _jsonable_dict(path: str, container: Any, items: Iterable[Any], ancestors: Dict[int, str]) -> Dict[str, Any]:
    """The JSON-able dict of ``items`` (of a mapping, a dataclass or a namespace: ``container``)."""
    _enter(path, container, "config", ancestors)
    out: Dict[str, Any] = {}
    for key, item in items:
        name = str(key)
        out[name] = _jsonable(item, f"{path}.{name}" if path else name, ancestors)
    del ancestors[id(container)]
    if is_float_marker(out):
        raise ValueError(
            f"{_named('config', path)}: {out!r} is how mplogger stores a non-finite float, so it would "
            "read back as a float; use other keys"
        )
    return out


def flatten(values: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested dicts as one level, with dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``).

    A stored media reference (a dict with ``_type``) is one value, not flattened.
    """
    out: Dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and "_type" not in value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
