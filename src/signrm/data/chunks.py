"""Chunks of comparisons and the base class of their sources (see :mod:`signrm.data.sources`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from signrm.data.preference import PreferenceData
from signrm.data.validation import check_differences_finite, first_rows, label_problem
from signrm.errors import UserError

__all__ = ["Chunk", "StreamingSource"]


@dataclass
class Chunk:
    """A block of ``m`` comparisons: features ``(m, d)`` (float32 by default), labels ``(m,)``.

    ``xa``/``xb`` are the alternatives' features (``None`` for difference-only sources), ``diff``
    the differences ``xa - xb`` when known (given by a difference-only source, or already computed,
    as :class:`~signrm.data.sources.MemorySource` does), ``weight``/``margin`` ``(m,)`` float64 or None, ``user``
    ``(m,)`` ids or None, ``start`` the global row of the first comparison and ``where`` the file
    it came from.
    """

    y: np.ndarray
    xa: np.ndarray | None = None
    xb: np.ndarray | None = None
    diff: np.ndarray | None = None
    weight: np.ndarray | None = None
    margin: np.ndarray | None = None
    user: np.ndarray | None = None
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
    implement ``_iter_raw``. Chunks are validated (finite features and differences, labels in
    {0, 0.5, 1}, non-negative weights) until one full pass has succeeded; a bad value raises
    :class:`~signrm.errors.UserError` naming the file, the column and the row.
    """

    n_samples: int
    n_features: int
    has_alternatives: bool
    chunk_rows: int
    has_weight: bool = False
    has_margin: bool = False
    has_user: bool = False

    def __init__(self, chunk_rows: int, dtype, prefetch: bool) -> None:
        if int(chunk_rows) < 1:
            raise UserError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.chunk_rows = int(chunk_rows)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise UserError(f"dtype must be float32 or float64, got {self.dtype}")
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
            raise UserError(f"{self!r}: read {seen} rows, the metadata announced {self.n_samples}")
        self._validated = True

    def to_data(self) -> PreferenceData:
        """Load everything into one in-memory :class:`signrm.PreferenceData` (small data only)."""
        chunks = list(self)
        cat = lambda name: (  # noqa: E731
            None
            if getattr(chunks[0], name) is None
            else np.concatenate([getattr(c, name) for c in chunks])
        )
        y = cat("y")
        opt = {"weight": cat("weight"), "user": cat("user")}
        if self.has_alternatives:
            return PreferenceData.from_arrays(cat("xa"), cat("xb"), y, margin=cat("margin"), **opt)
        data = PreferenceData.from_differences(cat("diff"), y, **opt)
        if chunks[0].margin is not None:
            data.margin = cat("margin")
        return data


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


def _validate_chunk(c: Chunk) -> None:
    where = c.where
    row0 = c.start
    for name, x in (("xa", c.xa), ("xb", c.xb), ("differences", c.diff)):
        if x is None:
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            raise UserError(
                f"{c.where_of(name)}: NaN or inf in the {name} features, "
                f"{first_rows(bad.any(1), row0)} (0-based rows of the whole source)"
            )
    if c.xa is not None and c.xb is not None:
        check_differences_finite(c.xa, c.xb, where, row0)
    problem = label_problem(c.y, f"{where}: label", row0)
    if problem:
        raise UserError(problem)
    if c.weight is not None:
        bad = ~np.isfinite(c.weight) | (c.weight < 0)
        if bad.any():
            raise UserError(f"{where}: weight negative, NaN or inf in {first_rows(bad, row0)}")
    if c.margin is not None:
        bad = ~np.isfinite(c.margin)
        if bad.any():
            raise UserError(f"{where}: margin NaN or inf in {first_rows(bad, row0)}")
