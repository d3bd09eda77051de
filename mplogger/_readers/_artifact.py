"""Artifacts (user process, and readers of a store): versioned sets of files kept with the runs.

``Artifact(name, type)`` collects files; ``run.log_artifact(artifact)`` sends it to the run's
worker, which stores each file once by content and adds the version (``v0``, ``v1``, ...) only
when its content is new; ``run.use_artifact("name:alias")`` and ``Api().artifact(...)`` give back
a stored version to read and download. A file added with the default ``policy="mutable"`` is
copied when it is added, so the version holds what the file held then, whatever the training
loop writes to it afterwards (as wandb does); ``policy="immutable"`` skips that copy (the worker
copies the file later, off the training loop) for files that are not changed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
import warnings
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from mplogger import _store
from mplogger._shared._errors import ManagerError, NotInMplogger, RunError, UsageError
from mplogger._shared._values import from_json, jsonable, to_json

__all__ = ["Artifact", "ArtifactEntry", "as_artifact", "check_aliases", "check_path", "logged_by_id", "mark_sent", "parse_spec",
           "prepare_log", "use_spec"]

_disabled_root: Optional[str] = None
_CHILD_WAIT_S = 600.0  # a child's wait for a version: the files of a large checkpoint take a while
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_VERSION = re.compile(r"v\d+")
_MAX_PATH = 1024
Entry = Tuple[str, Optional[str], Optional[int], Optional[str]]  # (kind, source, size, digest)


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"artifact {what} must be a string, not {type(value).__name__} {value!r}")
    if not _NAME.fullmatch(value):
        raise ValueError(f"artifact {what} {value!r} is not valid: use letters, digits, '-', '_' and '.' "
                         "(at most 128, starting with a letter or digit)")
    return value


def check_aliases(aliases: Any) -> Tuple[str, ...]:
    """``aliases`` as a tuple (None, one string, or a list of them); ValueError names a bad one."""
    if aliases is None:
        return ()
    if not isinstance(aliases, (str, list, tuple, set, frozenset)):
        raise TypeError(f"aliases must be a string or a list of strings, not {type_name(aliases)}")
    items = [aliases] if isinstance(aliases, str) else list(aliases)
    for alias in items:
        if not isinstance(alias, str):
            raise TypeError(f"an artifact alias must be a string, not {type(alias).__name__} {alias!r}")
        if not alias or len(alias) > 128 or any(c in alias for c in "/:") or not alias.isprintable():
            raise ValueError(f"artifact alias {alias!r} is not valid: 1 to 128 printable characters, "
                             "without '/' or ':'")
        if _VERSION.fullmatch(alias):
            raise ValueError(f"artifact alias {alias!r} is reserved: versions are numbered by the store")
    return tuple(dict.fromkeys(items))


def check_path(path: Any, where: str = "") -> str:
    """A file's name inside an artifact: a relative POSIX path that stays inside the artifact.

    Checked both when a file is added and when a stored name is downloaded (a store may come
    from someone else), so no name can write outside the download folder.
    """
    if not isinstance(path, str):
        raise TypeError(f"an artifact file name must be a string, not {type(path).__name__} {path!r}")
    parts = path.split("/")
    if (not path or len(path) > _MAX_PATH or path.startswith("/") or "\\" in path or not path.isprintable()
            or any(part in ("", ".", "..") for part in parts)):
        raise ValueError(f"artifact file name {path!r}{where} is not valid: a relative path with '/' between "
                         "names, without '.', '..', empty or control characters")
    return path


def parse_spec(spec: Any) -> Tuple[Optional[str], str, str]:
    """``[[entity/]project/]name[:alias|:vN]`` as (project or None, name, alias); the alias defaults to ``latest``."""
    if not isinstance(spec, str):
        raise TypeError(f"an artifact is named by a string like 'name:latest', not {type(spec).__name__} {spec!r}")
    path, _, alias = spec.partition(":")
    parts = path.split("/")
    if len(parts) > 3:
        raise ValueError(f"artifact {spec!r}: name it 'name', 'name:alias' or 'project/name:alias'")
    name = _check_name("name", parts[-1])
    project = parts[-2] if len(parts) >= 2 else None
    if project is not None and not project:
        raise ValueError(f"artifact {spec!r}: the project before '/' is empty")
    alias = alias or "latest"
    if not _VERSION.fullmatch(alias):
        check_aliases([alias])
    return project, name, alias


def as_artifact(artifact_or_path: Any, name: Optional[str], type: Optional[str], what: str) -> "Artifact":
    """``artifact_or_path`` as an Artifact: a path becomes one holding that file or folder."""
    if isinstance(artifact_or_path, Artifact):
        return artifact_or_path
    if not isinstance(artifact_or_path, (str, os.PathLike)):
        raise TypeError(f"{what}() takes an Artifact or the path of a file or folder, not "
                        f"{type_name(artifact_or_path)}")
    path = os.fspath(artifact_or_path)
    if not os.path.exists(path):
        raise ValueError(f"{what}({path!r}): no such file or folder")
    base = os.path.basename(os.path.normpath(os.path.abspath(path)))
    artifact = Artifact(name or re.sub(r"[^A-Za-z0-9_.-]", "-", base).lstrip("-._") or "artifact",
                        type or "unspecified")
    if os.path.isdir(path):
        artifact.add_dir(path)
    else:
        artifact.add_file(path)
    return artifact


def use_spec(run: Any, artifact_or_name: Any, type: Optional[str],
             aliases: Optional[Sequence[str]]) -> Tuple[Optional[str], str, str]:
    """What ``run.use_artifact(artifact_or_name)`` asks for: (project or None, name, alias). An
    Artifact not logged yet is logged by ``run`` first; a stored one must be of ``run``'s store."""
    if type is not None and not isinstance(type, str):
        raise TypeError(f"use_artifact(type=...) must be a string, not {type_name(type)}")
    if not isinstance(artifact_or_name, Artifact):
        return parse_spec(artifact_or_name)
    if artifact_or_name.is_draft():
        run.log_artifact(artifact_or_name, aliases=aliases)
    artifact_or_name.wait()
    artifact_or_name._same_store(run.root)
    return artifact_or_name.project, artifact_or_name._name, artifact_or_name.version


