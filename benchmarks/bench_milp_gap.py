"""Optimisation gap of the annealed sign fit: its training agreement against the MILP optimum.

For each population (METHODS.md section 2's worked example; the battery's decisive-minority panel
at its default coupling) and size (n comparisons, d features; items X ~ N(0, I/2) so D ~ N(0, I)),
fit ``SignEstimator(lambdas=(1, 15), n_stages=5)`` and ``fit_sign_milp`` (started from the annealed
direction, so it is never worse) and report both training agreements, the MILP's upper bound and
the gaps in agreement points (100 x agreement units).

    .venv/bin/python benchmarks/bench_milp_gap.py [--time-limit 60] [--quick]

Writes benchmarks/results/bench_milp_gap.{json,md} atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runinfo import commit, write_text_atomic  # noqa: E402

from signrm import SignEstimator  # noqa: E402
from signrm.engine.milp import fit_sign_milp  # noqa: E402
from signrm.simulate import make_battery_population, make_population, simulate_comparisons  # noqa: E402

SIZES = ((150, 2), (100, 3), (300, 3), (2000, 4), (2000, 6), (2000, 10))


def _populations(d: int) -> dict:
    return {
        "methods-example": make_population(
            "exp_two_point", 400, d, spread=3 / np.sqrt(2), scale_dist="none", random_state=0
        ),
        "decisive_minority@0.7": make_battery_population(
            "decisive_minority", 0.7, d, random_state=0
        ),
    }


def _one(name: str, pop, n: int, d: int, time_limit: float) -> dict:
    X = np.random.default_rng(1).standard_normal((5000, d)) / np.sqrt(2)
    data = simulate_comparisons(pop, X, n, random_state=2)
    t = time.perf_counter()
    est = SignEstimator(lambdas=(1, 15), n_stages=5).fit(data)
    t_sign = time.perf_counter() - t
    theta, info = fit_sign_milp(
        data.differences, data.y, time_limit=time_limit, theta0=est.coef_, max_features=15
    )
    tb = pop.mean_utility()

    def angle(v):
        return float(
            np.degrees(np.arccos(np.clip(v @ tb / np.linalg.norm(v) / np.linalg.norm(tb), -1, 1)))
        )

    return {
        "population": name,
        "n": n,
        "d": d,
        "annealed_agreement": est.agreement_,
        "milp_agreement": info["agreement"],
        "milp_bound": info["bound"],
        "improvement_points": 100 * (info["agreement"] - est.agreement_),
        "certified_gap_points": 100 * (info["bound"] - est.agreement_),
        "status": info["status"],
        "milp_seconds": info["seconds"],
        "sign_seconds": t_sign,
        "annealed_angle_deg": angle(est.coef_),
        "milp_angle_deg": angle(theta),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=60.0, help="MILP seconds per problem")
    ap.add_argument("--quick", action="store_true", help="only the two smallest sizes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    rows = []
    for n, d in SIZES[:2] if args.quick else SIZES:
        for name, pop in _populations(d).items():
            rows.append(_one(name, pop, n, d, args.time_limit))
            print(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()},
                flush=True,
            )
    run = {"commit": commit(), "time_limit": args.time_limit, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "bench_milp_gap.json", json.dumps(run, indent=1))
    lines = [
        f"Training agreement of the annealed sign fit vs the MILP (commit {run['commit']}, "
        f"time limit {args.time_limit:g} s per problem). Points = 100 x agreement.",
        "",
        "| population | n | d | annealed | MILP | MILP bound | MILP - annealed (pts) | "
        "bound - annealed (pts) | status | MILP s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['population']} | {r['n']} | {r['d']} | {r['annealed_agreement']:.4f} | "
            f"{r['milp_agreement']:.4f} | {r['milp_bound']:.4f} | {r['improvement_points']:.2f} | "
            f"{r['certified_gap_points']:.2f} | {r['status']} | {r['milp_seconds']:.0f} |"
        )
    write_text_atomic(args.out / "bench_milp_gap.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
