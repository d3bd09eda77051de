"""Artifact files on disk, stored once by content (the worker stores, a reader reads; no SQL here:
the manifests are in :mod:`._artifacts`).

Layout under a root::

    <root>/artifacts/objects/<2 hex>/<62 hex>    one read-only file per SHA-256 digest
    <root>/artifacts/staging/<pid>-<time>-<hex>/ copies taken at log time, until a worker stores them

A file enters ``objects`` by a rename from ``staging`` (same file system: atomic), so an object
is always complete; a copy is a reflink where the file system can (copy-on-write, instant) and a
streamed copy otherwise, never read into memory. Hard links are not used: a hard link shares
later writes, and a version must not change when the training loop rewrites its checkpoint.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import time
import uuid
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

__all__ = ["DIGEST_RULE", "artifacts_dir", "claim_staging", "claimed", "clone_file", "hash_file", "in_store", "is_digest", "object_path",
           "objects", "put_object", "remove_object", "new_staging", "staging_dirs", "staging_owner"]

DIGEST_RULE = re.compile(r"[0-9a-f]{64}")
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (btrfs, XFS, bcachefs)
_CHUNK = 1 << 20
_HASH_CHUNK = 8 << 20  # large reads: the hashing thread takes the GIL back once per chunk


def artifacts_dir(root: str) -> str:
    return os.path.join(root, "artifacts")


def is_digest(value: object) -> bool:
    """Whether ``value`` is a SHA-256 hex digest (checked before a digest read from a store becomes a path)."""
    return isinstance(value, str) and DIGEST_RULE.fullmatch(value) is not None


def object_path(root: str, digest: str) -> str:
    """Where the file with ``digest`` is kept; ValueError for anything that is not a digest."""
    if not is_digest(digest):
        raise ValueError(f"{digest!r} is not a SHA-256 digest")
    return os.path.join(artifacts_dir(root), "objects", digest[:2], digest[2:])


def hash_file(path: str, progress: Optional[Callable[[int], None]] = None) -> Tuple[str, int]:
    """The SHA-256 hex digest and size of the file at ``path``, read in chunks (each told to ``progress``)."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb") as source:
        while True:
            count = source.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            size += count
            if progress is not None:
                progress(count)
    return digest.hexdigest(), size


def clone_file(source: str, target: str, progress: Optional[Callable[[int], None]] = None) -> None:
    """Copy ``source`` to a new file ``target``: a reflink where the file system allows, else a
    kernel-side streamed copy (each chunk told to ``progress``). The copy is readable by its owner only."""
    with open(source, "rb") as src, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                                 errno.EPERM, errno.EBADF):
                raise
        _sendfile(src, dst, progress)


def _sendfile(src: BinaryIO, dst: BinaryIO, progress: Optional[Callable[[int], None]]) -> None:
    """The whole of ``src`` into ``dst`` by ``os.sendfile`` (what ``shutil.copyfile`` does on Linux)."""
    offset = 0
    while True:
        try:
            sent = os.sendfile(dst.fileno(), src.fileno(), offset, _CHUNK << 3)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOSYS) and offset == 0:
                shutil.copyfileobj(src, dst, _CHUNK)
                return
            raise
        if sent == 0:
            return
        offset += sent
        if progress is not None:
            progress(sent)


def put_object(root: str, staged: str, digest: str) -> str:
    """Move the staged file ``staged`` (whose content has ``digest``) into the objects; returns its path.

    The rename replaces an identical object atomically, so the object exists afterwards whatever
    else happens meanwhile; a staged file on another file system is copied next to it first.
    """
    target = object_path(root, digest)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.chmod(staged, 0o444)
    try:
        os.replace(staged, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temporary = f"{target}.{uuid.uuid4().hex}.part"
        try:
            clone_file(staged, temporary)
            os.chmod(temporary, 0o444)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        os.unlink(staged)
    return target


def remove_object(root: str, digest: str) -> bool:
    """Delete the object with ``digest``; whether there was one."""
    try:
        os.unlink(object_path(root, digest))
        return True
    except FileNotFoundError:
        return False


def objects(root: str) -> Iterator[str]:
    """The digests of every object kept under ``root`` (names that are not digests are skipped)."""
    base = os.path.join(artifacts_dir(root), "objects")
    if not os.path.isdir(base):
        return
    for prefix in sorted(os.listdir(base)):
        folder = os.path.join(base, prefix)
        if len(prefix) == 2 and os.path.isdir(folder):
            for rest in sorted(os.listdir(folder)):
                if is_digest(prefix + rest):
                    yield prefix + rest


def new_staging(root: str) -> str:
    """A fresh staging folder for one artifact, named for this process (so ``doctor`` knows its owner)."""
    folder = os.path.join(artifacts_dir(root), "staging", f"{os.getpid()}-{int(time.time())}-{uuid.uuid4().hex[:12]}")
    os.makedirs(folder)
    return folder


def claim_staging(folder: str) -> str:
    """Rename a staging folder for this process (the worker that stores it), so ``doctor`` sees a
    live owner while its files are being stored. Returns the new path ("" when there is none)."""
    if not os.path.isdir(folder):
        return ""
    target = os.path.join(os.path.dirname(folder), f"w{os.getpid()}-{int(time.time())}-{uuid.uuid4().hex[:12]}")
    os.rename(folder, target)
    return target


def staging_dirs(root: str) -> Iterator[str]:
    """The staging folders under ``root``."""
    base = os.path.join(artifacts_dir(root), "staging")
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            yield os.path.join(base, name)


def staging_owner(folder: str) -> Optional[Tuple[int, float]]:
    """(pid, creation time) of the process that made (or, for a worker, claimed) a staging folder,
    or None for a name not made here."""
    match = re.fullmatch(r"w?(\d+)-(\d+)-[0-9a-f]{12}", os.path.basename(folder))
    return None if match is None else (int(match.group(1)), float(match.group(2)))


def claimed(folder: str) -> bool:
    """Whether a staging folder was claimed by a worker (its files are being moved into the objects)."""
    return os.path.basename(folder).startswith("w") and staging_owner(folder) is not None


def in_store(root: str, path: str) -> bool:
    """Whether ``path`` lies under ``root`` and is reached from it without following a symbolic link
    (checked before anything found under ``root`` is deleted: a store may come from someone else)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if relative == os.curdir or relative.split(os.sep, 1)[0] == os.pardir:
        return False
    return os.path.realpath(path) == os.path.join(os.path.realpath(root), relative)
