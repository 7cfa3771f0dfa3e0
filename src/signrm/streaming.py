"""Out-of-core (streaming) fits of the linear Bradley–Terry and sign estimators.

A *source* yields the comparisons in chunks of at most ``chunk_rows`` rows, so memory is bounded
by the chunk size, not by the number of comparisons ``n``:

- :class:`ParquetShards` — a directory (or list) of Parquet files read with pyarrow batch by batch.
  Features are either list columns (``xa``/``xb`` of fixed or variable length ``d``, or one
  ``differences`` list column) or scalar columns (``a_*``/``b_*`` with matching suffixes, or
  ``d_*``, the layout :meth:`PreferenceData.write` produces). ``label`` holds 1 (a preferred),
  0 (b preferred) or 0.5 (tie); ``weight`` and ``margin`` are used when present.
- :class:`NpyPair` — ``xa.npy``/``xb.npy`` (or one ``differences.npy``) and ``y.npy``: the headers
  are read like a memory map, rows by positioned reads (so the resident set never holds the file).

Usage::

    src = signrm.streaming.open_source("shards/")          # directory of *.parquet
    est = signrm.SignEstimator().fit(src)                  # or fit_streaming(est, src)

Solver choice. Every evaluation of the objective and its gradient is one pass over the chunks,
computing *exactly* the objective of the in-memory solvers (``estimators/_linear.py``): the same
weighted mean loss, the same ridge term, the same per-stage margin scale (the weighted standard
deviation of the margins at the stage start, itself one pass) and the same L-BFGS (scipy) settings.
The streaming solution therefore agrees with the in-memory one to solver tolerance (angles of
1e-4 degrees on the benchmark data, not just under 1 degree), which plain mini-batch SGD reaches
only after many epochs and a decaying step. Mini-batch training on the chunks is kept as an
optional warm start (``minibatch_epochs``: Adam epochs on the BT loss, chunk by chunk); it does not
change the optimum (the penalised BT objective is strictly convex) and, measured on the benchmark
data, it did not reduce the number of L-BFGS passes, so it is off by default. Multi-process
training of torch heads lives in :mod:`signrm.train`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize, special

__all__ = [
    "Chunk",
    "StreamingSource",
    "ParquetShards",
    "NpyPair",
    "open_source",
    "is_streaming_source",
    "fit_streaming",
]

_VALID_LABELS = (0.0, 0.5, 1.0)


# --------------------------------------------------------------------------- chunks and sources
@dataclass
class Chunk:
    """A block of ``m`` comparisons: features ``(m, d)`` (float32 by default), labels ``(m,)``.

    ``xa``/``xb`` are the alternatives' features (``None`` for difference-only sources), ``diff``
    the given differences (``None`` when the alternatives are given), ``start`` the global row of
    the first comparison and ``where`` the file it came from.
    """

    y: np.ndarray
    xa: np.ndarray | None = None
    xb: np.ndarray | None = None
    diff: np.ndarray | None = None
    weight: np.ndarray | None = None
    margin: np.ndarray | None = None
    start: int = 0
    where: str = ""
    files: dict[str, str] | None = None  # column -> file, when columns come from several files
    _d: np.ndarray | None = field(default=None, repr=False)

    def where_of(self, column: str) -> str:
        """The file (and position) that the column ``xa``/``xb``/``differences`` came from."""
        return (self.files or {}).get(column, self.where)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def differences(self) -> np.ndarray:
        """``xa - xb`` (computed once per chunk) or the given differences, ``(m, d)``."""
        if self.diff is not None:
            return self.diff
        if self._d is None:
            self._d = np.subtract(self.xa, self.xb)
        return self._d

    @property
    def signs(self) -> np.ndarray:
        return 2.0 * self.y - 1.0


class StreamingSource:
    """Base class of chunked comparison sources (iterate to get :class:`Chunk` objects).

    Subclasses set ``n_samples``, ``n_features``, ``has_alternatives``, ``chunk_rows`` and
    implement ``_iter_raw``. Chunks are validated (finite features, labels in {0, 0.5, 1},
    non-negative weights) until one full pass has succeeded; a bad value raises ``ValueError``
    naming the file, the column and the row.
    """

    n_samples: int
    n_features: int
    has_alternatives: bool
    chunk_rows: int
    has_weight: bool = False
    has_margin: bool = False

    def __init__(self, chunk_rows: int, dtype, prefetch: bool) -> None:
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.chunk_rows = int(chunk_rows)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.prefetch = bool(prefetch)
        self._validated = False

    # subclasses
    def _iter_raw(self) -> Iterator[Chunk]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.n_samples)

    def __iter__(self) -> Iterator[Chunk]:
        it = self._iter_raw()
        if not self._validated:
            it = self._validating(it)
        if self.prefetch:
            it = _prefetch(it)
        return it

    def _validating(self, it: Iterator[Chunk]) -> Iterator[Chunk]:
        seen = 0
        for chunk in it:
            _validate_chunk(chunk)
            seen += len(chunk)
            yield chunk
        if seen != self.n_samples:
            raise ValueError(f"{self!r}: read {seen} rows, the metadata announced {self.n_samples}")
        self._validated = True

    def to_data(self):
        """Load everything into one in-memory :class:`signrm.PreferenceData` (small data only)."""
        from signrm.data import PreferenceData

        chunks = list(self)
        cat = lambda name: (  # noqa: E731
            None
            if getattr(chunks[0], name) is None
            else np.concatenate([getattr(c, name) for c in chunks])
        )
        y = cat("y")
        opt = {"weight": cat("weight")}
        if self.has_alternatives:
            return PreferenceData.from_arrays(cat("xa"), cat("xb"), y, margin=cat("margin"), **opt)
        data = PreferenceData.from_differences(cat("diff"), y, **opt)
        if chunks[0].margin is not None:
            data.margin = cat("margin")
        return data


def is_streaming_source(obj) -> bool:
    """True for a :class:`StreamingSource` or a path (``str``/``os.PathLike``) to open as one.

    The linear estimators' ``fit`` delegates these to :func:`fit_streaming`, so
    ``BradleyTerry().fit("shards/")`` streams the directory.
    """
    return isinstance(obj, (StreamingSource, str, os.PathLike))


def _prefetch(it: Iterator[Chunk], depth: int = 1) -> Iterator[Chunk]:
    """Read the next chunk in a background thread while the current one is used."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _first_rows(mask: np.ndarray, offset: int) -> str:
    idx = np.flatnonzero(mask)[:5] + offset
    more = f" and {int(mask.sum()) - 5} more" if mask.sum() > 5 else ""
    return "row(s) " + ", ".join(str(int(i)) for i in idx) + more


