"""Export stored runs to the engines a team already runs (a reader): TensorBoard event files and MLflow.

What is exported, for both engines:

- Every numeric history value, under its dotted key (``{"val": {"acc": 1}}`` -> ``val.acc``),
  with the row's ``_step`` as the step and its ``_timestamp`` as the wall time. ``int`` and
  ``float`` values are sent as floats (MLflow keeps 64 bits, TensorBoard 32); ``bool`` values as
  0.0/1.0. NaN and ±infinity are sent as they are: TensorBoard keeps both; MLflow keeps NaN and
  stores ±infinity as ±1.797e308 (the largest float), as its own ``log_metric`` does.
- Anything else (strings, ``None``, histograms, tables, images) is skipped and counted per key:
  the counts are returned (``Exported.skipped``) and written into the export (TensorBoard: the
  ``mplogger/run`` text; MLflow: the ``mplogger.skipped`` tag).
- A numeric summary value whose key never appears in the history (set by hand, such as
  ``summary["best_acc"]``) becomes one point at the run's last step and end time, so the engine's
  run table shows it. Summary keys starting with ``_`` are mplogger's own and are not exported.

TensorBoard (``export_tensorboard``, needs ``tensorboardX``): one folder per run, named
``<name>-<id>``, holding one event file. Each row with numbers is one event at the row's step
and wall time (both exact); its values are scalars (``simple_value``), TensorBoard's own 32-bit
floats: about 7 significant digits, and beyond ±3.4e38 ±infinity. Its data server reads no
other scalar type, so a 64-bit value would not be shown at all. The flattened config is the
run's hparams session (the HPARAMS tab; its metrics are TensorBoard's own rule, the last value
of each scalar, which for a logged key is the summary); lists, dicts and None are JSON text
there. The session's status follows the run's state (finished: success; failed or crashed:
failure; running: running, with no end time). A text entry ``mplogger/run`` holds the run's fields, config, summary and
skipped counts as JSON. A folder that already holds event files is refused
(:class:`AlreadyExportedError`), checked for every run before anything is written; an export
that fails half-way removes its event file.

MLflow (``export_mlflow``, needs ``mlflow-skinny``, plus SQLAlchemy and Alembic for a database
URI such as MLflow 3's default ``sqlite:///mlflow.db``): one MLflow run per run, in the
experiment named after the project (or ``experiment``), created when missing.

- run name: the run's name; start and end time: ``created`` and ``finished``; status: finished
  -> FINISHED, failed -> FAILED, crashed -> KILLED (the process was killed), running -> RUNNING
  (no end time).
- params: the flattened config; strings as they are, numbers, bools and None as ``str()`` does
  (as ``mlflow.log_param``), lists and dicts as JSON. A value longer than MLflow's limit (6,000
  characters) is cut to it and named in the ``mplogger.truncated`` tag, as JSON
  ``{"params.<name>": original length}`` (tags over 8,000 characters likewise, as ``tags.<name>``).
- tags: ``mplogger.run_id``, ``mplogger.project``, ``mplogger.state``, ``mplogger.group``,
  ``mplogger.job_type``, ``mplogger.exit_code`` (those that are set), ``mplogger.tags`` (the tags
  as a JSON list) and each tag as a tag of its own with the value ``true``; the notes as
  ``mlflow.note.content`` (the run's description in the MLflow UI).
- names (metrics, params, tags): MLflow takes letters, digits, ``_``, ``-``, ``.``, space and
  ``/``, and no empty, ``.`` or ``..`` path part; every other character becomes ``_``, such a
  part becomes ``_`` (``..``: ``__``), and a name over 250 characters is cut to 241 and ends with
  ``-`` and 8 hex digits of the original's SHA-1. When two keys of a run land on one name, the
  first seen keeps it and the next gets that hash suffix too. Renamed keys are listed in the
  ``mplogger.renamed`` tag, as JSON ``{"metrics.<key>" or "params.<key>": name}``.
- batches: metrics go 1,000 per ``log_batch`` call and params and tags 100 per call (MLflow's
  limits), while the history is read page by page: memory stays flat for any number of rows.
- MLflow keeps one point per (key, step, timestamp in ms, value): two rows with the same step,
  millisecond and value of a key are one point there.
- artifacts: each artifact version the run logged becomes the MLflow run's artifacts under
  ``artifacts/<name>/<vN>/`` (its files by their names in the version; a reference that cannot
  be read offline, such as ``s3://``, is left out), and the ``mplogger.artifacts`` tag lists the
  versions it logged and used, as JSON ``{"logged": ["project/name:vN", ...], "used": [...]}``.
  A stored file missing from the store fails the run's export (``mplogger doctor`` lists it).
- An mplogger run is exported once per experiment: a run found there with its
  ``mplogger.run_id`` tag raises :class:`AlreadyExportedError` naming it, checked for every run
  before anything is written. A run whose export fails half-way is deleted again.

Neither engine is imported with mplogger: each function imports its engine when called and
raises ``ImportError`` with the pip line when it is missing.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import re
import tempfile
from types import SimpleNamespace
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence,
                    Set, Tuple)

from mplogger import _store
from mplogger._shared._errors import Error
from mplogger._shared._values import as_number, flatten

if TYPE_CHECKING:  # pragma: no cover
    from mplogger._readers._api import StoredRun

__all__ = ["AlreadyExportedError", "Exported", "export_mlflow", "export_tensorboard", "mlflow_name"]

Progress = Callable[[int], None]
Point = Tuple[str, float]

PROGRESS_EVERY = 1000  # rows between two progress() calls
TENSORBOARD_HINT = "export --to tensorboard needs tensorboardX: pip install 'mplogger[tensorboard]'"
MLFLOW_HINT = "export --to mlflow needs MLflow: pip install 'mplogger[mlflow]'"
MLFLOW_DB_HINT = ("export --to mlflow to a database tracking URI needs SQLAlchemy and Alembic "
                  "({missing} is missing): pip install 'mplogger[mlflow]'")
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy stores
MLFLOW_STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED", "running": "RUNNING"}
TENSORBOARD_STATUS = {"finished": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "crashed": "STATUS_FAILURE",
                      "running": "STATUS_RUNNING"}
TEXT_TAG = "mplogger/run"


class AlreadyExportedError(Error):
    """The run is already in the target (an MLflow run with its id, or a folder with event files)."""


class Exported(List[str]):
    """The export targets, one per run in order, with ``skipped``: run id -> {key: values skipped}."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: Dict[str, Dict[str, int]] = {}


