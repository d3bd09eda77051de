"""The ``mplogger`` command (and ``python -m mplogger``), a reader: a thin mirror of :class:`mplogger.Api`.

Each command is one function below; its docstring is its help text. Domain errors (an unknown
run, a missing extra, a bad filter) end as one ``mplogger: error: ...`` line and exit status 1
(``MPLOGGER_DEBUG=1`` shows the traceback instead). Text from the store reaches the terminal only
through :func:`mplogger._shared._terminal.printable` (JSON output escapes the same characters as ``\\u``).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mplogger._readers._admin import format_size
from mplogger._shared._processes import process_alive
from mplogger._readers._api import STATES, Api, StoredRun
from mplogger._readers._artifact import logged_by_id
from mplogger._shared._errors import Error
from mplogger._readers._display import format_duration, format_time, format_value
from mplogger._readers._filters import parse_where
from mplogger._readers._progress import Progress
from mplogger._shared._terminal import CONTROL, printable
from mplogger._shared._values import flatten, replace_nonfinite

__all__ = ["main"]

Command = Callable[[Api, argparse.Namespace], Optional[int]]
_COMMANDS: Dict[str, Tuple[Command, Tuple[Tuple[tuple, dict], ...]]] = {}
_SUBCOMMANDS: Dict[str, Dict[str, Tuple[Command, Tuple[Tuple[tuple, dict], ...]]]] = {}


def _arg(*names: str, **options: Any) -> Tuple[tuple, dict]:
    return names, options


def command(*arguments: Tuple[tuple, dict], group: Optional[str] = None) -> Callable[[Command], Command]:
    """Register a function as a command named after it, with these arguments; with ``group``, as a
    sub-command of that command, named after the rest of the function's name (``artifacts_ls``: ``ls``)."""
    def register(function: Command) -> Command:
        name = function.__name__.rstrip("_")
        if group is None:
            _COMMANDS[name] = (function, arguments)
        else:
            _SUBCOMMANDS.setdefault(group, {})[name[len(group) + 1:]] = (function, arguments)
        return function
    return register


class CliError(Exception):
    """A problem to tell the user in one line (no traceback)."""


# --- arguments shared by commands -------------------------------------------------------------
_JSON = _arg("--json", action="store_true", help="print JSON instead of text")
_SELECT = (
    _arg("--project", "-p", help="only runs of this project"),
    _arg("--group", "-g", help="only runs of this group"),
    _arg("--state", "-s", action="append", choices=STATES, help="only runs in this state (repeatable)"),
    _arg("--tag", "-t", action="append", dest="tags", help="only runs with this tag (repeatable: all of them)"),
    _arg("--where", "-w", action="append", default=[], metavar="KEY OP VALUE",
         help="only runs where e.g. summary.acc>0.9 or config.opt=adam (ops: = != > >= < <= ~regex; repeatable)"),
)
_RUNS = _arg("runs", nargs="*", metavar="RUN", help="run ids or unique id prefixes (default: every run selected)")


def _selected(api: Api, args: argparse.Namespace, require: bool = True) -> List[StoredRun]:
    """The runs named on the command line, else those the selection options pick."""
    if getattr(args, "runs", None):
        return [_run(api, run_id) for run_id in args.runs]
    runs = api.runs(project=args.project, group=args.group, state=args.state, tags=args.tags,
                    filters=parse_where(args.where) or None)
    if require and not runs:
        raise CliError(f"no runs match in {api.root}")
    return runs


def _run(api: Api, run_id: str) -> StoredRun:
    try:
        return api.run(run_id)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None


