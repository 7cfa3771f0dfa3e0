"""Comparisons in Parquet files, read batch by batch with pyarrow (:class:`ParquetShards`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from signrm.data.chunks import Chunk, StreamingSource
from signrm.data.validation import (
    find_feature_columns,
    first_rows,
    is_parquet_path,
    warn_ignored_columns,
)
from signrm.errors import UserError

__all__ = ["ParquetShards"]


def _list_to_matrix(arr, d: int, dtype, where: str, col: str, row0: int) -> np.ndarray:
    import pyarrow as pa

    if arr.null_count:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        raise UserError(f"{where}: column {col!r} is empty (null) in {first_rows(mask, row0)}")
    if pa.types.is_fixed_size_list(arr.type):
        if arr.type.list_size != d:
            raise UserError(
                f"{where}: column {col!r} holds vectors of length {arr.type.list_size}, "
                f"expected {d}"
            )
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.asarray(arr.value_lengths().to_numpy(zero_copy_only=False))
        bad = lengths != d
        if bad.any():
            raise UserError(
                f"{where}: column {col!r} has vectors of length "
                f"{int(lengths[np.flatnonzero(bad)[0]])} in {first_rows(bad, row0)}, expected {d}"
            )
    else:
        raise UserError(f"{where}: column {col!r} is {arr.type}, expected a list of numbers")
    values = arr.flatten()
    if values.null_count:
        mask = np.asarray(values.is_null().to_numpy(zero_copy_only=False)).reshape(-1, d).any(1)
        raise UserError(f"{where}: column {col!r} has null entries in {first_rows(mask, row0)}")
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise UserError(f"{where}: column {col!r} holds {values.type}, expected numbers")
    return (
        np.asarray(values.to_numpy(zero_copy_only=False)).reshape(-1, d).astype(dtype, copy=False)
    )


def _scalar_block(batch, names: Sequence[str], dtype, where: str, row0: int) -> np.ndarray:
    import pyarrow as pa

    out = np.empty((batch.num_rows, len(names)), dtype=dtype)
    for j, nm in enumerate(names):
        arr = batch.column(nm)
        if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
            raise UserError(f"{where}: column {nm!r} is {arr.type}, expected numbers")
        if arr.null_count:
            mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
            raise UserError(f"{where}: column {nm!r} is empty (null) in {first_rows(mask, row0)}")
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
        raise UserError(f"{where}: column {name!r} is {arr.type}, expected numbers")
    if arr.null_count:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        raise UserError(f"{where}: column {name!r} is empty (null) in {first_rows(mask, row0)}")
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _ids(batch, name: str, where: str, row0: int) -> np.ndarray:
    """Column ``name`` (ids of any type, no nulls) as a numpy array."""
    arr = batch.column(name)
    if arr.null_count:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        raise UserError(f"{where}: column {name!r} is empty (null) in {first_rows(mask, row0)}")
    return np.asarray(arr.to_numpy(zero_copy_only=False))


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
    weight, margin, user : optional columns; default to ``weight``/``margin``/``user`` when
        present (``user`` holds annotator ids of any type)
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
        user: str | None = None,
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
                raise UserError(f"{f}: cannot be read as Parquet ({exc})") from None
            meta.append((pf.schema_arrow, pf.metadata.num_rows))
        schema = meta[0][0]
        cols = list(schema.names)
        if (features_a is None) != (features_b is None):
            raise UserError("features_a and features_b go together")
        explicit_columns = features_a is not None or differences is not None
        if features_a is None and differences is None:
            found = find_feature_columns(cols, list_columns=True)
            if found is not None:
                features_a, features_b, differences = found
            else:
                raise UserError(
                    f"{self.files[0]}: no feature columns: pass features_a/features_b or "
                    "differences, or use list columns xa/xb (or differences) or scalar columns "
                    f"a_*/b_* or d_*; the file has {cols[:12]}"
                )
        self.features_a, self.features_b, self.differences = features_a, features_b, differences
        self.has_alternatives = features_a is not None
        self.label = label
        self.weight = weight if weight is not None else ("weight" if "weight" in cols else None)
        self.margin = margin if margin is not None else ("margin" if "margin" in cols else None)
        self.user = user if user is not None else ("user" if "user" in cols else None)
        self.has_weight, self.has_margin = self.weight is not None, self.margin is not None
        self.has_user = self.user is not None
        feats = [features_a, features_b] if self.has_alternatives else [differences]
        self._feature_cols = feats
        needed: list[str] = [label]
        for f in feats:
            needed += [f] if isinstance(f, str) else list(f)
        needed += [c for c in (self.weight, self.margin, self.user) if c is not None]
        self._columns = needed
        self.ignored_columns = [c for c in cols if c not in needed]
        warn_ignored_columns(
            self.ignored_columns, ("label", "weight", "margin", "user"), str(self.files[0])
        )
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
                raise UserError(
                    f"{f}: missing column(s) {missing[:5]}; the file has {list(sch.names)[:12]}"
                )
            extra = [
                c
                for c in sch.names
                if c not in needed and any(c.startswith(p) for p in auto_scalar)
            ]
            if extra:
                raise UserError(
                    f"{f}: feature column(s) {extra[:5]} are not in {self.files[0].name}; "
                    "all shards must hold the same feature columns"
                )
        # number of features
        first = feats[0]
        if isinstance(first, str):
            self.n_features = self._list_width(schema, first)
        else:
            if self.has_alternatives and len(features_a) != len(features_b):
                raise UserError(
                    f"features_a has {len(features_a)} columns, features_b {len(features_b)}"
                )
            self.n_features = len(first)
        self.n_samples = int(sum(n for _, n in meta))
        if self.n_samples == 0:
            raise UserError(f"{path}: no comparisons (0 rows)")

    def _list_width(self, schema, col: str) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = schema.field(col).type
        if pa.types.is_fixed_size_list(t):
            return int(t.list_size)
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise UserError(f"{self.files[0]}: column {col!r} is {t}, expected a list of numbers")
        for f in self.files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1, columns=[col]):
                arr = batch.column(0)
                if arr.null_count:
                    raise UserError(f"{f}: column {col!r} is empty (null) in row 0")
                return int(arr.value_lengths()[0].as_py())
        raise UserError(f"{self.files[0]}: no rows to tell the length of column {col!r}")

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
                u = _ids(batch, self.user, where, start) if self.user else None
                if self.has_alternatives:
                    chunk = Chunk(y, xa=mats[0], xb=mats[1], weight=w, margin=mg, user=u)
                else:
                    chunk = Chunk(y, diff=mats[0], weight=w, margin=mg, user=u)
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
            files = sorted(q for q in p.iterdir() if is_parquet_path(q) and q.is_file())
            if not files:
                raise UserError(f"{p}: no *.parquet files in the directory")
        elif p.exists():
            files = [p]
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: no such file")
    return files