# --- what both engines export -------------------------------------------------------------------
class _Tally:
    """What one pass over a run's history found: the keys exported, the values skipped, the end."""

    def __init__(self) -> None:
        self.keys: Set[str] = set()
        self.skipped: Dict[str, int] = {}
        self.last_step = 0
        self.last_time: Optional[float] = None


def _number(value: Any) -> Optional[float]:
    """``value`` as a float when it is a number (a bool as 0/1), else None."""
    number = as_number(value, bools=True)
    if number is None:
        return None
    try:
        return float(number)
    except OverflowError:  # an int beyond the float range cannot be a metric
        return None


def _utf8(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate (which the store keeps) becomes ``\\udcff``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _history_points(run: "StoredRun", skipped: Dict[str, int]) -> Iterator[Tuple[int, float, List[Point]]]:
    """Each history row as (step, timestamp, numeric points), counting in ``skipped`` the values
    that are not numbers. Read block by block, a column at a time (only dict-valued columns are
    flattened value by value), media left as references: a missing media file must not stop an
    export. The rows are those stored when it starts. Rows of mplogger 0.1 come first, row by row.
    """
    conn, until = run.conn, run.last_seq()
    for _, row, _ in _store.legacy_rows(conn, run.id, until):
        step, timestamp = row.pop("_step"), row.pop("_timestamp")
        row.pop("_runtime", None)
        points: List[Point] = []
        for key, value in flatten(row).items():
            _add_point(points, skipped, _utf8(key), value)
        yield step, timestamp, points
    nested = set(_store.object_keys(conn, run.id))
    for block in _store.block_columns(conn, run.id, None, until):
        yield from _block_points(block, nested, skipped)


def _add_point(points: List[Point], skipped: Dict[str, int], key: str, value: Any) -> None:
    number = _number(value)
    if number is None:
        skipped[key] = skipped.get(key, 0) + 1
    else:
        points.append((key, number))


def _block_points(block: "_store.BlockColumns", nested: Set[str],
                  skipped: Dict[str, int]) -> Iterator[Tuple[int, float, List[Point]]]:
    """One block's rows as (step, timestamp, points), each row's points in its keys' order."""
    rows = block.rows
    order = [key for key in _store.decode_column(block.info.keys) if key in block.columns]
    order += [key for key in block.columns if key not in set(order)]
    stamps, _ = block.info.times()
    steps = block.info.step_list()[:rows]
    dicts = [key for key in order if key in nested]
    if any(other.startswith(key + ".") for key in dicts for other in order):  # two keys may flatten to one name
        yield from zip(steps, stamps, _flattened_points(block, order, skipped))
        return
    per_row: List[List[Point]] = [[] for _ in range(rows)]
    for key in order:
        offsets, values = block.columns[key]
        positions = range(rows) if offsets is None else offsets
        if key in nested:
            for position, value in zip(positions, values):
                items = flatten(value, key + ".").items() if _flattens(value) else ((key, value),)
                for name, item in items:
                    _add_point(per_row[position], skipped, _utf8(name), item)
        else:
            name = _utf8(key)
            if set(map(type, values)) == _FLOAT:
                for position, value in zip(positions, values):
                    per_row[position].append((name, value))
            else:
                for position, value in zip(positions, values):
                    _add_point(per_row[position], skipped, name, value)
    yield from zip(steps, stamps, per_row)


def _flattened_points(block: "_store.BlockColumns", order: Sequence[str],
                      skipped: Dict[str, int]) -> List[List[Point]]:
    """Each row of the block rebuilt and flattened (where a later key wins a name two keys share)."""
    rows: List[Dict[str, Any]] = [{} for _ in range(block.rows)]
    for key in order:
        offsets, values = block.columns[key]
        for position, value in zip(range(block.rows) if offsets is None else offsets, values):
            rows[position][key] = value
    per_row = []
    for row in rows:
        points: List[Point] = []
        for key, value in flatten(row).items():
            _add_point(points, skipped, _utf8(key), value)
        per_row.append(points)
    return per_row


_FLOAT = {float}


def _flattens(value: Any) -> bool:
    """Whether :func:`flatten` spreads ``value`` into dotted keys (a dict that is not media nor empty)."""
    return isinstance(value, Mapping) and bool(value) and "_type" not in value


def _points(run: "StoredRun", tally: _Tally, progress: Progress) -> Iterator[Tuple[int, float, List[Point]]]:
    """Each history row as (step, timestamp, numeric points), counting in ``tally`` what is skipped."""
    pending = 0
    for step, timestamp, points in _history_points(run, tally.skipped):
        tally.last_step = max(tally.last_step, step)
        tally.last_time = timestamp if tally.last_time is None else max(tally.last_time, timestamp)
        yield step, timestamp, points
        tally.keys.update(key for key, _ in points)
        pending += 1
        if pending == PROGRESS_EVERY:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)