def _count(text: str) -> int:
    """A whole number, 0 or more (for argparse)."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return number


# --- output helpers ---------------------------------------------------------------------------
_JSON_CONTROL = {code: f"\\u{code:04x}" for code in CONTROL if code >= 0x7f}  # json.dumps escapes the rest


def _print_json(value: Any, indent: Optional[int] = 2) -> None:
    """Strict JSON (any JSON tool reads it): NaN and infinities are written as null, control characters escaped."""
    text = json.dumps(replace_nonfinite(value, lambda _: None), indent=indent, ensure_ascii=False, default=str,
                      allow_nan=False)
    print(text.translate(_JSON_CONTROL), flush=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int = 40) -> str:
    """Aligned text columns, headers and cells escaped; long cells end in an ellipsis."""
    headers = [printable(header) for header in headers]
    cells = [[printable(format_value(cell, width)) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _section(title: str, values: Mapping[str, Any]) -> str:
    if not values:
        return f"{title}: (none)"
    flat = {printable(key): printable(format_value(value, 200)) for key, value in flatten(values).items()}
    width = max(len(key) for key in flat)
    return "\n".join([f"{title}:"] + [f"  {key.ljust(width)}  {value}" for key, value in flat.items()])


def _started(run: StoredRun) -> str:
    return (format_time(run.created) or "?")[:16]


def _steps(run: StoredRun) -> int:
    """Steps taken: the last step + 1 (rows logged only by child processes share step 0)."""
    if run.last_step is None:
        return 1 if run.rows else 0
    return run.last_step + 1


def _summary_columns(runs: Sequence[StoredRun], limit: int = 3) -> List[str]:
    """The numeric summary keys most runs have (first seen first among equals)."""
    counts: Dict[str, int] = {}
    for run in runs:
        for key, value in flatten(run.summary).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.startswith("_"):
                counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda key: -counts[key])[:limit]


def _listing(run: StoredRun) -> Dict[str, Any]:
    return {"id": run.id, "project": run.project, "name": run.name, "group": run.group,
            "state": run.state, "tags": run.tags, "created": run.created, "finished": run.finished,
            "duration": run.duration, "rows": run.rows, "steps": _steps(run), "summary": run.summary}


# --- commands ---------------------------------------------------------------------------------
@command(*_SELECT, _arg("--limit", "-n", type=_count, help="at most this many runs (newest first)"),
         _arg("--quiet", "-q", action="store_true", help="print only run ids, one a line (for scripts)"), _JSON)
def ls(api: Api, args: argparse.Namespace) -> None:
    """List runs, newest first: id, project, name, state, start, duration, steps and summary values."""
    runs = _selected(api, args, require=False)
    if args.limit is not None:
        runs = runs[: args.limit]
    if args.json:
        _print_json([_listing(run) for run in runs])
        return
    if args.quiet:
        for run in runs:
            print(run.id)
        return
    if not runs:
        print(f"no runs in {api.root}", file=sys.stderr)
        return
    keys = _summary_columns(runs)
    headers = ["id", "project", "name", "state", "started", "duration", "steps", *keys]
    rows = []
    for run in runs:
        summary = flatten(run.summary)
        rows.append([run.id, run.project, run.name, run.state, _started(run), format_duration(run.duration),
                     str(_steps(run)), *[summary.get(key, "") for key in keys]])
    print(_table(headers, rows, width=24))


@command(_arg("run", metavar="RUN", help="run id or unique id prefix"), _JSON)
def show(api: Api, args: argparse.Namespace) -> None:
    """Show one run: its fields, config, summary, metadata and files."""
    run = _run(api, args.run)
    fields = {
        "id": run.id, "name": run.name, "project": run.project, "group": run.group,
        "job_type": run.job_type, "state": run.state, "exit_code": run.exit_code, "tags": run.tags,
        "notes": run.notes, "started": format_time(run.created), "finished": format_time(run.finished),
        "duration": format_duration(run.duration), "rows": run.rows, "steps": _steps(run),
        "host": run.host, "pid": run.pid, "python": run.python, "command": " ".join(run.argv),
        "dir": run.dir,
    }
    files = run.files()
    logged, used = run.logged_artifacts(), run.used_artifacts()
    if args.json:
        _print_json({**_listing(run), "job_type": run.job_type, "notes": run.notes, "exit_code": run.exit_code,
                     "host": run.host, "pid": run.pid, "argv": run.argv, "dir": run.dir,
                     "config": run.config, "metadata": run.metadata, "files": files,
                     "logged_artifacts": [_artifact_ref(a) for a in logged],
                     "used_artifacts": [_artifact_ref(a) for a in used]})
        return
    print(_section("run", {k: v for k, v in fields.items() if v not in (None, [], "")}))
    for title, values in (("config", run.config), ("summary", run.summary), ("metadata", run.metadata)):
        print()
        print(_section(title, values))
    print()
    print("files:" + ("".join(f"\n  {printable(name)}" for name in files) if files else " (none)"))
    print()
    rows = [[role, a.name, a.type, ", ".join(a.aliases)] for role, versions in (("logged", logged), ("used", used))
            for a in versions]
    print("artifacts:" + ("\n" + _indent(_table(["role", "version", "type", "aliases"], rows, width=60))
                          if rows else " (none)"))


@command(_arg("run", metavar="RUN", help="run id or unique id prefix"),
         _arg("--keys", "-k", help="comma-separated keys: only rows with all of them (dotted keys reach into dicts)"),
         _arg("--format", "-f", default=None, choices=("csv", "jsonl", "parquet"),
              help="file format (default: from the -o file's extension, else csv)"),
         _arg("--output", "-o", help="file to write (default: standard output)"))
def history(api: Api, args: argparse.Namespace) -> None:
    """Export a run's rows, complete, as CSV, JSON Lines or Parquet."""
    from mplogger._readers._export import FORMATS, write_history

    run = _run(api, args.run)
    fmt = args.format
    if fmt is None:
        extension = os.path.splitext(args.output or "")[1].lstrip(".").lower()
        if args.output and extension not in FORMATS:
            raise CliError(f"cannot tell the format of {args.output!r} from its extension: name it .csv, .jsonl "
                           "or .parquet, or pass --format")
        fmt = extension or "csv"
    keys = [key.strip() for key in args.keys.split(",") if key.strip()] if args.keys else None
    with Progress(f"{run.id} rows", total=None if keys else run.rows,
                  enabled=None if args.output else False) as progress:
        count = write_history(run, args.output, fmt, keys, progress)
    if args.output:
        print(f"wrote {count} rows of run {run.id} to {args.output}", file=sys.stderr)


