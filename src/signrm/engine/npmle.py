"""Nonparametric mixture of Bradley–Terry annotators (Kiefer–Wolfowitz NPMLE on a data grid).

Annotator ``u`` answers by Bradley–Terry with their own utility ``theta_u``, and the ``theta_u``
come from an unknown distribution ``G``. The nonparametric maximum-likelihood estimate of ``G``
maximises ``sum_u log sum_k pi_k L_u(a_k)`` over mixing weights ``pi`` on a fixed grid of atoms
``a_k`` (``L_u`` is annotator ``u``'s BT likelihood of all their comparisons). With the grid fixed
the problem is concave in ``pi``, so EM reaches its global optimum: no starts, no local optima
(unlike :class:`~signrm.LatentClassBT`'s K free classes), and no assumed shape for ``G``.

The grid is data-driven: each annotator's own ridge BT fit, times a few scales (an annotator's
fit on a hundred comparisons is shrunk by the ridge or inflated by separation, and the scale of
each utility is what weights people in the welfare), and the zero utility (a random annotator).
The estimate of the population-average utility is the mean of every annotator's posterior,

    theta_hat = sum_u (n_u / n) E[theta_u | u's comparisons, G_hat],

with ``n_u`` the (weighted) number of ``u``'s comparisons: the comparison-weighted mean
``E_u[theta_u]`` over the people who answered (METHODS.md section 1's target), each person's
utility estimated with the whole panel's help. Unlike the sign estimator it needs annotator ids,
and several comparisons per annotator; it is consistent for ``theta_bar`` whatever the shape of
the heterogeneity as the comparisons per annotator grow.

Array formats (choix style): ``D`` (n, d) float64 feature differences, ``y`` (n,) labels in
[0, 1] (1: a preferred; soft labels allowed), ``w`` (n,) non-negative weights, ``codes`` (n,)
annotator index in ``0 .. n_users - 1``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

#: Multiples of each annotator's ridge fit in the grid.
DEFAULT_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Largest grid (256 annotators' fits at five scales, and zero); above it the grid is built on
#: k-means centres of the fits. The likelihood table costs n x atoms log-sigmoids (about 17 ns
#: each on one core: 0.75 s at n = 43,834 with 200 annotators).
DEFAULT_MAX_ATOMS = 1281
#: Floor of an annotator's mixture likelihood (relative to her best atom's), against underflow.
_TINY = 1e-300
#: Entries of the largest temporary (rows x atoms or rows x d x d) built at once.
_BLOCK_VALUES = 1 << 22


def annotator_index(user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct annotator ids (U,) and each comparison's annotator as an index into them,
    ``0 .. U - 1`` (n,). Ids of mixed types are compared as text."""
    try:
        ids, index = np.unique(user, return_inverse=True)
    except TypeError:
        ids, index = np.unique(user.astype(str), return_inverse=True)
    return ids, index.reshape(-1).astype(np.int64)


