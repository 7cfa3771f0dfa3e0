"""Robustness sweep: the default SignEstimator() (with and without its panel step) against RLHF
on synthetic populations outside the battery (``signrm.simulate.make_population``).

Ten populations (symmetric and asymmetric directions, several confidence laws, d = 4 ... 32),
each at n = 20,000 by 200 annotators and n = 50,000 by 500, seeds 0 and 1; features
D ~ N(0, I). Prints one line per fit (angular errors in degrees to theta_bar: BT, the sign fit
without the panel step, the default with the latent-class panel model, the NPMLE mixture alone,
the default) and a summary of the ratios to BT, and writes them to
``benchmarks/results/robustness_sweep.txt``. About 8 minutes on one core.

    python benchmarks/robustness_sweep.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import signrm
from signrm.metrics import angular_error
from signrm.simulate import make_population, simulate_comparisons

POPULATIONS = [
    dict(kind="gaussian", dim=8, spread=1.0, spread_dims=2, scale_dist="lognormal"),
    dict(kind="gaussian", dim=16, spread=0.7, scale_dist="lognormal"),
    dict(kind="laplace", dim=8, spread=1.0, spread_dims=2, scale_dist="lognormal"),
    dict(kind="mixture", dim=8, spread=1.5, scale_dist="lognormal", scale_corr="correlated"),
    dict(kind="skewed", dim=8, spread=1.0, scale_dist="exponential", scale_corr="correlated"),
    dict(kind="exp_two_point", dim=8, spread=2.12, scale_dist="none"),
    dict(kind="gaussian", dim=32, spread=1.0, spread_dims=4, scale_dist="lognormal"),
    dict(kind="mixture", dim=4, spread=2.0, scale_dist="two_point"),
    dict(kind="homogeneous", dim=8, scale_dist="lognormal"),
    dict(kind="gaussian", dim=8, spread=1.0, scale_dist="lognormal", scale_corr="correlated"),
]
SIZES = [(20_000, 200), (50_000, 500)]


def main() -> None:
    lines, table = [], []
    for cfg in POPULATIONS:
        for n, people in SIZES:
            for seed in (0, 1):
                pop = make_population(n_personas=people, random_state=seed, **cfg)
                d = cfg["dim"]
                X = np.random.default_rng(seed).standard_normal((max(4000, n), d)) / np.sqrt(2)
                data = simulate_comparisons(pop, X, n, choice="bt", random_state=seed)
                theta_bar = pop.mean_utility()
                t0 = time.perf_counter()
                default = signrm.SignEstimator().fit(data)
                seconds = time.perf_counter() - t0
                models = {
                    "bt": signrm.BradleyTerry().fit(data),
                    "sign_panel_off": signrm.SignEstimator(panel="off").fit(data),
                    "latent_class_panel": signrm.SignEstimator(panel_model="latent_class").fit(
                        data
                    ),
                    "npmle_alone": signrm.NonparametricMixtureBT().fit(data),
                    "default": default,
                }
                errs = {k: angular_error(m.coef_, theta_bar) for k, m in models.items()}
                table.append(list(errs.values()))
                line = (
                    f"{cfg['kind']} d={d} {cfg.get('scale_dist')} "
                    f"{cfg.get('scale_corr', 'independent')} n={n} people={people} seed={seed} "
                    + " ".join(f"{k}={v:.2f}" for k, v in errs.items())
                    + f" panel_weight={default.panel_weight_:.2f} fit_s={seconds:.1f}"
                )
                print(line, flush=True)
                lines.append(line)
    ratios = np.array(table) / np.array(table)[:, :1]
    lines.append("angle / BT's over all fits:")
    for j, name in enumerate(models):
        r = ratios[:, j]
        lines.append(
            f"  {name}: mean {r.mean():.2f} median {np.median(r):.2f} max {r.max():.2f} "
            f"above 1.1x in {(r > 1.1).sum()} of {r.size}"
        )
    print("\n".join(lines[-len(models) - 1 :]))
    out = Path("benchmarks/results/robustness_sweep.txt")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
