"""Crash-safe replacement of a model directory.

A save writes a complete new directory as a hidden sibling ``.<name>.signrm-tmp-<random>`` (with
the marker file ``.signrm-partial`` until it is complete), then swaps it in:

- on Linux, with ``renameat2(RENAME_EXCHANGE)``: the path and the new directory trade places in
  one atomic step, so at every instant the path holds the old model or the new one, whole;
- elsewhere (or on a file system without it): the old model is renamed to
  ``.<name>.signrm-old-<random>`` and the new one to the path. A crash between the two renames
  leaves no model at the path; the next :func:`recover` (every load and save calls it) renames
  the old model back.

Every save holds an exclusive ``flock`` on ``.<name>.signrm-lock`` in the parent directory
(removed after the save), so concurrent saves to one path run one after the other and never
fail. Before swapping, a save removes what killed saves left: siblings whose name matches the
patterns above *and* that hold the marker file or a signrm ``model.json`` (or nothing).

Only a signrm model directory (``model.json`` with ``"format": "signrm-model"`` and no file that
signrm did not write) or an empty directory may be replaced; anything else raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from signrm.errors import UserError

__all__ = ["MODEL_FORMAT", "PARTIAL_MARKER", "check_replaceable", "recover", "replace_directory"]

MODEL_FORMAT = "signrm-model"
PARTIAL_MARKER = ".signrm-partial"
#: files a signrm model directory may hold besides those its manifest lists
KNOWN_FILES = frozenset(
    {"model.json", "arrays.npz", "head.safetensors", "booster.txt", "encoder.json"}
)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _leftover_re(name: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(name)}\.signrm-(tmp|old)-[0-9a-f]{{16}}$")


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.signrm-{kind}-{secrets.token_hex(8)}"


def read_marker(path: Path) -> dict | None:
    """The parsed ``model.json`` of ``path`` if it is a signrm model directory, else None."""
    try:
        meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == MODEL_FORMAT else None


def check_replaceable(path: str | os.PathLike) -> None:
    """Raise :class:`UserError` unless a save may replace ``path``: it is missing, an empty
    directory, or a signrm model directory holding only files that signrm wrote."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link; save the model to a real directory path")
    if not path.is_dir():
        raise UserError(
            f"{path} is a file, not a signrm model directory; refusing to replace it "
            "(choose another output path)"
        )
    entries = set(os.listdir(path))
    if not entries:
        return
    meta = read_marker(path)
    if meta is None:
        raise UserError(
            f"{path} is a directory that is not a signrm model (no signrm model.json); refusing "
            "to replace it (choose another output path or remove it yourself)"
        )
    files = meta.get("files")
    known = KNOWN_FILES | (set(files) if isinstance(files, dict) else set())
    extra = sorted(entries - known)
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        raise UserError(
            f"{path} holds files that signrm did not write ({shown}); refusing to replace it "
            "(move them out or choose another output path)"
        )


@contextlib.contextmanager
def path_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on saves to ``path`` (``.<name>.signrm-lock`` next to it, removed after)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no inter-process lock
        yield
        return
    lock = path.parent / f".{path.name}.signrm-lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = os.fstat(fd)
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            break
        os.close(fd)  # the previous holder removed that file: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2``); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not on this file system / kernel
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _is_leftover(entry: Path) -> bool:
    if not entry.is_dir() or entry.is_symlink():
        return False
    return (
        (entry / PARTIAL_MARKER).exists()
        or read_marker(entry) is not None
        or not any(entry.iterdir())
    )


def recover(path: Path) -> None:
    """If a crash between the two renames of a save left no model at ``path`` but its backup
    ``.<name>.signrm-old-*``, rename the backup back (callers hold :func:`path_lock`)."""
    if os.path.lexists(path) or not path.parent.is_dir():
        return
    pattern = _leftover_re(path.name)
    olds = [
        p
        for p in path.parent.iterdir()
        if pattern.match(p.name) and ".signrm-old-" in p.name and read_marker(p) is not None
    ]
    if olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, path)


def _remove(directory: Path) -> None:
    """Delete a directory that signrm wrote so that a kill midway leaves it recognisable as a
    leftover: the marker file goes in first and out last."""
    with contextlib.suppress(OSError):
        (directory / PARTIAL_MARKER).touch()
        for entry in directory.iterdir():
            if entry.name == PARTIAL_MARKER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        (directory / PARTIAL_MARKER).unlink(missing_ok=True)
        directory.rmdir()


def _clean_leftovers(path: Path) -> None:
    pattern = _leftover_re(path.name)
    for entry in path.parent.iterdir():
        if pattern.match(entry.name) and _is_leftover(entry):
            _remove(entry)


def _fsync_tree(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_file():
            with open(entry, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(tmp: Path, path: Path) -> Path | None:
    """Put the complete directory ``tmp`` at ``path``; returns what must be deleted after."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return None
    if _exchange(tmp, path):
        return tmp  # now holds the old model
    old = _sibling(path, "old")
    os.rename(path, old)
    os.rename(tmp, path)
    return old


def replace_directory(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a new directory with ``write(tmp_dir)`` and put it at ``path`` crash-safely.

    ``path`` must pass :func:`check_replaceable`. Returns the absolute path.
    """
    path = Path(os.path.abspath(path))
    if path.parent == path:
        raise UserError(f"cannot save a model as {path}")
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path_lock(path):
        recover(path)
        _clean_leftovers(path)
        check_replaceable(path)  # again, under the lock
        tmp = _sibling(path, "tmp")
        tmp.mkdir(mode=0o777)  # the umask applies, as for any new folder
        (tmp / PARTIAL_MARKER).touch()
        try:
            write(tmp)
            (tmp / PARTIAL_MARKER).unlink()
            _fsync_tree(tmp)
        except BaseException:
            _remove(tmp)
            raise
        try:
            cwd = Path(os.getcwd())
        except OSError:
            cwd = None
        stale = _swap_in(tmp, path)
        _fsync_dir(path.parent)
        if stale is not None:
            _remove(stale)
        if cwd is not None and (cwd == path or path in cwd.parents):
            os.chdir(path)  # the process was inside the old directory: follow the new one
    return path