@command(_arg("run", metavar="RUN", help="run id or unique id prefix"),
         _arg("--keys", "-k", help="comma-separated keys to show (default: all)"),
         _arg("-n", "--lines", type=int, default=10, help="rows already stored to show first (default 10)"),
         _arg("--interval", type=float, default=0.5, help="seconds between looks at the store (default 0.5)"),
         _arg("--json", action="store_true", help="print each row as one JSON line"))
def tail(api: Api, args: argparse.Namespace) -> int:
    """Follow a run's new rows as they are stored, until it ends (Ctrl-C to stop)."""
    run = _run(api, args.run)
    keys = [key.strip() for key in args.keys.split(",") if key.strip()] if args.keys else None
    after = max(0, run.last_seq() - max(0, args.lines))
    print(printable(f"following run {run.id} ({run.name}, {run.state}); Ctrl-C to stop"), file=sys.stderr, flush=True)
    gone_since: Optional[float] = None
    try:
        while True:
            state = api.run(run.id).state
            for seq, row in run.rows_after(after):
                after = seq
                _print_row(row, keys, args.json)
            if state != "running":
                print(f"run {run.id} is {state}", file=sys.stderr)
                return 0
            if gone_since is None and not _writer_alive(run):
                gone_since = time.monotonic()
            if gone_since is not None and time.monotonic() - gone_since > TAIL_GRACE_S:
                print(f"run {run.id} is still marked running, but its process {run.pid} is gone; "
                      "`mplogger doctor` marks it crashed", file=sys.stderr)
                return 1
            time.sleep(args.interval)  # poll: the store has no change notification across processes
    except KeyboardInterrupt:
        return 0


TAIL_GRACE_S = 5.0  # the manager stores what it received and marks a dead process's run crashed well within this


def _writer_alive(run: StoredRun) -> bool:
    """Whether the process logging ``run`` may still be alive (always, for a run of another host)."""
    return run.host != socket.gethostname() or process_alive(run.pid, run.updated)


def _print_row(row: Dict[str, Any], keys: Optional[Sequence[str]], as_json: bool) -> None:
    flat = flatten({k: v for k, v in row.items() if not k.startswith("_")})
    if keys is not None:
        flat = {key: flat[key] for key in keys if key in flat}
    if keys is not None and not flat:
        return
    if as_json:
        _print_json({"_step": row["_step"], "_runtime": row["_runtime"], **flat}, indent=None)
    else:
        values = "  ".join(f"{key}={format_value(value, 60)}" for key, value in flat.items())
        print(printable(f"step {row['_step']:>6}  {row['_runtime']:8.1f} s  {values}"), flush=True)


