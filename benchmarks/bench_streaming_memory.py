"""Out-of-core memory demonstration (issue 5): n = 2,000,000 comparisons, d = 384, float32.

Writes Parquet shards (list columns ``xa``/``xb`` of 384 float32, ``label``; about 6 GB) under
/tmp chunk by chunk (never more than one shard in memory), fits the streaming linear BT and sign
estimators on them, each in a fresh process whose peak resident set (``ru_maxrss`` and
``VmHWM``) is measured, then deletes the shards.

    python benchmarks/bench_streaming_memory.py --n 2000000 --d 384 \
        --estimators bt sign --out benchmarks/results

Writes ``bench_streaming_memory.json`` / ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import signrm

_DEFAULT_SIGN_MAX_ITER = signrm.SignEstimator().max_iter


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_shards(
    out: Path, n: int, d: int, shard_rows: int, seed: int, row_group: int = 16_384
) -> float:
    """Heterogeneous-persona comparisons (as bench_scaling.make_data), one shard at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    theta_bar = rng.standard_normal(d)
    theta_bar /= np.linalg.norm(theta_bar)
    n_users = 200
    spread = rng.standard_normal((n_users, d)) * (rng.exponential(1.0, (n_users, 1)) / np.sqrt(d))
    thetas = ((theta_bar + spread) * (rng.lognormal(0, 1, n_users) * 3.0)[:, None]).astype(
        np.float32
    )
    c = np.float32(4.0 / np.sqrt(d))
    out.mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(range(0, n, shard_rows)):
        m = min(shard_rows, n - s)
        xa = rng.standard_normal((m, d), dtype=np.float32) * c
        xb = rng.standard_normal((m, d), dtype=np.float32) * c
        user = rng.integers(0, n_users, m)
        p = 1.0 / (1.0 + np.exp(-np.einsum("ij,ij->i", xa - xb, thetas[user])))
        y = (rng.random(m) < p).astype(np.float64)
        table = pa.table(
            {
                "xa": pa.FixedSizeListArray.from_arrays(pa.array(xa.ravel()), d),
                "xb": pa.FixedSizeListArray.from_arrays(pa.array(xb.ravel()), d),
                "label": y,
            }
        )
        pq.write_table(
            table, out / f"part-{k:05d}.parquet", compression="none", row_group_size=row_group
        )
        del xa, xb, table
    return float(sum(f.stat().st_size for f in out.iterdir())) / 1e9


def fit_child(
    path: str, estimator: str, chunk_rows: int, progress: bool, max_iter: int | None = None
) -> dict:
    import signrm
    from signrm.streaming import ParquetShards

    src = ParquetShards(path, chunk_rows=chunk_rows)
    est = signrm.BradleyTerry() if estimator == "bt" else signrm.SignEstimator()
    if max_iter is not None and estimator == "sign":
        est.max_iter = int(max_iter)  # L-BFGS iterations per annealing stage (passes ~ 2x)
    est.verbose = progress
    t0 = time.perf_counter()
    est.fit(src)
    sec = time.perf_counter() - t0
    return {
        "estimator": type(est).__name__,
        "n": src.n_samples,
        "d": src.n_features,
        "chunk_rows": chunk_rows,
        "seconds": sec,
        "passes": est.n_passes_,
        "comparisons_per_second": est.n_passes_ * src.n_samples / sec,
        "peak_rss_mb_ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_mb_vmhwm": _hwm_mb(),
        "stages": getattr(est, "stages_", None),
        "max_iter_per_stage": getattr(est, "max_iter", None) if estimator == "sign" else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--shard-rows", type=int, default=65_536)
    ap.add_argument("--chunk-rows", type=int, default=16_384)
    ap.add_argument("--estimators", nargs="+", default=["bt", "sign"], choices=["bt", "sign"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument(
        "--sign-max-iter",
        type=int,
        default=None,
        help="cap the sign estimator's L-BFGS iterations per stage (time only)",
    )
    ap.add_argument(
        "--shards",
        default=None,
        help="use existing shards in this directory (not generated, not deleted)",
    )
    ap.add_argument("--append", action="store_true", help="add to the existing results")
    ap.add_argument("--_fit", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._fit:
        res = fit_child(
            args._fit[0], args._fit[1], args.chunk_rows, args.progress, args.sign_max_iter
        )
        print("RESULT " + json.dumps(res), flush=True)
        return
    need_gb = args.n * args.d * 4 * 2 / 1e9 * 1.05
    free_gb = shutil.disk_usage(args.tmp).free / 1e9
    if free_gb < need_gb + 5:
        sys.exit(f"{args.tmp}: {free_gb:.0f} GB free, need {need_gb:.0f} GB + 5 GB margin")
    out = Path(args.out)
    results = []
    if args.append and (out / "bench_streaming_memory.json").exists():
        results = json.loads((out / "bench_streaming_memory.json").read_text())["results"]
    own = args.shards is None
    tmp = (
        Path(tempfile.mkdtemp(prefix="signrm-stream-", dir=args.tmp)) if own else Path(args.shards)
    )
    try:
        if own:
            t0 = time.perf_counter()
            size = write_shards(tmp, args.n, args.d, args.shard_rows, args.seed, args.chunk_rows)
            gen_s = time.perf_counter() - t0
            print(f"wrote {size:.2f} GB of shards in {gen_s:.0f} s -> {tmp}", flush=True)
        else:
            size = float(sum(f.stat().st_size for f in tmp.iterdir())) / 1e9
        for est in args.estimators:
            cmd = [sys.executable, __file__, "--_fit", str(tmp), est]
            if args.sign_max_iter is not None:
                cmd += ["--sign-max-iter", str(args.sign_max_iter)]
            cmd += ["--chunk-rows", str(args.chunk_rows)] + (
                ["--progress"] if args.progress else []
            )
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                raise SystemExit(f"fit {est} failed (exit {proc.returncode})")
            res = json.loads(line[-1][7:])
            res["shards_gb"] = size
            res["command"] = " ".join(
                ["python", "benchmarks/bench_streaming_memory.py", *sys.argv[1:]]
            )
            results.append(res)
            print(json.dumps(res), flush=True)
    finally:
        if own:
            shutil.rmtree(tmp, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "command": " ".join(sys.argv)}
    (out / "bench_streaming_memory.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2)
    )
    lines = [
        "| estimator | n | d | shards (GB) | chunk rows | seconds | passes | comparisons/s "
        "| peak RSS (MB) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['estimator']} | {r['n']:,} | {r['d']} | {r['shards_gb']:.2f} | "
            f"{r['chunk_rows']:,} | {r['seconds']:.0f} | {r['passes']} | "
            f"{r['comparisons_per_second']:,.0f} | {r['peak_rss_mb_ru_maxrss']:.0f} | "
            + (
                f"L-BFGS capped at {r['max_iter_per_stage']} iterations per stage |"
                if r.get("max_iter_per_stage") not in (None, _DEFAULT_SIGN_MAX_ITER)
                else "defaults |"
            )
        )
    (out / "bench_streaming_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
