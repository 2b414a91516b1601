"""Crash-safe file writing and config hashing: every file the harness writes goes through here."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    Works for files and for directories (a directory target is swapped in whole).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_edit_folder(path: str | Path, record: dict, tensors: dict | None = None, tensor_file: str = "") -> Path:
    """A saved edit, written atomically: ``edit.json`` (``record``, with its ``kind``) and, for an
    edit with tensors, ``tensor_file`` (safetensors). Returns the folder."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        if tensors is not None:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / tensor_file)
        (tmp / "edit.json").write_text(json.dumps(record, indent=1))
    return path


def read_edit_folder(path: str | Path, tensor_file: str = "") -> tuple[dict, dict]:
    """A saved edit's ``edit.json`` record and its tensors (``{}`` without ``tensor_file``); a missing,
    unreadable or incomplete folder is one UserError naming it."""
    from safetensors.torch import load_file

    from spare.errors import UserError

    path = Path(path)
    try:
        record = json.loads((path / "edit.json").read_text())
        tensors = load_file(path / tensor_file) if tensor_file else {}
        if not isinstance(record, dict) or "method" not in record:
            raise ValueError("edit.json names no method")
    except Exception as err:  # a missing file, bad JSON, a damaged safetensors file: one message for the user
        raise UserError(f"edit folder {str(path)!r} is corrupt or incomplete: {err}") from err
    return record, tensors


def read_json_dict(path: str | Path) -> dict | None:
    """The JSON object stored at ``path``; None when it is missing, and None with a warning that
    names the file when it is damaged (not JSON, or not an object): a stage file that cannot be
    read counts as not done, and its stage is computed again."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        problem = None if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = str(err)
    if problem is None:
        return data
    st = path.stat()
    seen = (str(path), st.st_size, st.st_mtime_ns)
    if seen not in _WARNED:  # once per damaged file, however often a sweep looks at it
        _WARNED.add(seen)
        log.warning("%s is damaged (%s); it counts as not done and is made again", path, problem)
    return None


_WARNED: set[tuple[str, int, int]] = set()


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def copy_atomic(src: str | Path, dest: str | Path) -> Path:
    """Copy the file ``src`` to ``dest``, atomically (a reader never sees half a file)."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dest)


def config_hash(data: Any, length: int = 12) -> str:
    """A short, stable hash of a JSON-able config: the cache key of a stage's output."""
    blob = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def cache_root() -> Path:
    """Where derived data lives: ``$SPARE_CACHE`` or ``~/.cache/spare``."""
    return Path(os.environ.get("SPARE_CACHE", Path.home() / ".cache" / "spare"))


# What a stage is computed from, by content: a model or classifier folder replaced at the same path
# must never be taken for the old one (their paths alone were keyed before).
FINGERPRINTED = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".json", ".txt", ".model")


def content_fingerprint(path: str | Path | None, *, contents: bool = True) -> str | None:
    """A short hash of what ``path`` holds: every weight, config and index file under it (by
    relative name and sha256 of its bytes; ``contents=False``: by name and size only, for
    datasets too large to read). Each file's digest is cached by path, size and modification
    time under ``$SPARE_CACHE``, so a folder is read once. None for no path, a hub id or a path
    that does not exist (the path itself is keyed, and a missing one is reported where it is read)."""
    if not path:
        return None
    root = Path(path).expanduser()
    if not root.exists():
        return None
    if root.is_file():
        files = [root]
    else:
        files = sorted(
            f
            for f in root.rglob("*")
            if f.is_file()
            and not any(part.startswith(".") for part in f.relative_to(root).parts)
            and (not contents or f.suffix.lower() in FINGERPRINTED)
        )
    cache_file = cache_root() / "fingerprints.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    h, changed = hashlib.sha256(), False
    for f in files:
        st = f.stat()
        name = f.name if f == root else f.relative_to(root).as_posix()
        if not contents:
            h.update(f"{name}\0{st.st_size}\n".encode())
            continue
        key = str(f.resolve())
        entry = cache.get(key)
        if not (isinstance(entry, list) and entry[:2] == [st.st_size, st.st_mtime_ns]):
            digest = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
            entry = cache[key] = [st.st_size, st.st_mtime_ns, digest.hexdigest()]
            changed = True
        h.update(f"{name}\0{entry[2]}\n".encode())
    if changed:
        write_json(cache_file, cache)
    return h.hexdigest()[:16]


@contextmanager
def claim(folder: str | Path) -> Iterator[bool]:
    """Try to claim the making of ``folder`` without waiting: the block sees True while this process
    holds the claim, False when another process does. A sharded sweep's processes claim each job
    before running it, so one that has run out of its own work takes the others' unstarted jobs and
    skips the ones being made. The claim is a lock on ``.<name>.claim`` beside the folder (the folder
    itself is left alone) and ends with the block, or with the process (a killed one frees it)."""
    import fcntl

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.claim", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder/.lock`` for the block: a second process making the same folder waits for the
    first (and says which process holds it) instead of doing the same work beside it."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            log.warning("%s is being made by process %s; waiting for it to finish", folder, holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