@command(_arg("runs", nargs="+", metavar="RUN", help="two or more run ids or unique id prefixes"),
         _arg("--all", action="store_true", help="show every config key, not only those that differ"), _JSON)
def compare(api: Api, args: argparse.Namespace) -> None:
    """Compare runs: config keys that differ, and summaries side by side."""
    runs = _distinct([_run(api, run_id) for run_id in args.runs])
    if len(runs) < 2:
        raise CliError("compare needs two or more different runs")
    configs = [flatten(run.config) for run in runs]
    summaries = [flatten(run.summary) for run in runs]
    missing = object()

    def keys_of(tables: List[Dict[str, Any]], only_different: bool) -> List[str]:
        keys = list(dict.fromkeys(key for table in tables for key in table))
        if only_different:
            keys = [k for k in keys if len({json.dumps(t.get(k, missing), default=repr) for t in tables}) > 1]
        return keys

    config_keys = keys_of(configs, not args.all)
    summary_keys = keys_of(summaries, False)
    if args.json:
        _print_json({
            "runs": [{"id": run.id, "name": run.name, "project": run.project, "state": run.state} for run in runs],
            "config": {key: [c.get(key) for c in configs] for key in config_keys},
            "config_same": len(keys_of(configs, False)) - len(keys_of(configs, True)),
            "summary": {key: [s.get(key) for s in summaries] for key in summary_keys},
        })
        return
    headers = ["key", *[f"{run.name} ({run.id})" for run in runs]]
    same = len(keys_of(configs, False)) - len(keys_of(configs, True))
    title = "config" if args.all else f"config: {len(config_keys)} keys differ, {same} the same"
    print(title)
    if config_keys:
        print(_table(headers, [[key, *[c.get(key, "-") for c in configs]] for key in config_keys]))
    print()
    print("summary")
    print(_table(headers, [[key, *[s.get(key, "-") for s in summaries]] for key in summary_keys])
          if summary_keys else "(none)")


@command(_RUNS, *_SELECT,
         _arg("--output", "-o", default="report.html", help="HTML file to write (default report.html)"),
         _arg("--title", help="the report's title"),
         _arg("--max-points", type=int, default=1000, help="points per line in a chart (the data is downsampled)"))
def report(api: Api, args: argparse.Namespace) -> None:
    """Write one self-contained HTML report: a chart per metric, runs overlaid, config and summary tables."""
    from mplogger._readers._report import write_report

    runs = _selected(api, args)
    with Progress("report", total=sum(run.rows for run in runs)) as progress:
        path = write_report(runs, args.output, title=args.title, max_points=args.max_points, progress=progress)
    print(f"wrote a report of {len(runs)} run(s) to {path}", file=sys.stderr)


@command(_arg("runs", nargs="+", metavar="RUN", help="run ids or unique id prefixes"),
         _arg("--yes", "-y", action="store_true", help="do not ask for confirmation"),
         _arg("--force", action="store_true", help="delete even a run whose process is still running"))
def rm(api: Api, args: argparse.Namespace) -> None:
    """Delete runs: their records, rows, output and folders. Asks first, unless --yes."""
    runs = _distinct([_run(api, run_id) for run_id in args.runs])
    live = [run for run in runs if _writer_alive(run) and run.state == "running"]
    if live and not args.force:
        raise CliError(f"nothing deleted: {', '.join(run.id for run in live)} still running "
                       "(finish it first, or --force)")
    for run in runs:
        if not args.yes and not _confirm(printable(f"delete run {run.id} {run.name!r} ({run.project}, {run.state}, "
                                                   f"{run.rows} rows)? [y/N] ")):
            print(f"kept {run.id}", file=sys.stderr)
            continue
        try:
            deleted = run.delete(force=args.force)
        except RuntimeError as exc:
            raise CliError(f"{exc} (--force)") from None
        print(f"deleted {run.id}", file=sys.stderr)
        for kept in deleted.kept:
            users = ", ".join(kept.runs)
            print(printable(f"kept artifact {kept.name} (used by run{'s' if len(kept.runs) > 1 else ''} {users})"),
                  file=sys.stderr)
        if deleted.objects_left:
            print(f"left {deleted.objects_left} artifact file(s) of {run.id} on disk while runs are running; "
                  "`mplogger doctor` removes them once none is", file=sys.stderr)


