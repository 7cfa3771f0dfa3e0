"""``PreferenceData``: one validated container for pairwise comparisons.

A comparison ``i`` shows alternatives ``(a_i, b_i)`` to a user, who answers ``y_i = 1`` when ``a_i``
is preferred, ``0`` when ``b_i`` is, and ``0.5`` for a tie. Features are ``(n, d)`` arrays of
``phi(a_i)`` and ``phi(b_i)``, or only their difference ``phi(a_i) - phi(b_i)`` (conjoint data).

Every constructor validates its input up front and raises ``ValueError`` naming the problem, the
column and the first offending rows. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import option_hint

__all__ = ["PreferenceData", "atomic_write", "FORMATS"]

#: File formats of preference tables, in the order messages list them.
FORMATS = ("jsonl", "csv", "parquet")

_VALID_LABELS = (0.0, 0.5, 1.0)
_MAX_ROWS_SHOWN = 5


def _rows(mask: np.ndarray) -> str:
    """First offending row numbers (0-based) of a boolean mask, as text."""
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in idx[:_MAX_ROWS_SHOWN])
    more = f" and {len(idx) - _MAX_ROWS_SHOWN} more" if len(idx) > _MAX_ROWS_SHOWN else ""
    return f"row(s) {shown}{more}"


def _as_features(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected shape (n, d), got {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(
            f"{name}: has no feature columns (shape {arr.shape}); a reward model needs d >= 1"
        )
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows_bad = bad.any(axis=1)
        cols = np.flatnonzero(bad.any(axis=0))[:_MAX_ROWS_SHOWN].tolist()
        raise ValueError(f"{name}: NaN or inf in {_rows(rows_bad)} (feature column(s) {cols})")
    return arr


def _as_labels(values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.size == n else arr
    if arr.ndim != 1:
        raise ValueError(f"y: expected shape (n,), got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"y: has {arr.shape[0]} labels but the features have {n} rows")
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(
            f"y: labels must be numbers in {{0, 0.5, 1}} (1 = a preferred), got dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64)
    bad = ~np.isin(arr, _VALID_LABELS)
    if bad.any():
        first = arr[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"y: labels must be 0, 0.5 (tie) or 1 (a preferred); {_rows(bad)} hold e.g. {first!r}"
        )
    return arr


def _as_ids(values: Any, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected shape (n,), got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} ids but the data have {n} rows")
    if arr.dtype == object:
        missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr])
    elif np.issubdtype(arr.dtype, np.floating):
        missing = np.isnan(arr)
    else:
        missing = np.zeros(n, dtype=bool)
    if missing.any():
        raise ValueError(f"{name}: missing id in {_rows(missing)}")
    return arr


def _as_item_ids(values: Any, name: str) -> np.ndarray:
    """Integer item ids (n,) as int64: floats must be whole numbers, NaN is a missing id."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected shape (n,), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: item ids must be integers, got dtype {arr.dtype}")
    missing = np.isnan(arr)
    if missing.any():
        raise ValueError(f"{name}: missing item id in {_rows(missing)}")
    bad = ~np.isfinite(arr) | (arr != np.round(arr))
    if bad.any():
        raise ValueError(
            f"{name}: item ids must be integers; {_rows(bad)} hold e.g. "
            f"{float(arr[np.flatnonzero(bad)[0]])!r}"
        )
    return arr.astype(np.int64)


def _column_numbers(df, col: str, role: str) -> np.ndarray:
    """Column ``col`` of a DataFrame as a numeric array (NaN kept for the caller to report).

    A column that is not numeric raises naming the role, the column and its first rows that
    cannot be read as numbers; a column of numbers written as text is converted.
    """
    import pandas as pd

    values = df[col]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        if pd.api.types.is_extension_array_dtype(values):  # nullable Int64/Float64/boolean
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        return values.to_numpy()
    coerced = pd.to_numeric(values, errors="coerce")
    bad = (coerced.isna() & values.notna()).to_numpy()
    if bad.any() or not pd.api.types.is_numeric_dtype(coerced):
        raise ValueError(f"{role}: column {col!r} is not numeric ({_rows(bad)})")
    return coerced.to_numpy(dtype=np.float64)


def _as_weights(values: Any, n: int, name: str, nonnegative: bool = True) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name}: NaN or inf in {_rows(bad)}")
    if nonnegative:
        neg = arr < 0
        if neg.any():
            raise ValueError(f"{name}: negative weight in {_rows(neg)}")
        if arr.sum() <= 0:
            raise ValueError(f"{name}: all weights are zero")
    return arr


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


