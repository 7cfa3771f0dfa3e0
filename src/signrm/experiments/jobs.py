"""Job functions: one (setting, seed) -> one row of metrics. A seed fully determines a job.

Random streams are derived from ``(seed, purpose, ...)`` with ``numpy.random.SeedSequence``, so the
data of a given (seed, n) are the same for every estimator: estimators are compared on the same
comparisons, and a job's result does not depend on which worker ran it or in which order.
"""

from __future__ import annotations

import functools
import time
import zlib
from typing import Any

import numpy as np

__all__ = ["run_job", "make_estimator", "stream", "check_candidates", "synthetic_population"]


def stream(seed: int, *parts: Any) -> np.random.Generator:
    """A Generator determined by ``seed`` and the labels ``parts`` (strings or ints)."""
    words = [int(seed)] + [
        int(p) if isinstance(p, (int, np.integer)) else zlib.crc32(str(p).encode()) for p in parts
    ]
    return np.random.default_rng(np.random.SeedSequence(words))


def make_estimator(spec: dict, seed: int):
    """Instantiate ``spec = {"class": name, "params": {...}}`` with ``random_state=seed``.

    ``name`` is a :mod:`signrm.registry` name (``"bt"``) or a class name (``"BradleyTerry"``).
    """
    from signrm import registry

    params = dict(spec.get("params") or {})
    if "random_state" in registry.parameter_names(spec["class"]):
        params.setdefault("random_state", int(seed))
    return registry.make_estimator(spec["class"], **params)