def _walk(folder: str) -> Iterator[Tuple[str, str]]:
    """(path, name relative to ``folder``) of everything under it but folders, following links to
    folders, except a link back to a folder it is inside (a loop)."""
    top = os.path.normpath(folder)
    for base, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(base)
        parent, looped = os.path.dirname(os.path.normpath(base)), False
        while len(parent) >= len(top) and not looped:
            looped = os.path.realpath(parent) == real
            parent = os.path.dirname(parent)
        if looped:
            dirs[:] = []
            continue
        dirs.sort()
        for file in sorted(files):
            full = os.path.join(base, file)
            yield full, os.path.relpath(full, folder).replace(os.sep, "/")


def _staging_root() -> str:
    """The store that files added now are staged under: the active run's, else the default one."""
    from mplogger._shared._settings import init_root

    run = getattr(sys.modules.get("mplogger"), "run", None)
    if getattr(run, "disabled", False) is True:  # nothing is kept: the copies go to a private temporary folder
        global _disabled_root
        if _disabled_root is None or not os.path.isdir(_disabled_root):
            _disabled_root = tempfile.mkdtemp(prefix="mplogger-disabled-")
        return _disabled_root
    return getattr(run, "root", None) or init_root(None)


class ArtifactEntry:
    """One file of an artifact (wandb's manifest entry): ``path`` inside it, ``digest``, ``size``, ``ref``."""

    def __init__(self, artifact: "Artifact", path: str, digest: Optional[str], size: Optional[int],
                 ref: Optional[str] = None, local_path: Optional[str] = None) -> None:
        self._artifact = artifact
        self.path = path
        self.digest = digest
        self.size = size
        self.ref = ref
        self.local_path = local_path

    @property
    def name(self) -> str:
        return self.path

    def download(self, root: Optional[str] = None) -> str:
        """Download this file (of a stored version) under ``root``; returns the file's path."""
        folder = self._artifact._download_root(root)
        self._artifact.wait()
        return self._artifact._fetch(folder, self.path, self.digest, self.ref)

    def ref_target(self) -> str:
        """The URI a reference points at."""
        if self.ref is None:
            raise ValueError(f"{self.path!r} is a stored file, not a reference")
        return self.ref

    def __repr__(self) -> str:
        return f"<ArtifactEntry {self.path} {self.size} bytes{' ref ' + self.ref if self.ref else ''}>"


