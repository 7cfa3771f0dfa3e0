"""Chunked sources of comparisons: the one input of the linear engine.

A *source* yields the comparisons in :class:`Chunk` objects of at most ``chunk_rows`` rows, so
memory is bounded by the chunk size, not by the number of comparisons ``n``:

- :class:`MemorySource` — an in-memory :class:`~signrm.data.PreferenceData` as one chunk (no
  copy, no second validation).
- :class:`ParquetShards` — a directory (or list) of Parquet files read with pyarrow batch by batch.
  Features are either list columns (``xa``/``xb`` of fixed or variable length ``d``, or one
  ``differences`` list column) or scalar columns (``a_*``/``b_*`` with matching suffixes, or
  ``d_*``, the layout :meth:`PreferenceData.write` produces). ``label`` holds 1 (a preferred),
  0 (b preferred) or 0.5 (tie); ``weight``, ``margin`` and ``user`` are used when present.
- :class:`NpyPair` — ``xa.npy``/``xb.npy`` (or one ``differences.npy``) and ``y.npy`` (optional
  ``weight.npy``, ``user.npy``): the headers are read like a memory map, rows by positioned reads
  (so the resident set never holds the file).

:func:`as_source` turns what a user passes to ``fit`` (data, a source, a path) into a source;
:func:`open_source` recognises a source on disk. Usage::

    src = signrm.data.open_source("shards/")          # directory of *.parquet
    est = signrm.SignEstimator().fit(src)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from signrm.data.chunks import Chunk, StreamingSource
from signrm.data.npy_source import NpyPair
from signrm.data.parquet_source import ParquetShards
from signrm.data.preference import PreferenceData
from signrm.data.validation import is_parquet_path, warn_ignored_columns
from signrm.errors import UserError

__all__ = [
    "Chunk",
    "StreamingSource",
    "MemorySource",
    "ParquetShards",
    "NpyPair",
    "open_source",
    "as_source",
    "is_streaming_source",
]


#: The .npy files of an :class:`NpyPair` directory.
_NPY_FILES = ("xa.npy", "xb.npy", "differences.npy", "y.npy", "weight.npy", "user.npy")


def is_streaming_source(obj) -> bool:
    """True for a :class:`StreamingSource` or a path (``str``/``os.PathLike``) to open as one.

    The linear estimators' ``fit`` streams these, so ``BradleyTerry().fit("shards/")`` streams
    the directory.
    """
    return isinstance(obj, (StreamingSource, str, os.PathLike))


def open_source(path, **kwargs) -> StreamingSource:
    """Recognise a streaming source on disk.

    - a directory of ``*.parquet`` files, or a single Parquet file -> :class:`ParquetShards`;
    - a directory with ``xa.npy``, ``xb.npy`` and ``y.npy`` (optionally ``weight.npy`` and
      ``user.npy``), or with ``differences.npy`` and ``y.npy`` -> :class:`NpyPair`.
    ``kwargs`` go to the source (``chunk_rows``, column names, ...).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if p.is_file():
        if is_parquet_path(p):
            return ParquetShards(p, **kwargs)
        raise UserError(
            f"{p}: not a Parquet file or a directory of shards (read a CSV or JSONL table into "
            "memory with PreferenceData.read)"
        )
    names = {q.name for q in p.iterdir()}
    if "y.npy" in names and ({"xa.npy", "xb.npy"} <= names or "differences.npy" in names):
        opt = {k: p / f"{k}.npy" for k in ("weight", "user") if f"{k}.npy" in names}
        used = {"xa.npy", "xb.npy"} if {"xa.npy", "xb.npy"} <= names else {"differences.npy"}
        used |= {"y.npy", *(f"{k}.npy" for k in opt)}
        ignored = sorted(n for n in names if n.lower().endswith(".npy") and n not in used)
        warn_ignored_columns(ignored, _NPY_FILES, str(p), "file(s)")
        if {"xa.npy", "xb.npy"} <= names:
            return NpyPair(p / "xa.npy", p / "xb.npy", p / "y.npy", **opt, **kwargs)
        return NpyPair(p / "differences.npy", None, p / "y.npy", **opt, **kwargs)
    if any(is_parquet_path(n) for n in names):
        return ParquetShards(p, **kwargs)
    raise UserError(
        f"{p}: not a streaming source: expected *.parquet shards, or xa.npy + xb.npy + y.npy "
        "(or differences.npy + y.npy)"
    )


# --------------------------------------------------------------------------- in memory
class MemorySource(StreamingSource):
    """An in-memory :class:`~signrm.data.PreferenceData` as a source of exactly one chunk.

    Nothing is copied: the chunk's ``xa``/``xb``/``y``/``weight``/``margin``/``user`` are the
    data's arrays and its ``diff`` is ``data.differences`` (computed once and cached by the data,
    on the first pass). No validation pass (the data are validated) and no prefetch thread.
    ``in_memory`` tells the linear engine it may copy a fold's rows once and reuse them.
    """

    in_memory = True

    def __init__(self, data: PreferenceData) -> None:
        if not isinstance(data, PreferenceData):
            raise TypeError(f"MemorySource wraps a PreferenceData, got {type(data).__name__}")
        ref = data.xa if data.has_alternatives else data.differences
        super().__init__(max(data.n_samples, 1), ref.dtype, prefetch=False)
        self.data = data
        self.n_samples, self.n_features = data.n_samples, data.n_features
        self.has_alternatives = data.has_alternatives
        self.has_weight = data.weight is not None
        self.has_margin = data.margin is not None
        self.has_user = data.user is not None
        self._validated = True

    def __repr__(self) -> str:
        return f"MemorySource({self.data!r})"

    def _iter_raw(self) -> Iterator[Chunk]:
        d = self.data
        yield Chunk(
            d.y, xa=d.xa, xb=d.xb, diff=d.differences, weight=d.weight, margin=d.margin,
            user=d.user, start=0, where="<memory>",
        )  # fmt: skip

    def to_data(self) -> PreferenceData:
        """The wrapped data (no copy)."""
        return self.data


def as_source(obj, **kwargs) -> StreamingSource:
    """The source of chunks behind what is passed to ``fit``.

    - :class:`~signrm.data.PreferenceData` -> :class:`MemorySource` (one chunk, no copy);
    - a :class:`StreamingSource` -> itself;
    - a path (``str`` / ``os.PathLike``) -> :func:`open_source` ``(path, **kwargs)``.
    ``kwargs`` (``chunk_rows``, column names, ...) apply to paths only.
    """
    if isinstance(obj, (PreferenceData, StreamingSource)):
        if kwargs:
            raise TypeError(
                f"as_source: options {sorted(kwargs)} apply to a path, not to a "
                f"{type(obj).__name__}"
            )
        return MemorySource(obj) if isinstance(obj, PreferenceData) else obj
    if isinstance(obj, (str, os.PathLike)):
        return open_source(obj, **kwargs)
    raise TypeError(
        f"expected comparisons: a signrm.PreferenceData, a streaming source "
        f"(signrm.data.open_source) or a path to Parquet shards / .npy files; got "
        f"{type(obj).__name__} (load a table with PreferenceData.read(path), or arrays with "
        "PreferenceData.from_arrays(xa, xb, y))"
    )
