"""A battery of annotator pools with the structures real pools have, each with a coupling knob.

Every panel is built in a small *taste space* of ``k`` axes (the first ``k`` coordinates of a
synthetic feature space, or the twin panel's six taste axes) as

    theta_u = s_u * (W_u @ basis)

with ``W_u`` the persona's taste (a point of the taste space) and ``s_u > 0`` its confidence
(decisiveness, normalised to mean 1). The panels differ in how tastes are spread and in the
*marginal* distribution of confidence; ``coupling`` in [0, 1] sets how much confidence depends on
taste, through a Gaussian copula::

    s_u = F^{-1}(Phi(coupling * z_u + sqrt(1 - coupling^2) * eps_u))

where ``z_u`` are the normal scores of the ranks of a *taste score* (which personas are decisive)
and ``eps_u`` independent standard normals. The marginal ``F`` of confidence is the same at every
coupling, so the knob changes only how confidence is tied to taste, not how much it varies:
0 = independent of taste, 1 = confidence a monotone function of the taste score. Tastes and
``eps`` do not depend on ``coupling`` (common random numbers across a sweep).

Panels (``BATTERY_NAMES``; parameter values chosen for realism, see docs/simulation.md):

- ``"symmetric"`` (the theory check): antithetic Laplace tastes, lognormal confidence tied to the
  *extremeness* of taste (strongly opinionated people are decisive). Mirrored personas share a
  confidence, so the pool is exactly symmetric around theta_bar at every coupling.
- ``"heavy_tailed"``: the same symmetric tastes, Pareto(1.5) confidence (a few nearly
  deterministic annotators), tied to the signed taste on axis 0 (those who like axis 0 are the
  decisive ones). Exactly symmetric at coupling 0 only.
- ``"skewed"``: asymmetric (centred exponential) tastes, lognormal confidence tied to the long
  tail on axis 0.
- ``"decisive_minority"``: a crowd (85 %) with broad Gaussian tastes around the mean and a
  minority (15 %) with its own, tight taste at 90 degrees from the crowd's mean; lognormal(1)
  confidence tied to membership (at coupling 1 the minority is the most confident 15 %, about 5x
  the crowd's mean confidence).
- ``"experts_crowd"``: experts (20 %) with a tight taste at 45 degrees from a broad Laplace crowd,
  lognormal(1) confidence tied to expertise (about 4x at coupling 1).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from .population import Population

__all__ = [
    "BATTERY_NAMES",
    "DEFAULT_COUPLING",
    "battery",
    "battery_tastes",
    "make_battery_population",
    "parse_battery_variant",
]

BATTERY_NAMES = ("symmetric", "heavy_tailed", "skewed", "decisive_minority", "experts_crowd")
#: Default coupling: confidence clearly but not deterministically tied to taste (copula
#: correlation 0.7 between log-confidence and the taste score).
DEFAULT_COUPLING = 0.7
#: Log-sd of lognormal confidence: 5th-95th percentile ratio of about 27 (annotator reliability in
#: crowdsourcing pools spans well over an order of magnitude).
LOGNORMAL_SIGMA = 1.0
#: Tail index of Pareto confidence (finite mean, infinite variance).
PARETO_ALPHA = 1.5
#: (share, angle to the crowd's mean in degrees, axis the group's taste turns towards)
GROUPS = {"decisive_minority": (0.15, 90.0, -1), "experts_crowd": (0.20, 45.0, 3)}
#: A group's tastes are this fraction of the crowd's spread around their centre.
GROUP_TIGHTNESS = 0.3
#: Synthetic taste space: per-axis sd of tastes around the mean (1, 1, 0, ...) on the first
#: ``TASTE_DIMS`` coordinates. People disagree most on one axis of the shared taste (axis 0,
#: e.g. verbosity), agree on the other (axis 1), and vary moderately in matters the mean ignores.
SYNTH_SPREAD = np.array([1.5, 0.5, 1.0, 1.0, 0.5, 0.5])
TASTE_DIMS = 6


def _check_coupling(coupling: float) -> float:
    c = float(coupling)
    if not np.isfinite(c) or not 0.0 <= c <= 1.0:
        raise ValueError(f"coupling={coupling!r} is not allowed; expected a number in [0, 1]")
    return c


def _check_name(name: str) -> None:
    if name not in BATTERY_NAMES:
        raise ValueError(
            f"battery panel {name!r} is not allowed; choose one of {', '.join(BATTERY_NAMES)}"
        )


def _normal_scores(score: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normal scores ``Phi^{-1}((rank + 1/2) / P)`` of ``score`` (P,), ties broken at random."""
    order = np.lexsort((rng.random(score.shape[0]), score))
    ranks = np.empty(score.shape[0])
    ranks[order] = np.arange(score.shape[0])
    return ndtri((ranks + 0.5) / score.shape[0])