def _summary_points(run: "StoredRun", tally: _Tally) -> List[Point]:
    """Numeric summary values under keys the history never had: one point each."""
    points = []
    for key, value in flatten(run.summary).items():
        key = _utf8(key)
        number = _number(value)
        if number is not None and not key.startswith("_") and key not in tally.keys:
            points.append((key, number))
    return points


def _end_time(run: "StoredRun", tally: _Tally) -> float:
    """When the run ended: finished, else its last row, else its last update."""
    if run.finished is not None:
        return run.finished
    return tally.last_time if tally.last_time is not None else getattr(run, "updated", run.created)


def _ignore(n: int) -> None:
    """The progress callback when none is given."""


def _check_distinct(runs: Sequence["StoredRun"]) -> None:
    """One export per run: the same run twice in one call is a mistake, not two exports."""
    seen: Set[str] = set()
    for run in runs:
        if run.id in seen:
            raise ValueError(f"run {run.id} is given twice; export each run once")
        seen.add(run.id)


def _run_fields(run: "StoredRun", skipped: Mapping[str, int]) -> Dict[str, Any]:
    """The run's fields, config, summary and skipped counts, for a human reading the export."""
    fields = {name: getattr(run, name, None) for name in (
        "id", "name", "project", "group", "job_type", "tags", "notes", "state", "exit_code",
        "created", "finished", "config", "summary")}
    fields["skipped"] = dict(skipped)
    return fields


