"""Population-level diagnostics: is the sign estimator's condition met, and how biased is BT?"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from .pairing import pair_indices
from .population import Population

__all__ = ["population_diagnostics"]


def population_diagnostics(
    population: Population,
    features: np.ndarray,
    *,
    n_pairs: int = 200_000,
    random_state: int | None = 0,
) -> dict[str, float]:
    """Exact-probability diagnostics on ``n_pairs`` random pairs of ``features`` (m, d).

    Returns ``condition_rate``: share of pairs where ``P(a preferred) > 1/2`` exactly when
    ``theta_bar`` prefers a (1.0 under symmetric heterogeneity: the sign estimator's condition);
    ``bt_bias_deg``: angle between theta_bar and the infinite-data Bradley–Terry (pooled
    cross-entropy) fit, computed from the population choice probabilities instead of sampled
    labels; ``mean_label_agreement``: expected share of labels that agree with theta_bar.
    """
    X = np.asarray(features, dtype=np.float64)
    a, b = pair_indices(n_pairs, n_items=X.shape[0], random_state=random_state)
    D = X[a] - X[b]
    p = expit(D @ population.thetas.T) @ population.weights
    tb = population.mean_utility()
    m_bar = D @ tb
    keep = m_bar != 0

    def objective(theta):
        m = D @ theta
        loss = -(p * log_expit(m) + (1 - p) * log_expit(-m)).mean()
        grad = -D.T @ (p - expit(m)) / len(m)
        return loss, grad

    res = minimize(
        objective, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 5000}
    )
    cos = res.x @ tb / (np.linalg.norm(res.x) * np.linalg.norm(tb))
    agree = np.where(m_bar > 0, p, 1 - p)
    return {
        "condition_rate": float(np.mean((p[keep] > 0.5) == (m_bar[keep] > 0))),
        "bt_bias_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1)))),
        "mean_label_agreement": float(agree[keep].mean()),
    }