def _coupled_confidence(
    z: np.ndarray, eps: np.ndarray, coupling: float, marginal: str
) -> np.ndarray:
    """Confidences (P,), mean 1, with marginal ``marginal`` and copula correlation ``coupling``."""
    g = coupling * z + np.sqrt(1.0 - coupling**2) * eps
    if marginal == "pareto":
        s = ndtr(-g) ** (-1.0 / PARETO_ALPHA)  # F^{-1}(u) = (1 - u)^(-1/alpha)
    else:
        s = np.exp(LOGNORMAL_SIGMA * g)
    return s / s.mean()


def _turned_centre(mean: np.ndarray, angle: float, axis: int) -> np.ndarray:
    """``mean`` turned by ``angle`` degrees towards taste ``axis`` (orthogonalised), same norm."""
    v = np.zeros_like(mean)
    v[axis] = 1.0
    v -= (v @ mean) / (mean @ mean) * mean
    if np.linalg.norm(v) < 1e-12:
        raise ValueError(f"taste axis {axis} is parallel to the mean: cannot turn away from it")
    a = np.radians(angle)
    mhat = mean / np.linalg.norm(mean)
    return np.linalg.norm(mean) * (np.cos(a) * mhat + np.sin(a) * v / np.linalg.norm(v))


def battery_tastes(
    name: str,
    coupling: float,
    mean: np.ndarray,
    spread: np.ndarray,
    n_personas: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Tastes ``W`` (P, k), confidences ``s`` (P,) (mean 1) and metadata of a battery panel.

    ``mean`` (k,) is the crowd's average taste and ``spread`` (k,) the per-axis sd of tastes
    around it (k >= 2). Draws tastes first and the independent confidence noise second from
    ``rng``, neither depending on ``coupling``.
    """
    _check_name(name)
    c = _check_coupling(coupling)
    mean = np.asarray(mean, dtype=np.float64).ravel()
    spread = np.asarray(spread, dtype=np.float64).ravel()
    k, p = mean.shape[0], int(n_personas)
    if k < 2 or spread.shape[0] != k:
        raise ValueError(f"battery tastes need k >= 2 axes and one spread per axis, got {k}")
    symmetric = name in ("symmetric", "heavy_tailed")
    if symmetric and p % 2:
        raise ValueError(
            f"n_personas={p} is odd, but battery panel {name!r} is built from antithetic pairs: "
            f"give an even n_personas (e.g. {p + 1})"
        )
    info: dict = {"battery": name, "coupling": c}
    if symmetric:
        half = p // 2
        xi = rng.laplace(0.0, 1.0 / np.sqrt(2), (half, k)) * spread
        W = np.concatenate([mean + xi, mean - xi])
        eps = np.tile(rng.standard_normal(half), 2)  # mirrored personas share their noise
        if name == "symmetric":  # extremeness |xi| is shared by mirrors: keep them together
            z = np.tile(_normal_scores(np.linalg.norm(xi / spread, axis=1), rng), 2)
        else:  # signed taste on axis 0: normal scores of +x and -x are exact opposites
            z = _normal_scores(np.concatenate([xi[:, 0], -xi[:, 0]]), rng)
        marginal = "lognormal" if name == "symmetric" else "pareto"
        info["symmetric"] = name == "symmetric" or c == 0.0
    elif name == "skewed":
        xi = (rng.exponential(1.0, (p, k)) - 1.0) * spread
        W = mean + xi
        eps = rng.standard_normal(p)
        z = _normal_scores(xi[:, 0], rng)
        marginal = "lognormal"
        info["symmetric"] = False
    else:
        share, angle, axis = GROUPS[name]
        n_group = int(round(share * p))
        centre = _turned_centre(mean, angle, axis % k)
        group = np.zeros(p, dtype=bool)
        group[:n_group] = True
        if name == "experts_crowd":
            noise = rng.laplace(0.0, 1.0 / np.sqrt(2), (p, k))
        else:
            noise = rng.standard_normal((p, k))
        W = np.where(
            group[:, None], centre + GROUP_TIGHTNESS * noise * spread, mean + noise * spread
        )
        eps = rng.standard_normal(p)
        z = _normal_scores(group.astype(np.float64), rng)
        marginal = "lognormal"
        info.update(symmetric=False, group=group, group_share=share, group_angle_deg=angle)
    s = _coupled_confidence(z, eps, c, marginal)
    info["confidence"] = marginal
    return W, s, info


def make_battery_population(
    name: str,
    coupling: float = DEFAULT_COUPLING,
    dim: int = 8,
    *,
    n_personas: int = 200,
    random_state: int | np.random.Generator | None = None,
) -> Population:
    """Battery panel ``name`` in ``dim`` features: tastes on the first ``min(6, dim)`` coordinates.

    The crowd's mean taste is ``(1, 1, 0, ..., 0)`` (METHODS.md section 2) and the per-axis spread
    ``SYNTH_SPREAD``; theta_u = s_u W_u, zero outside the taste coordinates. Scale: with features
    ``D ~ N(0, I)`` a persona of confidence 1 at the mean has margins of sd ``sqrt(2)``.
    ``random_state`` fully determines the panel; ``coupling`` changes only the confidences
    (``info["persona_confidence"]``, (P,), mean 1; ``info["group"]`` marks a group panel's
    minority or experts).
    """
    if int(dim) < 2:
        raise ValueError(f"dim={dim} is not allowed: battery panels need dim >= 2")
    k = min(TASTE_DIMS, int(dim))
    mean = np.zeros(k)
    mean[:2] = 1.0
    rng = np.random.default_rng(random_state)
    W, s, info = battery_tastes(name, coupling, mean, SYNTH_SPREAD[:k], n_personas, rng)
    thetas = np.zeros((W.shape[0], int(dim)))
    thetas[:, :k] = s[:, None] * W
    return Population(
        thetas=thetas,
        weights=np.full(W.shape[0], 1.0 / W.shape[0]),
        name=f"battery-{name}@{info['coupling']:g}",
        info={**info, "taste_dims": k, "persona_confidence": s},
    )


def battery(
    coupling: float = DEFAULT_COUPLING,
    dim: int = 8,
    *,
    n_personas: int = 200,
    random_state: int | None = 0,
) -> dict[str, Population]:
    """Every battery panel at one ``coupling`` and ``dim``: ``{name: Population}``."""
    return {
        name: make_battery_population(
            name, coupling, dim, n_personas=n_personas, random_state=random_state
        )
        for name in BATTERY_NAMES
    }


def parse_battery_variant(variant: str) -> tuple[str, float] | None:
    """``"battery-NAME"`` or ``"battery-NAME@COUPLING"`` -> ``(NAME, coupling)``; else None."""
    if not isinstance(variant, str) or not variant.startswith("battery-"):
        return None
    body = variant[len("battery-") :]
    name, _, tail = body.partition("@")
    _check_name(name)
    if not tail:
        return name, DEFAULT_COUPLING
    try:
        value = float(tail)
    except ValueError:
        raise ValueError(
            f"variant={variant!r}: the coupling after '@' must be a number in [0, 1]"
        ) from None
    return name, _check_coupling(value)
