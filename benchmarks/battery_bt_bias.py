"""Population BT bias (infinite-data BT angle, degrees) of every battery panel.

Synthetic panels at d = 8 (items X ~ N(0, I/2), so pair differences D ~ N(0, I), 200,000 pairs)
and the twin-panel variants (MiniLM features of the 7,490 default alternatives, 100,000 pairs),
over couplings 0 .. 1. Also the ordering-condition rate (share of pairs where the population's
majority agrees with theta_bar) and the mean angle between personas and theta_bar.

    .venv/bin/python benchmarks/battery_bt_bias.py [--quick]

Writes benchmarks/results/battery_bt_bias.{json,md} atomically.
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

from signrm.simulate import (  # noqa: E402
    BATTERY_NAMES,
    load_twin_panel,
    make_battery_population,
    population_diagnostics,
)

COUPLINGS = (0.0, 0.25, 0.5, 0.7, 1.0)


def _row(source: str, panel: str, coupling, pop, features, n_pairs: int) -> dict:
    t = time.perf_counter()
    diag = population_diagnostics(pop, features, n_pairs=n_pairs, random_state=0)
    return {
        "source": source,
        "panel": panel,
        "coupling": coupling,
        **{k: round(v, 4) for k, v in diag.items()},
        "persona_angle_deg": round(pop.angular_spread(), 1),
        "seconds": round(time.perf_counter() - t, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="synthetic panels only")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    rows = []
    X = np.random.default_rng(0).standard_normal((20000, 8)) / np.sqrt(2)
    for name in BATTERY_NAMES:
        for c in COUPLINGS:
            pop = make_battery_population(name, c, 8, random_state=0)
            rows.append(_row("synthetic d=8", name, c, pop, X, 200_000))
            print(rows[-1], flush=True)
    if not args.quick:
        for variant in ("symmetric", "asymmetric"):
            tp = load_twin_panel(variant)
            rows.append(_row("twin", variant, None, tp.population, tp.embeddings, 100_000))
            print(rows[-1], flush=True)
        for name in BATTERY_NAMES:
            for c in (0.0, 0.5, 0.7, 1.0):
                tp = load_twin_panel(f"battery-{name}@{c:g}")
                rows.append(
                    _row("twin", f"battery-{name}", c, tp.population, tp.embeddings, 100_000)
                )
                print(rows[-1], flush=True)
    run = {"commit": commit(), "argv": sys.argv[1:], "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "battery_bt_bias.json", json.dumps(run, indent=1))
    lines = [
        f"Population BT bias (degrees; commit {run['commit']}). condition = share of pairs where "
        "P(a preferred) > 1/2 exactly when theta_bar prefers a.",
        "",
        "| source | panel | coupling | BT bias (deg) | condition | persona angle (deg) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = "-" if r["coupling"] is None else f"{r['coupling']:g}"
        lines.append(
            f"| {r['source']} | {r['panel']} | {c} | {r['bt_bias_deg']:.1f} | "
            f"{r['condition_rate']:.3f} | {r['persona_angle_deg']:.0f} |"
        )
    write_text_atomic(args.out / "battery_bt_bias.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
