"""Robustness sweep: the default SignEstimator() (with and without its panel step) against RLHF
on synthetic populations outside the battery (``signrm.simulate.make_population``).

Ten populations (symmetric and asymmetric directions, several confidence laws, d = 4 ... 32),
each at n = 20,000 by 200 annotators and n = 50,000 by 500, seeds 0 and 1; features
D ~ N(0, I). Prints one line per fit (angular errors in degrees to theta_bar) and writes the
lines to ``benchmarks/results/robustness_sweep.txt``. About 4 minutes on 2 cores.

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
    lines = []
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
                off = signrm.SignEstimator(panel="off").fit(data)
                bt = signrm.BradleyTerry().fit(data)
                errs = [angular_error(m.coef_, theta_bar) for m in (bt, off, default)]
                line = (
                    f"{cfg['kind']} d={d} {cfg.get('scale_dist')} "
                    f"{cfg.get('scale_corr', 'independent')} n={n} people={people} seed={seed} "
                    f"bt={errs[0]:.2f} sign_panel_off={errs[1]:.2f} default={errs[2]:.2f} "
                    f"panel_weight={default.panel_weight_:.2f} fit_s={seconds:.1f}"
                )
                print(line, flush=True)
                lines.append(line)
    out = Path("benchmarks/results/robustness_sweep.txt")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
