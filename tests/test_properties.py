"""Property-based tests (hypothesis): invariants of the metrics, losses and data round trips."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from signrm import PreferenceData, losses, metrics

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
labels = st.sampled_from([0.0, 0.5, 1.0])


def vectors(d):
    return arrays(np.float64, d, elements=finite).filter(lambda v: np.linalg.norm(v) > 1e-3)


@st.composite
def vector_pairs(draw):
    d = draw(st.integers(1, 6))
    return draw(vectors(d)), draw(vectors(d))


@st.composite
def margins_and_labels(draw, min_size=1, max_size=40):
    n = draw(st.integers(min_size, max_size))
    m = draw(arrays(np.float64, n, elements=finite))
    y = draw(arrays(np.float64, n, elements=labels))
    return m, y


@SETTINGS
@given(vector_pairs(), st.floats(1e-3, 1e3))
def test_angular_error_symmetric_bounded_scale_free(pair, c):
    a, b = pair
    angle = metrics.angular_error(a, b)
    assert 0.0 <= angle <= 180.0
    assert metrics.angular_error(b, a) == angle
    assert metrics.angular_error(c * a, b) == pytest.approx(angle, abs=1e-5)
    assert metrics.angular_error(-a, b) == pytest.approx(180.0 - angle, abs=1e-9)


@SETTINGS
@given(margins_and_labels())
def test_disagreement_with_itself_and_its_negation(my):
    m, _ = my
    assume(np.any(m != 0))
    assert metrics.disagreement_rate(m, m) == 0.0
    assert metrics.disagreement_rate(-m, m) == 1.0  # zeros in the truth are excluded


@SETTINGS
@given(margins_and_labels(), st.booleans())
def test_order_consistency_of_a_margin_and_its_negation_sum_to_one(my, weighted):
    m, y = my
    assume(np.any(y != 0.5))
    w = np.linspace(0.5, 2.0, len(y)) if weighted else None
    total = metrics.order_consistency(m, y, w) + metrics.order_consistency(-m, y, w)
    assert total == pytest.approx(1.0, abs=1e-12)  # zero margins count half on both sides


@SETTINGS
@given(
    margins_and_labels(min_size=2),
    st.floats(0.1, 50.0),
    st.floats(1e-3, 1e3),
    st.floats(1e-2, 1e2),
)
def test_sign_loss_invariant_to_positive_scaling_of_the_margins(my, lam, c, s):
    m, y = (torch.tensor(a, dtype=torch.float64) for a in my)
    base = float(losses.sign_loss(m, y, lam, scale=s))
    assert -1.0 <= base <= 1.0
    assert float(losses.sign_loss(c * m, y, lam, scale=c * s)) == pytest.approx(base, abs=1e-9)
    sd = float(m.std())
    assume(sd > 1e-6)
    by_sd = float(losses.sign_loss(m, y, lam, scale=sd))
    scaled = float(losses.sign_loss(c * m, y, lam, scale=float((c * m).std())))
    assert scaled == pytest.approx(by_sd, abs=1e-9)


@st.composite
def preference_data(draw):
    n = draw(st.integers(1, 8))
    d = draw(st.integers(1, 3))
    # any finite float64, tiny and huge included: files must keep every bit
    values = st.floats(allow_nan=False, allow_infinity=False)
    xa = draw(arrays(np.float64, (n, d), elements=values))
    xb = draw(arrays(np.float64, (n, d), elements=values))
    y = draw(arrays(np.float64, n, elements=labels))
    user = draw(arrays(np.int64, n, elements=st.integers(0, 5)))
    weight = draw(arrays(np.float64, n, elements=st.floats(1e-3, 1e3)))
    margin = draw(arrays(np.float64, n, elements=finite))
    if draw(st.booleans()):
        return PreferenceData.from_arrays(xa, xb, y, user=user, weight=weight, margin=margin)
    return PreferenceData.from_differences(xa, y, user=user, margin=margin)


@SETTINGS
@given(preference_data(), st.sampled_from([".csv", ".parquet", ".jsonl"]))
def test_write_read_roundtrip(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        back = PreferenceData.read(data.write(Path(tmp) / f"prefs{suffix}"))
    assert back.has_alternatives == data.has_alternatives
    assert back.feature_names == [str(j) for j in range(data.n_features)]
    for attr in ("xa", "xb", "differences", "y", "user", "weight", "margin"):
        expected, got = getattr(data, attr), getattr(back, attr)
        if expected is None:
            assert got is None, attr
        else:
            np.testing.assert_array_equal(got, expected, err_msg=attr)


@SETTINGS
@given(
    st.lists(st.integers(1, 50), min_size=2, max_size=12),
    st.floats(0.05, 0.95),
    st.integers(0, 2**16),
)
def test_group_split_keeps_groups_whole_and_both_sides_filled(sizes, test_size, seed):
    user = np.repeat(np.arange(len(sizes)), sizes)
    n = len(user)
    data = PreferenceData.from_differences(np.ones((n, 1)), np.ones(n), user=user)
    train, test = data.split(by="user", test_size=test_size, random_state=seed)
    assert len(train) + len(test) == n
    assert not set(train.user) & set(test.user)
    assert len(set(train.user)) >= 1 and len(set(test.user)) >= 1
    # no other number of whole groups, taken in the split's order, is closer to test_size
    order = np.random.default_rng(seed).permutation(len(sizes))
    cum = np.cumsum(np.asarray(sizes)[order])[:-1]
    assert abs(len(test) - test_size * n) <= np.abs(cum - test_size * n).min() + 1e-9