class Artifact:
    """A versioned set of files (a dataset, a model checkpoint), kept with the runs (wandb's ``Artifact``)."""

    def __init__(self, name: str, type: str, description: Optional[str] = None,
                 metadata: Optional[Mapping[str, Any]] = None, incremental: bool = False,
                 use_as: Optional[str] = None) -> None:
        self._name = _check_name("name", name)
        self._type = _check_name("type", type)
        if description is not None and not isinstance(description, str):
            raise TypeError(f"artifact description must be a string, not {type_name(description)}")
        if description is not None and not _encodable(description):
            raise ValueError(f"artifact description {description[:60]!r} holds characters that are not text "
                             "(lone surrogates)")
        self._description = description
        self.metadata = metadata
        self._entries: Dict[str, Entry] = {}
        self._staging: Optional[str] = None
        self._staging_files = 0
        self._root: Optional[str] = None
        self._record: Optional[Dict[str, Any]] = None
        self._pending: Optional[Tuple[Any, int]] = None
        self._files: Optional[List[_store.FileRow]] = None
        self._cleanup: Optional[weakref.finalize] = None

    # --- a version read from the store ----------------------------------------------------
    @classmethod
    def from_record(cls, root: str, record: Dict[str, Any]) -> "Artifact":
        for column, kinds in (("id", int), ("version", int), ("size", int), ("created", (int, float)),
                              ("project", str), ("digest", str), ("aliases", list)):
            if not isinstance(record.get(column), kinds) or isinstance(record.get(column), bool):
                raise ValueError(f"a stored artifact version has {column} {record.get(column)!r}")
        if record["version"] < 0 or not record["project"].isprintable():
            raise ValueError(f"a stored artifact version has version {record['version']!r} of project "
                             f"{record['project']!r}")
        artifact = cls.__new__(cls)
        artifact.__init__(record["name"], record["type"], record.get("description"),
                          from_json(record["metadata"]) if isinstance(record.get("metadata"), str) else None)
        artifact._root = root
        artifact._record = dict(record)
        return artifact

    # --- what it is --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The name; once stored, ``name:vN`` (as wandb)."""
        return f"{self._name}:{self.version}" if self._record is not None else self._name

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def type(self) -> str:
        return self._type

    @property
    def description(self) -> Optional[str]:
        return self._description

    @description.setter
    def description(self, value: Optional[str]) -> None:
        self._editable("description")
        if value is not None and (not isinstance(value, str) or not _encodable(value)):
            raise TypeError(f"artifact description must be text, not {type_name(value)}")
        self._description = value

    @property
    def metadata(self) -> Dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: Optional[Mapping[str, Any]]) -> None:
        if getattr(self, "_record", None) is not None or getattr(self, "_pending", None) is not None:
            self._editable("metadata")
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"artifact metadata must be a dict, not {type_name(value)}")
        self._metadata = jsonable(dict(value or {}), "metadata")
        to_json(self._metadata)

    def _known(self) -> Optional[Dict[str, Any]]:
        if self._pending is not None:
            self.wait()
        return self._record

    @property
    def version(self) -> Optional[str]:
        """``v0``, ``v1``, ... once stored (waits for a version being stored); None before it is logged."""
        record = self._known()
        return None if record is None else f"v{record['version']}"

    @property
    def aliases(self) -> List[str]:
        record = self._known()
        return [] if record is None else list(record["aliases"])

    @property
    def digest(self) -> Optional[str]:
        """The digest of the content (names, file digests and sizes); None before it is stored."""
        record = self._known()
        return None if record is None else record["digest"]

    @property
    def size(self) -> int:
        """Bytes of the files kept (references not counted)."""
        record = self._known()
        if record is not None:
            return record["size"]
        return sum(size or 0 for kind, _, size, _ in self._entries.values() if kind != "ref")

    @property
    def id(self) -> Optional[int]:
        record = self._known()
        return None if record is None else record["id"]

    @property
    def project(self) -> Optional[str]:
        record = self._known()
        return None if record is None else record["project"]

    @property
    def qualified_name(self) -> str:
        return f"{self.project}/{self.name}" if self.project else self.name

    @property
    def created_at(self) -> Optional[float]:
        record = self._known()
        return None if record is None else record["created"]

    @property
    def state(self) -> str:
        """``PENDING`` until logged and stored, then ``COMMITTED`` (wandb's words)."""
        return "COMMITTED" if self._record is not None else "PENDING"

    # --- adding files ----------------------------------------------------------------------
    def _editable(self, what: str) -> None:
        if self._record is not None or self._pending is not None:
            raise ValueError(f"artifact {self.name} was logged: its {what} cannot change "
                             "(make a new Artifact for a new version)")

    def _stage(self) -> str:
        if self._staging is None:
            self._root = _staging_root()
            self._staging = _store.new_staging(self._root)
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._staging, True)  # never logged: no trace
        return self._staging

    def _entry(self, name: str, overwrite: bool) -> str:
        self._editable("files")
        check_path(name)
        if name in self._entries and not overwrite:
            raise ValueError(f"artifact {self._name} already has a file named {name!r} (pass overwrite=True)")
        return name

    def _staged_path(self) -> str:
        self._staging_files += 1
        return os.path.join(self._stage(), f"{self._staging_files:08d}")

    def add_file(self, local_path: Union[str, os.PathLike], name: Optional[str] = None, is_tmp: bool = False,
                 skip_cache: bool = False, policy: str = "mutable", overwrite: bool = False) -> ArtifactEntry:
        """Add a file as ``name`` (default: its base name). ``policy="mutable"`` copies it now;
        ``"immutable"`` promises it will not change, and the worker copies it later."""
        path = os.fspath(local_path)
        if policy not in ("mutable", "immutable"):
            raise ValueError(f"policy must be 'mutable' or 'immutable', not {policy!r}")
        if not os.path.isfile(path):
            raise ValueError(f"artifact {self._name}: {path!r} is not a file"
                             + (" (use add_dir for a folder)" if os.path.isdir(path) else ""))
        name = self._entry(name if name is not None else os.path.basename(path), overwrite)
        if policy == "mutable":
            staged = self._staged_path()
            _store.clone_file(path, staged)
            self._entries[name] = ("staged", staged, os.path.getsize(staged), None)
        else:
            self._stage()
            self._entries[name] = ("file", os.path.abspath(path), os.path.getsize(path), None)
        return ArtifactEntry(self, name, None, self._entries[name][2], local_path=path)

    def add_dir(self, local_path: Union[str, os.PathLike], name: Optional[str] = None, skip_cache: bool = False,
                policy: str = "mutable", merge: bool = False) -> None:
        """Add every file under a folder (following links to folders, not loops), named by its path
        inside it (under ``name/`` when given). Every name is checked before anything is copied."""
        folder = os.fspath(local_path)
        if not os.path.isdir(folder):
            raise ValueError(f"artifact {self._name}: {folder!r} is not a folder")
        prefix = f"{check_path(name.strip('/'))}/" if name else ""
        found = []
        for full, relative in _walk(folder):
            if not os.path.isfile(full):
                warnings.warn(f"artifact {self._name}: {full!r} is not a file (a broken link?); not added",
                              stacklevel=2)
                continue
            label = self._entry(prefix + relative, merge)
            if label in dict(found):
                raise ValueError(f"artifact {self._name}: two files of {folder!r} are named {label!r}")
            found.append((label, full))
        for label, full in found:
            self.add_file(full, label, policy=policy, overwrite=True)

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: Optional[str] = None) -> Iterator[Any]:
        """Write a new file of the artifact: ``with artifact.new_file("notes.txt") as f: f.write(...)``."""
        name = self._entry(name, overwrite=False)
        if mode not in ("w", "x", "wb", "xb", "w+", "x+", "wb+", "xb+"):
            raise ValueError(f"new_file mode must be one that writes a new file ('w', 'wb', 'x', ...), not {mode!r}")
        staged = self._staged_path()
        with open(staged, mode.replace("x", "w"), encoding=None if "b" in mode else (encoding or "utf-8")) as file:
            yield file
        self._entries[name] = ("staged", staged, os.path.getsize(staged), None)

    def add_reference(self, uri: Union[str, os.PathLike], name: Optional[str] = None, checksum: bool = True,
                      max_objects: Optional[int] = None) -> List[ArtifactEntry]:
        """Keep a reference to ``file://`` data (a file or a folder) with its digest, without copying it.

        Other URIs (``s3://``, ``https://``) are kept as names only: offline, they cannot be read.
        """
        uri = os.fspath(uri)
        if not isinstance(uri, str):
            raise TypeError(f"a reference is a URI string, not {type_name(uri)}")
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme != "file":
            if not parsed.scheme:
                raise ValueError(f"reference {uri!r} has no scheme: write file:///path for a local file")
            label = self._entry(name or (parsed.path.rstrip("/").rsplit("/", 1)[-1] or parsed.netloc), False)
            self._entries[label] = ("ref", uri, None, hashlib.sha256(uri.encode("utf-8")).hexdigest())
            return [ArtifactEntry(self, label, self._entries[label][3], None, uri)]
        path = urllib.parse.unquote(parsed.path)
        if os.path.isfile(path):
            targets = [(name or os.path.basename(path), path)]
        elif os.path.isdir(path):
            targets = []
            for base, dirs, files in os.walk(path):
                dirs.sort()
                for file in sorted(files):
                    full = os.path.join(base, file)
                    relative = os.path.relpath(full, path).replace(os.sep, "/")
                    targets.append(((name.strip("/") + "/" if name else "") + relative, full))
            if max_objects is not None and len(targets) > max_objects:
                raise ValueError(f"reference {uri!r} holds {len(targets)} files, more than max_objects={max_objects}")
        else:
            raise ValueError(f"reference {uri!r}: {path!r} is neither a file nor a folder")
        added = []
        for label, full in targets:
            label = self._entry(label, False)
            digest, size = _store.hash_file(full)
            target = "file://" + urllib.parse.quote(os.path.abspath(full))
            self._entries[label] = ("ref", target, size, digest)
            added.append(ArtifactEntry(self, label, digest, size, target))
        return added

    def remove(self, item: Union[str, ArtifactEntry]) -> None:
        """Remove a file added before logging."""
        name = item.path if isinstance(item, ArtifactEntry) else item
        self._editable("files")
        if name not in self._entries:
            raise KeyError(f"artifact {self._name} has no file named {name!r}")
        kind, source, _, _ = self._entries.pop(name)
        if kind == "staged":
            os.unlink(source)

    def __setitem__(self, name: str, item: Any) -> None:
        raise NotInMplogger("artifact[name] = media object", "add the file with artifact.add_file()")

    def _move_staging(self, root: str) -> None:
        """Files staged under another store (added before ``init()``, or in a process that did not
        know the run yet) move into the run's, by a rename where they can."""
        if self._staging is None or os.path.realpath(self._root) == os.path.realpath(root):
            return
        target = _store.new_staging(root)
        try:
            os.rmdir(target)
            os.rename(self._staging, target)
        except OSError:  # another file system: the worker copies them
            return
        old_root, old = self._root, self._staging
        self._entries = {name: (kind, target + source[len(old):] if kind == "staged" else source, size, digest)
                         for name, (kind, source, size, digest) in self._entries.items()}
        self._staging, self._root = target, root
        if self._cleanup is not None:
            self._cleanup.detach()
            self._cleanup = weakref.finalize(self, shutil.rmtree, target, True)
        for folder in (os.path.dirname(old), _store.artifacts_dir(old_root), old_root):
            try:
                os.rmdir(folder)  # only what staging made there, and only if empty
            except OSError:
                break

    def wait(self, timeout: Optional[float] = None) -> "Artifact":
        """Return once the version is in the store (at once when it already is)."""
        if self._pending is not None:
            try:
                if self._pending[0] == "reply":
                    _, client, request = self._pending
                    record = client.result(request, timeout, f"storing artifact {self._name}").record
                elif self._pending[0] == "store":
                    _, token, check_manager = self._pending
                    record = _stored_version(self._root, token, timeout, self._name, check_manager)
                else:
                    raise self._pending[1]
            except (ManagerError, TimeoutError):
                raise  # not answered yet: a later wait may still see it stored
            except Exception as exc:
                self._pending = ("failed", exc)
                raise
            self._pending = None
            self._record = dict(record)
        elif self._record is None:
            raise ValueError(f"artifact {self._name} is not logged: log it with run.log_artifact() first")
        return self

    def _same_store(self, root: str) -> None:
        """ValueError unless this stored version is of the store at ``root`` (a run uses what its store holds)."""
        if os.path.realpath(self._root) != os.path.realpath(root):
            raise ValueError(f"artifact {self.name} is stored in {self._root}, not in this run's store {root}; "
                             f"log it to this run first (run.log_artifact(...) of its files)")

    def is_draft(self) -> bool:
        return self._record is None and self._pending is None

    # --- reading a stored version ----------------------------------------------------------
    def _stored_files(self) -> List[_store.FileRow]:
        self.wait()
        if self._files is None:
            conn = _store.connect_reader(self._root)
            try:
                self._files = _store.artifact_files(conn, self._record["id"])
            finally:
                conn.close()
        return self._files

    def files(self, names: Optional[Sequence[str]] = None, per_page: int = 50) -> List[ArtifactEntry]:
        """The files (entries) of the artifact, by name."""
        if self.is_draft():
            found = [ArtifactEntry(self, path, digest, size, source if kind == "ref" else None,
                                   source if kind != "ref" else None)
                     for path, (kind, source, size, digest) in sorted(self._entries.items())]
        else:
            found = [ArtifactEntry(self, path, digest, size, ref) for path, digest, size, ref in self._stored_files()]
        return [entry for entry in found if names is None or entry.path in names]

    @property
    def manifest(self) -> Dict[str, ArtifactEntry]:
        return {entry.path: entry for entry in self.files()}

    def get_entry(self, name: str) -> ArtifactEntry:
        """The file ``name`` of the artifact; KeyError names the files it has."""
        for entry in self.files():
            if entry.path == name:
                return entry
        names = [entry.path for entry in self.files()]
        raise KeyError(f"artifact {self.name} has no file {name!r}; it has {', '.join(names[:10]) or 'none'}")

    get_path = get_entry

    def _download_root(self, root: Optional[Union[str, os.PathLike]]) -> str:
        if root is not None:
            return os.fspath(root)
        base = os.environ.get("WANDB_ARTIFACT_DIR") or os.path.join(".", "artifacts")
        return os.path.join(base, f"{self._name}:{self.version}")

    def download(self, root: Optional[Union[str, os.PathLike]] = None, allow_missing_references: bool = False,
                 skip_cache: Optional[bool] = None, path_prefix: Optional[str] = None,
                 multipart: Optional[bool] = None) -> str:
        """Write the version's files under ``root`` (default ``./artifacts/<name>:<version>``); returns it.

        Files already there with the same content are left as they are; others are written next
        to their place and renamed into it, so a file is never seen half-written.
        """
        if self.is_draft():
            raise ValueError(f"artifact {self._name} is not logged: there is no stored version to download")
        folder = self._download_root(root)
        for path, digest, size, ref in self._stored_files():
            if path_prefix is not None and not path.startswith(path_prefix):
                continue
            try:
                self._fetch(folder, path, digest, ref)
            except FileNotFoundError:
                if ref is None or not allow_missing_references:
                    raise
        return folder

    def _fetch(self, folder: str, path: str, digest: Optional[str], ref: Optional[str]) -> str:
        check_path(path, f" in artifact {self.name}")
        target = os.path.join(folder, *path.split("/"))
        if ref is not None:
            parsed = urllib.parse.urlparse(ref)
            if parsed.scheme != "file":
                raise FileNotFoundError(f"artifact {self.name}: {path!r} is a reference to {ref}, which "
                                        "cannot be read offline")
            source = urllib.parse.unquote(parsed.path)
            if not os.path.isfile(source):
                raise FileNotFoundError(f"artifact {self.name}: the referenced file {source!r} of {path!r} is gone")
            if _store.hash_file(source)[0] != digest:
                raise ValueError(f"artifact {self.name}: the referenced file {source!r} of {path!r} changed "
                                 "since it was logged")
        else:
            source = _store.object_path(self._root, digest)
            if not os.path.isfile(source):
                raise FileNotFoundError(f"artifact {self.name}: the store under {self._root} lost the file of "
                                        f"{path!r} (digest {digest[:12]}); `mplogger doctor` lists it")
        if os.path.isfile(target) and os.path.getsize(target) == os.path.getsize(source) \
                and _store.hash_file(target)[0] == digest:
            return target
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        partial = f"{target}.{uuid.uuid4().hex[:8]}.part"
        try:
            _store.clone_file(source, partial)
            os.chmod(partial, 0o644)
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return target

    def verify(self, root: Optional[str] = None) -> None:
        """Check that a downloaded copy under ``root`` holds exactly the version's files; ValueError if not."""
        folder = self._download_root(root)
        for path, digest, size, ref in self._stored_files():
            target = os.path.join(folder, *check_path(path).split("/"))
            if not os.path.isfile(target) or _store.hash_file(target)[0] != digest:
                raise ValueError(f"artifact {self.name}: {target!r} is missing or differs from the stored file")

    def logged_by(self) -> Any:
        """The stored run that first logged this version (None if it was deleted)."""
        run_id = (self._known() or {}).get("run_id")
        runs = _stored_runs(self._root, [run_id] if run_id is not None else [])
        return runs[0] if runs else None

    def used_by(self) -> List[Any]:
        """The stored runs that used this version."""
        record = self._known()
        if record is None:
            return []
        conn = _store.connect_reader(self._root)
        try:
            run_ids = _store.artifact_runs(conn, record["id"], "used")
        finally:
            conn.close()
        return _stored_runs(self._root, run_ids)

    def save(self) -> None:
        """Log it with the active run (wandb's ``artifact.save()``)."""
        run = getattr(sys.modules.get("mplogger"), "run", None)
        if run is None or not hasattr(run, "log_artifact"):
            raise UsageError(f"artifact {self._name}.save(): call mplogger.init() first")
        run.log_artifact(self)

    def delete(self, delete_aliases: bool = False) -> None:
        raise NotInMplogger("artifact.delete()", "delete the run that logged it (`mplogger rm RUN`)")

    def __repr__(self) -> str:
        if self._record is not None:
            return f"<Artifact {self.qualified_name} ({self._type}, {self.size} bytes)>"
        return f"<Artifact {self._name} ({self._type}, not logged{', storing' if self._pending else ''})>"



