"""Comparisons in ``.npy`` files, read by positioned reads (:class:`NpyPair`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from signrm.data.chunks import Chunk, StreamingSource
from signrm.data.validation import check_real_dtype
from signrm.errors import UserError

__all__ = ["NpyPair"]


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
                raise UserError(f"{self.path}: not a .npy file ({exc})") from None
            self.offset = fh.tell()
        if fortran and len(shape) > 1:
            raise UserError(f"{self.path}: Fortran-ordered array; save it C-ordered")
        check_real_dtype(dtype, str(self.path), f"{name} must hold numbers")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_items = int(np.prod(shape[1:])) if len(shape) > 1 else 1

    def read(self, fh, start: int, stop: int) -> np.ndarray:
        count = (stop - start) * self.row_items
        fh.seek(self.offset + start * self.row_items * self.dtype.itemsize)
        arr = np.fromfile(fh, dtype=self.dtype, count=count)
        if arr.size != count:
            raise UserError(f"{self.path}: file truncated at row {start}")
        return arr.reshape((stop - start,) + self.shape[1:])


class NpyPair(StreamingSource):
    """Comparisons in ``.npy`` files: ``xa`` and ``xb`` (n, d) — or ``xb=None`` and ``xa`` the
    differences — with labels ``y`` (n,) and optional ``weight`` (n,) and ``user`` (n,) ids (paths
    or in-memory arrays for ``y``/``weight``/``user``). Rows are read in chunks by positioned reads
    from the files.
    """

    def __init__(
        self,
        xa,
        xb=None,
        y=None,
        weight=None,
        user=None,
        chunk_rows: int = 65_536,
        dtype=np.float32,
        prefetch: bool = True,
    ) -> None:
        super().__init__(chunk_rows, dtype, prefetch)
        if y is None:
            raise UserError("NpyPair needs the labels y (a .npy path or an array)")
        self._a = _NpyRows(xa, "xa")
        self._b = _NpyRows(xb, "xb") if xb is not None else None
        if len(self._a.shape) != 2:
            raise UserError(f"{self._a.path}: expected shape (n, d), got {self._a.shape}")
        n, d = self._a.shape
        if self._b is not None and self._b.shape != (n, d):
            raise UserError(
                f"{self._b.path}: shape {self._b.shape}, but {self._a.path} is {(n, d)}"
            )
        self.y = self._vec(y, "y", n)
        self.weight = self._vec(weight, "weight", n) if weight is not None else None
        self.user = self._vec(user, "user", n, numeric=False) if user is not None else None
        self.n_samples, self.n_features = int(n), int(d)
        self.has_alternatives = self._b is not None
        self.has_weight = self.weight is not None
        self.has_user = self.user is not None

    @staticmethod
    def _vec(v, name: str, n: int, numeric: bool = True) -> np.ndarray:
        if isinstance(v, (str, os.PathLike)):
            try:
                arr = np.load(v, mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                raise UserError(f"{v}: cannot be read as a .npy array ({exc})") from None
            where = str(v)
        else:
            arr, where = np.asarray(v), name
        if numeric:
            check_real_dtype(arr.dtype, where, f"{name} must hold numbers")
        if arr.shape != (n,):
            raise UserError(f"{where}: {name} has shape {arr.shape}, expected ({n},)")
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
                u = None if self.user is None else np.asarray(self.user[start:stop])
                if fb is not None:
                    b = self._b.read(fb, start, stop).astype(self.dtype, copy=False)
                    chunk = Chunk(y, xa=a, xb=b, weight=w, user=u)
                else:
                    chunk = Chunk(y, diff=a, weight=w, user=u)
                chunk.start, chunk.where = start, str(self._a.path)
                if fb is not None:
                    chunk.files = {"xa": str(self._a.path), "xb": str(self._b.path)}
                yield chunk
        finally:
            fa.close()
            if fb is not None:
                fb.close()
