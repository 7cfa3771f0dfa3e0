"""``PreferenceData``: one validated container for pairwise comparisons.

A comparison ``i`` shows alternatives ``(a_i, b_i)`` to a user, who answers ``y_i = 1`` when ``a_i``
is preferred, ``0`` when ``b_i`` is, and ``0.5`` for a tie. Features are ``(n, d)`` arrays of
``phi(a_i)`` and ``phi(b_i)``, or only their difference ``phi(a_i) - phi(b_i)`` (conjoint data).

Every constructor validates its input up front (:mod:`signrm.data.validation`) and raises
:class:`~signrm.errors.UserError` (a ``ValueError``) naming the problem, the column and the first
offending rows. Nothing is dropped silently: columns a table holds but signrm does not use are
reported (:class:`~signrm.data.validation.IgnoredColumnsWarning`, and ``ignored_columns``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from signrm.data.io import read_frame, write_frame
from signrm.data.validation import (
    as_features,
    as_ids,
    as_item_ids,
    as_labels,
    as_weights,
    check_differences_finite,
    column_numbers,
    feature_array,
    find_feature_columns,
    first_rows,
    label_problem,
    warn_ignored_columns,
)
from signrm.errors import UserError

__all__ = ["PreferenceData"]

#: Optional columns of a preference table (besides the features and ``label``).
OPTIONAL_COLUMNS = ("user", "prompt", "weight", "margin", "item_a", "item_b")


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
        #: Columns of the table read that signrm did not use (``from_frame`` / ``read``).
        self.ignored_columns: list[str] = []

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
        xa, largest_a = feature_array(xa, "xa")
        xb, largest_b = feature_array(xb, "xb")
        if xa.shape != xb.shape:
            raise UserError(f"xa and xb must have the same shape, got {xa.shape} and {xb.shape}")
        if xa.shape[0] == 0:
            raise UserError("no comparisons: xa and xb have 0 rows")
        if xa.dtype != xb.dtype:
            xa, xb = xa.astype(np.float64), xb.astype(np.float64)
        check_differences_finite(xa, xb, largest=max(largest_a, largest_b))
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
        diff = as_features(d, "d")
        if diff.shape[0] == 0:
            raise UserError("no comparisons: d has 0 rows")
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
        a = as_item_ids(a_idx, "a_idx")
        b = as_item_ids(b_idx, "b_idx")
        if a.shape != b.shape:
            raise UserError(f"a_idx and b_idx differ in length: {a.shape[0]} vs {b.shape[0]}")
        if a.shape[0] == 0:
            raise UserError("no comparisons: a_idx is empty")
        if item_features is None:
            n_items = int(max(a.max(), b.max()) + 1) if n_items is None else int(n_items)
            feats = None
        else:
            feats = as_features(item_features, "item_features")
            n_items = feats.shape[0]
        for name, arr in (("a_idx", a), ("b_idx", b)):
            bad = (arr < 0) | (arr >= n_items)
            if bad.any():
                raise UserError(f"{name}: item id outside [0, {n_items}) in {first_rows(bad)}")
        if feats is None:
            xa, xb = _one_hot(a, n_items), _one_hot(b, n_items)
        else:
            xa, xb = feats[a], feats[b]
            check_differences_finite(xa, xb, "item_features")
        return cls._build(
            a.shape[0],
            xa.shape[1],
            y,
            user,
            prompt,
            weight,
            margin,
            feature_names,
            xa=xa,
            xb=xb,
            item_a=a,
            item_b=b,
        )

    @classmethod
    def _build(
        cls, n, d, y, user, prompt, weight, margin, feature_names, **arrays
    ) -> PreferenceData:
        y = as_labels(y, n)
        if feature_names is not None and len(feature_names) != d:
            raise UserError(f"feature_names has {len(feature_names)} names for {d} features")
        w = as_weights(weight, n, "weight")
        if w is not None:
            signed = (2 * y - 1) != 0
            if signed.any() and not (w[signed] > 0).any():
                raise UserError("weight: every non-tie comparison has zero weight")
        return cls(
            y=y,
            user=as_ids(user, n, "user"),
            prompt=as_ids(prompt, n, "prompt"),
            weight=w,
            margin=as_weights(margin, n, "margin", nonnegative=False),
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
        source: str | None = None,
    ) -> PreferenceData:
        """Comparisons from a pandas DataFrame with a column mapping.

        Feature columns: ``features_a``/``features_b`` (equal-length lists, matched by position),
        or ``differences``. When none is given they are found by prefix: ``a_*`` with ``b_*``
        (same suffixes), else ``d_*``. ``user``/``prompt``/``weight``/``margin``/``item_a``/
        ``item_b`` default to the columns of those names when present. Row numbers in errors are
        0-based positions. Columns not used are listed in ``ignored_columns`` and reported by an
        :class:`~signrm.data.validation.IgnoredColumnsWarning` naming ``source`` (where the table
        came from; "the table" by default), with the known name when one is close (``weights``).
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise UserError(f"from_frame expects a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise UserError("no comparisons: the table has 0 rows")
        cols = [str(c) for c in df.columns]
        df = df.set_axis(cols, axis=1)

        def need(names: Sequence[str], role: str) -> None:
            names = list(names)
            missing = [c for c in names if c not in df.columns]
            if missing:
                raise UserError(
                    f"{role}: unknown column(s) {missing[:5]}; the table has {cols[:12]}"
                    + (" ..." if len(cols) > 12 else "")
                )
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                raise UserError(
                    f"{role}: duplicate column name(s) {twice[:5]}: each feature needs its own "
                    "column"
                )
            shared = sorted({c for c in names if cols.count(c) > 1})
            if shared:
                raise UserError(
                    f"{role}: the table has several columns named {shared[:5]}; rename them"
                )

        if features_a is None and features_b is None and differences is None:
            found = find_feature_columns(cols)
            if found is not None:
                features_a, features_b, differences = found
            else:
                raise UserError(
                    "no feature columns: pass features_a/features_b or differences, or name the "
                    f"columns a_*/b_* (matching suffixes) or d_*; the table has {cols[:12]}"
                )
        if (features_a is None) != (features_b is None):
            raise UserError("features_a and features_b go together")
        need([label], "label")
        used = {label, *(features_a or ()), *(features_b or ()), *(differences or ())}
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
                used.add(col)
                if role in ("weight", "margin"):
                    optional[role] = column_numbers(df, col, role)
                else:
                    optional[role] = df[col].to_numpy()

        def numeric(names: Sequence[str], role: str) -> np.ndarray:
            need(names, role)
            arr = (
                np.column_stack([column_numbers(df, c, role) for c in names]).astype(np.float64)
                if len(names)
                else np.zeros((len(df), 0))
            )
            bad = ~np.isfinite(arr)
            if bad.any():
                col = names[int(np.flatnonzero(bad.any(axis=0))[0])]
                raise UserError(
                    f"{role}: NaN or inf in column {col!r}, {first_rows(bad.any(axis=1))}"
                )
            return arr

        y = column_numbers(df, label, "label").astype(np.float64)
        if np.isnan(y).any():
            raise UserError(f"label: column {label!r} is empty in {first_rows(np.isnan(y))}")
        problem = label_problem(y, f"label: column {label!r}")
        if problem:
            raise UserError(problem)
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
                used.add(col)
                ids = as_item_ids(column_numbers(df, col, attr), f"{attr}: column {col!r}")
                setattr(data, attr, ids)
        ignored = [c for c in cols if c not in used]
        warn_ignored_columns(ignored, ("label", *OPTIONAL_COLUMNS), source or "the table")
        data.ignored_columns = ignored
        return data

    @classmethod
    def read(cls, path: str | os.PathLike, format: str | None = None, **mapping) -> PreferenceData:
        """Read comparisons from CSV, Parquet or JSONL (by suffix, or ``format``).

        ``mapping`` is passed to :meth:`from_frame` (column names). Files written by
        :meth:`write` read back without a mapping.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        if path.is_dir():
            raise UserError(
                f"{path}: is a directory; PreferenceData.read reads one CSV, Parquet or JSONL file "
                "(open a directory of Parquet shards or .npy files with signrm.data.open_source)"
            )
        df = read_frame(path, format)
        try:
            return cls.from_frame(df, source=str(path), **mapping)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None

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
            raise UserError(
                f"{who} needs each alternative's features, but these data only hold differences "
                f"phi(a) - phi(b) (from_differences); {hint}"
            )

    def require_users(self, who: str) -> np.ndarray:
        if self.user is None:
            raise UserError(
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
        n = self.n_samples
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise UserError(f"subset: a boolean mask needs shape ({n},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        elif idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise UserError(f"subset: expected integer indices or a boolean mask, got {idx.dtype}")
        elif idx.size and (idx.min() < -n or idx.max() >= n):
            raise UserError(f"subset: index out of range for {n} comparisons")

        def take(arr):
            return None if arr is None else arr[idx]

        if idx.size == 0:
            raise UserError("subset is empty")
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
            raise UserError(f"test_size must be in (0, 1), got {test_size}")
        rng = np.random.default_rng(random_state)
        n = self.n_samples
        if by == "random":
            perm = rng.permutation(n)
            n_test = int(round(test_size * n))
            if n_test == 0 or n_test == n:
                raise UserError(f"test_size={test_size} leaves one side empty with n={n}")
            return self.subset(np.sort(perm[n_test:])), self.subset(np.sort(perm[:n_test]))
        if by not in ("user", "prompt"):
            raise UserError(f"by must be 'random', 'user' or 'prompt', got {by!r}")
        groups = getattr(self, by)
        if groups is None:
            raise UserError(f"split(by={by!r}) needs {by} ids, but these data have none")
        uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        if len(uniq) < 2:
            raise UserError(f"split(by={by!r}) needs at least 2 distinct {by} ids")
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
        """Write to CSV, Parquet or JSONL (by suffix, or ``format``; ``.gz``/``.bz2``/``.xz``
        compress CSV and JSONL), atomically."""
        return write_frame(self.to_frame(), path, format)


def _one_hot_budget() -> int:
    """Bytes that one-hot item features may take: half the machine's memory (8 GiB if unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def _one_hot(idx: np.ndarray, n_items: int) -> np.ndarray:
    """Rows ``e_{idx_i}`` of the ``n_items`` identity, ``(n, n_items)`` float32, or a clear error
    when two such arrays (a and b) would not fit in memory."""
    need = 2 * idx.shape[0] * n_items * 4
    if need > _one_hot_budget():
        raise UserError(
            f"from_items: item ids up to {n_items - 1} mean {n_items} items; without "
            f"item_features each item is its own one-hot feature, and the dense one-hot features "
            f"of a and b ({idx.shape[0]} x {n_items} float32 each) would need {need / 1e9:.3g} GB. "
            "Pass item_features=(n_items, d) array of item features, or renumber the items "
            "0..k-1 if the ids are sparse"
        )
    out = np.zeros((idx.shape[0], n_items), dtype=np.float32)
    out[np.arange(idx.shape[0]), idx] = 1.0
    return out
