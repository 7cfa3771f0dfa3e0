"""Tests of signrm.simulate: populations, choice models, pairing, comparisons, the twin panel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from signrm.simulate import (
    POPULATION_KINDS,
    Population,
    choice_probability,
    load_twin_panel,
    make_population,
    pair_indices,
    simulate_arrays,
    simulate_comparisons,
)
from signrm.simulate._twin_spec import TASTE_MEAN
from signrm.simulate.twin_panel import data_dir

SYMMETRIC = ["gaussian", "laplace", "two_point", "exp_two_point"]


def _pop_prob(pop, D):
    return expit(D @ pop.thetas.T) @ pop.weights


@pytest.mark.parametrize("kind", SYMMETRIC)
def test_symmetric_population_orders_like_theta_bar(kind):
    pop = make_population(
        kind, n_personas=100, dim=6, spread=2.0, scale_dist="lognormal", random_state=1
    )
    assert pop.thetas.shape == (100, 6)
    assert np.isclose(pop.weights.sum(), 1.0)
    tb = pop.mean_utility()
    mean = np.zeros(6)
    mean[:2] = 1.0
    # antithetic pairs sharing one confidence: theta_bar is exactly along `mean`
    assert np.degrees(np.arccos(tb @ mean / np.linalg.norm(tb) / np.linalg.norm(mean))) < 1e-6
    D = np.random.default_rng(0).standard_normal((5000, 6))
    p = _pop_prob(pop, D)
    assert np.all((p > 0.5) == (D @ tb > 0))
    # heterogeneity in direction and in confidence
    assert pop.angular_spread() > 20
    conf = pop.confidences()
    assert conf.max() / conf.min() > 5


def test_correlated_confidence_breaks_the_ordering_condition():
    pop = make_population(
        "exp_two_point",
        n_personas=400,
        dim=4,
        spread=2.0,
        scale_dist="lognormal",
        scale_sigma=1.5,
        scale_corr="correlated",
        random_state=0,
    )
    assert not pop.info["symmetric"]
    D = np.random.default_rng(0).standard_normal((20000, 4))
    p = _pop_prob(pop, D)
    assert np.mean((p > 0.5) != (D @ pop.mean_utility() > 0)) > 0.01


@pytest.mark.parametrize("kind", POPULATION_KINDS)
def test_every_kind_is_seeded(kind):
    a = make_population(kind, n_personas=20, dim=5, random_state=3)
    b = make_population(kind, n_personas=20, dim=5, random_state=3)
    np.testing.assert_array_equal(a.thetas, b.thetas)
    assert np.isfinite(a.mean_utility()).all()


def test_bad_population_kind_names_allowed_values():
    with pytest.raises(ValueError, match="kind='cauchy'.*gaussian"):
        make_population("cauchy")
    with pytest.raises(ValueError, match="scale_dist"):
        make_population("gaussian", scale_dist="gamma")


@pytest.mark.parametrize("beta,lo,hi", [(0.5, 0.33, 0.42), (10.0, 0.03, 0.08)])
def test_bottleneck_error_rates_match_seed_003(beta, lo, hi):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(200000)
    delta = g[:100000] - g[100000:]
    p = choice_probability(delta, choice="bottleneck", beta=beta, scale=g.std())
    err = np.mean(np.where(delta > 0, 1 - p, p))
    assert lo < err < hi


def _bottleneck_truth(pop, X, arr, beta):
    """Per-comparison delta and P(correct) = sigmoid(beta |delta| / sd_u) of each persona."""
    util = pop.utilities(X)
    persona, a, b = arr["persona"], arr["item_a"], arr["item_b"]
    delta = util[persona, a] - util[persona, b]
    return delta, expit(beta * np.abs(delta) / util.std(axis=1)[persona])


def test_bottleneck_with_a_population_matches_its_definition():
    # seed 003's annotator answering for heterogeneous personas (used to raise TypeError)
    pop = make_population("gaussian", n_personas=20, dim=4, scale_dist="lognormal", random_state=0)
    X = np.random.default_rng(0).standard_normal((400, 4))
    n, errors = 20000, []
    for beta in (0.5, 1.0, 3.0, 10.0):
        arr = simulate_arrays(pop, X, n, choice="bottleneck", beta=beta, random_state=1)
        delta, p_correct = _bottleneck_truth(pop, X, arr, beta)
        err = np.mean((2 * arr["y"] - 1) * np.sign(delta) < 0)
        q = 1.0 - p_correct  # each label is wrong with probability q_i, independently
        se = np.sqrt(np.sum(q * (1 - q))) / n
        assert abs(err - q.mean()) < 4 * se, (beta, err, q.mean(), se)
        errors.append(err)
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:])), errors  # falls as beta grows
    assert errors[0] > 0.3 and errors[-1] < 0.1
    data = simulate_comparisons(pop, X, 50, choice="bottleneck", beta=1, random_state=0)
    assert len(data) == 50


def test_bottleneck_cancels_each_personas_confidence():
    pop = make_population("laplace", n_personas=30, dim=3, scale_dist="none", random_state=2)
    conf = np.random.default_rng(3).lognormal(0.0, 1.5, pop.n_personas)
    rescaled = Population(pop.thetas * conf[:, None], pop.weights)
    X = np.random.default_rng(4).standard_normal((300, 3))
    kw = dict(choice="bottleneck", beta=1.0, random_state=5)
    same = simulate_arrays(pop, X, 5000, **kw)["y"], simulate_arrays(rescaled, X, 5000, **kw)["y"]
    np.testing.assert_array_equal(*same)
    bt = [simulate_arrays(q, X, 5000, random_state=5)["y"] for q in (pop, rescaled)]
    assert np.mean(bt[0] != bt[1]) > 0.05  # whereas BT labels depend on confidence


def test_bottleneck_scale_per_comparison_is_validated():
    d = np.array([-2.0, 0.5, 1.0])
    per = choice_probability(d, choice="bottleneck", beta=2.0, scale=np.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(per, [1 - expit(4.0), expit(0.5), expit(0.5)])
    with pytest.raises(ValueError, match="scale must be finite and > 0.*1 of 3.*position 1"):
        choice_probability(d, choice="bottleneck", beta=1, scale=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="one value per comparison"):
        choice_probability(d, choice="bottleneck", beta=1, scale=np.ones(2))
    with pytest.raises(ValueError, match="scale=-1.0 is not allowed"):
        choice_probability(d, choice="bottleneck", beta=1, scale=-1.0)
    for beta in ("1", [1], 0, True):
        with pytest.raises(ValueError, match="beta=.* is not allowed; expected a positive number"):
            choice_probability(d, choice="bottleneck", beta=beta)
    flat = Population(np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match="persona 0 has sd 0.0"):
        simulate_arrays(flat, np.ones((5, 3)), 10, choice="bottleneck", beta=1, random_state=0)


@pytest.mark.parametrize("kind", SYMMETRIC)
def test_odd_personas_in_a_symmetric_family_are_refused(kind):
    with pytest.raises(ValueError, match="n_personas=21 is odd.*even n_personas"):
        make_population(kind, n_personas=21, dim=3, random_state=0)
    pop = make_population(kind, n_personas=22, dim=3, scale_dist="lognormal", random_state=0)
    # every persona has its mirror: theta_i + theta_{i+11} = 2 s_i (1, 1, 0)
    pair_sum = pop.thetas[:11] + pop.thetas[11:]
    np.testing.assert_allclose(pair_sum[:, 0], pair_sum[:, 1])
    np.testing.assert_allclose(pair_sum[:, 2], 0.0, atol=1e-12)
    assert pop.info["symmetric"] and pop.info["antithetic"]
    assert make_population(kind, n_personas=21, dim=3, antithetic=False).n_personas == 21


def test_odd_personas_elsewhere_are_fine():
    for kind in ("skewed", "mixture", "homogeneous"):
        assert make_population(kind, n_personas=21, dim=3, random_state=0).n_personas == 21


def test_choice_models():
    d = np.array([-2.0, 0.0, 2.0])
    np.testing.assert_allclose(choice_probability(d, choice="bt"), expit(d))
    pt = choice_probability(d, choice="thurstone")
    assert pt[1] == 0.5 and pt[2] > expit(2.0)
    with pytest.raises(ValueError, match="beta"):
        choice_probability(d, choice="bottleneck")
    with pytest.raises(ValueError, match="bt, thurstone, bottleneck"):
        choice_probability(d, choice="logit")


def test_pairings():
    prompt_ids = np.repeat(np.arange(30), 10)
    golden = np.random.default_rng(1).standard_normal(300)
    a, b = pair_indices(5000, n_items=300, prompt_ids=prompt_ids, random_state=0)
    assert np.all(a != b) and np.all(prompt_ids[a] != prompt_ids[b])
    a, b = pair_indices(
        5000, n_items=300, pairing="same_prompt", prompt_ids=prompt_ids, random_state=0
    )
    assert np.all(a != b) and np.all(prompt_ids[a] == prompt_ids[b])
    for pairing, ranks in (("similar", {4, 5}), ("diversified", {0, 9})):
        a, b = pair_indices(
            500,
            n_items=300,
            pairing=pairing,
            prompt_ids=prompt_ids,
            golden=golden,
            random_state=0,
        )
        assert np.all(prompt_ids[a] == prompt_ids[b])
        for i, j in zip(a[:50], b[:50]):
            grp = np.flatnonzero(prompt_ids == prompt_ids[i])
            order = list(grp[np.argsort(-golden[grp])])
            assert {order.index(i), order.index(j)} == ranks
        assert 0.4 < np.mean(golden[a] > golden[b]) < 0.6  # sides are shuffled
    with pytest.raises(ValueError, match="golden"):
        pair_indices(10, n_items=300, pairing="similar", prompt_ids=prompt_ids)
    with pytest.raises(ValueError, match="cross_prompt, same_prompt"):
        pair_indices(10, n_items=300, pairing="random")


def test_simulate_comparisons_contract():
    pop = make_population("gaussian", n_personas=10, dim=3, random_state=0)
    X = np.random.default_rng(0).standard_normal((50, 3))
    prompt_ids = np.repeat(np.arange(10), 5)
    data = simulate_comparisons(pop, X, 400, prompt_ids=prompt_ids, per_user=40, random_state=7)
    assert len(data) == 400
    np.testing.assert_array_equal(data.xa, X[data.item_a])
    np.testing.assert_array_equal(data.xb, X[data.item_b])
    np.testing.assert_array_equal(data.prompt, prompt_ids[data.item_a])
    assert set(np.unique(data.user)) == set(range(10))  # 400 / 40 annotators
    again = simulate_comparisons(pop, X, 400, prompt_ids=prompt_ids, per_user=40, random_state=7)
    np.testing.assert_array_equal(data.y, again.y)
    np.testing.assert_array_equal(data.item_a, again.item_a)
    # labels follow each persona's BT probabilities
    arr = simulate_arrays(pop, X, 20000, random_state=1)
    D = X[arr["item_a"]] - X[arr["item_b"]]
    p = expit(np.sum(pop.thetas[arr["persona"]] * D, axis=1))
    assert abs(arr["y"].mean() - p.mean()) < 0.015
    with pytest.raises(ValueError, match="dim"):
        simulate_comparisons(pop, np.zeros((5, 4)), 10)


def test_golden_annotator_without_population():
    X = np.random.default_rng(0).standard_normal((100, 2))
    golden = X[:, 0]
    data = simulate_comparisons(
        None, X, 3000, golden=golden, choice="bottleneck", beta=10, random_state=0
    )
    agree = np.mean((2 * data.y - 1) * np.sign(golden[data.item_a] - golden[data.item_b]) > 0)
    assert agree > 0.9


def test_twin_panel_shipped_and_consistent():
    size = sum(p.stat().st_size for p in data_dir().iterdir())
    assert size <= 10e6
    tp = load_twin_panel()
    m = tp.n_alternatives
    assert tp.embeddings.shape == (m, 384) and tp.embeddings.dtype == np.float32
    assert len(tp.prompts) == len(tp.responses) == m == tp.prompt_ids.shape[0]
    assert m >= 5000
    assert tp.population.n_personas == 200 and len(tp.axes) == 6
    assert tp.manifest["seed"] and "versions" in tp.manifest
    # theta_bar lies in the span of the taste axes
    tb = tp.population.mean_utility()
    A = tp.axis_vectors.astype(np.float64)
    np.testing.assert_allclose(A.T @ (A @ tb), tb, atol=1e-6 * np.linalg.norm(tb))
    # the symmetric variant is exactly symmetric: mirrored personas sum to twice their centre
    w, c = tp.persona_weights, tp.persona_confidence
    half = len(w) // 2
    np.testing.assert_allclose(c[:half], c[half:], rtol=1e-6)
    np.testing.assert_allclose(
        w[:half] + w[half:], 2 * np.broadcast_to(TASTE_MEAN, (half, 6)), atol=1e-5
    )
    # heterogeneity in direction and in confidence
    assert tp.population.angular_spread() > 30
    assert np.percentile(c, 95) / np.percentile(c, 5) > 5
    # golden reward: finite, and own answers beat off-topic ones on average
    g = tp.golden(tp.alt_prompt, tp.alt_response)
    assert np.isfinite(g).all()
    own = tp.base_prompt[tp.response_base[tp.alt_response]] == tp.alt_prompt
    assert g[own].mean() > g[~own].mean() + 1.0
    assert all(tp.candidate_pool(p).size >= 10 for p in range(len(tp.prompt_texts)))
    assert len(tp.persona_descriptions()) == 200


def test_twin_panel_asymmetric_variant():
    tp = load_twin_panel("asymmetric")
    assert tp.population.n_personas == 200
    assert not tp.population.info["symmetric"]
    with pytest.raises(ValueError, match="symmetric, asymmetric"):
        load_twin_panel("other")


def _methods_example():
    """METHODS.md section 2's worked example (d = 8) and items X with D ~ N(0, I)."""
    pop = make_population(
        "exp_two_point",
        n_personas=400,
        dim=8,
        spread=3 / np.sqrt(2),
        scale_dist="none",
        random_state=0,
    )
    return pop, np.random.default_rng(0).standard_normal((20000, 8)) / np.sqrt(2)


