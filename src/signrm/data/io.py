"""General file I/O: table formats, compressed text, atomic writes, JSON lines.

Text files are read as UTF-8 (a leading byte-order mark is skipped), decompressed on the fly by
suffix (``.gz``, ``.bz2``, ``.xz``; ``.zst`` is refused with a hint). Every problem reading a file
(not UTF-8, a truncated or corrupt archive, a Parquet file read as text) raises
:class:`~signrm.errors.UserError` naming the file, on one line.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import SignrmError, UserError, option_hint

__all__ = [
    "FORMATS",
    "COMPRESSIONS",
    "atomic_write",
    "format_of",
    "compression_of",
    "open_text",
    "read_errors",
    "iter_jsonl",
    "resolve_format",
    "read_frame",
    "write_frame",
    "read_jsonl_frame",
    "write_frame_jsonl",
    "write_jsonl",
    "json_default",
]

#: File formats of preference tables, in the order messages list them.
FORMATS = ("jsonl", "csv", "parquet")

#: Compression suffixes read (and written) through the standard library: suffix -> name.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}
_OPENERS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_MAGIC = {".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ\x00"}
# Suffixes of compressions that the standard library cannot read: suffix -> how to decompress.
_UNSUPPORTED = {".zst": "zstd -d", ".zstd": "zstd -d", ".lz4": "lz4 -d", ".zip": "unzip"}
_PARQUET_MAGIC = b"PAR1"
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                   ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip


# ---------------------------------------------------------------------------------- atomic writes
def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write_fn, suffix: str | None = None) -> Path:
    """Write a file atomically: ``write_fn(tmp_path)`` then ``os.replace`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    try:
        write_fn(tmp)
        # mkstemp creates 0600; give the result the mode a plain open() would (0666 - umask).
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ---------------------------------------------------------------------------------- formats
def compression_of(path: str | os.PathLike, error: type[Exception] = UserError) -> str | None:
    """The compression suffix of ``path`` (``.gz``, ``.bz2``, ``.xz``) or None.

    Suffixes of compressions the standard library cannot read (``.zst``, ``.lz4``, ``.zip``) raise
    ``error`` saying how to decompress the file first.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _UNSUPPORTED:
        raise error(
            f"{path}: {suffix} compression is not supported; decompress it first "
            f"(`{_UNSUPPORTED[suffix]} {path.name}`) or recompress it as .gz, .bz2 or .xz"
        )
    return suffix if suffix in COMPRESSIONS else None


def format_of(path: str | os.PathLike, error: type[Exception] = UserError) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from a path's suffix (a compression suffix is skipped).

    Parquet files are compressed internally: ``x.parquet.gz`` raises ``error``.
    """
    path = Path(path)
    compression = compression_of(path, error)
    suffixes = [s.lower() for s in path.suffixes]
    if compression is not None:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext not in _SUFFIX_FORMATS:
        raise error(
            f"{path}: cannot tell the format from the suffix {ext!r}; use .jsonl, .csv or "
            f".parquet, or pass {option_hint('format', *FORMATS)}"
        )
    fmt = _SUFFIX_FORMATS[ext]
    if fmt == "parquet" and compression is not None:
        raise error(
            f"{path}: Parquet files are compressed internally; read the {compression} file "
            "decompressed"
        )
    return fmt


def resolve_format(
    path: str | os.PathLike, format: str | None = None, error: type[Exception] = UserError
) -> str:
    """``format`` when given (checked against :data:`FORMATS`), else the format of the suffix."""
    if format is None:
        return format_of(path, error)
    if format.lower() not in FORMATS:
        raise error(f"{path}: unknown format {format!r}; use {', '.join(FORMATS)}")
    return format.lower()


# ---------------------------------------------------------------------------------- reading text
def _sniff(path: Path, compression: str | None, error: type[Exception]) -> None:
    """Refuse a file whose first bytes contradict its suffix (before any decoding)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if compression is not None and not head.startswith(_MAGIC[compression]):
        kind = COMPRESSIONS[compression]
        raise error(f"{path}: not a {kind} file (no {kind} header); check the suffix")
    # gzip and xz headers cannot start text; bzip2's "BZh" could start a CSV header: not sniffed
    packed = [sfx for sfx in (".gz", ".xz") if compression is None and head.startswith(_MAGIC[sfx])]
    if packed:
        raise error(
            f"{path}: is {COMPRESSIONS[packed[0]]}-compressed; add the suffix {packed[0]} "
            f"({path.name}{packed[0]}) so that it is decompressed"
        )
    if compression is None and head.startswith(_PARQUET_MAGIC):
        raise error(
            f"{path}: is a Parquet file, not text; give it a .parquet suffix or pass "
            f"{option_hint('format', 'parquet')}"
        )


def open_text(path: str | os.PathLike, error: type[Exception] = UserError):
    """Open a text file for reading: UTF-8 (a byte-order mark is skipped), decompressing
    ``.gz``/``.bz2``/``.xz``. Wrap the reading in :func:`read_errors` for one-line errors."""
    path = Path(path)
    compression = compression_of(path, error)
    _sniff(path, compression, error)
    opener = _OPENERS.get(compression or "", open)
    return opener(path, "rt", encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def read_errors(path: str | os.PathLike, error: type[Exception] = UserError) -> Iterator[None]:
    """Turn decoding and decompression failures while reading ``path`` into one-line ``error``s
    naming the file (not UTF-8, truncated or corrupt ``.gz``/``.bz2``/``.xz``)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex()
        raise error(
            f"{path}: not UTF-8 text (byte 0x{byte}: {exc.reason}); re-save it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8`"
        ) from None
    except EOFError:
        raise error(f"{path}: the compressed file is truncated (it ends too early)") from None
    except (zlib.error, lzma.LZMAError) as exc:
        raise error(f"{path}: corrupt compressed data ({exc})") from None
    except OSError as exc:
        # gzip.BadGzipFile and bz2's "Invalid data stream" carry no file name; an OSError that
        # names a file (permissions, a vanished file) is not about the content: keep it.
        if exc.filename is not None:
            raise
        raise error(f"{path}: corrupt compressed data ({exc})") from None