def prepare_log(artifact: "Artifact", root: str, aliases: Tuple[str, ...]) -> Dict[str, Any]:
    """Refuse an artifact logged before, move its staged files into ``root``'s store, and return
    the fields of its ``LogArtifact`` message (the user process sends it, then :func:`mark_sent`)."""
    if artifact._record is not None or artifact._pending is not None:
        raise ValueError(f"artifact {artifact.name} was logged already; make a new Artifact for a new version")
    metadata = to_json(artifact._metadata)  # refused before anything moves
    artifact._move_staging(root)
    entries = tuple((path, *entry) for path, entry in sorted(artifact._entries.items()))
    return {"name": artifact._name, "type": artifact._type, "description": artifact._description,
            "metadata": metadata, "aliases": ("latest", *aliases), "entries": entries,
            "staging": artifact._staging or ""}


def logged_by_id(artifact: "Artifact") -> Optional[str]:
    """The id of the run that logged a stored version, without opening that run (None once it is deleted)."""
    run_id = (artifact._record or {}).get("run_id")
    return run_id if isinstance(run_id, str) else None


def mark_sent(artifact: "Artifact", pending: tuple, root: str) -> None:
    """The version was sent: :meth:`Artifact.wait` waits on ``pending`` (``("reply", client, request)``
    from the run's process, ``("store", token, check_manager)`` from a child)."""
    artifact._pending = pending
    if artifact._cleanup is not None:
        artifact._cleanup.detach()  # the worker stores the files; whatever a failure left goes at its reply
    artifact._root = root