def _validate_chunk(c: Chunk) -> None:
    where = c.where
    row0 = c.start
    for name, x in (("xa", c.xa), ("xb", c.xb), ("differences", c.diff)):
        if x is None:
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(
                f"{c.where_of(name)}: NaN or inf in the {name} features, "
                f"{_first_rows(bad.any(1), row0)} (0-based rows of the whole source)"
            )
    bad = ~np.isin(c.y, _VALID_LABELS)
    if bad.any():
        first = c.y[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"{where}: label must be 0, 0.5 (tie) or 1 (a preferred); {_first_rows(bad, row0)} "
            f"hold e.g. {first!r}"
        )
    if c.weight is not None:
        bad = ~np.isfinite(c.weight) | (c.weight < 0)
        if bad.any():
            raise ValueError(f"{where}: weight negative, NaN or inf in {_first_rows(bad, row0)}")
    if c.margin is not None:
        bad = ~np.isfinite(c.margin)
        if bad.any():
            raise ValueError(f"{where}: margin NaN or inf in {_first_rows(bad, row0)}")


# --------------------------------------------------------------------------- Parquet shards
def _list_to_matrix(arr, d: int, dtype, where: str, col: str, row0: int) -> np.ndarray:
    import pyarrow as pa

    if arr.null_count:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        raise ValueError(f"{where}: column {col!r} is empty (null) in {_first_rows(mask, row0)}")
    if pa.types.is_fixed_size_list(arr.type):
        if arr.type.list_size != d:
            raise ValueError(
                f"{where}: column {col!r} holds vectors of length {arr.type.list_size}, "
                f"expected {d}"
            )
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.asarray(arr.value_lengths().to_numpy(zero_copy_only=False))
        bad = lengths != d
        if bad.any():
            raise ValueError(
                f"{where}: column {col!r} has vectors of length "
                f"{int(lengths[np.flatnonzero(bad)[0]])} in {_first_rows(bad, row0)}, expected {d}"
            )
    else:
        raise ValueError(f"{where}: column {col!r} is {arr.type}, expected a list of numbers")
    values = arr.flatten()
    if values.null_count:
        mask = np.asarray(values.is_null().to_numpy(zero_copy_only=False)).reshape(-1, d).any(1)
        raise ValueError(f"{where}: column {col!r} has null entries in {_first_rows(mask, row0)}")
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise ValueError(f"{where}: column {col!r} holds {values.type}, expected numbers")
    return (
        np.asarray(values.to_numpy(zero_copy_only=False)).reshape(-1, d).astype(dtype, copy=False)
    )


def _scalar_block(batch, names: Sequence[str], dtype, where: str, row0: int) -> np.ndarray:
    import pyarrow as pa

    out = np.empty((batch.num_rows, len(names)), dtype=dtype)
    for j, nm in enumerate(names):
        arr = batch.column(nm)
        if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
            raise ValueError(f"{where}: column {nm!r} is {arr.type}, expected numbers")
        if arr.null_count:
            mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
            raise ValueError(f"{where}: column {nm!r} is empty (null) in {_first_rows(mask, row0)}")
        out[:, j] = arr.to_numpy(zero_copy_only=False)
    return out