def test_population_diagnostics_on_methods_example():
    from signrm.simulate import population_diagnostics

    pop, X = _methods_example()
    diag = population_diagnostics(pop, X, n_pairs=40_000)
    assert diag["condition_rate"] == 1.0
    assert 9 < diag["bt_bias_deg"] < 16  # METHODS.md: pooled MLE 11-14 degrees off


# --- the battery of annotator pools -------------------------------------------------------------


def _ordering_condition_rate(pop, D):
    return float(np.mean((_pop_prob(pop, D) > 0.5) == (D @ pop.mean_utility() > 0)))


@pytest.mark.parametrize("dim", [8, 384])
def test_battery_panels_are_seeded_and_shaped(dim):
    from signrm.simulate import BATTERY_NAMES, battery, make_battery_population

    panels = battery(0.5, dim, random_state=3)
    assert tuple(panels) == BATTERY_NAMES
    for name, pop in panels.items():
        again = make_battery_population(name, 0.5, dim, random_state=3)
        np.testing.assert_array_equal(pop.thetas, again.thetas)
        assert pop.thetas.shape == (200, dim) and np.isfinite(pop.thetas).all()
        assert np.all(pop.thetas[:, 6:] == 0)  # tastes live on the first 6 coordinates
        assert pop.info["battery"] == name and pop.info["coupling"] == 0.5
    X = np.random.default_rng(0).standard_normal((300, dim))
    data = simulate_comparisons(panels["experts_crowd"], X, 500, random_state=0)
    assert len(data) == 500 and data.n_features == dim