# --- TensorBoard ---------------------------------------------------------------------------------
def _tensorboardx() -> SimpleNamespace:
    """tensorboardX's event writer and protocol buffers, or ImportError with the pip line."""
    try:
        from tensorboardX.proto import api_pb2
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
        from tensorboardX.proto.plugin_text_pb2 import TextPluginData
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboardX.record_writer import RecordWriter
    except ImportError as exc:
        raise ImportError(TENSORBOARD_HINT) from exc
    return SimpleNamespace(
        RecordWriter=RecordWriter, Event=Event, Summary=Summary, SummaryMetadata=SummaryMetadata,
        TensorProto=TensorProto, TensorShapeProto=TensorShapeProto, Status=api_pb2.Status,
        HParamsPluginData=HParamsPluginData, SessionStartInfo=SessionStartInfo,
        SessionEndInfo=SessionEndInfo, TextPluginData=TextPluginData)


def export_tensorboard(runs: Sequence["StoredRun"], out_dir: str,
                       progress: Optional[Progress] = None) -> Exported:
    """Write each run as a TensorBoard run folder ``<name>-<id>`` under ``out_dir``; returns the folders."""
    tb = _tensorboardx()
    _check_distinct(runs)
    folders = [os.path.join(out_dir, _folder_name(run)) for run in runs]
    for run, folder in zip(runs, folders):
        _refuse_event_files(run, folder)
    exported = Exported()
    for run, folder in zip(runs, folders):
        exported.skipped[run.id] = _write_tensorboard_run(tb, run, folder, progress or _ignore)
        exported.append(folder)
    return exported


def _folder_name(run: "StoredRun") -> str:
    """``<name>-<id>``: the name TensorBoard shows, made unique by the id, safe as one folder name."""
    name = re.sub(r"[/\\\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", "_",
                  _utf8(run.name or "run"))[:200]
    while len(name.encode("utf-8")) > 200:  # file names are limited in bytes (255 on most systems)
        name = name[:-1]
    return f"{name}-{run.id}"


def _event_files(folder: str) -> List[str]:
    """The TensorBoard event files directly in ``folder``."""
    return glob.glob(os.path.join(glob.escape(folder), "*tfevents*"))


def _refuse_event_files(run: "StoredRun", folder: str) -> None:
    """Raise when ``folder`` already has event files: a second export would double every point."""
    found = _event_files(folder)
    if found:
        raise AlreadyExportedError(
            f"run {run.id} ({run.name}): {folder} already holds TensorBoard event files "
            f"({os.path.basename(found[0])}); remove the folder or export to another directory")


class _EventFile:
    """A run's TensorBoard event file, one record per event, opening at the run's start time."""

    def __init__(self, tb: SimpleNamespace, folder: str, run: "StoredRun") -> None:
        self.path = os.path.join(folder, f"events.out.tfevents.{int(run.created)}.mplogger.{run.id}")
        self._records = tb.RecordWriter(self.path)
        self.write(tb.Event(wall_time=run.created, file_version="brain.Event:2"))

    def write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def close(self) -> None:
        self._records.close()


def _write_tensorboard_run(tb: SimpleNamespace, run: "StoredRun", folder: str,
                           progress: Progress) -> Dict[str, int]:
    """Write one run's event file; on failure remove it again. Returns the skipped counts."""
    os.makedirs(folder, exist_ok=True)
    events = _EventFile(tb, folder, run)
    try:
        tally = _write_scalars(tb, events, run, progress)
        end = _end_time(run, tally)
        for summary in _hparams_summaries(tb, run):
            events.write(tb.Event(summary=summary, step=0, wall_time=run.created))
        text = _text_summary(tb, TEXT_TAG, _run_fields(run, tally.skipped))
        events.write(tb.Event(summary=text, step=tally.last_step, wall_time=end))
        events.close()
    except BaseException:
        events.close()
        os.unlink(events.path)
        raise
    return tally.skipped