def _eval_pairs(n_items: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = stream(seed, "eval-pairs")
    a = rng.integers(0, n_items, n_pairs)
    b = (a + rng.integers(1, n_items, n_pairs)) % n_items
    return a, b


def _ordering_metrics(est, X: np.ndarray, theta_bar: np.ndarray, seed: int, n_pairs: int) -> dict:
    from signrm.metrics import angular_error, disagreement_rate

    r_hat = np.asarray(est.reward(X), dtype=np.float64)
    r_bar = X.astype(np.float64) @ theta_bar
    a, b = _eval_pairs(X.shape[0], n_pairs, seed)
    out = {"disagreement": disagreement_rate(r_hat[a] - r_hat[b], r_bar[a] - r_bar[b])}
    coef = getattr(est, "coef_", None)
    out["angular_error_deg"] = angular_error(coef, theta_bar) if coef is not None else float("nan")
    return out


def _job_sign_paper(setting: dict, seed: int, spec: dict) -> dict:
    from signrm.simulate import load_twin_panel, simulate_comparisons

    panel = load_twin_panel(setting["panel"])
    X = panel.embeddings
    pop = panel.population
    data = simulate_comparisons(
        pop,
        X,
        int(setting["n"]),
        pairing=setting["pairing"],
        choice=setting["choice"],
        beta=setting.get("beta"),
        prompt_ids=panel.prompt_ids if setting["pairing"] != "cross_prompt" else None,
        per_user=setting.get("per_user"),
        random_state=stream(seed, "data", setting["panel"], int(setting["n"])),
    )
    est = make_estimator(spec, seed)
    t0 = time.perf_counter()
    est.fit(data)
    fit_s = time.perf_counter() - t0
    out = _ordering_metrics(est, X, pop.mean_utility(), seed, int(setting["n_eval_pairs"]))
    out["fit_seconds"] = fit_s
    out["label_agreement"] = float(
        np.mean((2 * data.y - 1) * np.sign(data.differences @ pop.mean_utility()) > 0)
    )
    return out


def synthetic_population(setting: dict):
    """The population of a ``synthetic`` setting (determined by ``population_seed``)."""
    from signrm.simulate import make_population

    return make_population(
        setting["population"],
        n_personas=int(setting["n_personas"]),
        dim=int(setting["dim"]),
        spread=float(setting["spread"]),
        spread_dims=setting.get("spread_dims"),
        scale_dist=setting["scale_dist"],
        scale_sigma=float(setting["scale_sigma"]),
        scale_corr=setting["scale_corr"],
        random_state=stream(int(setting["population_seed"]), "population"),
    )


def _job_synthetic(setting: dict, seed: int, spec: dict) -> dict:
    from signrm.simulate import simulate_comparisons

    dim = int(setting["dim"])
    pop = synthetic_population(setting)
    n = int(setting["n"])
    # Items with phi ~ N(0, I / 2), so differences D ~ N(0, I) (METHODS.md section 2).
    n_items = max(4000, n)
    X = stream(seed, "items", dim, n_items).standard_normal((n_items, dim)) / np.sqrt(2.0)
    data = simulate_comparisons(
        pop,
        X,
        n,
        choice=setting["choice"],
        beta=setting.get("beta"),
        random_state=stream(seed, "data", n),
    )
    est = make_estimator(spec, seed)
    t0 = time.perf_counter()
    est.fit(data)
    out = _ordering_metrics(est, X, pop.mean_utility(), seed, int(setting["n_eval_pairs"]))
    out["fit_seconds"] = time.perf_counter() - t0
    return out


@functools.lru_cache(maxsize=64)
def _battery_population(name: str, coupling: float, dim: int, n_personas: int, seed: int):
    """A battery panel and its population BT and sign biases (degrees; infinite-data angles)."""
    from signrm.simulate.battery import make_battery_population
    from signrm.simulate.diagnostics import population_bt_bias, population_sign_bias

    pop = make_battery_population(
        name, coupling, dim, n_personas=n_personas, random_state=stream(seed, "battery", name)
    )
    pairs = lambda n, rng: rng.standard_normal((n, dim))  # noqa: E731  D ~ N(0, I)
    bt = population_bt_bias(pop, pairs, random_state=stream(seed, "bias", name))
    return pop, bt, population_sign_bias(pop, pairs, random_state=stream(seed, "bias", name))


def _job_battery(setting: dict, seed: int, spec: dict) -> dict:
    """A battery panel on synthetic features (D ~ N(0, I)), with its population BT bias."""
    from signrm.simulate import simulate_comparisons

    dim = int(setting["dim"])
    pop, bias, sign_bias = _battery_population(
        setting["panel"], float(setting["coupling"]), dim, int(setting["n_personas"]),
        int(setting["population_seed"]),
    )  # fmt: skip
    n = int(setting["n"])
    n_items = max(4000, n)
    X = stream(seed, "items", dim, n_items).standard_normal((n_items, dim)) / np.sqrt(2.0)
    data = simulate_comparisons(
        pop, X, n, choice=setting["choice"], beta=setting.get("beta"),
        random_state=stream(seed, "data", n),
    )  # fmt: skip
    est = make_estimator(spec, seed)
    t0 = time.perf_counter()
    est.fit(data)
    out = _ordering_metrics(est, X, pop.mean_utility(), seed, int(setting["n_eval_pairs"]))
    out["fit_seconds"] = time.perf_counter() - t0
    out["bt_bias_deg"] = float(bias)
    out["sign_bias_deg"] = float(sign_bias)
    out["panel_weight"] = float(getattr(est, "panel_weight_", float("nan")))
    return out


def _n_test_prompts(n_prompts: int, test_fraction: float) -> int:
    return max(1, int(round(test_fraction * n_prompts)))


def check_candidates(setting: dict) -> None:
    """Check that the panel's candidate pools can supply a bt_vs_clf setting's candidates.

    Held-out prompts need ``test_candidates`` candidates each (up to ``test_fraction`` of the
    prompts, among those whose pool is large enough); at least one of the remaining prompts needs
    ``train_candidates``. The checks pass exactly when every seed's split can supply both (the
    worst split holds out the prompts with the largest pools). Raises ``ValueError`` naming the
    key and its allowed maximum.
    """
    from signrm.simulate import load_twin_panel

    panel = load_twin_panel(setting["panel"])
    sizes = np.array([panel.candidate_pool(p).size for p in range(len(panel.prompt_texts))])
    k_train, k_test = int(setting["train_candidates"]), int(setting["test_candidates"])
    largest = int(sizes.max())
    for key, k in (("test_candidates", k_test), ("train_candidates", k_train)):
        if k > largest:
            raise ValueError(
                f"{key}={k} is not allowed: the largest candidate pool of panel "
                f"{setting['panel']!r} has {largest} responses; allowed values: 2 to {largest}"
            )
    n_test = min(
        _n_test_prompts(sizes.size, float(setting["test_fraction"])), int((sizes >= k_test).sum())
    )
    desc = np.sort(sizes)[::-1]
    max_train = int(desc[n_test]) if n_test < desc.size else 0
    if k_train > max_train:
        raise ValueError(
            f"train_candidates={k_train} is not allowed: up to {n_test} prompts are held out "
            f"(test_candidates={k_test}, test_fraction={setting['test_fraction']}), which can leave "
            f"no training prompt with {k_train} candidates; allowed values: 2 to {max_train}"
        )


def _job_bt_vs_clf(setting: dict, seed: int, spec: dict) -> dict:
    """Seed 003's protocol on the twin panel's texts with the golden reward (see docs)."""
    from signrm.data import PreferenceData
    from signrm.metrics import best_of_n, order_consistency
    from signrm.simulate import load_twin_panel
    from signrm.simulate.choice import sample_choices

    panel = load_twin_panel(setting["panel"])
    k_train = int(setting["train_candidates"])
    k_test = int(setting["test_candidates"])
    n = int(setting["n"])
    n_prompts = len(panel.prompt_texts)
    pools = [panel.candidate_pool(p) for p in range(n_prompts)]
    split_rng = stream(seed, "split")
    order = split_rng.permutation(n_prompts)
    eligible_test = [p for p in order if pools[p].size >= k_test]
    n_test = _n_test_prompts(n_prompts, float(setting["test_fraction"]))
    test_prompts = np.array(sorted(eligible_test[:n_test]))
    train_prompts = np.array([p for p in range(n_prompts) if p not in set(test_prompts.tolist())])
    train_prompts = train_prompts[[pools[p].size >= k_train for p in train_prompts]]

    # Training annotations: each draws a prompt and k_train candidate responses, then a pair.
    rng = stream(seed, "annotations", n)
    prompts = rng.choice(train_prompts, size=n)
    cand = np.stack([rng.choice(pools[p], size=k_train, replace=False) for p in prompts])
    g = panel.golden(np.repeat(prompts, k_train), cand.ravel()).reshape(n, k_train)
    rank = np.argsort(-g, axis=1, kind="stable")
    rows = np.arange(n)
    if setting["candidates"] == "random":
        i = rng.integers(0, k_train, n)
        j = (i + rng.integers(1, k_train, n)) % k_train
    elif setting["candidates"] == "similar":
        i, j = rank[:, k_train // 2 - 1], rank[:, k_train // 2]
    else:
        i, j = rank[:, 0], rank[:, -1]
    pa, ra, ga = prompts, cand[rows, i], g[rows, i]
    pb, rb, gb = prompts.copy(), cand[rows, j], g[rows, j]
    if setting["pairing"] == "cross_prompt":
        # seed 003: the same responses, re-paired across prompts (b of another annotation).
        perm = rng.permutation(n)
        pb, rb, gb = pb[perm], rb[perm], gb[perm]
    swap = rng.random(n) < 0.5
    pa, pb = np.where(swap, pb, pa), np.where(swap, pa, pb)
    ra, rb = np.where(swap, rb, ra), np.where(swap, ra, rb)
    ga, gb = np.where(swap, gb, ga), np.where(swap, ga, gb)
    y = sample_choices(
        ga - gb, rng, choice="bottleneck", beta=float(setting["beta"]), scale=float(g.std())
    )
    data = PreferenceData.from_arrays(panel.features(pa, ra), panel.features(pb, rb), y, prompt=pa)
    est = make_estimator(spec, seed)
    t0 = time.perf_counter()
    est.fit(data)
    fit_s = time.perf_counter() - t0

    # Test: k_test candidates per held-out prompt; best-of-N over all of them.
    trng = stream(seed, "test")
    tp = np.repeat(test_prompts, k_test)
    tr = np.concatenate([trng.choice(pools[p], size=k_test, replace=False) for p in test_prompts])
    r_true = panel.golden(tp, tr)
    r_hat = np.asarray(est.reward(panel.features(tp, tr)), dtype=np.float64)
    out = {
        "bon_improvement": best_of_n(r_hat, r_true, tp, n=k_test, n_repeats=1, random_state=0),
        "bon16_improvement": best_of_n(
            r_hat, r_true, tp, n=min(16, k_test), n_repeats=4, random_state=0
        ),
        "label_error_rate": float(np.mean((2 * y - 1) * np.sign(ga - gb) < 0)),
        "mean_abs_golden_diff": float(np.mean(np.abs(ga - gb)) / g.std()),
        "fit_seconds": fit_s,
    }
    # Held-out order consistency on fresh same-prompt test pairs.
    a_idx = trng.integers(0, tp.size, 5000)
    b_idx = (a_idx // k_test) * k_test + (a_idx % k_test + trng.integers(1, k_test, 5000)) % k_test
    out["test_order_consistency"] = order_consistency(
        r_hat[a_idx] - r_hat[b_idx], (r_true[a_idx] > r_true[b_idx]).astype(float)
    )
    return out


_JOBS = {
    "battery": _job_battery,
    "sign_paper": _job_sign_paper,
    "synthetic": _job_synthetic,
    "bt_vs_clf": _job_bt_vs_clf,
}


def run_job(job: dict, threads: int | None = None) -> dict:
    """Run one job dict (from ``ExperimentConfig.jobs()``); returns its result row."""
    if threads:
        try:
            import torch

            torch.set_num_threads(int(threads))
        except ImportError:  # pragma: no cover
            pass
    t0 = time.perf_counter()
    metrics = _JOBS[job["kind"]](job["setting"], int(job["seed"]), job["estimator_spec"])
    row = {
        "key": job["key"],
        "experiment": job["experiment"],
        "kind": job["kind"],
        "seed": int(job["seed"]),
        **{k: v for k, v in job["setting"].items()},
        **metrics,
        "job_seconds": time.perf_counter() - t0,
    }
    return row
