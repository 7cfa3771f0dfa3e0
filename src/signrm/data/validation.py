"""Validation shared by every way comparisons enter signrm.

One place for what a valid comparison is: labels in {0, 0.5, 1}; finite, real features whose
differences are finite; non-negative weights; ids without gaps. Used by
:class:`~signrm.data.PreferenceData`, the streaming sources (:mod:`signrm.data.sources`) and the
text reader. Errors are :class:`~signrm.errors.UserError` (a ``ValueError``) naming the column and
the first offending rows.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import UserError

__all__ = [
    "VALID_LABELS",
    "MAX_ROWS_SHOWN",
    "PARQUET_SUFFIXES",
    "IgnoredColumnsWarning",
    "first_rows",
    "is_parquet_path",
    "find_feature_columns",
    "label_problem",
    "check_real_dtype",
    "numeric_array",
    "feature_array",
    "as_features",
    "check_differences_finite",
    "as_labels",
    "as_ids",
    "as_item_ids",
    "as_weights",
    "column_numbers",
    "ignored_columns_note",
    "warn_ignored_columns",
]

#: The labels of a comparison: 1 = a preferred, 0 = b preferred, 0.5 = tie.
VALID_LABELS = (0.0, 0.5, 1.0)
MAX_ROWS_SHOWN = 5
#: Suffixes of Parquet files (shards in a directory, or one file).
PARQUET_SUFFIXES = (".parquet", ".pq")


class IgnoredColumnsWarning(UserWarning):
    """A table holds columns that signrm does not use (often a misspelled optional column such as
    ``weights`` for ``weight``). ``columns`` lists them; the message names them and suggests the
    known name when one is close."""

    def __init__(self, message: str, columns: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.columns = list(columns)


def first_rows(mask: np.ndarray, offset: int = 0) -> str:
    """The first offending row numbers (0-based, plus ``offset``) of a boolean mask, as text."""
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i) + offset) for i in idx[:MAX_ROWS_SHOWN])
    more = f" and {len(idx) - MAX_ROWS_SHOWN} more" if len(idx) > MAX_ROWS_SHOWN else ""
    return f"row(s) {shown}{more}"


def is_parquet_path(path: str | os.PathLike) -> bool:
    """True when the file name ends in a Parquet suffix (``.parquet``, ``.pq``)."""
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def find_feature_columns(
    cols: Sequence[str], list_columns: bool = False
) -> tuple[list[str] | str | None, list[str] | str | None, list[str] | str | None] | None:
    """``(features_a, features_b, differences)`` found by name, or None when there are none.

    With ``list_columns`` the vector columns ``xa``/``xb``, then ``differences``, come first; then
    scalar columns ``a_*`` with ``b_*`` (the same suffixes, in the same order), then ``d_*``.
    """
    if list_columns and "xa" in cols and "xb" in cols:
        return "xa", "xb", None
    if list_columns and "differences" in cols:
        return None, None, "differences"
    fa = [c for c in cols if c.startswith("a_")]
    fb = [c for c in cols if c.startswith("b_")]
    if fa and [c[2:] for c in fa] == [c[2:] for c in fb]:
        return fa, fb, None
    fd = [c for c in cols if c.startswith("d_")]
    if fd:
        return None, None, fd
    return None


def label_problem(y: np.ndarray, name: str = "y", offset: int = 0) -> str | None:
    """Why float labels ``y`` are invalid (``None`` when all are in {0, 0.5, 1})."""
    bad = ~np.isin(y, VALID_LABELS)
    if not bad.any():
        return None
    first = y[np.flatnonzero(bad)[0]]
    return (
        f"{name} must hold 0, 0.5 or 1; {first_rows(bad, offset)} hold e.g. {first!r} "
        "(1 = a preferred, 0 = b preferred, 0.5 = tie)"
    )


def check_real_dtype(dtype, name: str, what: str = "expected numbers") -> None:
    """Refuse a dtype that is not real numbers or booleans: text, objects and complex numbers
    (casting complex would silently drop the imaginary part). ``what`` starts the message."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise UserError(
            f"{name}: complex numbers are not supported (dtype {dtype}); pass real values, e.g. "
            "the real and imaginary parts as separate features"
        )
    if dtype.hasobject or not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise UserError(f"{name}: {what}, got dtype {dtype}")


