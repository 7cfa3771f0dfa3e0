"""``signrm experiment run CONFIG`` / ``signrm experiment report DIR`` / ``signrm experiment list``."""

from __future__ import annotations

import argparse
import time

from signrm.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="run declarative experiments (grid x seeds), resumable; write reports",
        description="Run a YAML/TOML experiment config or a packaged one "
        "(sign-paper, bt-vs-clf, rates); rerunning resumes where it stopped.",
    )
    sub = parser.add_subparsers(dest="experiment_command", metavar="ACTION")
    run_p = sub.add_parser("run", help="run every unfinished job of CONFIG")
    run_p.add_argument("config", help="config path, or a packaged name (see `experiment list`)")
    run_p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    run_p.add_argument("--out", default=None, help="output folder (default results/<name>)")
    run_p.add_argument("--profile", default=None, help="named override in the config (e.g. quick)")
    run_p.add_argument("--max-jobs", type=int, default=None, help="stop after this many new jobs")
    run_p.add_argument("--no-report", action="store_true", help="skip report.md and plots")
    run_p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    rep_p = sub.add_parser("report", help="write DIR/report.md and plots from DIR's results")
    rep_p.add_argument("dir", help="an experiment output folder")
    rep_p.add_argument("--no-plots", action="store_true", help="write report.md only")
    sub.add_parser("list", help="list the packaged configs")
    val_p = sub.add_parser("validate", help="check a config and print its number of jobs")
    val_p.add_argument("config", help="config path, or a packaged name (see `experiment list`)")
    val_p.add_argument("--profile", default=None, help="named override in the config (e.g. quick)")
    parser.set_defaults(func=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    from signrm.experiments import load_config, packaged_configs, run_experiment, write_report

    action = getattr(args, "experiment_command", None)
    if action is None:
        args._parser.print_help()
        return 2
    if action == "list":
        for name, path in packaged_configs().items():
            cfg = load_config(path)
            print(f"{name:12s} {cfg.n_jobs:5d} jobs  {cfg.description}")
        return 0
    if action == "validate":
        cfg = load_config(args.config, profile=args.profile)
        print(
            f"{cfg.name}: kind={cfg.kind}, {len(cfg.settings)} settings x {len(cfg.seeds)} seeds "
            f"= {cfg.n_jobs} jobs"
        )
        return 0
    if action == "report":
        path = write_report(args.dir, plots=not args.no_plots)
        print(f"wrote {path}")
        return 0
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.max_jobs is not None and args.max_jobs < 0:
        raise UserError(f"--max-jobs must be >= 0, got {args.max_jobs}")
    cfg = load_config(args.config, profile=args.profile)  # validated before any job starts
    out = args.out or f"results/{cfg.name}"
    t0 = time.perf_counter()
    df = run_experiment(
        cfg,
        out,
        workers=args.workers,
        progress=not args.no_progress,
        max_jobs=args.max_jobs,
    )
    done = int(df["key"].isin({j["key"] for j in cfg.jobs()}).sum()) if len(df) else 0
    print(
        f"{cfg.name}: {done} of {cfg.n_jobs} jobs finished in {out} "
        f"({time.perf_counter() - t0:.0f} s this run)"
    )
    if not args.no_report and len(df):
        print(f"wrote {write_report(out)}")
    return 0
