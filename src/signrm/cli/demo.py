"""``signrm demo``: the sign-paper experiment on the shipped twin panel, with table and plots."""

from __future__ import annotations

import argparse
import copy
import time

from signrm.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="RLHF vs sign vs EM on the shipped twin panel (table, results.csv, report, plots)",
        description="Run the sign-paper experiment on the shipped twin panel of 200 personas: "
        "angular error and disagreement with the population ordering against n. "
        "Full: under 10 minutes on 2 cores; --quick: under 1 minute. Rerunning resumes.",
    )
    parser.add_argument("--quick", action="store_true", help="a 1-minute version (fewer n, seeds)")
    parser.add_argument(
        "--out", default="results/demo", help="output folder (default results/demo)"
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes (2)")
    parser.add_argument(
        "--panel",
        default=None,
        help="run only this twin-panel variant (e.g. symmetric, asymmetric, "
        "battery-experts_crowd@0.5); default: battery-experts_crowd and symmetric",
    )
    parser.add_argument(
        "--no-phase",
        action="store_true",
        help="skip the phase diagram (sign vs RLHF, coupling x n)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _headline(df) -> list[str]:
    """The paper's headline check per panel: angle ratio and disagreement at n = 43,834."""
    from signrm.experiments.analysis import head_to_head

    lines = []
    for panel, grp in df.groupby("panel", sort=False):
        table = head_to_head(grp)
        if table.empty or 43834 not in set(table["n"]):
            continue
        for r in table[table["n"] == 43834].itertuples(index=False):
            lines.append(
                f"  {panel:24s} {r.estimator:10s} angle {r.angular_error_deg:5.1f} vs RLHF "
                f"{r.rlhf_angular_error_deg:5.1f} deg (ratio {r.error_ratio:.2f}; paper: 0.65); "
                f"disagreement {100 * r.disagreement:4.1f} % vs {100 * r.rlhf_disagreement:4.1f} %"
            )
    return ["Headline check at the paper's n = 43,834 (paper: 63 -> 41 deg, 12 % -> 8 %):"] + (
        lines or ["  (no n = 43,834 in this run)"]
    )


def run(args: argparse.Namespace) -> int:
    from signrm.experiments import load_config, run_experiment, sign_paper_table, write_report
    from signrm.experiments.report import format_table, head_to_head_lines
    from signrm.simulate.battery import parse_battery_variant
    from signrm.simulate.twin_panel import TWIN_VARIANTS

    profile = "quick" if args.quick else "demo"
    cfg = load_config("sign-paper", profile=profile)
    if args.panel:
        if args.panel not in TWIN_VARIANTS and parse_battery_variant(args.panel) is None:
            raise UserError(f"--panel {args.panel}: choose one of {', '.join(TWIN_VARIANTS)}")
        raw = copy.deepcopy(cfg.raw)
        raw.setdefault("grid", {})["panel"] = [args.panel]
        cfg = load_config(raw)
    t0 = time.perf_counter()
    progress = not args.no_progress
    df = run_experiment(cfg, args.out, workers=args.workers, progress=progress)
    df = df[df["key"].isin({j["key"] for j in cfg.jobs()})]
    frames = [df]
    if not args.no_phase:
        phase = load_config("phase", profile=profile)
        pf = run_experiment(phase, args.out, workers=args.workers, progress=progress)
        frames.append(pf[pf["key"].isin({j["key"] for j in phase.jobs()})])
    print()
    for panel, grp in df.groupby("panel", sort=False):
        print(
            f"sign-paper on the twin panel {panel} ({len(cfg.seeds)} seeds; mean [95 % interval])"
        )
        print(format_table(sign_paper_table(grp)))
        print()
        print("\n".join(head_to_head_lines(grp)))
    print("\n".join(_headline(df)))
    import pandas as pd

    path = write_report(args.out, df=pd.concat(frames, ignore_index=True))
    print(f"wrote {args.out}/results.csv, {path} and plots in {time.perf_counter() - t0:.0f} s")
    return 0