def _distinct(runs: List[StoredRun]) -> List[StoredRun]:
    """The runs without repeats (one given twice, by id and by prefix, counts once)."""
    return list({run.id: run for run in runs}.values())


def _confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise CliError("not deleting without a confirmation: there is no terminal to ask; pass --yes")
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


@command(_arg("--dry-run", action="store_true", help="only check; change nothing"), _JSON)
def doctor(api: Api, args: argparse.Namespace) -> int:
    """Check a store (SQLite integrity, row counts, stray rows, artifact files) and repair it: runs left
    running whose process is gone are marked crashed, staging folders of processes that are gone are
    removed, and artifact files no version holds are deleted (while no run is running). Exit status 1
    when a problem remains."""
    from mplogger._readers._admin import summary_line

    findings = api.doctor(repair=not args.dry_run)
    if args.json:
        _print_json([{"check": f.check, "ok": f.ok, "repaired": f.repaired, "run_id": f.run_id,
                      "detail": f.detail} for f in findings])
    else:
        for finding in findings:
            mark = "ok" if finding.ok else "fixed" if finding.repaired else "PROBLEM"
            run = f"run {finding.run_id}: " if finding.run_id else ""
            print(printable(f"{mark:<8} {finding.check:<10} {run}{finding.detail}"))
        print(summary_line(findings))
    return 0 if all(f.ok or f.repaired for f in findings) else 1


@command(_arg("--to", required=True, choices=("tensorboard", "mlflow"), help="the engine to export to"),
         _RUNS, *_SELECT,
         _arg("--output", "-o", help="tensorboard: the log folder to write runs into"),
         _arg("--tracking-uri", help="mlflow: the tracking URI (default: MLflow's own, e.g. MLFLOW_TRACKING_URI)"),
         _arg("--experiment", help="mlflow: the experiment name (default: each run's project)"),
         _arg("--skip-exported", action="store_true",
              help="skip runs already exported there (else the export stops at the first one)"))
def export(api: Api, args: argparse.Namespace) -> None:
    """Export runs to TensorBoard event files or an MLflow tracking store."""
    from mplogger._readers import _engines
    runs = _distinct(_selected(api, args))
    if args.to == "tensorboard" and not args.output:
        raise CliError("export --to tensorboard needs -o DIR, the folder TensorBoard will read (--logdir)")
    done: List[str] = []
    with Progress(f"export to {args.to}", total=sum(run.rows for run in runs)) as progress:
        for run in runs:
            try:
                if args.to == "tensorboard":
                    target = _engines.export_tensorboard([run], args.output, progress=progress)[0]
                else:
                    target = _engines.export_mlflow([run], tracking_uri=args.tracking_uri,
                                                    experiment=args.experiment, progress=progress)[0]
            except _engines.AlreadyExportedError as exc:
                if not args.skip_exported:
                    raise CliError(f"{exc} (--skip-exported goes on with the others)"
                                   + _exported_note(done)) from None
                print(f"{run.id} skipped: already exported", file=sys.stderr)
                continue
            except (CliError, Error, ImportError, KeyError, ValueError, TypeError, OSError) as exc:
                raise CliError(f"{exc}{_exported_note(done)}") from exc
            except Exception as exc:  # the engine's own refusal, e.g. MLflow rejecting a tracking URI
                raise CliError(f"{args.to} refused the export of {run.id}: {type(exc).__name__}: {exc}"
                               + _exported_note(done)) from exc
            done.append(run.id)
            print(printable(f"{run.id} -> {target}"), flush=True)
    hint = (f"view with: tensorboard --logdir {args.output}  (pip install tensorboard)" if args.to == "tensorboard"
            else "view with: mlflow ui" + (f" --backend-store-uri {args.tracking_uri}" if args.tracking_uri else "")
            + "  (the UI is in the full package: pip install mlflow)")
    print(hint, file=sys.stderr)


def _exported_note(done: Sequence[str]) -> str:
    return f"; exported before it (kept): {', '.join(done)}" if done else ""