def _by_user(codes: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order grouping each annotator's rows, the start of each group in that order, and the
    annotator of each group (annotators without rows have no group)."""
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return order, starts, sorted_codes[starts]


def feature_metric(D: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted second moment of the differences, ``M = sum_r w_r D_r D_r^T / sum_r w_r``
    (d, d): the metric of the annotators' ridge (:func:`per_user_bt`), so that it does not
    depend on the features' units (a ridge ``|theta|^2`` on standardised, decorrelated
    features). For ``D ~ N(0, I)`` it is the identity."""
    d = D.shape[1]
    M = (D * w[:, None]).T @ D / float(w.sum())
    return M + 1e-9 * max(float(np.trace(M)) / d, 1e-12) * np.eye(d)


def per_user_bt(
    D: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    codes: np.ndarray,
    n_users: int,
    *,
    l2: float = 1.0,
    center: np.ndarray | None = None,
    metric: np.ndarray | None = None,
    n_steps: int = 12,
) -> np.ndarray:
    """Each annotator's own ridge BT fit over their rows: (n_users, d),

        argmin_theta  sum_r w_r nll_r(theta) + l2/2 (theta - center)^T metric (theta - center),

    by default ``center = 0`` and ``metric = I``; :func:`fit_npmle` passes
    :func:`feature_metric`. With the identity, features in different units are shrunk by
    different amounts, which turns the annotators' fits into a biased direction: on the
    electricity panel (price in cents next to 0/1 indicators; 36 comparisons per person) the
    mixture was 50 degrees from BT with a positive price coefficient, against 1.5 degrees in
    the features' own metric. Annotators take Newton steps together from ``center``, in blocks whose
    Hessians hold at most a few million entries (at most ``n_steps``; the fits are grid points,
    so a small remaining gradient does not matter). An annotator without rows gets ``center``.
    """
    n, d = D.shape
    center = np.zeros(d) if center is None else np.asarray(center, dtype=np.float64)
    ridge = max(float(l2), 1e-8) * (np.eye(d) if metric is None else np.asarray(metric))
    order, starts, who = _by_user(codes, n_users)
    Ds, ys, ws = D[order], y[order], w[order]
    ends = np.r_[starts[1:], n]
    out = np.tile(center, (int(n_users), 1))
    per_block = max(1, (4 * _BLOCK_VALUES) // (d * d))
    for g0 in range(0, starts.size, per_block):
        g1 = min(starts.size, g0 + per_block)
        r0, r1 = int(starts[g0]), int(ends[g1 - 1])
        out[who[g0:g1]] = _newton_by_group(
            Ds[r0:r1], ys[r0:r1], ws[r0:r1], starts[g0:g1] - r0, center, ridge, int(n_steps)
        )
    return out


def _newton_by_group(
    D: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    starts: np.ndarray,
    center: np.ndarray,
    ridge: np.ndarray,
    n_steps: int,
) -> np.ndarray:
    """Ridge BT fits of consecutive row groups (starting at ``starts``) by joint Newton steps:
    (groups, d); penalty ``(theta - center)^T ridge (theta - center) / 2``."""
    n, d = D.shape
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
    theta = np.tile(center, (starts.size, 1))
    rows_per_block = max(1, _BLOCK_VALUES // (d * d))
    for _ in range(n_steps):
        p = expit(np.einsum("nd,nd->n", D, theta[group]))
        grad = np.add.reduceat(D * (w * (y - p))[:, None], starts, axis=0)
        grad -= (theta - center) @ ridge
        curv = w * p * (1.0 - p)
        hess = np.zeros((starts.size, d, d))
        for r0 in range(0, n, rows_per_block):
            r1 = min(n, r0 + rows_per_block)
            local = np.flatnonzero(np.r_[True, group[r0 + 1 : r1] != group[r0 : r1 - 1]])
            block = D[r0:r1, :, None] * (D[r0:r1] * curv[r0:r1, None])[:, None, :]
            hess[group[r0 + local]] += np.add.reduceat(block, local, axis=0)
        step = np.linalg.solve(hess + ridge, grad[..., None])[..., 0]
        theta += step
        if float(np.max(np.abs(step))) < 1e-6:
            break
    return theta


def npmle_grid(
    fits: np.ndarray,
    *,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    seed: int = 0,
) -> np.ndarray:
    """Grid atoms (K, d): every fit of ``fits`` (U, d) times every scale, then the zero utility.

    Above ``max_atoms`` the grid holds the ``J = (max_atoms - 1) // len(scales)`` k-means centres
    of the fits (seeded) instead. Each annotator's own fit matters: on the phase diagram's
    panels (200 annotators, n = 43,834) the estimate is 0.36x BT's angle on average with every
    annotator's fit, 0.42x with 64 k-means centres and 0.58x with a random 127 of the fits.
    """
    J = max(1, (int(max_atoms) - 1) // len(scales))
    if fits.shape[0] > J:
        distinct = np.unique(fits, axis=0)
        if distinct.shape[0] <= J:
            fits = distinct
        else:
            from sklearn.cluster import KMeans

            fits = KMeans(n_clusters=J, n_init=1, random_state=seed).fit(distinct).cluster_centers_
    return np.concatenate([float(c) * fits for c in scales] + [np.zeros((1, fits.shape[1]))])


def user_loglik(
    D: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    codes: np.ndarray,
    n_users: int,
    atoms: np.ndarray,
) -> np.ndarray:
    """Each annotator's BT log-likelihood of all their comparisons under each atom: (U, K).

    ``sum_r w_r (y_r log s(m) + (1 - y_r) log s(-m))`` with ``m = D_r . a_k``; annotators
    without rows get 0.
    """
    n = D.shape[0]
    order, starts, who = _by_user(codes, n_users)
    # float32 halves the cost of the n x K log-sigmoids (the step's main cost); the sums per
    # annotator are accumulated in float64
    Ds = D[order].astype(np.float32)
    ys, ws = (1.0 - y[order]).astype(np.float32), w[order].astype(np.float32)
    grid = atoms.astype(np.float32)
    out = np.zeros((int(n_users), atoms.shape[0]))
    cols = max(1, _BLOCK_VALUES // max(n, 1))
    for k0 in range(0, atoms.shape[0], cols):
        m = Ds @ grid[k0 : k0 + cols].T
        # y log s(m) + (1 - y) log s(-m) = log s(m) - (1 - y) m
        ll = _log_sigmoid(m) - ys[:, None] * m
        ll *= ws[:, None]
        out[who, k0 : k0 + cols] = np.add.reduceat(ll, starts, axis=0, dtype=np.float64)
    return out


def _log_sigmoid(m: np.ndarray) -> np.ndarray:
    """``log s(m) = min(m, 0) - log(1 + exp(-|m|))``, elementwise, in ``m``'s precision (``log``
    rather than ``log1p``: numpy vectorises it, and the absolute error stays below 1e-6)."""
    t = -np.abs(m)
    np.exp(t, out=t)
    t += 1
    np.log(t, out=t)
    return np.minimum(m, 0) - t


def mixing_weights(
    loglik: np.ndarray, *, max_iter: int = 3000, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """The NPMLE weights on a grid, by EM: ``(pi (K,), posterior (U, K), log_likelihood,
    n_iter)``.

    ``loglik`` (U, K) from :func:`user_loglik`. Maximises the concave ``sum_u log sum_k pi_k
    exp(loglik_uk)``; stops when an iteration raises it by less than ``tol`` per annotator.
    The estimate converges long before the weights: on METHODS.md's population with 2,000
    annotators (n = 30,000) ``tol`` 1e-9 / 1e-7 / 1e-6 / 1e-5 took 1,491 / 412 / 227 / 117
    iterations for 7.05 / 7.04 / 7.03 / 6.98 degrees; each costs two (U x K) products.
    """
    top = loglik.max(axis=1, keepdims=True)
    lik = np.exp(loglik - top)
    U, K = lik.shape
    pi = np.full(K, 1.0 / K)
    previous, n_iter = -np.inf, 0
    while n_iter < int(max_iter):
        n_iter += 1
        mix = np.maximum(lik @ pi, _TINY)
        value = float(np.log(mix).sum()) / U
        pi = pi * (lik.T @ (1.0 / mix)) / U
        if value - previous < tol:
            break
        previous = value
    mix = np.maximum(lik @ pi, _TINY)
    posterior = lik * pi / mix[:, None]
    return pi, posterior, float(np.log(mix).sum() + top.sum()), n_iter


def posterior_mean_utility(posterior: np.ndarray, atoms: np.ndarray, n_u: np.ndarray) -> np.ndarray:
    """``sum_u (n_u / sum n) E[theta_u | data_u]``: (d,), from the posterior (U, K) on ``atoms``
    (K, d) and each annotator's weighted comparison count ``n_u`` (U,)."""
    return (n_u / n_u.sum()) @ (posterior @ atoms)


def fit_npmle(
    D: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    codes: np.ndarray,
    n_users: int,
    *,
    l2: float = 1.0,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    max_iter: int = 3000,
    tol: float = 1e-6,
    seed: int = 0,
    splits: np.ndarray | None = None,
    progress=None,
) -> dict:
    """The NPMLE mixture and its population-average utility.

    Returns ``{"coef": (d,), "atoms": (K, d), "weights": (K,), "posterior": (U, K),
    "log_likelihood": float, "n_iter": int}`` (posterior rows: the annotators with rows, in
    index order). With ``splits`` (n,) in {0, 1}, also ``"split_coefs"``: the same estimate
    on each part's rows (the grid from all rows; the two parts' likelihood tables sum to the
    whole one, so the split costs no extra likelihood evaluations). ``progress``: called with
    the name of each of the three phases as it starts (e.g. to advance a progress bar).
    """
    report = progress or (lambda phase: None)
    report("annotators' own fits")
    n_u = np.bincount(codes, weights=w, minlength=n_users)
    fits = per_user_bt(D, y, w, codes, n_users, l2=l2, metric=feature_metric(D, w))
    atoms = npmle_grid(fits, scales=scales, max_atoms=max_atoms, seed=seed)
    report("likelihood table")
    if splits is None:
        tables = [user_loglik(D, y, w, codes, n_users, atoms)]
        counts = [n_u]
    else:
        parts = [np.flatnonzero(splits == k) for k in (0, 1)]
        halves = [user_loglik(D[i], y[i], w[i], codes[i], n_users, atoms) for i in parts]
        tables = [halves[0] + halves[1], *halves]
        counts = [n_u, *(np.bincount(codes[i], weights=w[i], minlength=n_users) for i in parts)]
    report("mixing weights")
    fits = []
    for table, count in zip(tables, counts):
        seen = count > 0
        pi, posterior, ll, n_iter = mixing_weights(table[seen], max_iter=max_iter, tol=tol)
        fits.append(
            (posterior_mean_utility(posterior, atoms, count[seen]), pi, posterior, ll, n_iter)
        )
    coef, pi, posterior, ll, n_iter = fits[0]
    out = {
        "coef": coef, "atoms": atoms, "weights": pi, "posterior": posterior,
        "log_likelihood": ll, "n_iter": n_iter,
    }  # fmt: skip
    if splits is not None:
        out["split_coefs"] = [fits[1][0], fits[2][0]]
    return out