def _vector(batch, name: str, where: str, row0: int) -> np.ndarray:
    import pyarrow as pa

    arr = batch.column(name)
    if not (
        pa.types.is_floating(arr.type)
        or pa.types.is_integer(arr.type)
        or pa.types.is_boolean(arr.type)
    ):
        raise ValueError(f"{where}: column {name!r} is {arr.type}, expected numbers")
    if arr.null_count:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        raise ValueError(f"{where}: column {name!r} is empty (null) in {_first_rows(mask, row0)}")
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


class ParquetShards(StreamingSource):
    """Comparisons in Parquet files, read ``chunk_rows`` rows at a time.

    Parameters
    ----------
    path : directory (all ``*.parquet``/``*.pq`` files, sorted by name), one file, or a list
    features_a, features_b : str (a list column of length-``d`` vectors) or list of scalar columns
    differences : str or list of str, instead of ``features_a``/``features_b``
        Without any of the three: list columns ``xa``/``xb``, else ``differences``, else scalar
        columns ``a_*``/``b_*`` (matching suffixes), else ``d_*``.
    label : the label column (1 = a preferred, 0 = b, 0.5 = tie)
    weight, margin : optional columns; default to ``weight``/``margin`` when present
    chunk_rows : rows per chunk. pyarrow decodes a whole row group at a time and list columns cost
        about ten times their size while decoded, so memory is about ``30 * chunk_rows * d * 4``
        bytes when row groups are at most ``chunk_rows`` rows (write shards with
        ``pq.write_table(..., row_group_size=chunk_rows)``); larger row groups cost more.
    dtype : float32 (default) or float64 feature dtype
    prefetch : read the next chunk in a background thread
    """

    def __init__(
        self,
        path,
        features_a: str | Sequence[str] | None = None,
        features_b: str | Sequence[str] | None = None,
        differences: str | Sequence[str] | None = None,
        label: str = "label",
        weight: str | None = None,
        margin: str | None = None,
        chunk_rows: int = 16_384,
        dtype=np.float32,
        prefetch: bool = True,
    ) -> None:
        import pyarrow.parquet as pq

        super().__init__(chunk_rows, dtype, prefetch)
        self.files = _parquet_files(path)
        meta = []
        for f in self.files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as exc:
                raise ValueError(f"{f}: cannot be read as Parquet ({exc})") from None
            meta.append((pf.schema_arrow, pf.metadata.num_rows))
        schema = meta[0][0]
        cols = list(schema.names)
        if (features_a is None) != (features_b is None):
            raise ValueError("features_a and features_b go together")
        explicit_columns = features_a is not None or differences is not None
        if features_a is None and differences is None:
            if "xa" in cols and "xb" in cols:
                features_a, features_b = "xa", "xb"
            elif "differences" in cols:
                differences = "differences"
            else:
                fa = [c for c in cols if c.startswith("a_")]
                fb = [c for c in cols if c.startswith("b_")]
                fd = [c for c in cols if c.startswith("d_")]
                if fa and [c[2:] for c in fa] == [c[2:] for c in fb]:
                    features_a, features_b = fa, fb
                elif fd:
                    differences = fd
                else:
                    raise ValueError(
                        f"{self.files[0]}: no feature columns: pass features_a/features_b or "
                        "differences, or use list columns xa/xb (or differences) or scalar columns "
                        f"a_*/b_* or d_*; the file has {cols[:12]}"
                    )
        self.features_a, self.features_b, self.differences = features_a, features_b, differences
        self.has_alternatives = features_a is not None
        self.label = label
        self.weight = weight if weight is not None else ("weight" if "weight" in cols else None)
        self.margin = margin if margin is not None else ("margin" if "margin" in cols else None)
        self.has_weight, self.has_margin = self.weight is not None, self.margin is not None
        feats = [features_a, features_b] if self.has_alternatives else [differences]
        self._feature_cols = feats
        needed: list[str] = [label]
        for f in feats:
            needed += [f] if isinstance(f, str) else list(f)
        needed += [c for c in (self.weight, self.margin) if c is not None]
        self._columns = needed
        # Scalar feature columns found by prefix: every shard must hold exactly the first one's,
        # or a shard's extra features would be silently left out.
        auto_scalar = (
            []
            if explicit_columns
            else [p for p in ("a_", "b_", "d_") if any(c.startswith(p) for c in needed)]
        )
        for f, (sch, _) in zip(self.files, meta):
            missing = [c for c in needed if c not in sch.names]
            if missing:
                raise ValueError(
                    f"{f}: missing column(s) {missing[:5]}; the file has {list(sch.names)[:12]}"
                )
            extra = [
                c
                for c in sch.names
                if c not in needed and any(c.startswith(p) for p in auto_scalar)
            ]
            if extra:
                raise ValueError(
                    f"{f}: feature column(s) {extra[:5]} are not in {self.files[0].name}; "
                    "all shards must hold the same feature columns"
                )
        # number of features
        first = feats[0]
        if isinstance(first, str):
            self.n_features = self._list_width(schema, first)
        else:
            if self.has_alternatives and len(features_a) != len(features_b):
                raise ValueError(
                    f"features_a has {len(features_a)} columns, features_b {len(features_b)}"
                )
            self.n_features = len(first)
        self.n_samples = int(sum(n for _, n in meta))
        if self.n_samples == 0:
            raise ValueError(f"{path}: no comparisons (0 rows)")

    def _list_width(self, schema, col: str) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = schema.field(col).type
        if pa.types.is_fixed_size_list(t):
            return int(t.list_size)
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise ValueError(f"{self.files[0]}: column {col!r} is {t}, expected a list of numbers")
        for f in self.files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1, columns=[col]):
                arr = batch.column(0)
                if arr.null_count:
                    raise ValueError(f"{f}: column {col!r} is empty (null) in row 0")
                return int(arr.value_lengths()[0].as_py())
        raise ValueError(f"{self.files[0]}: no rows to tell the length of column {col!r}")

    def __repr__(self) -> str:
        where = self.files[0].parent if len(self.files) > 1 else self.files[0]
        return (
            f"ParquetShards({str(where)!r}, files={len(self.files)}, n={self.n_samples}, "
            f"d={self.n_features}, chunk_rows={self.chunk_rows})"
        )

    def _iter_raw(self) -> Iterator[Chunk]:
        import pyarrow.parquet as pq

        start = 0
        d = self.n_features
        for f in self.files:
            pf = pq.ParquetFile(f)
            row_in_file = 0
            for batch in pf.iter_batches(batch_size=self.chunk_rows, columns=self._columns):
                where = str(f)
                mats = []
                for col in self._feature_cols:
                    if isinstance(col, str):
                        mats.append(
                            _list_to_matrix(batch.column(col), d, self.dtype, where, col, start)
                        )
                    else:
                        mats.append(_scalar_block(batch, col, self.dtype, where, start))
                y = _vector(batch, self.label, where, start)
                w = _vector(batch, self.weight, where, start) if self.weight else None
                mg = _vector(batch, self.margin, where, start) if self.margin else None
                if self.has_alternatives:
                    chunk = Chunk(y, xa=mats[0], xb=mats[1], weight=w, margin=mg)
                else:
                    chunk = Chunk(y, diff=mats[0], weight=w, margin=mg)
                chunk.start, chunk.where = start, f"{where} (file rows {row_in_file}..)"
                start += batch.num_rows
                row_in_file += batch.num_rows
                yield chunk