def test_battery_coupling_changes_only_confidence():
    from signrm.simulate import BATTERY_NAMES, make_battery_population

    for name in BATTERY_NAMES:
        lo, hi = (make_battery_population(name, c, 8, random_state=1) for c in (0.0, 1.0))
        # same tastes: each persona's direction is unchanged, only its norm moves
        cos = np.sum(lo.thetas * hi.thetas, axis=1) / (lo.confidences() * hi.confidences())
        np.testing.assert_allclose(cos, 1.0, atol=1e-12)
        # the marginal of confidence does not depend on coupling (log scale: Pareto tails)
        log_sd = [np.log(q.confidences()).std() for q in (lo, hi)]
        assert 0.7 < log_sd[0] / log_sd[1] < 1.4, (name, log_sd)


def test_decisive_minority_is_the_confident_group_only_when_coupled():
    from signrm.simulate import make_battery_population

    ratios = {}
    for c in (0.0, 1.0):
        pop = make_battery_population("decisive_minority", c, 8, random_state=0)
        group = pop.info["group"]
        assert group.mean() == 0.15
        s = pop.info["persona_confidence"]
        np.testing.assert_allclose(s.mean(), 1.0)
        ratios[c] = s[group].mean() / s[~group].mean()
        if c == 1.0:  # fully tied: the minority holds the most decisive 15 % of the pool
            assert s[group].min() > s[~group].max()
    assert ratios[1.0] / ratios[0.0] > 3  # lognormal(1) top 15 % vs rest: about 5x
    assert 3 < ratios[1.0] < 10


