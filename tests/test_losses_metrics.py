import numpy as np
import pytest
import torch
from scipy import special

from signrm import losses, metrics


def test_bt_loss_matches_logistic_nll():
    m = torch.tensor([0.3, -1.2, 2.0])
    y = torch.tensor([1.0, 0.0, 0.5])
    expected = torch.stack(
        [
            torch.nn.functional.softplus(-m[0]),
            torch.nn.functional.softplus(m[1]),
            0.5 * torch.nn.functional.softplus(-m[2]) + 0.5 * torch.nn.functional.softplus(m[2]),
        ]
    ).mean()
    assert torch.allclose(losses.bt_loss(m, y), expected)
    # margin offset: the preferred side must beat the margin
    off = torch.tensor([1.0, 1.0, 0.0])
    assert losses.bt_loss(m, y, margin_offset=off) > losses.bt_loss(m, y)


def test_probit_and_sign_losses():
    m = torch.linspace(-3, 3, 7)
    y = (m > 0).double().float()
    assert losses.probit_loss(m, y) < losses.probit_loss(-m, y)
    # sign loss -> minus the exact agreement as lambda grows
    exact = losses.zero_one_agreement(m, y)
    assert torch.isclose(losses.sign_loss(m, y, lam=200.0), -exact, atol=1e-6)
    # scale invariance: margins x 10 with scale x 10 give the same loss
    assert torch.isclose(losses.sign_loss(10 * m, y, 2.0, scale=10.0), losses.sign_loss(m, y, 2.0))
    # ties contribute nothing
    assert losses.sign_loss(m, torch.full_like(m, 0.5), 5.0) == 0


def test_clf_loss_and_weights():
    logits = torch.tensor([2.0, -2.0])
    labels = torch.tensor([1.0, 1.0])
    full = losses.clf_loss(logits, labels)
    only_first = losses.clf_loss(logits, labels, weight=torch.tensor([1.0, 0.0]))
    assert only_first < full


def test_lambda_schedule():
    sched = losses.lambda_schedule(1, 15, 5)
    assert sched[0] == pytest.approx(1) and sched[-1] == pytest.approx(15)
    assert np.all(np.diff(np.log(sched)) == pytest.approx(np.log(15) / 4))
    assert list(losses.resolve_lambdas((2, 3, 4), 5)) == [2, 3, 4]
    with pytest.raises(ValueError):
        losses.lambda_schedule(0, 15, 3)


def test_angular_error_and_disagreement():
    assert metrics.angular_error([1, 0], [0, 2]) == pytest.approx(90)
    assert metrics.angular_error([1, 1], [-1, -1]) == pytest.approx(180)
    with pytest.raises(ValueError):
        metrics.angular_error([0, 0], [1, 0])
    assert metrics.disagreement_rate([1, -1, 1, 5], [1, 1, 0, 2]) == pytest.approx(1 / 3)
    assert metrics.order_consistency([1, -1, 0, 2], [1, 1, 1, 0.5]) == pytest.approx(0.5)


def test_best_of_n_and_spearman():
    group = np.repeat(np.arange(20), 10)
    truth = np.random.default_rng(0).standard_normal(200)
    perfect = metrics.best_of_n(truth, truth, group, n=5, random_state=0)
    random = metrics.best_of_n(-truth, truth, group, n=5, random_state=0)
    assert perfect > 0.5 and random < -0.5
    assert metrics.spearman(truth, 2 * truth + 1) == pytest.approx(1)
    with pytest.raises(ValueError, match="no group"):
        metrics.best_of_n(truth, truth, group, n=11)
    m, lo, hi = metrics.mean_ci([1.0, 2.0, 3.0])
    assert lo < m < hi and m == pytest.approx(2)


def test_probit_loss_margin_matches_the_linear_solver():
    from signrm.engine.linear import fit_bt_arrays as fit_bt_linear

    D = np.array([[0.5, 1.0], [-1.0, 0.2], [2.0, -0.3], [0.3, 0.4], [-0.7, -1.1]])
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0])
    off = np.array([0.7, 0.4, 1.0, -0.2, 0.3])
    l2 = 0.1
    theta, info = fit_bt_linear(D, y, w, l2=l2, link="probit", margin_offset=off, tol=1e-10)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    loss = losses.probit_loss(t(D @ theta), t(y), t(w), margin_offset=t(off))
    assert float(loss) + 0.5 * l2 * theta @ theta == pytest.approx(info["objective"], rel=1e-12)
    # per row: the solver's loss on m - s offset
    s = 2 * y - 1
    per_row = -(
        y * special.log_ndtr(D @ theta - s * off) + (1 - y) * special.log_ndtr(s * off - D @ theta)
    )
    for i in range(len(y)):
        row = losses.probit_loss(
            t(D[i : i + 1] @ theta), t(y[i : i + 1]), margin_offset=t(off[i : i + 1])
        )
        assert float(row) == pytest.approx(per_row[i], rel=1e-12)
    assert float(losses.probit_loss(t(D @ theta), t(y), t(w))) != pytest.approx(float(loss))
