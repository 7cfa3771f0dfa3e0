"""``signrm diagnose PREFS [--out DIR]``: is RLHF biased by heterogeneity on this data?

PREFS is a comparison file with feature columns (CSV/Parquet/JSONL as read by
``PreferenceData.read``: ``a_*``/``b_*`` or ``d_*`` columns, ``label``, optional ``user``), a
text preference file (TRL or pair convention; embedded with ``--encoder``), or ``dataset:NAME``
for a panel of :mod:`signrm.datasets` (e.g. ``dataset:train``). Prints the Markdown report; with
``--out`` also writes ``report.md``, ``report.json`` and PNG plots there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from signrm.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "diagnose",
        help="report heterogeneity (annotators, BT vs sign with intervals, latent classes)",
        description=(
            "Diagnose a preference data set: comparisons and agreement per annotator, "
            "decisiveness across annotators, Bradley-Terry vs sign estimator with subsampling "
            "intervals, latent-class BIC, and which estimator to use."
        ),
    )
    p.add_argument("prefs", help="feature or text preference file, or dataset:NAME")
    p.add_argument("--out", default=None, help="directory for report.md, report.json and PNGs")
    p.add_argument("--subsamples", type=int, default=100, help="subsamples of the intervals")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    p.add_argument("--k-max", type=int, default=5, help="latent classes K = 1..K_MAX (0: skip)")
    p.add_argument(
        "--seed", type=int, default=0, help="random_state of the subsamples and estimators"
    )
    p.add_argument("--encoder", default="minilm", help="text files: encoder (as in signrm fit)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "concat", "response", "separate", "average"),
        help="text files, sentence encoders: how prompt and response are embedded (auto: chosen "
        "by cross-validated Bradley-Terry order consistency, as signrm fit does)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def load_prefs(
    spec: str,
    encoder: str = "minilm",
    show_progress: bool | None = None,
    mode: str = "auto",
    seed: int = 0,
):
    """PreferenceData from ``dataset:NAME``, a feature file, or a text preference file (a
    sentence encoder's ``mode`` chosen from the data when ``"auto"``)."""
    from signrm.data import PreferenceData
    from signrm.data.text_reader import read_text

    if spec.startswith("dataset:"):
        from signrm.datasets import load_dataset

        return load_dataset(spec.split(":", 1)[1])
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{spec}: no such file (or use dataset:NAME)")
    try:
        return PreferenceData.read(path)
    except ValueError as feature_error:
        try:
            texts = read_text(path)
        except ValueError:
            raise feature_error from None
    from signrm.embed import make_encoder

    enc = make_encoder(encoder)
    if enc.kind == "sentence" and mode != "auto":
        enc = make_encoder(encoder, mode=mode)
    elif enc.kind == "sentence":
        enc = _chosen_mode(texts, enc, seed, show_progress)
    elif mode != "auto":
        raise UserError(f"--mode applies to sentence encoders; --encoder {encoder} is a causal LM")
    return texts.to_preference_data(enc, show_progress=show_progress)


def _chosen_mode(texts, encoder, seed: int, show_progress: bool | None):
    """The mode of ``encoder`` whose features BT orders held-out comparisons best."""
    from signrm.cli.common import say
    from signrm.estimators import BradleyTerry
    from signrm.feature_select import mode_candidates, select_features

    selection = select_features(
        texts, mode_candidates(encoder), BradleyTerry(), random_state=seed,
        show_progress=show_progress,
    )  # fmt: skip
    first, *rows = selection.lines()
    say(f"features chosen by {first}")
    for row in rows:
        say(f"  {row}")
    return selection.encoder


def run(args: argparse.Namespace) -> int:
    from signrm.cli.common import say
    from signrm.diagnose import diagnose

    if not 0.0 < args.level < 1.0:
        raise UserError(f"--level must be in (0, 1), got {args.level}")
    if args.k_max < 0:
        raise UserError(f"--k-max must be >= 0 (0 skips the latent classes), got {args.k_max}")
    show_progress = False if args.no_progress else None  # None: bars when stderr is a tty
    data = load_prefs(
        args.prefs, args.encoder, show_progress=show_progress, mode=args.mode, seed=args.seed
    )
    n_users = "no" if data.user is None else len(set(data.user.tolist()))
    say(f"read {len(data)} comparisons, {data.n_features} features, {n_users} annotator ids")
    t0 = time.perf_counter()
    report = diagnose(
        data,
        n_subsamples=args.subsamples,
        level=args.level,
        k_max=args.k_max,
        random_state=args.seed,
        show_progress=show_progress,
    )
    plots = {}
    if args.out is not None:
        from signrm.diagnose_plots import write_plots

        out = Path(args.out)
        plots = write_plots(report, out)
        (out / "report.md").write_text(report.to_markdown(plots))
        (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=float))
    print(report.to_markdown(plots), end="")
    say(f"diagnosed in {time.perf_counter() - t0:.1f} s" + (f" -> {args.out}" if args.out else ""))
    return 0
