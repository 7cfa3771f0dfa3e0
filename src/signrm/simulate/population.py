"""Populations of personas with heterogeneous utility vectors theta_u (direction and confidence).

A persona ``u`` has utility ``U_u(x) = theta_u . phi(x) + noise``. Populations differ in *direction*
(``theta_u / |theta_u|``) and in *confidence* (``|theta_u|``: a large norm makes a persona decisive).
The ground truth of every experiment is the population-average utility
``theta_bar = sum_u w_u theta_u`` (``Population.mean_utility()``).

Construction used by ``make_population`` (all families)::

    theta_u = s_u * (mean + xi_u)

with ``xi_u`` the persona's deviation in direction (a symmetric or skewed family) and ``s_u > 0``
its confidence (mean 1). For the symmetric families the population is built from *antithetic
pairs* ``(s, mean + xi)`` and ``(s, mean - xi)`` sharing one confidence, so the finite population is
exactly symmetric around ``theta_bar = mean(s) * mean``: ``P(y = 1 | a, b) > 1/2`` exactly when
``theta_bar . (phi(a) - phi(b)) > 0`` (METHODS.md section 3), whatever the confidences are, as long
as they do not depend on the direction (``scale_corr="independent"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Population",
    "make_population",
    "POPULATION_KINDS",
    "SCALE_DISTS",
    "SCALE_CORRS",
]

#: Families of the direction deviation ``xi_u``.
POPULATION_KINDS = (
    "gaussian",  # symmetric
    "laplace",  # symmetric, heavy tails
    "two_point",  # symmetric: xi = +/- spread * v_u
    "exp_two_point",  # symmetric: METHODS.md section 2 worked example, xi = +/- Exp(spread) e_1
    "skewed",  # asymmetric: centred exponential deviations (a long tail on one side)
    "mixture",  # asymmetric in general: a few persona types with unequal shares
    "homogeneous",  # no direction heterogeneity (confidence may still vary)
)
#: Distributions of the confidence ``s_u`` (normalised to mean 1).
SCALE_DISTS = ("none", "lognormal", "exponential", "two_point")
#: How confidence relates to direction.
SCALE_CORRS = ("independent", "correlated")

_SYMMETRIC = {"gaussian", "laplace", "two_point", "exp_two_point", "homogeneous"}


@dataclass
class Population:
    """A weighted panel of personas.

    Attributes
    ----------
    thetas : (P, d) float64
        Persona utility vectors (direction and confidence).
    weights : (P,) float64
        Persona shares, non-negative, summing to 1.
    name : str
        A label (used in reports).
    info : dict
        Free-form metadata (family, parameters, persona descriptions...).
    """

    thetas: np.ndarray
    weights: np.ndarray
    name: str = "population"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.thetas = np.asarray(self.thetas, dtype=np.float64)
        if self.thetas.ndim != 2:
            raise ValueError(f"thetas: expected shape (P, d), got {self.thetas.shape}")
        if self.weights is None:
            self.weights = np.full(self.thetas.shape[0], 1.0 / self.thetas.shape[0])
        w = np.asarray(self.weights, dtype=np.float64).ravel()
        if w.shape[0] != self.thetas.shape[0]:
            raise ValueError(f"weights: {w.shape[0]} values for {self.thetas.shape[0]} personas")
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("weights: must be finite, non-negative and not all zero")
        self.weights = w / w.sum()

    @property
    def n_personas(self) -> int:
        return int(self.thetas.shape[0])

    @property
    def dim(self) -> int:
        return int(self.thetas.shape[1])

    def mean_utility(self) -> np.ndarray:
        """Ground truth ``theta_bar = sum_u w_u theta_u``, shape (d,)."""
        return self.weights @ self.thetas

    def confidences(self) -> np.ndarray:
        """``|theta_u|`` of each persona, shape (P,)."""
        return np.linalg.norm(self.thetas, axis=1)

    def sample_personas(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` persona indices drawn with the population weights, shape (n,) int64."""
        return rng.choice(self.n_personas, size=int(n), p=self.weights).astype(np.int64)

    def utilities(self, features: np.ndarray) -> np.ndarray:
        """Persona utilities ``theta_u . phi(x)``, shape (P, m) for features (m, d)."""
        return self.thetas @ np.asarray(features, dtype=np.float64).T

    def angular_spread(self) -> float:
        """Mean angle (degrees) between each persona's direction and theta_bar's, weighted."""
        tb = self.mean_utility()
        cos = (self.thetas @ tb) / (np.linalg.norm(self.thetas, axis=1) * np.linalg.norm(tb))
        return float(self.weights @ np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _confidences(
    n: int, scale_dist: str, scale_sigma: float, rng: np.random.Generator
) -> np.ndarray:
    if scale_dist == "none":
        s = np.ones(n)
    elif scale_dist == "lognormal":
        s = np.exp(scale_sigma * rng.standard_normal(n))
    elif scale_dist == "exponential":
        s = rng.exponential(1.0, n)
    else:  # two_point: half confident, half hesitant; ratio exp(2 sigma)
        s = np.where(rng.random(n) < 0.5, np.exp(scale_sigma), np.exp(-scale_sigma))
    return s / s.mean()


def make_population(
    kind: str = "gaussian",
    n_personas: int = 200,
    dim: int = 8,
    mean: np.ndarray | None = None,
    *,
    spread: float = 1.0,
    spread_dims: int | None = None,
    scale_dist: str = "lognormal",
    scale_sigma: float = 1.0,
    scale_corr: str = "independent",
    n_types: int = 3,
    antithetic: bool = True,
    random_state: int | np.random.Generator | None = None,
    name: str | None = None,
) -> Population:
    """A synthetic population ``theta_u = s_u (mean + xi_u)``, equal persona weights.

    Parameters
    ----------
    kind : one of ``POPULATION_KINDS``
        Family of the direction deviation ``xi_u`` (see the module docstring).
    n_personas : P, the number of personas.
    dim : d, the feature dimension.
    mean : (d,) centre of directions; default ``(1, 1, 0, ..., 0)`` (METHODS.md section 2).
    spread : size of ``xi_u`` in units of ``|mean|`` (per coordinate standard deviation, or the
        Exp mean for ``exp_two_point``).
    spread_dims : deviations only in the first ``spread_dims`` coordinates (anisotropic spread,
        which is what biases the pooled MLE); default all ``d``. ``exp_two_point`` uses ``e_1``.
    scale_dist : one of ``SCALE_DISTS``; confidence ``s_u`` normalised to mean 1.
    scale_sigma : log-sd of the lognormal (or log half-ratio of ``two_point``) confidence.
    scale_corr : ``"independent"`` or ``"correlated"`` (confident personas are those whose deviation
        points along ``+e_1``: the population is then no longer symmetric around ``theta_bar``).
    n_types : number of persona types for ``kind="mixture"``.
    antithetic : symmetric families only; build mirrored pairs sharing one confidence so that the
        finite population is exactly symmetric. ``n_personas`` must then be even: an odd P
        raises ``ValueError`` rather than dropping the last mirror (which would break the exact
        symmetry that ``info["symmetric"]`` promises) or silently centring one persona. Use an
        even P, or ``antithetic=False`` (symmetric in distribution only).
    random_state : seed or Generator; fully determines the population.
    """
    _check_choice("kind", kind, POPULATION_KINDS)
    _check_choice("scale_dist", scale_dist, SCALE_DISTS)
    _check_choice("scale_corr", scale_corr, SCALE_CORRS)
    if n_personas < 1 or dim < 1:
        raise ValueError(f"n_personas and dim must be >= 1, got {n_personas}, {dim}")
    rng = np.random.default_rng(random_state)
    if mean is None:
        mean = np.zeros(dim)
        mean[: min(2, dim)] = 1.0
    mean = np.asarray(mean, dtype=np.float64).ravel()
    if mean.shape[0] != dim:
        raise ValueError(f"mean has length {mean.shape[0]}, expected dim={dim}")
    size = float(np.linalg.norm(mean)) or 1.0
    k = dim if spread_dims is None else int(np.clip(spread_dims, 1, dim))
    mirror = antithetic and kind in _SYMMETRIC and kind != "homogeneous"
    if mirror and n_personas % 2:
        raise ValueError(
            f"n_personas={n_personas} is odd, but kind={kind!r} is built from antithetic pairs "
            f"(mean + xi, mean - xi) to be exactly symmetric: give an even n_personas "
            f"(e.g. {n_personas + 1}) or antithetic=False"
        )
    m = n_personas // 2 if mirror else n_personas

    xi = np.zeros((m, dim))
    if kind == "gaussian":
        xi[:, :k] = rng.standard_normal((m, k)) * spread * size
    elif kind == "laplace":
        xi[:, :k] = rng.laplace(0.0, 1.0 / np.sqrt(2), (m, k)) * spread * size
    elif kind == "two_point":
        v = rng.standard_normal((m, k))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        signs = rng.choice([-1.0, 1.0], size=(m, 1))
        xi[:, :k] = signs * v * spread * size * np.sqrt(k)
    elif kind == "exp_two_point":
        xi[:, 0] = rng.choice([-1.0, 1.0], size=m) * rng.exponential(spread * size, m)
    elif kind == "skewed":
        xi[:, :k] = (rng.exponential(1.0, (m, k)) - 1.0) * spread * size
    elif kind == "mixture":
        centres = rng.standard_normal((n_types, dim)) * spread * size
        centres[:, k:] = 0.0
        shares = rng.dirichlet(np.full(n_types, 2.0))
        types = rng.choice(n_types, size=m, p=shares)
        xi = centres[types] + 0.25 * spread * size * rng.standard_normal((m, dim)) * (
            np.arange(dim) < k
        )
    # homogeneous: xi = 0

    dirs = np.concatenate([mean + xi, mean - xi]) if mirror else mean + xi
    if scale_corr == "correlated":
        # confident personas are those whose deviation points along +e_1
        dev = dirs[:, 0] - mean[0]
        z = dev / (dev.std() or 1.0)
        s_all = np.exp(scale_sigma * z) if scale_dist != "none" else np.ones(n_personas)
        s_all = s_all / s_all.mean()
    else:
        s = _confidences(m, scale_dist, scale_sigma, rng)
        s_all = np.concatenate([s, s]) if mirror else s
    thetas = s_all[:, None] * dirs
    info = {
        "kind": kind,
        "spread": spread,
        "spread_dims": k,
        "scale_dist": scale_dist,
        "scale_sigma": scale_sigma,
        "scale_corr": scale_corr,
        "antithetic": mirror,
        "symmetric": bool(kind in _SYMMETRIC and scale_corr == "independent"),
    }
    return Population(
        thetas=thetas,
        weights=np.full(n_personas, 1.0 / n_personas),
        name=name or f"{kind}-{scale_dist}",
        info=info,
    )
