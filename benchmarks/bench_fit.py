"""Paper-scale fit benchmark (issue 2): seconds and peak memory of each estimator.

n = 43,834 comparisons (the sign-estimator paper's corpus size) on the shipped twin panel, with
d = 384 (MiniLM) and d = 2,880 (lifted); scikit-learn's LogisticRegression on the difference matrix is the reference, measured
in the same run. Each fit runs in a fresh process so its peak RSS is its own.

    python benchmarks/bench_fit.py [--d 384 2880] [--n 43834] [--skip-mlp] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from pathlib import Path

import numpy as np
from _runinfo import commit, write_text_atomic


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_data(n: int, d: int, seed: int = 0):
    """The shipped twin panel: real MiniLM embeddings (d = 384) and its ~200 personas.

    For d > 384 the embeddings are lifted by a fixed random linear map plus 5 % noise (an
    ill-conditioned, LLM-hidden-state-like feature space) and each persona's utility is carried
    over exactly (minimum-norm preimage), so the population ordering is unchanged.
    """
    from signrm.simulate import Population, load_twin_panel, simulate_comparisons

    panel = load_twin_panel()
    feats = panel.embeddings.astype(np.float32)
    pop = panel.population
    if d != feats.shape[1]:
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((feats.shape[1], d)) / np.sqrt(feats.shape[1])
        lifted = feats @ W
        lifted += 0.05 * lifted.std() * rng.standard_normal(lifted.shape)
        feats = lifted.astype(np.float32)
        pop = Population(thetas=(np.linalg.pinv(W) @ pop.thetas.T).T, weights=pop.weights)
    data = simulate_comparisons(pop, feats, n, prompt_ids=panel.prompt_ids, random_state=seed)
    return data, pop.mean_utility()


def _estimator(name: str, n: int):
    from sklearn.linear_model import LogisticRegression

    import signrm
    from signrm.estimators.sign import PAPER_SCHEDULE

    return {
        # The same penalised objective as BradleyTerry(l2=1e-4): sklearn minimises
        # C * sum(loss) + |w|^2 / 2, i.e. mean(loss) + |w|^2 / (2 C n).
        "sklearn LogisticRegression (reference)": lambda: LogisticRegression(
            C=1.0 / (1e-4 * n), fit_intercept=False, max_iter=1000
        ),
        "BT linear": lambda: signrm.BradleyTerry(),
        "Thurstone linear": lambda: signrm.BradleyTerry(link="probit"),
        "Sign linear": lambda: signrm.SignEstimator(),
        "Sign linear, paper schedule": lambda: signrm.SignEstimator(**PAPER_SCHEDULE),
        "EM K=3, n_init=1": lambda: signrm.LatentClassBT(n_classes=3, n_init=1, random_state=0),
        "CLF-LGB": lambda: signrm.ClassificationRM(backend="lightgbm", random_state=0),
        "BT-MLP": lambda: signrm.BradleyTerry(head="mlp", random_state=0),
        "Sign-MLP": lambda: signrm.SignEstimator(head="mlp", random_state=0),
        "CLF-MLP": lambda: signrm.ClassificationRM(backend="mlp", random_state=0),
    }[name]()


def _child(name: str, n: int, d: int, queue) -> None:
    import torch

    torch.set_num_threads(2)
    from signrm.metrics import angular_error

    data, theta_bar = make_data(n, d)
    est = _estimator(name, n)
    X = data.differences if name.startswith("sklearn") else None
    if X is not None:
        X = np.ascontiguousarray(X, dtype=np.float64)  # sklearn works in float64
    base = _rss_mb()
    t0 = time.perf_counter()
    if X is not None:
        est.fit(X, data.signs)
        coef = est.coef_.ravel()
    else:
        est.fit(data)
        coef = getattr(est, "coef_", None)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    err = angular_error(coef, theta_bar) if coef is not None else float("nan")
    queue.put(
        {
            "estimator": name,
            "n": n,
            "d": d,
            "seconds": seconds,
            "peak_rss_mb": peak,
            "fit_extra_mb": max(peak - base, 0.0),
            "angular_error_deg": err,
        }
    )


def run(name: str, n: int, d: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(name, n, d, q))
    p.start()
    p.join()
    return (
        q.get() if not q.empty() else {"estimator": name, "n": n, "d": d, "seconds": float("nan")}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=43_834)
    ap.add_argument("--d", type=int, nargs="+", default=[384, 2880])
    ap.add_argument("--skip-mlp", action="store_true")
    ap.add_argument(
        "--mlp-max-d", type=int, default=384, help="run the MLP heads only up to this d"
    )
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument(
        "--methods", nargs="+", default=None, help="run only these rows (names as in the table)"
    )
    args = ap.parse_args()
    names = [
        "sklearn LogisticRegression (reference)",
        "BT linear",
        "Thurstone linear",
        "Sign linear",
        "Sign linear, paper schedule",
        "EM K=3, n_init=1",
        "CLF-LGB",
    ]
    mlp_names = [] if args.skip_mlp else ["BT-MLP", "Sign-MLP", "CLF-MLP"]
    if args.methods:
        unknown = set(args.methods) - set(names + mlp_names)
        if unknown:
            ap.error(f"--methods: unknown {sorted(unknown)}; choose from {names + mlp_names}")
        names = [m for m in names if m in args.methods]
        mlp_names = [m for m in mlp_names if m in args.methods]
    rows = []
    for d in args.d:
        ref = None
        for name in names + (mlp_names if d <= args.mlp_max_d else []):
            row = run(name, args.n, d)
            if name.startswith("sklearn"):
                ref = row["seconds"]
            row["x_reference"] = row["seconds"] / ref if ref else float("nan")
            rows.append(row)
            print(
                f"d={d:5d} {name:40s} {row['seconds']:8.2f} s  x{row['x_reference']:6.2f}  "
                f"peak {row.get('peak_rss_mb', float('nan')):7.0f} MB  "
                f"angle {row.get('angular_error_deg', float('nan')):6.2f}",
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": mp.cpu_count(),
        "load_avg_at_end": list(__import__("os").getloadavg()),
        "commit": commit(),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "n": args.n,
    }
    write_text_atomic(out / "bench_fit.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "| estimator | d | seconds | x LogisticRegression | peak RSS (MB) | angle to theta_bar (deg) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['estimator']} | {r['d']} | {r['seconds']:.2f} | {r['x_reference']:.2f} | "
            f"{r.get('peak_rss_mb', float('nan')):.0f} | {r.get('angular_error_deg', float('nan')):.1f} |"
        )
    write_text_atomic(out / "bench_fit.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