# --- artifacts ---------------------------------------------------------------------------------
_SPEC = _arg("artifact", metavar="NAME[:ALIAS]",
             help="the version: name (its latest), name:alias, name:v2, or project/name:alias")


@command()
def artifacts(api: Api, args: argparse.Namespace) -> None:
    """Artifact versions kept in the store: list them (ls), show one (show), download one (get)."""
    raise CliError("mplogger artifacts: give ls, show or get")  # argparse requires one: not reached


@command(_arg("--type", help="only versions of this type (e.g. dataset, model)"),
         _arg("--project", "-p", help="only versions of this project"), _JSON, group="artifacts")
def artifacts_ls(api: Api, args: argparse.Namespace) -> None:
    """List artifact versions, by project and name, newest version first: type, size, aliases, the run
    that logged it and when."""
    versions = api.artifacts(type=args.type, project=args.project)
    if args.json:
        _print_json([_artifact_listing(a) for a in versions])
        return
    if not versions:
        print(f"no artifacts in {api.root}", file=sys.stderr)
        return
    rows = [[a.qualified_name, a.type, _bytes(a.size), ", ".join(a.aliases), logged_by_id(a) or "-",
             (format_time(a.created_at) or "?")[:16]] for a in versions]
    print(_table(["artifact", "type", "size", "aliases", "logged by", "created"], rows, width=60))


@command(_SPEC, _JSON, group="artifacts")
def artifacts_show(api: Api, args: argparse.Namespace) -> None:
    """Show one artifact version: its fields, metadata, aliases, files, the run that logged it and
    the runs that used it."""
    artifact = api.artifact(args.artifact)
    files = artifact.files()
    logged = artifact.logged_by()
    used = artifact.used_by()
    if args.json:
        _print_json({**_artifact_listing(artifact),
                     "files": [{"name": f.path, "size": f.size, "digest": f.digest, "ref": f.ref} for f in files],
                     "used_by": [run.id for run in used]})
        return
    fields = {"artifact": artifact.qualified_name, "type": artifact.type, "version": artifact.version,
              "aliases": artifact.aliases, "description": artifact.description, "size": _bytes(artifact.size),
              "files": len(files), "digest": artifact.digest, "created": format_time(artifact.created_at),
              "logged by": _run_label(logged) if logged is not None else None}
    print(_section("artifact", {k: v for k, v in fields.items() if v not in (None, [], "")}))
    print()
    print(_section("metadata", artifact.metadata))
    print()
    rows = [[f.path, "-" if f.size is None else _bytes(f.size), (f.digest or "")[:12], f.ref or ""] for f in files]
    print("files:" + ("\n" + _indent(_table(["name", "size", "digest", "ref"], rows, width=80)) if rows else " (none)"))
    print()
    print("used by:" + ("".join(f"\n  {printable(_run_label(run))}" for run in used) if used else " (none)"))


@command(_SPEC, _arg("--output", "-o", metavar="DIR",
                     help="the folder to write its files into (default ./artifacts/NAME:VERSION)"), group="artifacts")
def artifacts_get(api: Api, args: argparse.Namespace) -> None:
    """Download an artifact version: write its files into a folder, and print the folder."""
    artifact = api.artifact(args.artifact)
    folder = artifact.download(root=args.output)
    print(printable(f"wrote {artifact.qualified_name} ({len(artifact.files())} files, {_bytes(artifact.size)}) "
                    f"to {folder}"), file=sys.stderr)
    print(printable(folder))


def _artifact_ref(artifact: Any) -> Dict[str, Any]:
    """A version as a run's show lists it."""
    return {"project": artifact.project, "name": artifact.name.split(":")[0], "version": artifact.version,
            "type": artifact.type, "aliases": artifact.aliases}


def _artifact_listing(artifact: Any) -> Dict[str, Any]:
    """A version as ``artifacts ls --json`` lists it."""
    return {"project": artifact.project, "name": artifact.name.split(":")[0], "version": artifact.version,
            "type": artifact.type, "aliases": artifact.aliases, "size": artifact.size, "digest": artifact.digest,
            "description": artifact.description, "metadata": artifact.metadata, "created": artifact.created_at,
            "logged_by": logged_by_id(artifact)}


