"""What ``log()`` accepts, checked at the call site, and how values are written as JSON.

Accepted: int, float, bool, str, None, numpy scalars and 0-d arrays (taken as Python scalars),
and nested dicts of these (stored nested; read back nested, or by dotted key). Keys are strings
and may not start with ``_`` (mplogger's own keys ``_step``, ``_timestamp``, ``_runtime`` do).

On disk every value is plain JSON that ``sqlite3``'s JSON functions and ``jq`` accept. JSON has no
NaN or infinity, so a non-finite float is written as ``{"_type": "float", "value": "NaN"}``
(or ``"Infinity"`` / ``"-Infinity"``) and read back as the float.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import math
import os
import types
from typing import Any, Callable, Dict, Mapping

from mplogger._media import Histogram, is_media

__all__ = [
    "SCALAR_TYPES",
    "RESERVED_KEYS",
    "check_row",
    "to_json",
    "from_json",
    "jsonable",
    "pick",
    "flatten",
]

SCALAR_TYPES = frozenset({int, float, str, bool, type(None)})
RESERVED_KEYS = frozenset({"_step", "_timestamp", "_runtime"})

# ASCII-only JSON: any string Python holds (lone surrogates included) is stored as valid JSON;
# sqlite3's json functions and JSON tools decode the \u escapes.
_encode = json.JSONEncoder(allow_nan=True, separators=(",", ":"), ensure_ascii=True).encode
try:  # the C encoder, built once: json.dumps builds one per call, which costs ~0.8 us a row
    from json.encoder import c_make_encoder, encode_basestring_ascii

    _c_encode = c_make_encoder(None, None, encode_basestring_ascii, None, ":", ",", False, False, True)
    _c_encode({"probe": [1.5, None, "s", True]}, 0)
except Exception:  # pragma: no cover - pure-Python json
    _c_encode = None


def _encode_fast(value: Any) -> str:
    if _c_encode is None:
        return _encode(value)
    return "".join(_c_encode(value, 0))


def check_row(data: Any, on_reserved: Callable[[str], None]) -> Dict[str, Any]:
    """A checked copy of one ``log()`` payload; TypeError/ValueError name the bad key."""
    if not isinstance(data, Mapping):
        raise TypeError(
            f"log() takes a dict of metric names to values, not {type(data).__name__}: {data!r:.80}"
        )
    out: Dict[str, Any] = {}
    for key, value in data.items():
        if type(key) is not str:
            raise TypeError(
                f"log() keys must be strings; got key {key!r} of type {type(key).__name__}"
            )
        if key in RESERVED_KEYS:
            on_reserved(key)
            continue
        if not key or key[0] == "_":
            raise ValueError(
                f"log() key {key!r}: keys starting with '_' are reserved for mplogger"
                if key
                else "log() keys must not be empty"
            )
        out[key] = _check_value(key, value)
    return out


def _check_value(path: str, value: Any) -> Any:
    kind = type(value)
    if kind in SCALAR_TYPES:
        return value
    if isinstance(value, Mapping):
        nested: Dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"log() key {path!r}: nested keys must be strings; got {key!r} "
                    f"of type {type(key).__name__}"
                )
            if not key or key[0] == "_":
                raise ValueError(
                    f"log() key {path}.{key}: keys starting with '_' (or empty) are reserved"
                )
            nested[key] = _check_value(f"{path}.{key}", item)
        return nested
    scalar = _array_scalar(value)
    if scalar is not _NOT_SCALAR:
        return scalar
    if is_media(value):
        return value
    if _is_array(value):  # more than one element, as wandb: a histogram of the values
        return Histogram(_host_values(value))
    raise TypeError(
        f"log() key {path!r}: cannot store a value of type {kind.__module__}.{kind.__qualname__} "
        f"({value!r:.60}); log numbers, strings, None, media (Histogram, Table, Image), arrays "
        "or dicts of them"
    )


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
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if _is_array(value) and hasattr(value, "item"):
        size = getattr(value, "size", None)
        size = size() if callable(size) else size  # torch: size() is the shape; numel() the count
        count = value.numel() if hasattr(value, "numel") else size
        if getattr(value, "ndim", None) == 0 or count == 1:
            item = value.item()  # a training loop's loss tensor; .item() copies it from a GPU
            if type(item) in SCALAR_TYPES:
                return item
    return _NOT_SCALAR


def _replace_nonfinite(value: Any) -> Any:
    if type(value) is float and not math.isfinite(value):
        return {"_type": "float", "value": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, dict):
        return {k: _replace_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_nonfinite(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Strict JSON text for ``value``; non-finite floats become typed markers."""
    text = _encode_fast(value)
    if "NaN" in text or "Infinity" in text:
        text = _encode(_replace_nonfinite(value))
    return text


def _object_hook(obj: dict) -> Any:
    if obj.get("_type") == "float" and len(obj) == 2:
        return float(obj["value"])
    return obj


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


def jsonable(value: Any) -> Any:
    """A JSON-able copy of a config value, as wandb stores config.

    Containers are kept (sets and tuples as lists), paths become strings, enums their value,
    dataclasses and namespaces dicts, numpy scalars and arrays numbers and lists; anything else
    (functions, classes, objects) is stored as its ``repr``, never dropped and never pickled.
    """
    if type(value) in SCALAR_TYPES:
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        return jsonable(vars(value))
    scalar = _array_scalar(value)
    if scalar is not _NOT_SCALAR:
        return scalar
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return repr(value)


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