class PreferenceData:
    """Validated pairwise comparisons. Build with a ``from_*`` constructor or ``read``.

    Attributes
    ----------
    xa, xb : (n, d) float arrays or None
        Features of alternatives a and b (None when built from differences).
    differences : (n, d) float array
        ``xa - xb`` (computed once, on first use) or the given differences.
    y : (n,) float64 in {0, 0.5, 1}
        1 = a preferred, 0 = b preferred, 0.5 = tie.
    user, prompt : (n,) arrays of ids or None
    weight : (n,) float64 or None
        Non-negative per-comparison weights.
    margin : (n,) float64 or None
        Per-comparison margin (TRL convention; used by BradleyTerry).
    item_a, item_b : (n,) int64 or None
        Row indices of a and b into an item table (``from_items`` and the simulator).
    """

    def __init__(
        self,
        *,
        y: np.ndarray,
        xa: np.ndarray | None = None,
        xb: np.ndarray | None = None,
        differences: np.ndarray | None = None,
        user: np.ndarray | None = None,
        prompt: np.ndarray | None = None,
        weight: np.ndarray | None = None,
        margin: np.ndarray | None = None,
        item_a: np.ndarray | None = None,
        item_b: np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
        _validated: bool = False,
    ) -> None:
        if not _validated:
            raise TypeError(
                "build PreferenceData with from_arrays, from_differences, from_items, "
                "from_frame or read"
            )
        self.xa = xa
        self.xb = xb
        self._differences = differences
        self.y = y
        self.user = user
        self.prompt = prompt
        self.weight = weight
        self.margin = margin
        self.item_a = item_a
        self.item_b = item_b
        self.feature_names = list(feature_names) if feature_names is not None else None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        xa,
        xb,
        y,
        user=None,
        prompt=None,
        weight=None,
        margin=None,
        feature_names: Sequence[str] | None = None,
    ) -> PreferenceData:
        """Comparisons from the features of both alternatives, ``xa`` and ``xb`` of shape (n, d)."""
        xa = _as_features(xa, "xa")
        xb = _as_features(xb, "xb")
        if xa.shape != xb.shape:
            raise ValueError(f"xa and xb must have the same shape, got {xa.shape} and {xb.shape}")
        if xa.shape[0] == 0:
            raise ValueError("no comparisons: xa and xb have 0 rows")
        if xa.dtype != xb.dtype:
            xa, xb = xa.astype(np.float64), xb.astype(np.float64)
        n = xa.shape[0]
        return cls._build(
            n, xa.shape[1], y, user, prompt, weight, margin, feature_names, xa=xa, xb=xb
        )

    @classmethod
    def from_differences(
        cls,
        d,
        y,
        user=None,
        prompt=None,
        weight=None,
        margin=None,
        feature_names: Sequence[str] | None = None,
    ) -> PreferenceData:
        """Comparisons known only through ``phi(a) - phi(b)``, shape (n, d) (conjoint data).

        Linear estimators fit such data; estimators that need each alternative's features (MLP
        heads, classification reward models) raise a ``ValueError``.
        """
        diff = _as_features(d, "d")
        if diff.shape[0] == 0:
            raise ValueError("no comparisons: d has 0 rows")
        return cls._build(
            diff.shape[0],
            diff.shape[1],
            y,
            user,
            prompt,
            weight,
            margin,
            feature_names,
            differences=diff,
        )

    @classmethod
    def from_items(
        cls,
        a_idx,
        b_idx,
        y,
        item_features=None,
        n_items: int | None = None,
        user=None,
        prompt=None,
        weight=None,
        margin=None,
        feature_names: Sequence[str] | None = None,
    ) -> PreferenceData:
        """Comparisons between items given by integer ids ``a_idx``, ``b_idx`` of shape (n,).

        ``item_features`` (n_items, d) gives each item's features; without it each item is its own
        one-hot feature (classic Bradley–Terry over items, ``n_items`` defaults to max id + 1).
        """
        a = _as_item_ids(a_idx, "a_idx")
        b = _as_item_ids(b_idx, "b_idx")
        if a.shape != b.shape:
            raise ValueError(f"a_idx and b_idx differ in length: {a.shape[0]} vs {b.shape[0]}")
        if a.shape[0] == 0:
            raise ValueError("no comparisons: a_idx is empty")
        if item_features is None:
            n_items = int(max(a.max(), b.max()) + 1) if n_items is None else int(n_items)
            feats = np.eye(n_items, dtype=np.float32)
        else:
            feats = _as_features(item_features, "item_features")
            n_items = feats.shape[0]
        for name, arr in (("a_idx", a), ("b_idx", b)):
            bad = (arr < 0) | (arr >= n_items)
            if bad.any():
                raise ValueError(f"{name}: item id outside [0, {n_items}) in {_rows(bad)}")
        return cls._build(
            a.shape[0],
            feats.shape[1],
            y,
            user,
            prompt,
            weight,
            margin,
            feature_names,
            xa=feats[a],
            xb=feats[b],
            item_a=a,
            item_b=b,
        )

    @classmethod
    def _build(
        cls, n, d, y, user, prompt, weight, margin, feature_names, **arrays
    ) -> PreferenceData:
        y = _as_labels(y, n)
        if feature_names is not None and len(feature_names) != d:
            raise ValueError(f"feature_names has {len(feature_names)} names for {d} features")
        w = _as_weights(weight, n, "weight")
        if w is not None:
            signed = (2 * y - 1) != 0
            if signed.any() and not (w[signed] > 0).any():
                raise ValueError("weight: every non-tie comparison has zero weight")
        return cls(
            y=y,
            user=_as_ids(user, n, "user"),
            prompt=_as_ids(prompt, n, "prompt"),
            weight=w,
            margin=_as_weights(margin, n, "margin", nonnegative=False),
            feature_names=feature_names,
            _validated=True,
            **arrays,
        )

    @classmethod
    def from_frame(
        cls,
        df,
        features_a: Sequence[str] | None = None,
        features_b: Sequence[str] | None = None,
        differences: Sequence[str] | None = None,
        label: str = "label",
        user: str | None = None,
        prompt: str | None = None,
        weight: str | None = None,
        margin: str | None = None,
        item_a: str | None = None,
        item_b: str | None = None,
    ) -> PreferenceData:
        """Comparisons from a pandas DataFrame with a column mapping.

        Feature columns: ``features_a``/``features_b`` (equal-length lists, matched by position),
        or ``differences``. When none is given they are found by prefix: ``a_*`` with ``b_*``
        (same suffixes), else ``d_*``. ``user``/``prompt``/``weight``/``margin`` default to the
        columns of those names when present. Row numbers in errors are 0-based positions.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"from_frame expects a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise ValueError("no comparisons: the table has 0 rows")
        cols = [str(c) for c in df.columns]
        df = df.set_axis(cols, axis=1)

        def need(names: Sequence[str], role: str) -> None:
            names = list(names)
            missing = [c for c in names if c not in df.columns]
            if missing:
                raise ValueError(
                    f"{role}: unknown column(s) {missing[:5]}; the table has {cols[:12]}"
                    + (" ..." if len(cols) > 12 else "")
                )
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                raise ValueError(
                    f"{role}: duplicate column name(s) {twice[:5]}: each feature needs its own "
                    "column"
                )
            shared = sorted({c for c in names if cols.count(c) > 1})
            if shared:
                raise ValueError(
                    f"{role}: the table has several columns named {shared[:5]}; rename them"
                )

        if features_a is None and features_b is None and differences is None:
            fa = [c for c in cols if c.startswith("a_")]
            fb = [c for c in cols if c.startswith("b_")]
            if fa and [c[2:] for c in fa] == [c[2:] for c in fb]:
                features_a, features_b = fa, fb
            elif [c for c in cols if c.startswith("d_")]:
                differences = [c for c in cols if c.startswith("d_")]
            else:
                raise ValueError(
                    "no feature columns: pass features_a/features_b or differences, or name the "
                    f"columns a_*/b_* (matching suffixes) or d_*; the table has {cols[:12]}"
                )
        if (features_a is None) != (features_b is None):
            raise ValueError("features_a and features_b go together")
        need([label], "label")
        optional = {}
        for role, col in (
            ("user", user),
            ("prompt", prompt),
            ("weight", weight),
            ("margin", margin),
        ):
            if col is None and role in df.columns:
                col = role
            if col is not None:
                need([col], role)
                if role in ("weight", "margin"):
                    optional[role] = _column_numbers(df, col, role)
                else:
                    optional[role] = df[col].to_numpy()

        def numeric(names: Sequence[str], role: str) -> np.ndarray:
            need(names, role)
            arr = (
                np.column_stack([_column_numbers(df, c, role) for c in names]).astype(np.float64)
                if len(names)
                else np.zeros((len(df), 0))
            )
            bad = ~np.isfinite(arr)
            if bad.any():
                col = names[int(np.flatnonzero(bad.any(axis=0))[0])]
                raise ValueError(f"{role}: NaN or inf in column {col!r}, {_rows(bad.any(axis=1))}")
            return arr

        y = _column_numbers(df, label, "label").astype(np.float64)
        if np.isnan(y).any():
            raise ValueError(f"label: column {label!r} is empty in {_rows(np.isnan(y))}")
        bad = ~np.isin(y, _VALID_LABELS)
        if bad.any():
            raise ValueError(
                f"label: column {label!r} must hold 0, 0.5 or 1; {_rows(bad)} hold "
                f"{y[np.flatnonzero(bad)[0]]!r}"
            )
        if differences is not None:
            names = [c[2:] if c.startswith("d_") else c for c in differences]
            data = cls.from_differences(
                numeric(differences, "differences"), y, feature_names=names, **optional
            )
        else:
            names = [c[2:] if c.startswith("a_") else c for c in features_a]
            data = cls.from_arrays(
                numeric(features_a, "features_a"),
                numeric(features_b, "features_b"),
                y,
                feature_names=names,
                **optional,
            )
        for attr, col in (("item_a", item_a), ("item_b", item_b)):
            col = col if col is not None else (attr if attr in df.columns else None)
            if col is not None:
                need([col], attr)
                ids = _as_item_ids(_column_numbers(df, col, attr), f"{attr}: column {col!r}")
                setattr(data, attr, ids)
        return data

    @classmethod
    def read(cls, path: str | os.PathLike, format: str | None = None, **mapping) -> PreferenceData:
        """Read comparisons from CSV, Parquet or JSONL (by suffix, or ``format``).

        ``mapping`` is passed to :meth:`from_frame` (column names). Files written by
        :meth:`write` read back without a mapping.
        """
        import pandas as pd

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        fmt = (format or format_of(path)).lower()
        try:
            if fmt == "csv":
                df = pd.read_csv(path)
            elif fmt == "parquet":
                df = pd.read_parquet(path)
            elif fmt == "jsonl":
                df = _read_jsonl(path)
            else:
                raise ValueError(f"{path}: unknown format {fmt!r}; use csv, parquet or jsonl")
        except (ValueError, FileNotFoundError):
            raise
        except Exception as exc:
            raise ValueError(f"{path}: cannot be read as {fmt} ({exc})") from None
        try:
            return cls.from_frame(df, **mapping)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    # ------------------------------------------------------------------ views
    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    def __len__(self) -> int:
        return self.n_samples

    @property
    def n_features(self) -> int:
        ref = self.xa if self.xa is not None else self._differences
        return int(ref.shape[1])

    @property
    def has_alternatives(self) -> bool:
        """True when each alternative's features are known (not only differences)."""
        return self.xa is not None

    @property
    def differences(self) -> np.ndarray:
        """``phi(a) - phi(b)``, shape (n, d)."""
        if self._differences is None:
            self._differences = self.xa - self.xb
        return self._differences

    @property
    def signs(self) -> np.ndarray:
        """``2 y - 1`` in {-1, 0, 1}, shape (n,)."""
        return 2.0 * self.y - 1.0

    def require_alternatives(self, who: str, hint: str = "use a linear head instead") -> None:
        """Raise a clear error when only differences are known; ``hint`` says what to do."""
        if not self.has_alternatives:
            raise ValueError(
                f"{who} needs each alternative's features, but these data only hold differences "
                f"phi(a) - phi(b) (from_differences); {hint}"
            )

    def require_users(self, who: str) -> np.ndarray:
        if self.user is None:
            raise ValueError(
                f"{who} needs user ids: build the data with user=... (or a 'user' column)"
            )
        return self.user

    def __repr__(self) -> str:
        kind = "alternatives" if self.has_alternatives else "differences"
        extras = [k for k in ("user", "prompt", "weight", "margin") if getattr(self, k) is not None]
        ties = int((self.y == 0.5).sum())
        return (
            f"PreferenceData(n={self.n_samples}, d={self.n_features}, {kind}, ties={ties}"
            + (f", with {'/'.join(extras)}" if extras else "")
            + ")"
        )

    def subset(self, idx) -> PreferenceData:
        """Rows ``idx`` (an integer index array or boolean mask) as new data."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)

        def take(arr):
            return None if arr is None else arr[idx]

        if idx.size == 0:
            raise ValueError("subset is empty")
        return PreferenceData(
            y=self.y[idx],
            xa=take(self.xa),
            xb=take(self.xb),
            differences=take(self._differences) if self.xa is None else None,
            user=take(self.user),
            prompt=take(self.prompt),
            weight=take(self.weight),
            margin=take(self.margin),
            item_a=take(self.item_a),
            item_b=take(self.item_b),
            feature_names=self.feature_names,
            _validated=True,
        )

    def split(
        self, by: str = "random", test_size: float = 0.2, random_state=None
    ) -> tuple[PreferenceData, PreferenceData]:
        """Split into (train, test). ``by="user"`` or ``"prompt"`` keeps each group on one side.

        ``test_size`` is the share of comparisons. Group splits shuffle the groups and put the
        first ``k`` in the test side, with ``k`` the number whose share of comparisons is
        closest to ``test_size`` (at least one group on each side), so large groups can make
        the realised share differ from ``test_size``.
        """
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size must be in (0, 1), got {test_size}")
        rng = np.random.default_rng(random_state)
        n = self.n_samples
        if by == "random":
            perm = rng.permutation(n)
            n_test = int(round(test_size * n))
            if n_test == 0 or n_test == n:
                raise ValueError(f"test_size={test_size} leaves one side empty with n={n}")
            return self.subset(np.sort(perm[n_test:])), self.subset(np.sort(perm[:n_test]))
        if by not in ("user", "prompt"):
            raise ValueError(f"by must be 'random', 'user' or 'prompt', got {by!r}")
        groups = getattr(self, by)
        if groups is None:
            raise ValueError(f"split(by={by!r}) needs {by} ids, but these data have none")
        uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        if len(uniq) < 2:
            raise ValueError(f"split(by={by!r}) needs at least 2 distinct {by} ids")
        order = rng.permutation(len(uniq))
        cum = np.cumsum(counts[order])[:-1]  # test sizes of k = 1 .. n_groups - 1 groups
        n_groups_test = int(np.argmin(np.abs(cum - test_size * n))) + 1
        test_groups = np.zeros(len(uniq), dtype=bool)
        test_groups[order[:n_groups_test]] = True
        mask = test_groups[inverse]
        return self.subset(~mask), self.subset(mask)

    # ------------------------------------------------------------------ output
    def to_frame(self):
        """A pandas DataFrame that :meth:`read` / :meth:`from_frame` load back unchanged."""
        import pandas as pd

        names = self.feature_names or [str(j) for j in range(self.n_features)]
        blocks = {}
        if self.has_alternatives:
            blocks.update({f"a_{nm}": self.xa[:, j] for j, nm in enumerate(names)})
            blocks.update({f"b_{nm}": self.xb[:, j] for j, nm in enumerate(names)})
        else:
            blocks.update({f"d_{nm}": self.differences[:, j] for j, nm in enumerate(names)})
        blocks["label"] = self.y
        for attr in ("user", "prompt", "weight", "margin", "item_a", "item_b"):
            val = getattr(self, attr)
            if val is not None:
                blocks[attr] = val
        return pd.DataFrame(blocks)

    def write(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write to CSV, Parquet or JSONL (by suffix, or ``format``), atomically."""
        path = Path(path)
        fmt = (format or format_of(path)).lower()
        df = self.to_frame()
        if fmt == "csv":
            return atomic_write(path, lambda p: df.to_csv(p, index=False))
        if fmt == "parquet":
            return atomic_write(path, lambda p: df.to_parquet(p, index=False))
        if fmt == "jsonl":
            return atomic_write(path, lambda p: _write_jsonl(df, p))
        raise ValueError(f"{path}: unknown format {fmt!r}; use csv, parquet or jsonl")