def numeric_array(values: Any, name: str, what: str = "expected numbers") -> np.ndarray:
    """``values`` as a numpy array of real numbers or booleans (see :func:`check_real_dtype`)."""
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and the like
        raise UserError(f"{name}: cannot be read as a numeric array ({exc})") from None
    check_real_dtype(arr.dtype, name, what)
    return arr


def feature_array(values: Any, name: str) -> tuple[np.ndarray, float]:
    """Features ``(n, d)`` as float32 (kept) or float64, finite, and their largest magnitude
    ``max |x|`` (for :func:`check_differences_finite`); a 1-D array is one feature."""
    arr = numeric_array(values, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise UserError(f"{name}: expected shape (n, d), got {arr.shape}")
    if arr.shape[1] == 0:
        raise UserError(
            f"{name}: has no feature columns (shape {arr.shape}); a reward model needs d >= 1"
        )
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    # min and max are NaN/inf exactly when some entry is: two reductions, no mask in memory
    largest = max(float(arr.max()), -float(arr.min())) if arr.size else 0.0
    if not np.isfinite(largest):
        bad = ~np.isfinite(arr)
        rows_bad = bad.any(axis=1)
        cols = np.flatnonzero(bad.any(axis=0))[:MAX_ROWS_SHOWN].tolist()
        raise UserError(f"{name}: NaN or inf in {first_rows(rows_bad)} (feature column(s) {cols})")
    return arr, largest


def as_features(values: Any, name: str) -> np.ndarray:
    """Features ``(n, d)`` as float32 (kept) or float64, finite; a 1-D array is one feature."""
    return feature_array(values, name)[0]


def check_differences_finite(
    xa: np.ndarray,
    xb: np.ndarray,
    where: str = "xa, xb",
    offset: int = 0,
    largest: float | None = None,
) -> None:
    """Raise when ``xa - xb`` (or ``xa + xb``) overflows to inf for finite ``xa``, ``xb``.

    Only features above half the dtype's largest value can overflow, so the check costs a min and
    a max per array (nothing when ``largest``, the known ``max |x|`` of both, is given) unless
    such values exist.
    """
    if largest is None:
        largest = max(max(float(x.max()), -float(x.min())) if x.size else 0.0 for x in (xa, xb))
    if largest <= np.finfo(np.result_type(xa.dtype, xb.dtype)).max / 2:
        return
    with np.errstate(over="ignore"):
        bad = ~(np.isfinite(xa - xb) & np.isfinite(xa + xb)).all(axis=1)
    if bad.any():
        raise UserError(
            f"{where}: the difference (or sum) of the two alternatives' features overflows to "
            f"inf in {first_rows(bad, offset)}; features near the float limit "
            f"({largest:.3g}) cannot be compared: rescale them"
        )


def as_labels(values: Any, n: int) -> np.ndarray:
    """Labels ``(n,)`` as float64 in {0, 0.5, 1}."""
    arr = numeric_array(values, "y", "labels must be numbers in {0, 0.5, 1} (1 = a preferred)")
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.size == n else arr
    if arr.ndim != 1:
        raise UserError(f"y: expected shape (n,), got {arr.shape}")
    if arr.shape[0] != n:
        raise UserError(f"y: has {arr.shape[0]} labels but the features have {n} rows")
    arr = arr.astype(np.float64)
    problem = label_problem(arr, "y: labels")
    if problem:
        raise UserError(problem)
    return arr


def as_ids(values: Any, n: int, name: str) -> np.ndarray | None:
    """Group ids ``(n,)`` (any dtype) without missing values, or None."""
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UserError(f"{name}: expected shape (n,), got {arr.shape}")
    if arr.shape[0] != n:
        raise UserError(f"{name}: has {arr.shape[0]} ids but the data have {n} rows")
    if arr.dtype == object:
        missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr])
    elif np.issubdtype(arr.dtype, np.floating):
        missing = np.isnan(arr)
    else:
        missing = np.zeros(n, dtype=bool)
    if missing.any():
        raise UserError(f"{name}: missing id in {first_rows(missing)}")
    return arr