def _write_scalars(tb: SimpleNamespace, events: _EventFile, run: "StoredRun", progress: Progress) -> _Tally:
    """One event per history row with its numeric values, then the summary-only values."""
    tally = _Tally()
    for step, timestamp, points in _points(run, tally, progress):
        if points:
            events.write(tb.Event(summary=_scalars(tb, points), step=step, wall_time=timestamp))
    extra = _summary_points(run, tally)
    if extra:
        events.write(tb.Event(summary=_scalars(tb, extra), step=tally.last_step, wall_time=_end_time(run, tally)))
    return tally


def _scalars(tb: SimpleNamespace, points: List[Point]) -> Any:
    """Scalar values as TensorBoard's own 32-bit ``simple_value`` (all its data server reads)."""
    return tb.Summary(value=[tb.Summary.Value(tag=key, simple_value=value) for key, value in points])


def _hparams_summaries(tb: SimpleNamespace, run: "StoredRun") -> List[Any]:
    """The run's hparams session: its start (the flattened config) and its status.

    No experiment summary is written: TensorBoard then builds the HPARAMS table from every
    session in the log folder, so runs exported at different times share one table.
    """
    start = tb.SessionStartInfo(start_time_secs=run.created)
    for key, value in flatten(run.config).items():
        _set_hparam(start.hparams[_utf8(key)], value)
    status = tb.Status.Value(TENSORBOARD_STATUS.get(run.state, "STATUS_UNKNOWN"))
    end = tb.SessionEndInfo(status=status, end_time_secs=run.finished or 0.0)  # 0: not ended
    return [_hparams_summary(tb, "_hparams_/session_start_info", tb.HParamsPluginData(session_start_info=start)),
            _hparams_summary(tb, "_hparams_/session_end_info", tb.HParamsPluginData(session_end_info=end))]


def _set_hparam(slot: Any, value: Any) -> None:
    """One hparam value: bools, numbers and strings as such, anything else as JSON text."""
    if isinstance(value, bool):
        slot.bool_value = value
    elif _number(value) is not None:
        slot.number_value = float(value)
    elif isinstance(value, str):
        slot.string_value = _utf8(value)
    else:
        slot.string_value = _utf8(json.dumps(value, ensure_ascii=False))


def _hparams_summary(tb: SimpleNamespace, tag: str, data: Any) -> Any:
    """A summary the hparams plugin reads: its data travels in the plugin metadata."""
    plugin = tb.SummaryMetadata.PluginData(plugin_name="hparams", content=data.SerializeToString())
    return tb.Summary(value=[tb.Summary.Value(tag=tag, metadata=tb.SummaryMetadata(plugin_data=plugin))])


def _text_summary(tb: SimpleNamespace, tag: str, fields: Mapping[str, Any]) -> Any:
    """A text entry (the TEXT tab, markdown) holding ``fields`` as an indented JSON block."""
    body = "```json\n" + json.dumps(fields, indent=2, ensure_ascii=False, default=str) + "\n```"
    tensor = tb.TensorProto(dtype="DT_STRING", string_val=[body.encode("utf-8", "backslashreplace")],
                            tensor_shape=tb.TensorShapeProto(dim=[tb.TensorShapeProto.Dim(size=1)]))
    content = tb.TextPluginData(version=0).SerializeToString()
    metadata = tb.SummaryMetadata(plugin_data=tb.SummaryMetadata.PluginData(plugin_name="text", content=content))
    return tb.Summary(value=[tb.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)])


# --- MLflow --------------------------------------------------------------------------------------
_NOT_MLFLOW = re.compile(r"[^\w./\- ]")  # MLflow's name characters on every platform (no ':' on Windows)
_PATH_PARTS = {"": "_", ".": "_", "..": "__"}  # MLflow refuses names that a path normalisation changes
_KEY_LENGTH = 250
MLFLOW_LIMITS = {  # MLflow's limits (mlflow.utils.validation), for a client too old to name one
    "MAX_METRICS_PER_BATCH": 1000, "MAX_PARAMS_TAGS_PER_BATCH": 100, "MAX_PARAM_VAL_LENGTH": 6000,
    "MAX_TAG_VAL_LENGTH": 8000, "MAX_ENTITY_KEY_LENGTH": _KEY_LENGTH}