@pytest.mark.parametrize("coupling", [0.0, 0.5, 1.0])
def test_battery_symmetric_panel_keeps_the_ordering_condition(coupling):
    from signrm.simulate import make_battery_population

    D = np.random.default_rng(0).standard_normal((20000, 8))
    pop = make_battery_population("symmetric", coupling, 8, random_state=2)
    assert pop.info["symmetric"]
    assert _ordering_condition_rate(pop, D) == 1.0
    heavy = make_battery_population("heavy_tailed", coupling, 8, random_state=2)
    assert heavy.info["symmetric"] == (coupling == 0.0)
    if coupling == 0.0:
        assert _ordering_condition_rate(heavy, D) == 1.0
    else:  # decisive axis-0 lovers: the condition fails on a measurable share of pairs
        assert _ordering_condition_rate(heavy, D) < 0.99


def test_battery_rejects_bad_names_and_couplings():
    from signrm.simulate import make_battery_population

    with pytest.raises(ValueError, match="battery panel 'cauchy' is not allowed.*symmetric"):
        make_battery_population("cauchy")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="coupling=.* expected a number in \\[0, 1\\]"):
            make_battery_population("skewed", bad)
    with pytest.raises(ValueError, match="n_personas=201 is odd"):
        make_battery_population("symmetric", n_personas=201)
    with pytest.raises(ValueError, match="dim >= 2"):
        make_battery_population("skewed", dim=1)