def _run_label(run: StoredRun) -> str:
    return f"{run.id} ({run.name}, {run.state})"


def _bytes(size: Any) -> str:
    return format_size(size) if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else str(size)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# --- running a job ----------------------------------------------------------------------------
@command(_arg("job", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]",
              help="the command to run, e.g. python train.py or torchrun --nproc_per_node 2 train.py"))
def run_(api: Api, args: argparse.Namespace) -> Optional[int]:
    """Run COMMAND so that import wandb, in it and in every Python process it starts, is mplogger's
    wandb compatibility package (mplogger.wandb): libraries that log to wandb (Hugging Face Trainer,
    Lightning's WandbLogger, accelerate) log into the local store, unchanged. COMMAND takes this
    process's place: its exit status, signals, stdin and stdout are its own. Runs go where
    init(dir=...) says (./mplogger-runs by default); --dir sends every run of the job to that store
    (it sets MPLOGGER_DIR)."""
    from mplogger._shared._wandb_name import child_environment

    job = list(args.job)
    if job[:1] == ["--"]:
        job = job[1:]
    if not job:
        raise CliError("mplogger run: give the command to run, e.g. mplogger run -- python train.py")
    env = child_environment()
    if args.dir is not None:
        env["MPLOGGER_DIR"] = api.root
    sys.stdout.flush()
    sys.stderr.flush()
    for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores these; an exec'd command must not inherit that
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvpe(job[0], job, env)
    except FileNotFoundError:
        print(f"mplogger run: command not found: {printable(job[0])}", file=sys.stderr)
        return 127
    except OSError as exc:  # not executable, a folder, a script without a #! line (ENOEXEC)
        print(f"mplogger run: cannot execute {printable(job[0])}: {exc.strerror}"
              + (" (a script needs a #! line, or run it as: mplogger run -- sh SCRIPT)"
                 if exc.errno == errno.ENOEXEC else ""), file=sys.stderr)
        return 126
    return None  # not reached: exec does not return


# --- entry point ------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    """The ``mplogger`` argument parser, one sub-command per registered command."""
    top = argparse.ArgumentParser(
        prog="mplogger", description="Look at, export and look after runs stored by mplogger (no server: "
        "this reads the SQLite store directly), and run jobs whose libraries log to wandb into it.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (function, arguments) in _COMMANDS.items():
        doc = " ".join((function.__doc__ or "").split())
        sub = commands.add_parser(name, help=doc.split(". ")[0].rstrip("."), description=doc)
        sub.add_argument("--dir", "-d", help="the store, or a folder holding it as mplogger-runs/ (default: $MPLOGGER_DIR, else ./mplogger-runs)")
        for names, options in arguments:
            sub.add_argument(*names, **options)
        sub.set_defaults(function=function)
        if name in _SUBCOMMANDS:
            _add_subcommands(sub, _SUBCOMMANDS[name])
    return top


def _add_subcommands(parent: argparse.ArgumentParser,
                     subcommands: Mapping[str, Tuple[Command, Tuple[Tuple[tuple, dict], ...]]]) -> None:
    """A command's sub-commands (``mplogger artifacts ls``), each with ``--dir`` too, before or after it."""
    below = parent.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for name, (function, arguments) in subcommands.items():
        doc = " ".join((function.__doc__ or "").split())
        sub = below.add_parser(name, help=doc.split(". ")[0].rstrip("."), description=doc)
        sub.add_argument("--dir", "-d", default=argparse.SUPPRESS, help="the store (as for the command)")
        for names, options in arguments:
            sub.add_argument(*names, **options)
        sub.set_defaults(function=function)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns the exit status."""
    args = parser().parse_args(argv)
    api = Api(args.dir)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.function(api, args) or 0
    except BrokenPipeError:  # e.g. `mplogger history RUN | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keep interpreter shutdown from failing)
        return 0
    except KeyboardInterrupt:
        return 130
    except (CliError, Error, KeyError, ValueError, TypeError, ImportError, OSError, RuntimeError,
            sqlite3.Error) as exc:
        if os.environ.get("MPLOGGER_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"mplogger: error: {printable(message)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        api.close()


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM ends a command as Ctrl-C does: through ``finally`` blocks (no temporary files left)."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main())
