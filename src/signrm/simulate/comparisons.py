"""Simulated preference data: pairs shown to personas who answer with a choice model."""

from __future__ import annotations

import numpy as np

from .choice import CHOICE_MODELS, sample_choices
from .pairing import pair_indices
from .population import Population

__all__ = ["simulate_comparisons", "simulate_arrays"]


def simulate_arrays(
    population: Population | None,
    features: np.ndarray,
    n: int,
    *,
    pairing: str = "cross_prompt",
    choice: str = "bt",
    prompt_ids: np.ndarray | None = None,
    per_user: int | None = None,
    golden: np.ndarray | None = None,
    beta: float | None = None,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, np.ndarray | None]:
    """The raw arrays behind ``simulate_comparisons``.

    Returns a dict with ``item_a``, ``item_b`` (n,) int64, ``y`` (n,) float64 in {0, 1},
    ``user`` (n,) int64 (annotator id), ``persona`` (n,) int64 or None, ``prompt`` (n,) or None.
    """
    if choice not in CHOICE_MODELS:
        raise ValueError(
            f"choice={choice!r} is not allowed; choose one of {', '.join(CHOICE_MODELS)}"
        )
    feats = np.asarray(features)
    if feats.ndim != 2:
        raise ValueError(f"features: expected shape (m, d), got {feats.shape}")
    m = feats.shape[0]
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if population is None and golden is None:
        raise ValueError("give a population (persona utilities) or golden rewards (one annotator)")
    if population is not None and population.dim != feats.shape[1]:
        raise ValueError(
            f"population has dim {population.dim} but features have {feats.shape[1]} columns"
        )
    if per_user is not None and per_user < 1:
        raise ValueError(f"per_user must be >= 1, got {per_user}")
    g = None if golden is None else np.asarray(golden, dtype=np.float64).ravel()
    if g is not None and g.shape[0] != m:
        raise ValueError(f"golden has {g.shape[0]} values for {m} items")
    p_ids = None if prompt_ids is None else np.asarray(prompt_ids).ravel()
    if p_ids is not None and p_ids.shape[0] != m:
        raise ValueError(f"prompt_ids has {p_ids.shape[0]} values for {m} items")

    rng = np.random.default_rng(random_state)
    pair_rng, user_rng, choice_rng = rng.spawn(3)
    a, b = pair_indices(
        n, n_items=m, pairing=pairing, prompt_ids=p_ids, golden=g, random_state=pair_rng
    )
    persona = None
    if population is not None:
        if per_user is None:
            persona = population.sample_personas(n, user_rng)
            user = persona.copy()
        else:
            n_users = -(-int(n) // int(per_user))
            annot_persona = population.sample_personas(n_users, user_rng)
            user = np.arange(n, dtype=np.int64) // int(per_user)
            persona = annot_persona[user]
        util = population.utilities(feats)  # (P, m)
        delta = util[persona, a] - util[persona, b]
        scale = None
        if choice == "bottleneck":
            # each persona's own utility sd over the m alternatives: |theta_u| cancels, so only
            # the persona's direction matters (confidence heterogeneity has no effect)
            sd = util.std(axis=1)
            used = np.unique(persona)
            flat = used[~(sd[used] > 0)]
            if flat.size:
                u = int(flat[0])
                raise ValueError(
                    f"choice='bottleneck' divides by each persona's utility sd over the "
                    f"alternatives, but persona {u} has sd {float(sd[u])} (theta_u = 0 or constant "
                    "utilities): use choice='bt' or 'thurstone'"
                )
            scale = sd[persona]
    else:
        delta = g[a] - g[b]
        scale = float(g.std()) if choice == "bottleneck" else None
        user = (
            np.zeros(n, dtype=np.int64)
            if per_user is None
            else np.arange(n, dtype=np.int64) // int(per_user)
        )
    y = sample_choices(delta, choice_rng, choice=choice, beta=beta, scale=scale)
    return {
        "item_a": a,
        "item_b": b,
        "y": y,
        "user": user,
        "persona": persona,
        "prompt": None if p_ids is None else p_ids[a],
    }


def simulate_comparisons(
    population: Population | None,
    features: np.ndarray,
    n: int,
    *,
    pairing: str = "cross_prompt",
    choice: str = "bt",
    prompt_ids: np.ndarray | None = None,
    per_user: int | None = None,
    golden: np.ndarray | None = None,
    beta: float | None = None,
    random_state: int | np.random.Generator | None = None,
):
    """Simulate ``n`` comparisons over alternatives with ``features`` (m, d).

    Each comparison draws a pair (``pairing``), an annotator (a persona drawn with the population
    weights; with ``per_user`` each annotator answers ``per_user`` consecutive comparisons) and a
    label from the annotator's ``choice`` model on ``delta = theta_u . (phi(a) - phi(b))``.
    With ``population=None`` one annotator answers on the ``golden`` reward instead
    (seed 003's protocol). ``golden`` (m,) is also what ``similar``/``diversified`` pairings rank by.
    For ``choice="bottleneck"`` the scale is the standard deviation of the annotator's utilities
    over the m alternatives (one per persona; ``golden.std()`` without a population). That sd is
    proportional to ``|theta_u|``, so under the bottleneck a persona's confidence cancels and only
    its direction matters. ``random_state`` fully determines the result.

    Returns ``PreferenceData`` with ``item_a``, ``item_b`` (rows of ``features``), ``user``
    (annotator id) and ``prompt`` (prompt id of ``a``, when ``prompt_ids`` is given).
    """
    from signrm.data import PreferenceData

    arr = simulate_arrays(
        population,
        features,
        n,
        pairing=pairing,
        choice=choice,
        prompt_ids=prompt_ids,
        per_user=per_user,
        golden=golden,
        beta=beta,
        random_state=random_state,
    )
    return PreferenceData.from_items(
        arr["item_a"],
        arr["item_b"],
        arr["y"],
        item_features=features,
        user=arr["user"],
        prompt=arr["prompt"],
    )