def test_population_bt_bias_matches_diagnostics_and_takes_a_pair_sampler():
    from signrm.simulate import population_bt_bias, population_diagnostics

    pop, X = _methods_example()
    bias = population_bt_bias(pop, X, n_pairs=40_000)
    assert bias == population_diagnostics(pop, X, n_pairs=40_000)["bt_bias_deg"]
    gauss = population_bt_bias(pop, lambda n, rng: rng.standard_normal((n, 8)), n_pairs=40_000)
    assert 9 < gauss < 16 and abs(gauss - bias) < 1.5  # METHODS.md: 11-14 degrees
    homo = make_population("homogeneous", n_personas=10, dim=8, scale_dist="none")
    assert population_bt_bias(homo, X, n_pairs=5000) < 1e-4  # BT is exact without heterogeneity
    with pytest.raises(ValueError, match="pair sampler: expected differences of shape"):
        population_bt_bias(pop, lambda n, rng: rng.standard_normal((n, 3)).T, n_pairs=100)


def test_twin_panel_battery_variants():
    from signrm.simulate import BATTERY_NAMES, TWIN_VARIANTS

    assert {f"battery-{b}" for b in BATTERY_NAMES} <= set(TWIN_VARIANTS)
    tp = load_twin_panel("battery-decisive_minority@0.3")
    again = load_twin_panel("battery-decisive_minority@0.3")
    np.testing.assert_array_equal(tp.population.thetas, again.population.thetas)
    assert tp.population.n_personas == 200 and tp.population.info["coupling"] == 0.3
    assert tp.persona_weights.shape == (200, 6) and len(tp.persona_descriptions()) == 200
    tb = tp.population.mean_utility()
    A = tp.axis_vectors.astype(np.float64)
    np.testing.assert_allclose(A.T @ (A @ tb), tb, atol=1e-6 * np.linalg.norm(tb))
    assert load_twin_panel("battery-skewed").population.info["coupling"] == 0.7  # the default
    sym = load_twin_panel("battery-symmetric@1")
    assert sym.population.info["symmetric"]
    D = np.random.default_rng(0).standard_normal((5000, 384)) * 0.05
    assert _ordering_condition_rate(sym.population, D) == 1.0
    with pytest.raises(ValueError, match="coupling after '@' must be a number"):
        load_twin_panel("battery-skewed@high")
    with pytest.raises(ValueError, match="battery panel 'other' is not allowed"):
        load_twin_panel("battery-other")