def format_of(path: Path, error: type[Exception] = ValueError) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from a path's suffix (a trailing ``.gz`` is skipped)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".xz"):
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    mapping = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip
    if ext not in mapping:
        raise error(
            f"{path}: cannot tell the format from the suffix {ext!r}; use .jsonl, .csv or "
            f".parquet, or pass {option_hint('format', *FORMATS)}"
        )
    return mapping[ext]


def open_text(path: Path):
    """Open a text file for reading, transparently gunzipping ``*.gz``."""
    import gzip

    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def iter_jsonl(path: Path, error: type[Exception] = ValueError):
    """Yield ``(line_number, record)`` of a JSON-lines file (1-based lines, blank lines skipped).

    A malformed line or a non-object raises ``error`` naming ``file:line``.
    """
    with open_text(path) as fh:
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


def _write_jsonl(df, path) -> None:
    """DataFrame -> JSON lines with exact floats (pandas' ``to_json`` keeps 10 decimals only)."""
    cols = [str(c) for c in df.columns]
    with open(path, "w", encoding="utf-8") as fh:
        for row in zip(*(df[c].tolist() for c in df.columns)):
            fh.write(json.dumps(dict(zip(cols, row))) + "\n")


def _read_jsonl(path: Path):
    """JSON lines -> DataFrame; a malformed line raises with its line number (1-based)."""
    import pandas as pd

    records = [rec for _, rec in iter_jsonl(path)]
    if not records:
        raise ValueError(f"{path}: no records")
    return pd.DataFrame.from_records(records)