def mlflow_name(key: str, limit: int = _KEY_LENGTH) -> str:
    """``key`` as a valid MLflow metric, param or tag name (the mapping in this module's docstring)."""
    name = _NOT_MLFLOW.sub("_", key)
    name = "/".join(_PATH_PARTS.get(part, part) for part in name.split("/"))
    if len(name) > limit:
        name = _hashed(name[:limit - 9], key)
    return name


def _hashed(name: str, key: str) -> str:
    """``name`` ending with ``-`` and 8 hex digits of ``key``'s SHA-1: unique again, deterministic."""
    return f"{name}-{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


class _Names:
    """One run's key -> MLflow name map; a key landing on a name already taken gets a hash suffix."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.names: Dict[str, str] = {}
        self.taken: Set[str] = set()

    def __call__(self, key: str) -> str:
        name = self.names.get(key)
        if name is None:
            name = mlflow_name(key, self.limit)
            if name in self.taken:
                name = _hashed(name[:self.limit - 9], key)
            self.names[key] = name
            self.taken.add(name)
        return name

    def renamed(self, prefix: str) -> Dict[str, str]:
        """``prefix`` + original -> MLflow name, for the keys whose name changed."""
        return {prefix + key: name for key, name in self.names.items() if key != name}


def _mlflow() -> SimpleNamespace:
    """MLflow's client, entities and limits, or ImportError with the pip line."""
    try:
        from mlflow.entities import Metric, Param, RunTag, ViewType
        from mlflow.tracking import MlflowClient, get_tracking_uri
        from mlflow.utils import validation
    except ImportError as exc:
        raise ImportError(MLFLOW_HINT) from exc
    limits = {name: getattr(validation, name, default) for name, default in MLFLOW_LIMITS.items()}
    return SimpleNamespace(MlflowClient=MlflowClient, get_tracking_uri=get_tracking_uri, Metric=Metric,
                           Param=Param, RunTag=RunTag, ViewType=ViewType, **limits)


def _mlflow_client(ml: SimpleNamespace, tracking_uri: Optional[str]) -> Any:
    """A client for ``tracking_uri`` (MLflow's default when None); a database URI needs its drivers."""
    uri = tracking_uri or ml.get_tracking_uri()
    if uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES:
        for module in ("sqlalchemy", "alembic"):
            if importlib.util.find_spec(module) is None:
                raise ImportError(MLFLOW_DB_HINT.format(missing=module))
    return ml.MlflowClient(tracking_uri=uri)


def export_mlflow(runs: Sequence["StoredRun"], tracking_uri: Optional[str] = None,
                  experiment: Optional[str] = None, progress: Optional[Progress] = None) -> Exported:
    """Log each run as an MLflow run in ``experiment`` (else its project's); returns the MLflow run ids."""
    ml = _mlflow()
    client = _mlflow_client(ml, tracking_uri)
    _check_distinct(runs)
    for run in runs:
        _refuse_exported(ml, client, experiment or run.project, run)
    exported = Exported()
    experiment_ids: Dict[str, str] = {}
    for run in runs:
        name = experiment or run.project
        if name not in experiment_ids:
            experiment_ids[name] = _experiment_id(client, name)
        mlflow_id, exported.skipped[run.id] = _write_mlflow_run(ml, client, experiment_ids[name], run,
                                                               progress or _ignore)
        exported.append(mlflow_id)
    return exported