# ---------------------------------------------------------------------------------- JSON lines
def iter_jsonl(path: str | os.PathLike, error: type[Exception] = UserError):
    """Yield ``(line_number, record)`` of a JSON-lines file (1-based lines, blank lines skipped).

    A malformed line or a non-object raises ``error`` naming ``file:line``.
    """
    path = Path(path)
    with read_errors(path, error), open_text(path, error) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(rec, Mapping):
                raise error(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            yield lineno, rec


def read_frame(path: str | os.PathLike, format: str | None = None):
    """The table in a CSV, Parquet or JSONL file as a pandas DataFrame (format by suffix, or
    ``format``); any failure to read it is one :class:`UserError` line naming the file."""
    import pandas as pd

    path = Path(path)
    fmt = resolve_format(path, format)
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "jsonl":
            return read_jsonl_frame(path)
        with read_errors(path), open_text(path) as fh:
            return pd.read_csv(fh)
    except SignrmError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty (no header, no rows)") from None
    except Exception as exc:  # pandas and pyarrow raise many types for broken files
        raise UserError(f"{path}: cannot be read as {fmt} ({exc})") from None


def write_frame(df, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write a DataFrame to CSV, Parquet or JSONL (by suffix, or ``format``), atomically;
    ``.gz``/``.bz2``/``.xz`` compress CSV and JSONL."""
    path = Path(path)
    fmt = resolve_format(path, format)
    compression = compression_of(path) if fmt != "parquet" else None
    if fmt == "parquet":
        return atomic_write(path, lambda p: df.to_parquet(p, index=False))
    if fmt == "csv":
        how = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}.get(compression or "")
        return atomic_write(path, lambda p: df.to_csv(p, index=False, compression=how))
    return atomic_write(path, lambda p: write_frame_jsonl(df, p, compression))


def read_jsonl_frame(path: str | os.PathLike):
    """JSON lines -> pandas DataFrame; a malformed line raises with its line number (1-based)."""
    import pandas as pd

    records = [rec for _, rec in iter_jsonl(path)]
    if not records:
        raise UserError(f"{path}: no records")
    return pd.DataFrame.from_records(records)


def write_frame_jsonl(df, path: str | os.PathLike, compression: str | None = None) -> None:
    """DataFrame -> JSON lines with exact floats (pandas' ``to_json`` keeps 10 decimals only),
    compressed when ``compression`` is ``.gz``/``.bz2``/``.xz``. Not atomic by itself: pass it to
    :func:`atomic_write`."""
    cols = [str(c) for c in df.columns]
    opener = _OPENERS.get(compression or "", open)
    with opener(path, "wt", encoding="utf-8") as fh:
        for row in zip(*(df[c].tolist() for c in df.columns)):
            fh.write(json.dumps(dict(zip(cols, row))) + "\n")


def json_default(v: Any):
    """``json.dumps(default=...)`` for numpy scalars and arrays (anything else as text)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def write_jsonl(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows as JSON lines, atomically (temp file + ``os.replace``); ``.gz``/``.bz2``/``.xz``
    suffixes are compressed."""
    buf = io.StringIO()
    for r in rows:
        buf.write(json.dumps(r, ensure_ascii=False, default=json_default) + "\n")
    data = buf.getvalue().encode("utf-8")
    path = Path(path)
    compression = compression_of(path)
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}.get(
        compression or "", bytes
    )
    return atomic_write(path, lambda p: Path(p).write_bytes(compress(data)))