def as_item_ids(values: Any, name: str) -> np.ndarray:
    """Integer item ids ``(n,)`` as int64: floats must be whole numbers, NaN is a missing id."""
    arr = numeric_array(values, name, "item ids must be integers")
    if arr.ndim != 1:
        raise UserError(f"{name}: expected shape (n,), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise UserError(f"{name}: item ids must be integers, got dtype {arr.dtype}")
    missing = np.isnan(arr)
    if missing.any():
        raise UserError(f"{name}: missing item id in {first_rows(missing)}")
    bad = ~np.isfinite(arr) | (arr != np.round(arr))
    if bad.any():
        raise UserError(
            f"{name}: item ids must be integers; {first_rows(bad)} hold e.g. "
            f"{float(arr[np.flatnonzero(bad)[0]])!r}"
        )
    return arr.astype(np.int64)


def as_weights(values: Any, n: int, name: str, nonnegative: bool = True) -> np.ndarray | None:
    """Per-comparison weights (``nonnegative``, not all zero) or margins ``(n,)`` as float64."""
    if values is None:
        return None
    arr = numeric_array(values, name).astype(np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise UserError(f"{name}: expected shape ({n},), got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise UserError(f"{name}: NaN or inf in {first_rows(bad)}")
    if nonnegative:
        neg = arr < 0
        if neg.any():
            raise UserError(f"{name}: negative weight in {first_rows(neg)}")
        if arr.sum() <= 0:
            raise UserError(f"{name}: all weights are zero")
    return arr


def column_numbers(df, col: str, role: str) -> np.ndarray:
    """Column ``col`` of a DataFrame as a numeric array (NaN kept for the caller to report).

    A column that is not numeric raises naming the role, the column and its first rows that
    cannot be read as numbers; a column of numbers written as text is converted.
    """
    import pandas as pd

    values = df[col]
    if pd.api.types.is_complex_dtype(values):
        raise UserError(f"{role}: column {col!r} holds complex numbers; pass real numbers")
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        if pd.api.types.is_extension_array_dtype(values):  # nullable Int64/Float64/boolean
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        return values.to_numpy()
    coerced = pd.to_numeric(values, errors="coerce")
    bad = (coerced.isna() & values.notna()).to_numpy()
    if bad.any() or not pd.api.types.is_numeric_dtype(coerced):
        raise UserError(f"{role}: column {col!r} is not numeric ({first_rows(bad)})")
    return coerced.to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------------------- columns
def ignored_columns_note(
    ignored: Sequence[str], known: Iterable[str], what: str = "column(s)"
) -> str:
    """``ignored column(s) [...]``, with ``(did you mean ...?)`` for names close to a known one
    (case-insensitive: ``Annotator_ID`` -> ``annotator_id``, ``weights`` -> ``weight``)."""
    known = list(known)
    lower = {k.lower(): k for k in known}
    hints = []
    for c in ignored:
        match = lower.get(str(c).lower()) or next(
            iter(difflib.get_close_matches(str(c).lower(), list(lower), n=1, cutoff=0.8)), None
        )
        if match is not None and lower.get(match, match) != str(c):  # a known name left unused
            hints.append(f"{lower.get(match, match)!r} for {c!r}")
    note = f"ignored {what} {list(ignored)}"
    return note + (f" (did you mean {', '.join(hints)}?)" if hints else "")


def warn_ignored_columns(
    ignored: Sequence[str], known: Iterable[str], where: str, what: str = "column(s)"
) -> str | None:
    """Warn (:class:`IgnoredColumnsWarning`) that ``where`` has unused columns (or files:
    ``what``); return the note, or None when nothing is ignored."""
    if not ignored:
        return None
    note = ignored_columns_note(ignored, known, what)
    warnings.warn(IgnoredColumnsWarning(f"{where}: {note}", ignored), stacklevel=3)
    return note