def _live_experiment(client: Any, name: str) -> Optional[Any]:
    """The experiment called ``name``, None when there is none; a deleted one is an error."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {name!r} is deleted; restore it "
                         f"(mlflow experiments restore --experiment-id {found.experiment_id}) "
                         "or export to another experiment")
    return found


def _experiment_id(client: Any, name: str) -> str:
    """The id of the experiment called ``name``, created when missing."""
    found = _live_experiment(client, name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _refuse_exported(ml: SimpleNamespace, client: Any, experiment: str, run: "StoredRun") -> None:
    """Raise when ``experiment`` already holds an MLflow run exported from ``run``."""
    found = _live_experiment(client, experiment)
    if found is None:
        return
    twin = _find_exported(ml, client, found.experiment_id, run.id)
    if twin is not None:
        raise AlreadyExportedError(
            f"run {run.id} ({run.name}) is already in MLflow experiment {experiment!r} as run {twin}; "
            "delete that MLflow run to export it again")


def _find_exported(ml: SimpleNamespace, client: Any, experiment_id: str, run_id: str) -> Optional[str]:
    """The id of the active MLflow run tagged ``mplogger.run_id = run_id``, or None."""
    quote = "'" if "'" not in run_id else '"'
    if quote in run_id:  # both quote marks in the id: no literal can hold it, so look at every export
        found = client.search_runs([experiment_id], "tags.`mplogger.run_id` != ''", ml.ViewType.ACTIVE_ONLY,
                                   max_results=50000)  # MLflow's most for one search
        return next((r.info.run_id for r in found if r.data.tags.get("mplogger.run_id") == run_id), None)
    found = client.search_runs([experiment_id], f"tags.`mplogger.run_id` = {quote}{run_id}{quote}",
                               ml.ViewType.ACTIVE_ONLY, max_results=1)
    return found[0].info.run_id if found else None


def _ms(seconds: float) -> int:
    """Seconds since the epoch as MLflow's integer milliseconds."""
    return int(round(seconds * 1000))


def _write_mlflow_run(ml: SimpleNamespace, client: Any, experiment_id: str, run: "StoredRun",
                      progress: Progress) -> Tuple[str, Dict[str, int]]:
    """Create and fill one MLflow run; a failure deletes it again. Returns its id and the skipped counts."""
    created = client.create_run(experiment_id, start_time=_ms(run.created), tags={"mplogger.run_id": run.id},
                                run_name=_utf8(run.name))
    mlflow_id = created.info.run_id
    try:
        metric_names, param_names = _Names(ml.MAX_ENTITY_KEY_LENGTH), _Names(ml.MAX_ENTITY_KEY_LENGTH)
        truncated: Dict[str, int] = {}
        params = _params(ml, run.config, param_names, truncated)
        _log_chunks(client, mlflow_id, "params", params, ml.MAX_PARAMS_TAGS_PER_BATCH)
        tally = _log_metrics(ml, client, mlflow_id, run, metric_names, progress)
        lineage = _log_artifacts(client, mlflow_id, run)
        renamed = {**param_names.renamed("params."), **metric_names.renamed("metrics.")}
        tags = _tags(ml, run, tally, renamed, truncated, _json_or_none(lineage))
        _log_chunks(client, mlflow_id, "tags", tags, ml.MAX_PARAMS_TAGS_PER_BATCH)
        if run.state != "running":
            client.set_terminated(mlflow_id, MLFLOW_STATUS.get(run.state, "FAILED"),
                                  end_time=_ms(_end_time(run, tally)))
    except BaseException:
        _delete_quietly(client, mlflow_id)
        raise
    return mlflow_id, tally.skipped


def _log_artifacts(client: Any, mlflow_id: str, run: "StoredRun") -> Dict[str, List[str]]:
    """Log each version ``run`` logged as MLflow artifacts under ``artifacts/<name>/<vN>``, one
    temporary download at a time; returns the versions it logged and used (for the tag)."""
    logged = run.logged_artifacts()
    for artifact in logged:
        name, version = artifact.name.split(":", 1)  # checked names (letters, digits, '-', '_', '.'): path parts
        with tempfile.TemporaryDirectory(prefix="mplogger-export-") as folder:
            artifact.download(root=folder, allow_missing_references=True)
            client.log_artifacts(mlflow_id, folder, artifact_path=f"artifacts/{name}/{version}")
    lineage = {"logged": [artifact.qualified_name for artifact in logged],
               "used": [artifact.qualified_name for artifact in run.used_artifacts()]}
    return {role: names for role, names in lineage.items() if names}


def _delete_quietly(client: Any, mlflow_id: str) -> None:
    """Delete a half-written MLflow run so a second try is not refused; the first error matters more."""
    try:
        client.delete_run(mlflow_id)
    except Exception:
        pass