def _parquet_files(path) -> list[Path]:
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
    else:
        p = Path(path)
        if p.is_dir():
            files = sorted(
                q for q in p.iterdir() if q.suffix.lower() in (".parquet", ".pq") and q.is_file()
            )
            if not files:
                raise ValueError(f"{p}: no *.parquet files in the directory")
        elif p.exists():
            files = [p]
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: no such file")
    return files


# --------------------------------------------------------------------------- npy pair
class _NpyRows:
    """Row reader of a 2-D (or 1-D) C-order ``.npy`` file by positioned reads."""

    def __init__(self, path, name: str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file")
        with open(self.path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            except ValueError as exc:
                raise ValueError(f"{self.path}: not a .npy file ({exc})") from None
            self.offset = fh.tell()
        if fortran and len(shape) > 1:
            raise ValueError(f"{self.path}: Fortran-ordered array; save it C-ordered")
        if dtype.hasobject or not (
            np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)
        ):
            raise ValueError(f"{self.path}: {name} must hold numbers, got dtype {dtype}")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_items = int(np.prod(shape[1:])) if len(shape) > 1 else 1

    def read(self, fh, start: int, stop: int) -> np.ndarray:
        count = (stop - start) * self.row_items
        fh.seek(self.offset + start * self.row_items * self.dtype.itemsize)
        arr = np.fromfile(fh, dtype=self.dtype, count=count)
        if arr.size != count:
            raise ValueError(f"{self.path}: file truncated at row {start}")
        return arr.reshape((stop - start,) + self.shape[1:])


class NpyPair(StreamingSource):
    """Comparisons in ``.npy`` files: ``xa`` and ``xb`` (n, d) — or ``xb=None`` and ``xa`` the
    differences — with labels ``y`` (n,) and optional ``weight`` (n,) (paths or in-memory arrays
    for ``y``/``weight``). Rows are read in chunks by positioned reads from the files.
    """

    def __init__(
        self,
        xa,
        xb=None,
        y=None,
        weight=None,
        chunk_rows: int = 65_536,
        dtype=np.float32,
        prefetch: bool = True,
    ) -> None:
        super().__init__(chunk_rows, dtype, prefetch)
        if y is None:
            raise ValueError("NpyPair needs the labels y (a .npy path or an array)")
        self._a = _NpyRows(xa, "xa")
        self._b = _NpyRows(xb, "xb") if xb is not None else None
        if len(self._a.shape) != 2:
            raise ValueError(f"{self._a.path}: expected shape (n, d), got {self._a.shape}")
        n, d = self._a.shape
        if self._b is not None and self._b.shape != (n, d):
            raise ValueError(
                f"{self._b.path}: shape {self._b.shape}, but {self._a.path} is {(n, d)}"
            )
        self.y = self._vec(y, "y", n)
        self.weight = self._vec(weight, "weight", n) if weight is not None else None
        self.n_samples, self.n_features = int(n), int(d)
        self.has_alternatives = self._b is not None
        self.has_weight = self.weight is not None

    @staticmethod
    def _vec(v, name: str, n: int) -> np.ndarray:
        if isinstance(v, (str, os.PathLike)):
            arr = np.load(v, mmap_mode="r")
            where = str(v)
        else:
            arr, where = np.asarray(v), name
        if arr.shape != (n,):
            raise ValueError(f"{where}: {name} has shape {arr.shape}, expected ({n},)")
        return arr

    def __repr__(self) -> str:
        files = [str(self._a.path)] + ([str(self._b.path)] if self._b is not None else [])
        return f"NpyPair({files}, n={self.n_samples}, d={self.n_features})"

    def _iter_raw(self) -> Iterator[Chunk]:
        fa = open(self._a.path, "rb")
        fb = open(self._b.path, "rb") if self._b is not None else None
        try:
            for start in range(0, self.n_samples, self.chunk_rows):
                stop = min(start + self.chunk_rows, self.n_samples)
                a = self._a.read(fa, start, stop).astype(self.dtype, copy=False)
                y = np.asarray(self.y[start:stop], dtype=np.float64)
                w = None if self.weight is None else np.asarray(self.weight[start:stop], float)
                if fb is not None:
                    b = self._b.read(fb, start, stop).astype(self.dtype, copy=False)
                    chunk = Chunk(y, xa=a, xb=b, weight=w)
                else:
                    chunk = Chunk(y, diff=a, weight=w)
                chunk.start, chunk.where = start, str(self._a.path)
                if fb is not None:
                    chunk.files = {"xa": str(self._a.path), "xb": str(self._b.path)}
                yield chunk
        finally:
            fa.close()
            if fb is not None:
                fb.close()


def open_source(path, **kwargs) -> StreamingSource:
    """Recognise a streaming source on disk.

    - a directory of ``*.parquet`` files, or a single Parquet file -> :class:`ParquetShards`;
    - a directory with ``xa.npy``, ``xb.npy`` and ``y.npy`` (optionally ``weight.npy``), or with
      ``differences.npy`` and ``y.npy`` -> :class:`NpyPair`.
    ``kwargs`` go to the source (``chunk_rows``, column names, ...).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix.lower() in (".parquet", ".pq"):
            return ParquetShards(p, **kwargs)
        raise ValueError(f"{p}: not a Parquet file or a directory of shards")
    names = {q.name for q in p.iterdir()}
    if "y.npy" in names and ({"xa.npy", "xb.npy"} <= names or "differences.npy" in names):
        w = p / "weight.npy" if "weight.npy" in names else None
        if {"xa.npy", "xb.npy"} <= names:
            return NpyPair(p / "xa.npy", p / "xb.npy", p / "y.npy", weight=w, **kwargs)
        return NpyPair(p / "differences.npy", None, p / "y.npy", weight=w, **kwargs)
    if any(n.lower().endswith((".parquet", ".pq")) for n in names):
        return ParquetShards(p, **kwargs)
    raise ValueError(
        f"{p}: not a streaming source: expected *.parquet shards, or xa.npy + xb.npy + y.npy "
        "(or differences.npy + y.npy)"
    )


# --------------------------------------------------------------------------- passes
class _Passes:
    """Runs passes over a source, with one tqdm bar in comparisons per second."""

    def __init__(self, source: StreamingSource, progress: bool, desc: str) -> None:
        from tqdm.auto import tqdm

        self.source = source
        self.n_passes = 0
        self.seconds = 0.0
        self.bar = tqdm(
            desc=desc, unit="cmp", unit_scale=True, disable=not progress, dynamic_ncols=True
        )

    def chunks(self, label: str = "") -> Iterator[Chunk]:
        t0 = time.perf_counter()
        if label:
            self.bar.set_postfix_str(f"{label}, pass {self.n_passes + 1}", refresh=False)
        for c in self.source:
            yield c
            self.bar.update(len(c))
        self.n_passes += 1
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        self.bar.close()


@dataclass
class _Stats:
    n: int
    wsum: float
    n_nontie_weight: float


def _stats(passes: _Passes) -> _Stats:
    n, wsum, nontie = 0, 0.0, 0.0
    for c in passes.chunks("checking"):
        w = np.ones(len(c)) if c.weight is None else c.weight
        n += len(c)
        wsum += float(w.sum())
        nontie += float(w[c.y != 0.5].sum())
    if not wsum > 0:
        raise ValueError("all weights are zero")
    if not nontie > 0:
        raise ValueError("every comparison is a tie: there is nothing to learn")
    return _Stats(n, wsum, nontie)


def _wn(c: Chunk, st: _Stats) -> np.ndarray:
    return np.full(len(c), 1.0 / st.wsum) if c.weight is None else c.weight / st.wsum


def _bt_objective(passes, st, l2, link, use_margin, center_coef, label="BT"):
    """Chunked version of the objective of ``_linear.fit_bt_linear`` (same formulas)."""

    def fun(theta):
        f = 0.0
        g = np.zeros_like(theta)
        for c in passes.chunks(label):
            D = c.differences
            dt = D.dtype
            th = theta.astype(dt, copy=False)
            y = c.y
            wn = _wn(c, st)
            m = (D @ th).astype(np.float64)
            if use_margin and c.margin is not None:
                m = m - (2.0 * y - 1.0) * c.margin
            if link == "logit":
                nll = np.logaddexp(0.0, m) - y * m
                dm = special.expit(m) - y
            else:
                lp, lq = special.log_ndtr(m), special.log_ndtr(-m)
                nll = -(y * lp + (1.0 - y) * lq)
                logpdf = -0.5 * m * m - 0.5 * np.log(2 * np.pi)
                dm = -y * np.exp(logpdf - lp) + (1.0 - y) * np.exp(logpdf - lq)
            f += float(wn @ nll)
            g += (D.T @ (wn * dm).astype(dt)).astype(np.float64)
            if center_coef > 0:
                S = c.xa + c.xb
                r = (S @ th).astype(np.float64)
                f += center_coef * float(wn @ (r * r))
                g += 2.0 * center_coef * (S.T @ (wn * r).astype(dt)).astype(np.float64)
        f += 0.5 * l2 * float(theta @ theta)
        g += l2 * theta
        return f, g

    return fun


def _minibatch_bt(passes, st, theta, l2, epochs, batch_size, lr, seed):
    """Adam on the (logit) BT loss, mini-batches within each chunk: a warm start for L-BFGS."""
    rng = np.random.default_rng(seed)
    mom, vel = np.zeros_like(theta), np.zeros_like(theta)
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    for _ in range(int(epochs)):
        for c in passes.chunks("mini-batch warm start"):
            D = c.differences
            order = rng.permutation(len(c))
            for s in range(0, len(c), batch_size):
                idx = order[s : s + batch_size]
                Db, yb = D[idx], c.y[idx]
                wb = np.ones(len(idx)) if c.weight is None else c.weight[idx]
                m = (Db @ theta.astype(Db.dtype)).astype(np.float64)
                dm = (special.expit(m) - yb) * wb / max(wb.sum(), 1e-300)
                g = (Db.T @ dm.astype(Db.dtype)).astype(np.float64) + l2 * theta
                t += 1
                mom = b1 * mom + (1 - b1) * g
                vel = b2 * vel + (1 - b2) * g * g
                theta = theta - lr * (mom / (1 - b1**t)) / (np.sqrt(vel / (1 - b2**t)) + eps)
    return theta


def _lbfgs(fun, x0, max_iter, tol, ftol):
    return optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(max_iter), "gtol": tol, "ftol": ftol},
    )


def _fit_bt(passes, st, d, *, l2, link, use_margin, center_coef, max_iter, tol, minibatch, label):
    theta0 = np.zeros(d)
    if minibatch and minibatch.get("epochs", 0) > 0 and link == "logit":
        theta0 = _minibatch_bt(passes, st, theta0, l2, **minibatch)
    fun = _bt_objective(passes, st, l2, link, use_margin, center_coef, label)
    res = _lbfgs(fun, theta0, max_iter, tol, 1e-12)
    return res.x, {"objective": float(res.fun), "n_iter": int(res.nit), "converged": res.success}


def _margin_scale(passes, st, u, label) -> float:
    s0 = s1 = s2 = 0.0
    for c in passes.chunks(label):
        D = c.differences
        m = (D @ u.astype(D.dtype)).astype(np.float64)
        wn = _wn(c, st)
        s0 += float(wn.sum())
        s1 += float(wn @ m)
        s2 += float(wn @ (m * m))
    mean = s1 / s0
    var = max(s2 / s0 - mean * mean, 0.0)
    return float(np.sqrt(var))


def _fit_sign_stages(passes, st, theta0, lambdas, max_iter, tol):
    """Chunked version of ``_linear.fit_sign_linear``: anneal on the sphere, one pass per eval."""
    from signrm.estimators._linear import SignStageResult

    theta = np.asarray(theta0, dtype=np.float64)
    norm = np.linalg.norm(theta)
    if norm == 0 or not np.isfinite(norm):
        raise ValueError("the sign estimator's starting point is zero or not finite")
    theta = theta / norm
    stages = []
    for k, lam in enumerate(lambdas):
        label = f"sign stage {k + 1}/{len(lambdas)} (lambda {lam:.3g})"
        scale = _margin_scale(passes, st, theta, label + " scale")
        if not scale > 0:
            scale = 1.0
        c_ = 0.5 * float(lam) / scale

        def fun(v, c_=c_, label=label):
            nv = np.linalg.norm(v)
            u = v / nv
            f = 0.0
            gu = np.zeros_like(v)
            for c in passes.chunks(label):
                D = c.differences
                dt = D.dtype
                ws = _wn(c, st) * c.signs
                m = (D @ u.astype(dt)).astype(np.float64)
                th = np.tanh(c_ * m)
                f -= float(ws @ th)
                gu -= (D.T @ (ws * c_ * (1.0 - th * th)).astype(dt)).astype(np.float64)
            g = (gu - (gu @ u) * u) / nv
            return f, g

        res = _lbfgs(fun, theta, max_iter, tol, 1e-10)
        theta = res.x / np.linalg.norm(res.x)
        stages.append(SignStageResult(float(lam), scale, -float(res.fun), int(res.nit)))
    return theta, stages


class _MarginSpool:
    """The final margins, labels and normalised weights of every comparison, on disk.

    Written in one pass (24 bytes per comparison in a temporary file under ``directory``), read
    back in blocks, so the calibration's memory is one block, not n; ``directory=None`` writes
    nothing (the statistics only). Also accumulates the exact agreement, the weight of the
    non-tie comparisons and the margins' standard deviation (Chan's pairwise update, the
    population std that ``np.std`` gives in memory).
    """

    block_rows = 1 << 16

    def __init__(self, passes, st, theta, label, directory: str | None) -> None:
        self.path = None if directory is None else Path(directory) / "margins.f8"
        self.agreement = self.nontie = 0.0
        count, mean, m2 = 0, 0.0, 0.0
        sink = open(self.path, "wb") if self.path else contextlib.nullcontext()
        with sink as fh:
            for c in passes.chunks(label):
                D = c.differences
                m = (D @ theta.astype(D.dtype)).astype(np.float64)
                wn = _wn(c, st)
                s = c.signs
                self.agreement += float(wn @ (s * np.sign(m)))
                self.nontie += float(wn[s != 0].sum())
                k, mu = len(m), float(m.mean())
                delta = mu - mean
                total = count + k
                mean += delta * k / total
                m2 += float(((m - mu) ** 2).sum()) + delta * delta * count * k / total
                count = total
                if fh is not None:
                    fh.write(np.column_stack([m, c.y, wn]).tobytes())
        self.n = count
        self.sd = float(np.sqrt(m2 / count)) if count else 0.0

    def blocks(self):
        with open(self.path, "rb") as fh:
            for _ in range(0, self.n, self.block_rows):
                arr = np.fromfile(fh, dtype=np.float64, count=3 * self.block_rows).reshape(-1, 3)
                yield arr[:, 0], arr[:, 1], arr[:, 2]


def _exact_agreement(passes, st, theta, label) -> float:
    total = 0.0
    for c in passes.chunks(label):
        D = c.differences
        m = D @ theta.astype(D.dtype)
        total += float(_wn(c, st) @ (c.signs * np.sign(m)))
    return total


def fit_streaming(
    estimator,
    source: StreamingSource,
    progress: bool | None = None,
    minibatch_epochs: int = 0,
    minibatch_size: int = 1024,
    minibatch_lr: float = 0.01,
):
    """Fit a linear :class:`BradleyTerry` or :class:`SignEstimator` on a streaming source.

    Same objective, schedule and solver as the in-memory fit (see the module docstring); memory
    is about three chunks of features (the sign estimator's calibration margins go to a
    temporary file, 24 bytes per comparison on disk). ``source`` may also be a path, opened with
    :func:`open_source`. ``minibatch_epochs`` > 0 runs that many Adam epochs (mini-batches of
    ``minibatch_size`` within chunks, step ``minibatch_lr``) on the BT loss as the L-BFGS
    starting point. Sets the estimator's usual attributes plus ``n_passes_`` (full passes over
    the data) and ``fit_seconds_``; returns the estimator.
    """
    from signrm.estimators._linear import SignStageResult  # noqa: F401 (import check)
    from signrm.estimators.bradley_terry import BradleyTerry
    from signrm.estimators.sign import SignEstimator, temperature_from_chunks

    if not is_streaming_source(source):
        raise TypeError(f"expected a signrm.streaming source, got {type(source).__name__}")
    if isinstance(source, (str, os.PathLike)):
        source = open_source(source)
    kind = type(estimator).__name__
    if not isinstance(estimator, (BradleyTerry, SignEstimator)):
        raise ValueError(
            f"streaming fits support BradleyTerry and SignEstimator (linear heads), not {kind}; "
            "load the data with source.to_data() if they fit in memory"
        )
    if estimator.head != "linear":
        raise ValueError(
            f"{kind}(head={estimator.head!r}): streaming fits are for linear heads; train torch "
            "heads on several processes with `python -m signrm.train` (see docs/scale.md)"
        )
    progress = bool(estimator.verbose) if progress is None else progress
    t0 = time.perf_counter()
    passes = _Passes(source, progress, f"{kind} (streaming)")
    d = source.n_features
    mb = {
        "epochs": int(minibatch_epochs),
        "batch_size": int(minibatch_size),
        "lr": float(minibatch_lr),
        "seed": estimator.random_state,
    }
    try:
        st = _stats(passes)
        if isinstance(estimator, BradleyTerry):
            estimator._validate_params()
            if estimator.center_rewards_coef > 0 and not source.has_alternatives:
                raise ValueError("reward centring needs each alternative's features (xa, xb)")
            theta, info = _fit_bt(
                passes,
                st,
                d,
                l2=estimator.l2,
                link=estimator.link,
                use_margin=estimator.use_margin,
                center_coef=estimator.center_rewards_coef,
                max_iter=estimator.max_iter,
                tol=estimator.tol,
                minibatch=mb,
                label="BT",
            )
            estimator.coef_ = theta
            estimator.n_iter_ = info["n_iter"]
            estimator.objective_ = info["objective"]
        else:
            lambdas = estimator._schedule()
            if getattr(estimator, "select_stage", "last") != "last":
                raise ValueError(
                    "SignEstimator(select_stage='cv') is not available for streaming sources "
                    "(it refits on folds); use select_stage='last', or pick the annealing depth "
                    "on an in-memory subsample and pass lambdas=... up to it"
                )
            theta_bt, _ = _fit_bt(
                passes,
                st,
                d,
                l2=estimator.bt_l2,
                link="logit",
                use_margin=False,
                center_coef=0.0,
                # The in-memory fit's settings (SignEstimator._fit_linear): a starting point only.
                max_iter=500,
                tol=1e-4,
                minibatch=mb,
                label="BT warm start",
            )
            if not np.any(theta_bt):
                theta_bt = np.zeros(d)
                for c in passes.chunks("mean signed difference"):
                    D = c.differences
                    theta_bt += (D.T @ (_wn(c, st) * c.signs).astype(D.dtype)).astype(np.float64)
            estimator.bt_coef_ = theta_bt
            rng = np.random.default_rng(estimator.random_state)
            starts = [theta_bt / np.linalg.norm(theta_bt)]
            for _ in range(int(estimator.n_restarts) - 1):
                z = rng.standard_normal(d)
                starts.append(starts[0] + z / np.linalg.norm(z))
            best = None
            for start in starts:
                theta, stages = _fit_sign_stages(
                    passes, st, start, lambdas, estimator.max_iter, estimator.tol
                )
                agree = (
                    _exact_agreement(passes, st, theta, "exact agreement")
                    if len(starts) > 1
                    else None
                )
                if best is None or agree > best[0] + 1e-12:
                    best = (agree, theta, stages)
            _, theta, stages = best
            estimator.coef_ = theta
            estimator.stages_ = [{k: v for k, v in vars(s).items() if k != "theta"} for s in stages]
            estimator.selected_lambda_ = float(lambdas[-1])
            estimator.validation_agreement_ = None
            estimator.objective_ = stages[-1].objective
            estimator.margin_scale_ = stages[-1].scale
            spool_dir = (
                tempfile.TemporaryDirectory(prefix="signrm-calibration-")
                if estimator.calibrate
                else contextlib.nullcontext()  # agreement only: nothing to read back
            )
            with spool_dir as tmp:
                spool = _MarginSpool(passes, st, theta, "calibration", tmp)
                estimator.agreement_ = spool.agreement
                estimator.zero_one_loss_ = float(
                    (spool.nontie - spool.agreement) / (2 * spool.nontie)
                )
                estimator.calibration_scale_ = (
                    temperature_from_chunks(spool.blocks, spool.sd or 1.0)
                    if estimator.calibrate
                    else 1.0 / estimator.margin_scale_
                )
    finally:
        passes.close()
    estimator.head_module_ = None
    estimator.n_features_in_ = d
    estimator.n_passes_ = passes.n_passes
    estimator.fit_seconds_ = time.perf_counter() - t0
    return estimator
