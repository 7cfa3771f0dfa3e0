"""The cost curve (issue 5): fit time and peak memory against n and d, with references.

Estimators: BT linear, Sign linear, CLF-LGB, EM (latent-class BT, K = 3); references measured in
the same run: scikit-learn ``LogisticRegression`` (on the difference matrix, no intercept; its time
includes forming ``xa - xb``, as the signrm fits do) and LightGBM alone (the same booster settings
as CLF-LGB on the same pointwise rows, as many rounds as CLF-LGB trained), plus the lower bound
of any linear fit: one numpy read pass over both feature matrices (``xa @ v``, ``xb @ v``).
Each fit runs in a fresh process (peak RSS = ``ru_maxrss`` of that process, data included) with
its data generated there from the seed (generation not timed). A fit past ``--timeout`` seconds is
stopped and reported as such. Optionally (``--streaming``) the streaming fits of BT and sign are
run on the same data written as npy files under /tmp, with their angle to the in-memory solution.

    python benchmarks/bench_scaling.py --n 10000 100000 1000000 --d 384 2880 \
        --out benchmarks/results --plot docs/img/scaling.png

Writes ``bench_scaling.csv`` / ``.json`` / ``.md`` (table, exponents of time in n, ratios) and
the plot (``--plot``, by default ``scaling.png`` next to them) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from _runinfo import commit, write_text_atomic
from scipy import special

METHODS = [
    "read pass (lower bound)",
    "LogisticRegression (sklearn)",
    "BT linear",
    "Sign linear",
    "EM K=3",
    "CLF-LGB",
    "LightGBM alone",
]
STREAMING = ["BT linear (streaming)", "Sign linear (streaming)"]
PROTO = "Sign linear, subsampled warm start (prototype)"
LINEAR = ["LogisticRegression (sklearn)", "BT linear", "Sign linear"]


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(n: int, d: int, seed: int = 0, n_users: int = 200, block: int = 100_000):
    """Heterogeneous panel (as bench_fit.py): personas theta_u = (theta_bar + spread) * scale_u.

    Returns float32 ``xa``, ``xb`` (n, d), labels ``y`` (n,), ``user`` (n,) and ``theta_bar``;
    generated block by block so no float64 (n, d) temporary exists.
    """
    rng = np.random.default_rng(seed)
    theta_bar = rng.standard_normal(d)
    theta_bar /= np.linalg.norm(theta_bar)
    spread = rng.standard_normal((n_users, d)) * (rng.exponential(1.0, (n_users, 1)) / np.sqrt(d))
    scales = rng.lognormal(0.0, 1.0, n_users) * 3.0
    thetas = ((theta_bar + spread) * scales[:, None]).astype(np.float32)
    xa = np.empty((n, d), np.float32)
    xb = np.empty((n, d), np.float32)
    y = np.empty(n)
    user = rng.integers(0, n_users, n)
    c = np.float32(4.0 / np.sqrt(d))
    for s in range(0, n, block):
        e = min(s + block, n)
        xa[s:e] = rng.standard_normal((e - s, d), dtype=np.float32) * c
        xb[s:e] = rng.standard_normal((e - s, d), dtype=np.float32) * c
        m = np.einsum("ij,ij->i", xa[s:e] - xb[s:e], thetas[user[s:e]])
        y[s:e] = (rng.random(e - s) < special.expit(m)).astype(float)
    return xa, xb, y, user, theta_bar


def _angle(a, b) -> float:
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _child(method: str, n: int, d: int, seed: int, extra: dict, queue) -> None:
    try:
        queue.put(_measure(method, n, d, seed, extra))
    except BaseException as exc:  # reported, not raised
        queue.put({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def _measure(method: str, n: int, d: int, seed: int, extra: dict) -> dict:
    import torch

    torch.set_num_threads(2)
    import signrm

    xa, xb, y, user, theta_bar = make_data(n, d, seed)
    base = _rss_mb()
    info: dict = {}
    coef = None
    t0 = time.perf_counter()
    if method == "read pass (lower bound)":
        v = np.ones(d, np.float32)
        _ = xa @ v
        _ = xb @ v
    elif method == "LogisticRegression (sklearn)":
        from sklearn.linear_model import LogisticRegression

        D = xa - xb
        lr = LogisticRegression(fit_intercept=False).fit(D, y)
        coef = lr.coef_.ravel()
        info["n_iter"] = int(np.max(lr.n_iter_))
    elif method in ("BT linear", "Sign linear", "EM K=3", "CLF-LGB"):
        data = signrm.PreferenceData.from_arrays(xa, xb, y, user=user)
        est = {
            "BT linear": lambda: signrm.BradleyTerry(),
            "Sign linear": lambda: signrm.SignEstimator(),
            "EM K=3": lambda: signrm.LatentClassBT(n_classes=3, n_init=1, random_state=0),
            "CLF-LGB": lambda: signrm.ClassificationRM(backend="lightgbm", random_state=0),
        }[method]()
        est.fit(data)
        coef = getattr(est, "coef_", None)
        if method == "EM K=3":
            coef = getattr(est, "population_coef_", coef)
        if method == "CLF-LGB":
            info["rounds"] = int(est.booster_.current_iteration())
            info["best_iteration"] = int(est.best_iteration_)
        if hasattr(est, "n_iter_"):
            info["n_iter"] = int(np.max(est.n_iter_))
        if method == "Sign linear":
            info["stage_iters"] = [int(s["n_iter"]) for s in est.stages_]
    elif method == PROTO:
        # Not the library's solver: a proposal. BT warm start and the annealing stages before the
        # last on a random subsample of at most 100k comparisons, the last stage on all of them.
        from signrm.engine.linear import (
            Passes,
            array_source,
            fit_bt_arrays,
            sign_stage,
            weight_totals,
        )
        from signrm.losses import resolve_lambdas

        D = xa - xb
        sub = np.sort(np.random.default_rng(seed).permutation(n)[: min(n, 100_000)])
        theta, _ = fit_bt_arrays(D[sub], y[sub], l2=1e-4)
        lams = resolve_lambdas((1.0, 15.0), 5)
        for rows, stage_lams in ((sub, lams[:-1]), (slice(None), lams[-1:])):
            passes = Passes(array_source(D[rows], y[rows]))
            totals = weight_totals(passes)
            for lam in stage_lams:
                stage = sign_stage(passes, totals, theta, float(lam))
                theta = stage.theta
        coef = theta
        stages = [stage]
        info["n_iter"] = stages[-1].n_iter
    elif method == "LightGBM alone":
        import lightgbm as lgb

        rounds = int(extra.get("rounds", 100))
        X = np.concatenate([xa, xb])
        lab = np.concatenate([y, 1.0 - y])
        model = lgb.LGBMClassifier(
            n_estimators=rounds, num_leaves=31, learning_rate=0.05, random_state=0, verbose=-1
        )
        model.fit(X, lab)
        info["rounds"] = rounds
    elif method in STREAMING:
        from signrm.streaming import NpyPair

        tmp = Path(tempfile.mkdtemp(prefix="signrm-bench-", dir="/tmp"))
        try:
            np.save(tmp / "xa.npy", xa)
            np.save(tmp / "xb.npy", xb)
            np.save(tmp / "y.npy", y)
            cls = signrm.BradleyTerry if method.startswith("BT") else signrm.SignEstimator
            mem = cls().fit(signrm.PreferenceData.from_arrays(xa, xb, y))
            del xa, xb
            base = _rss_mb()
            t0 = time.perf_counter()
            est = cls().fit(NpyPair(tmp / "xa.npy", tmp / "xb.npy", tmp / "y.npy"))
            coef = est.coef_
            info["angle_to_in_memory_deg"] = _angle(est.coef_, mem.coef_)
            info["passes"] = int(est.n_passes_)
        finally:
            seconds = time.perf_counter() - t0
            shutil.rmtree(tmp, ignore_errors=True)
        return _row(method, n, d, seconds, base, coef, theta_bar, info)
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - t0
    return _row(method, n, d, seconds, base, coef, theta_bar, info)


def _row(method, n, d, seconds, base, coef, theta_bar, info) -> dict:
    peak = _peak_mb()
    return {
        "method": method,
        "n": n,
        "d": d,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "fit_extra_mb": max(peak - base, 0.0),
        "angle_to_theta_bar_deg": _angle(coef, theta_bar) if coef is not None else float("nan"),
        **info,
    }


def run_repeated(method: str, n: int, d: int, seed: int, timeout: float, extra: dict | None,
                 repeats: int) -> dict:  # fmt: skip
    """``run`` ``repeats`` times (a fresh process each); the row of the median time.

    The lower bound (read pass) takes the minimum instead: it is a floor, and the noise of a
    shared machine only adds time. All times are kept in ``seconds_all``.
    """
    rows = [run(method, n, d, seed, timeout, extra) for _ in range(max(1, int(repeats)))]
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return rows[0]
    ok.sort(key=lambda r: r["seconds"])
    pick = ok[0] if method == "read pass (lower bound)" else ok[(len(ok) - 1) // 2]
    pick = dict(pick)
    pick["seconds_all"] = [r["seconds"] for r in rows]
    pick["peak_rss_mb"] = max(r.get("peak_rss_mb", float("nan")) for r in ok)
    return pick


def run(method: str, n: int, d: int, seed: int, timeout: float, extra: dict | None = None) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(method, n, d, seed, extra or {}, q))
    p.start()
    t0 = time.perf_counter()
    res = None
    while p.is_alive() and time.perf_counter() - t0 < timeout:
        try:
            res = q.get(timeout=1.0)
            break
        except Exception:
            continue
    if res is None and not q.empty():
        res = q.get()
    if p.is_alive() and res is None:
        p.kill()
        p.join()
        return {"method": method, "n": n, "d": d, "seconds": float("nan"), "status": "timeout"}
    p.join()
    if res is None:
        return {"method": method, "n": n, "d": d, "seconds": float("nan"), "status": "crashed"}
    if "error" in res:
        return {"method": method, "n": n, "d": d, "seconds": float("nan"), "status": res["error"]}
    res["status"] = "ok"
    return res


SLOW = ("EM K=3", "CLF-LGB", "LightGBM alone")


def fits_in_memory(n: int, d: int, method: str, budget_gb: float) -> bool:
    """Rough peak memory of a fit (GB): features + differences (+ pointwise copy for LightGBM)."""
    gb = n * d * 4 / 1e9
    need = {"read pass (lower bound)": 2, "CLF-LGB": 8, "LightGBM alone": 6}.get(method, 3.5)
    return need * gb + 0.6 <= budget_gb


def exponent(rows: list[dict], method: str, d: int) -> float:
    pts = [
        (r["n"], r["seconds"])
        for r in rows
        if r["method"] == method and r["d"] == d and r.get("status") == "ok" and r["seconds"] > 0
    ]
    if len(pts) < 2:
        return float("nan")
    x = np.log([p[0] for p in pts])
    t = np.log([p[1] for p in pts])
    return float(np.polyfit(x, t, 1)[0])


def _fmt(v, spec=".2f"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def report(rows: list[dict], meta: dict, out: Path, plot: Path | None) -> str:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        out / "bench_scaling.json", json.dumps({"meta": meta, "rows": rows}, indent=2)
    )
    keys = [
        "method", "n", "d", "seconds", "peak_rss_mb", "fit_extra_mb", "angle_to_theta_bar_deg",
        "status", "n_iter", "rounds", "passes", "angle_to_in_memory_deg",
    ]  # fmt: skip
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text_atomic(out / "bench_scaling.csv", buf.getvalue())
    lines = [
        f"Machine: {meta['cpus']} CPUs, Python {meta['python']}, numpy {meta['numpy']}, "
        f"seed {meta['seed']}; one fresh process per fit, median of {meta.get('repeats', 1)} "
        "(read pass: minimum).",
        f"Commit {meta.get('commit', '?')}, started {meta.get('started', '?')}, load average "
        f"{meta.get('load_avg_start', '?')} at the start, {meta.get('load_avg_end', '?')} at the end.",
        f"Command: `{meta.get('command', '?')}`",
        *[
            f"Earlier run kept (--append): `{r.get('command', '?')}` (commit {r.get('commit', '?')}, "
            f"started {r.get('started', '?')}, load {r.get('load_avg_start', '?')})"
            for r in meta.get("earlier_runs", [])
        ],
        "",
        "| method | n | d | seconds | peak RSS (MB) | angle to theta_bar (deg) | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        notes = []
        if r.get("status") != "ok":
            notes.append(str(r.get("status")))
        for k in ("n_iter", "rounds", "passes"):
            if k in r:
                notes.append(f"{k} {r[k]}")
        if "angle_to_in_memory_deg" in r:
            notes.append(f"angle to in-memory {r['angle_to_in_memory_deg']:.2g} deg")
        lines.append(
            f"| {r['method']} | {r['n']:,} | {r['d']} | {_fmt(r['seconds'])} | "
            f"{_fmt(r.get('peak_rss_mb'), '.0f')} | {_fmt(r.get('angle_to_theta_bar_deg'), '.1f')} "
            f"| {'; '.join(notes)} |"
        )
    ds = sorted({r["d"] for r in rows})
    lines += ["", "Empirical exponent of time in n (least squares on log-log):", ""]
    lines += ["| method | " + " | ".join(f"d = {d}" for d in ds) + " |"]
    lines += ["|---|" + "---:|" * len(ds)]
    for m in METHODS + [PROTO] + STREAMING:
        if any(r["method"] == m for r in rows):
            lines.append(f"| {m} | " + " | ".join(_fmt(exponent(rows, m, d)) for d in ds) + " |")
    lines += ["", "Ratios in the same run:", ""]
    for d in ds:
        for n in sorted({r["n"] for r in rows if r["d"] == d}):
            get = {
                r["method"]: r["seconds"]
                for r in rows
                if r["n"] == n and r["d"] == d and r.get("status") == "ok"
            }
            lr, sign, read = (
                get.get("LogisticRegression (sklearn)"),
                get.get("Sign linear"),
                get.get("read pass (lower bound)"),
            )
            lin = [get[m] for m in LINEAR if m in get]
            parts = []
            if lr and sign:
                parts.append(f"Sign / LogisticRegression = {sign / lr:.2f}")
            if lr and get.get(PROTO):
                parts.append(f"prototype sign / LogisticRegression = {get[PROTO] / lr:.2f}")
            if lin and read:
                fastest = min((get[m], m) for m in LINEAR if m in get)
                parts.append(
                    f"fastest linear fit ({fastest[1]}) / read pass = {fastest[0] / read:.1f}"
                )
            if parts:
                lines.append(f"- n = {n:,}, d = {d}: " + "; ".join(parts))
    text = "\n".join(lines) + "\n"
    write_text_atomic(out / "bench_scaling.md", text)
    if plot is not None:
        _plot(rows, plot)
    return text


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(1, len(ds), figsize=(5.5 * len(ds), 5.0), squeeze=False)
    for ax, d in zip(axes[0], ds):
        for m in METHODS + [PROTO] + STREAMING:
            pts = sorted(
                (r["n"], r["seconds"])
                for r in rows
                if r["method"] == m and r["d"] == d and r.get("status") == "ok"
            )
            if not pts:
                continue
            style = (
                "--" if m in ("read pass (lower bound)", "LogisticRegression (sklearn)") else "-"
            )
            ax.loglog(*zip(*pts), style, marker="o", label=m)
        ax.set_title(f"d = {d}")
        ax.set_xlabel("comparisons n")
        ax.set_ylabel("fit time (s)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:  # methods only present at another d
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--d", type=int, nargs="+", default=[384, 2880])
    ap.add_argument("--methods", nargs="+", default=METHODS, help=f"also: {PROTO!r}")
    ap.add_argument(
        "--streaming",
        type=int,
        nargs="*",
        default=[],
        help="n values (d = first --d) at which to run the streaming fits too",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per fit")
    ap.add_argument(
        "--max-cells-slow",
        type=float,
        default=4e7,
        help="run EM and the LightGBM fits only where n * d is at most this",
    )
    ap.add_argument("--memory-gb", type=float, default=16.0, help="skip fits that need more")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument(
        "--plot",
        default=None,
        help="plot path (default: scaling.png in --out; the README's plot is docs/img/scaling.png)",
    )
    ap.add_argument("--append", action="store_true", help="add to an existing results JSON")
    ap.add_argument(
        "--repeats", type=int, default=1, help="fits per cell (not EM/LightGBM); median kept"
    )
    args = ap.parse_args()  # fmt: skip
    out = Path(args.out)
    rows: list[dict] = []
    earlier_runs: list[dict] = []
    if args.append and (out / "bench_scaling.json").exists():
        old = json.loads((out / "bench_scaling.json").read_text())
        rows = old["rows"]
        earlier_runs = old["meta"].get("earlier_runs", []) + [
            {k: v for k, v in old["meta"].items() if k != "earlier_runs"}
        ]
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "repeats": args.repeats,
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_start": [round(v, 1) for v in os.getloadavg()],
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "earlier_runs": earlier_runs,  # --append: the runs whose rows are kept
    }
    for d in args.d:
        for n in args.n:
            extra: dict = {}
            for m in args.methods:
                if m in SLOW and n * d > args.max_cells_slow:
                    print(f"skip {m} n={n} d={d}: n*d above --max-cells-slow", flush=True)
                    continue
                if not fits_in_memory(n, d, m, args.memory_gb):
                    print(f"skip {m} n={n} d={d}: needs more than {args.memory_gb} GB", flush=True)
                    continue
                reps = 1 if m in SLOW else args.repeats  # minutes per fit: one each
                row = run_repeated(m, n, d, args.seed, args.timeout, extra, reps)
                row.update(commit=meta["commit"], run_started=meta["started"])
                if m == "CLF-LGB" and row.get("status") == "ok":
                    extra["rounds"] = row.get("rounds", 100)
                rows = [r for r in rows if not (r["method"] == m and r["n"] == n and r["d"] == d)]
                rows.append(row)
                print(
                    f"d={d:5d} n={n:9,d} {m:30s} {row['seconds']:9.2f} s  "
                    f"peak {row.get('peak_rss_mb', float('nan')):7.0f} MB  {row.get('status')}"
                    + (f"  {row.get('n_iter', '')}" if "n_iter" in row else ""),
                    flush=True,
                )
                meta["load_avg_end"] = [round(v, 1) for v in os.getloadavg()]
                report(rows, meta, out, None)
    for n in args.streaming:
        for m in STREAMING:
            row = run(m, n, args.d[0], args.seed, args.timeout)
            row.update(commit=meta["commit"], run_started=meta["started"])
            rows = [
                r for r in rows if not (r["method"] == m and r["n"] == n and r["d"] == args.d[0])
            ]
            rows.append(row)
            print(f"{m} n={n}: {row['seconds']:.2f} s, {row.get('status')}, "
                  f"angle to in-memory {row.get('angle_to_in_memory_deg')}", flush=True)  # fmt: skip
    meta["load_avg_end"] = [round(v, 1) for v in os.getloadavg()]
    print(report(rows, meta, out, Path(args.plot) if args.plot else out / "scaling.png"))


if __name__ == "__main__":
    main()
