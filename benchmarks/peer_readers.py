"""Reading what the peers wrote, with their own formats' readers: wandb's ``.wandb`` transaction log
and tensorboard's event files (each with a fallback where the installed version lacks a reader)."""

from __future__ import annotations

import glob
import json
import os
import struct
import subprocess
import sys
import tempfile
from typing import Any, Dict, Optional, Sequence, Tuple


class ReadBackError(RuntimeError):
    """What a peer wrote could not be read back as logged."""


def read_wandb_history(path: str) -> Tuple[int, Optional[Dict[str, Any]], str]:
    """Count the history records of a ``.wandb`` file: (count, last row, method used)."""
    errors = []
    for reader in (_wandb_datastore, _wandb_leet_inspect, _wandb_framing):
        try:
            count, last = reader(path)
        except ReadBackError:
            raise
        except Exception as exc:  # noqa: BLE001 - that reader is not usable here: try the next
            errors.append(f"{_WANDB_SHORT[reader.__name__]}: {type(exc).__name__}")
            continue
        method = _WANDB_METHODS[reader.__name__]
        if errors:
            method += " (not usable here: " + "; ".join(errors) + ")"
        return count, last, method
    raise ReadBackError("no wandb reader usable: " + " | ".join(errors))


_WANDB_SHORT = {"_wandb_datastore": "DataStore", "_wandb_leet_inspect": "leet inspect",
                "_wandb_framing": "framing"}
_WANDB_METHODS = {
    "_wandb_datastore": "wandb.sdk.internal.datastore.DataStore + wandb_internal_pb2.Record",
    "_wandb_leet_inspect": "`wandb leet inspect --json` (wandb-core's transaction-log reader)",
    "_wandb_framing": "LevelDB-log framing walked here + wandb_internal_pb2.Record.ParseFromString",
}


def _history_items(record: Any) -> Dict[str, Any]:
    row = {}
    for item in record.history.item:
        key = item.key or "/".join(item.nested_key)
        row[key] = json.loads(item.value_json)
    return row


def _wandb_datastore(path: str) -> Tuple[int, Optional[Dict[str, Any]]]:
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore  # gone from recent wandb versions

    store = datastore.DataStore()
    store.open_for_scan(path)
    count, last = 0, None
    while True:
        data = store.scan_data()
        if data is None:
            break
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            count += 1
            last = record
    return count, (_history_items(last) if last is not None else None)


def _wandb_leet_inspect(path: str) -> Tuple[int, Optional[Dict[str, Any]]]:
    env = dict(os.environ, WANDB_MODE="offline")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", path],
                              stdout=out, stderr=err, env=env, timeout=120)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"exit code {proc.returncode}: {err.read().decode(errors='replace')[-300:]}")
        count, last = 0, None
        for line in out:
            if b'"history"' not in line:
                continue
            record = json.loads(line)
            if record.get("type") == "history":
                count += 1
                last = record
    if count == 0:
        raise RuntimeError("no history records in the inspect output")
    return count, (last["history"]["item"] if last else None)


def _wandb_framing(path: str) -> Tuple[int, Optional[Dict[str, Any]]]:
    """The .wandb file: a 7-byte header (":W&B", magic 0xBEE1, version), then LevelDB log
    blocks of 32 KiB holding chunks (crc32c u32, length u16, type u8: 1 full, 2 first,
    3 middle, 4 last), each record one serialized ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    block, header_len = 32768, 7
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b":W&B":
        raise RuntimeError("not a .wandb file (no :W&B header)")
    pos, count, last, parts = header_len, 0, None, []
    while pos + header_len <= len(data):
        left = block - pos % block
        if left < header_len:  # trailer padding of a block
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + header_len])
        pos += header_len
        chunk = data[pos:pos + length]
        pos += length
        if kind == 0 and length == 0:
            continue
        parts.append(chunk)
        if kind in (1, 4):  # full or last: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            if record.WhichOneof("record_type") == "history":
                count += 1
                last = record
    return count, (_history_items(last) if last is not None else None)


def read_tb_accumulator(logdir: str, keys: Sequence[str]) -> Tuple[Dict[str, int], Dict[str, Any]]:
    """Scalar counts and last values of ``keys`` through tensorboard's ``EventAccumulator``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    counts, last = {}, {}
    tags = set(acc.Tags().get("scalars", []))
    for key in keys:
        events = acc.Scalars(key) if key in tags else []
        counts[key] = len(events)
        if events:
            last[key] = max(events, key=lambda e: e.step).value
    return counts, last


def read_tb_tfrecord(logdir: str, keys: Sequence[str]) -> Tuple[Dict[str, int], Dict[str, Any]]:
    """TFRecord: u64 length, u32 masked crc of the length, data, u32 masked crc of the data."""
    from tensorboardX.proto import event_pb2

    counts: Dict[str, int] = {key: 0 for key in keys}
    last: Dict[str, Any] = {}
    best: Dict[str, int] = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            body = data[pos + 12:pos + 12 + length]
            pos += 12 + length + 4
            event = event_pb2.Event()
            event.ParseFromString(body)
            for value in event.summary.value:
                if value.tag in counts:
                    counts[value.tag] += 1
                    if event.step >= best.get(value.tag, -1):
                        best[value.tag] = event.step
                        last[value.tag] = value.simple_value
    return counts, last