def _log_chunks(client: Any, mlflow_id: str, kind: str, entities: List[Any], size: int) -> None:
    """``log_batch`` the params, tags or metrics ``size`` at a time (MLflow's per-call limits)."""
    for start in range(0, len(entities), size):
        client.log_batch(mlflow_id, **{kind: entities[start:start + size]}, synchronous=True)


def _params(ml: SimpleNamespace, config: Mapping[str, Any], names: _Names, truncated: Dict[str, int]) -> List[Any]:
    """The flattened config as params, values cut to MLflow's limit (noted in ``truncated``)."""
    params = []
    for key, value in flatten(config).items():
        text = _param_text(value)
        if len(text) > ml.MAX_PARAM_VAL_LENGTH:
            truncated[f"params.{names(key)}"] = len(text)
            text = text[:ml.MAX_PARAM_VAL_LENGTH]
        params.append(ml.Param(names(key), text))
    return params


def _param_text(value: Any) -> str:
    """A config value as MLflow param text: scalars as ``str()`` (as ``mlflow.log_param``), the rest as JSON."""
    if value is None or isinstance(value, (str, int, float)):
        return _utf8(str(value))
    return _utf8(json.dumps(value, ensure_ascii=False, default=str))


def _log_metrics(ml: SimpleNamespace, client: Any, mlflow_id: str, run: "StoredRun", names: _Names,
                 progress: Progress) -> _Tally:
    """Every numeric history value, then the summary-only values, in full ``log_batch`` calls."""
    tally, batch, size = _Tally(), [], ml.MAX_METRICS_PER_BATCH
    for step, timestamp, points in _points(run, tally, progress):
        ms = _ms(timestamp)
        batch.extend(ml.Metric(names(key), value, ms, step) for key, value in points)
        if len(batch) >= size:
            cut = len(batch) - len(batch) % size
            _log_chunks(client, mlflow_id, "metrics", batch[:cut], size)
            del batch[:cut]
    end = _ms(_end_time(run, tally))
    batch.extend(ml.Metric(names(key), value, end, tally.last_step) for key, value in _summary_points(run, tally))
    _log_chunks(client, mlflow_id, "metrics", batch, size)
    return tally


def _tags(ml: SimpleNamespace, run: "StoredRun", tally: _Tally, renamed: Dict[str, str],
          truncated: Dict[str, int], artifacts: Optional[str] = None) -> List[Any]:
    """The run's fields as tags (see the module docstring), values cut to MLflow's limit."""
    values: Dict[str, Optional[str]] = {
        "mplogger.project": run.project, "mplogger.state": run.state, "mplogger.group": run.group,
        "mplogger.job_type": run.job_type, "mlflow.note.content": run.notes,
        "mplogger.exit_code": None if run.exit_code is None else str(run.exit_code),
        "mplogger.tags": json.dumps(run.tags, ensure_ascii=False) if run.tags else None,
        "mplogger.skipped": _json_or_none(tally.skipped),
        "mplogger.renamed": _json_or_none(renamed),
        "mplogger.artifacts": artifacts,
    }
    tag_names = _Names(ml.MAX_ENTITY_KEY_LENGTH)
    for tag in run.tags:
        if not tag.startswith(("mplogger.", "mlflow.")):
            values.setdefault(tag_names(tag), "true")
    tags = []
    for key, text in values.items():
        if text is None or text == "":
            continue
        text = _utf8(text)
        if len(text) > ml.MAX_TAG_VAL_LENGTH:
            truncated[f"tags.{key}"] = len(text)
            text = text[:ml.MAX_TAG_VAL_LENGTH]
        tags.append(ml.RunTag(key, text))
    if truncated:  # the note about cut values, itself cut to fit
        note = json.dumps(truncated, ensure_ascii=False)
        tags.append(ml.RunTag("mplogger.truncated", note[:ml.MAX_TAG_VAL_LENGTH]))
    return tags


def _json_or_none(values: Mapping[str, Any]) -> Optional[str]:
    """``values`` as JSON text, or None when empty (no tag then)."""
    return json.dumps(values, ensure_ascii=False) if values else None
