"""Turn discrete choices (one chosen alternative among J shown) into pairwise comparisons."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from signrm.data import PreferenceData
from signrm.errors import ResourceError

__all__ = ["choices_to_pairs", "package_file"]


def package_file(package: str, relative: str, install: str) -> Path:
    """Path of a data file shipped inside ``package``, found without importing the package.

    ``install`` is the pip/apt command named in the one-line error when the package is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ResourceError(f"the package {package!r} is not installed: run `{install}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ResourceError(
            f"{path}: missing from the installed {package!r}; reinstall: `{install}`"
        )
    return path


def choices_to_pairs(
    features: np.ndarray,
    chosen: np.ndarray,
    user: np.ndarray,
    available: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> PreferenceData:
    """Comparisons "chosen vs each rejected available alternative" of each choice.

    Parameters
    ----------
    features : (N, J, d) attributes of the J alternatives of each of N choices.
    chosen : (N,) index in [0, J) of the chosen alternative.
    user : (N,) id of the person who chose.
    available : (N, J) bool, alternatives actually offered (default all).
    random_state : which side of a pair is ``a`` is drawn at random (seeded), so that labels are
        a balanced mix of 1 and 0 rather than all 1.

    A choice among J alternatives gives J - 1 pairs, all with the chosen one winning (the
    rank-ordered-logit "explosion" of the first rank; under a multinomial logit each pair follows
    a BT model with the same utility). Pairs of one choice share the chosen alternative and are
    not independent: subsample or split by user. Returns ``PreferenceData`` with ``user`` and
    ``prompt`` = the choice's row number.
    """
    feats = np.asarray(features, dtype=np.float64)
    n, j, _ = feats.shape
    chosen = np.asarray(chosen, dtype=np.int64)
    avail = np.ones((n, j), dtype=bool) if available is None else np.asarray(available, bool)
    if np.any((chosen < 0) | (chosen >= j)):
        raise ValueError(f"chosen: index outside [0, {j})")
    rows = np.arange(n)
    if not avail[rows, chosen].all():
        bad = int(np.flatnonzero(~avail[rows, chosen])[0])
        raise ValueError(f"choice {bad}: the chosen alternative is marked unavailable")
    loser = avail.copy()
    loser[rows, chosen] = False
    choice_idx, other = np.nonzero(loser)
    win = feats[choice_idx, chosen[choice_idx]]
    lose = feats[choice_idx, other]
    flip = np.random.default_rng(random_state).random(choice_idx.size) < 0.5
    xa = np.where(flip[:, None], lose, win)
    xb = np.where(flip[:, None], win, lose)
    y = np.where(flip, 0.0, 1.0)
    return PreferenceData.from_arrays(
        xa,
        xb,
        y,
        user=np.asarray(user)[choice_idx],
        prompt=choice_idx,
        feature_names=feature_names,
    )
