"""``signrm demo``: the sign-paper experiment on the shipped twin panel, with table and plots."""

from __future__ import annotations

import argparse
import time


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
        choices=("symmetric", "asymmetric"),
        help="twin-panel variant (default: symmetric, as in the config)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from signrm.experiments import load_config, run_experiment, sign_paper_table, write_report
    from signrm.experiments.report import _head_to_head, format_table

    profile = "quick" if args.quick else "demo"
    cfg = load_config("sign-paper", profile=profile)
    if args.panel:
        cfg.fixed["panel"] = args.panel
        cfg.raw.setdefault("fixed", {})["panel"] = args.panel
    t0 = time.perf_counter()
    df = run_experiment(cfg, args.out, workers=args.workers, progress=not args.no_progress)
    df = df[df["key"].isin({j["key"] for j in cfg.jobs()})]
    print()
    print(
        f"sign-paper on the twin panel ({cfg.fixed.get('panel', 'symmetric')}, "
        f"{len(cfg.seeds)} seeds; mean [95 % interval])"
    )
    print(format_table(sign_paper_table(df)))
    print()
    print("\n".join(_head_to_head(df)))
    path = write_report(args.out, df=df)
    print(f"wrote {args.out}/results.csv, {path} and plots in {time.perf_counter() - t0:.0f} s")
    return 0
