"""Small data generators shared by the core tests (kept independent of signrm.simulate)."""

import numpy as np

import signrm


def symmetric_heterogeneity(seed: int, n: int = 40_000, d: int = 8, mean_scale: float = 3.0):
    """METHODS.md section 2 worked example: theta_u = theta_bar + xi e_1, xi = +/- Exp(3)."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n, d))
    theta_bar = np.zeros(d)
    theta_bar[:2] = 1.0
    xi = rng.choice([-1.0, 1.0], n) * rng.exponential(mean_scale, n)
    theta = np.tile(theta_bar, (n, 1))
    theta[:, 0] += xi
    p = 1.0 / (1.0 + np.exp(-(theta * D).sum(1)))
    y = (rng.random(n) < p).astype(float)
    return signrm.PreferenceData.from_differences(D, y), theta_bar


def homogeneous_bt(seed: int, n: int = 20_000, d: int = 8, with_alternatives: bool = False):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(d)
    theta *= 2.0 / np.linalg.norm(theta)
    xa = rng.standard_normal((n, d))
    xb = rng.standard_normal((n, d))
    p = 1.0 / (1.0 + np.exp(-(xa - xb) @ theta))
    y = (rng.random(n) < p).astype(float)
    if with_alternatives:
        return signrm.PreferenceData.from_arrays(xa, xb, y), theta
    return signrm.PreferenceData.from_differences(xa - xb, y), theta


def item_bt(seed: int, n_items: int = 60, n: int = 6000, d: int = 10):
    """BT over items with features: utility = features @ beta."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n_items, d))
    util = feats @ rng.standard_normal(d)
    util *= 1.5 / util.std()
    a = rng.integers(0, n_items, n)
    b = (a + rng.integers(1, n_items, n)) % n_items
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(util[a] - util[b])))).astype(float)
    return signrm.PreferenceData.from_items(a, b, y, item_features=feats), feats, util


def planted_classes(seed: int, n_users: int = 200, per_user: int = 50, d: int = 5, share=0.3):
    rng = np.random.default_rng(seed)
    thetas = np.array([[2.0, 0.0, 1.0, 0.0, -1.0], [-1.0, 2.0, 0.0, 1.0, 0.0]])[:, :d]
    cls = (rng.random(n_users) < share).astype(int)
    user = np.repeat(np.arange(n_users), per_user)
    D = rng.standard_normal((n_users * per_user, d))
    th = thetas[cls[user]]
    y = (rng.random(len(user)) < 1 / (1 + np.exp(-(th * D).sum(1)))).astype(float)
    return signrm.PreferenceData.from_differences(D, y, user=user), cls, thetas