def _stored_runs(root: str, run_ids: Sequence[str]) -> List[Any]:
    """The stored runs of ``run_ids`` that are (still) in the store, and valid ids."""
    from mplogger._readers._api import Api

    api = Api(root)
    try:
        found = []
        for run_id in run_ids:
            if _store.is_run_id(run_id):
                try:
                    found.append(api.run(run_id))
                except KeyError:  # deleted meanwhile
                    pass
        return found
    finally:
        api.close()


def _stored_version(root: str, token: str, timeout: Optional[float], name: str,
                    check_manager: Callable[[], None]) -> Dict[str, Any]:
    """The version a child's log call ``token`` stored, polled from the store: the worker records
    there the version, or why it stored nothing. Bounded, and ends at once if the manager is gone."""
    bound = timeout or _CHILD_WAIT_S
    deadline = time.monotonic() + bound
    while True:
        conn = _store.connect_reader(root)
        try:
            found = _store.logged_version(conn, token)
        finally:
            conn.close()
        if found is not None:
            record, error = found
            if record is None:
                raise RunError(f"artifact {name} was not stored: {error}")
            return record
        check_manager()
        if time.monotonic() > deadline:
            raise TimeoutError(f"artifact {name} was not stored within {bound:g} s")
        time.sleep(0.02)  # poll: a child process gets no reply


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def type_name(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:120]
