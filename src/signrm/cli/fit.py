"""``signrm fit PREFS``: embed a text preference file, fit a reward model, save it.

The model directory holds the estimator (``model.json`` ...) and ``encoder.json`` (the encoder's
identity), so that ``signrm score`` and ``signrm best-of-n`` embed new texts the same way. The
model is fitted on the training split; the printed held-out order consistency is on the rest.

Features are chosen from the data (``--mode auto``, the default for sentence encoders, and
``--encoder a,b``): every candidate is scored by cross-validation on the training split only
(:func:`signrm.feature_select.select_features`), so the held-out figure stays honest.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from signrm.cli.common import (
    HEADS,
    add_format_arg,
    add_runtime_args,
    positive_int,
    runtime_kwargs,
    say,
    warnings_as_lines,
)
from signrm.errors import UserError
from signrm.registry import estimator_names, estimator_spec

__all__ = [
    "register",
    "run",
    "make_estimator",
    "build_encoder",
    "build_candidates",
    "order_consistency",
]


def make_estimator(name: str, head: str, seed: int, n_classes: int):
    """The estimator of ``--estimator NAME --head HEAD --seed SEED`` (see ``signrm.registry``)."""
    from signrm.registry import make_estimator as from_registry

    spec = estimator_spec(name)
    params: dict = {"random_state": seed}
    if spec.heads:
        params["head"] = head
    elif name in ("em", "npmle"):
        if head != "linear":
            raise UserError(f"--estimator {name} has linear utilities only; drop --head")
        if name == "em":
            params["n_classes"] = n_classes
    elif head != "linear":
        say(f"note: --head is ignored by {name} (its model is the {name[4:]} classifier)")
    return from_registry(name, **params)


def _kind_of(name: str, kind: str) -> str:
    """The encoder family (``sentence`` / ``causal_lm``) that ``make_encoder`` gives ``name``."""
    from signrm.embed import make_encoder

    if kind != "auto":
        return "causal_lm" if kind == "causal" else kind
    try:  # building an encoder loads nothing
        return make_encoder(name, kind="auto", cache_dir=False).kind
    except (TypeError, ValueError) as exc:
        raise UserError(f"--encoder {name}: {exc}") from None


def build_encoder(args: argparse.Namespace, name: str | None = None, *, in_list: bool = False):
    """The encoder ``name`` (default ``--encoder``) with the options of its family.

    A sentence encoder gets ``--mode`` (``auto`` or none: ``concat`` here; the candidates of
    ``auto`` come from :func:`build_candidates`). Options of the other family are errors, except
    ``in_list`` (an item of ``--encoder a,b``), where each family takes its own options.
    """
    from signrm.embed import make_encoder

    name = args.encoder if name is None else name
    kw = runtime_kwargs(args)
    if args.embed_batch_size is not None:
        kw["batch_size"] = args.embed_batch_size
    kind = args.encoder_kind
    layer = -1 if args.layer is None else args.layer
    if in_list and layer != -1 and _kind_of(name, kind) == "sentence":
        layer = -1  # --layer is for the causal LMs of the list
    try:
        enc = make_encoder(name, kind=kind, layer=layer, **kw)
    except TypeError as exc:  # an option that the chosen encoder does not take
        raise UserError(f"--encoder {name}: {exc}") from None
    # options of the other encoder family are errors, not silently ignored
    if enc.kind == "sentence":
        if args.layer is not None and not in_list:
            raise UserError(
                f"--layer {args.layer} applies to causal LM encoders; {name!r} is a "
                "sentence encoder (it has no layer choice)"
            )
        if args.chat_template is not None and not in_list:
            raise UserError(
                f"--chat-template applies to causal LM encoders; --encoder {name} is a "
                "sentence encoder (its options: --mode)"
            )
        enc.mode = "concat" if args.mode in (None, "auto") else args.mode
    else:
        if args.mode is not None and not in_list:
            raise UserError(
                f"--mode applies to sentence encoders; --encoder {name} is a causal LM "
                "(its options: --layer, --chat-template)"
            )
        enc.chat_template = {"auto": None, "yes": True, "no": False}[args.chat_template or "auto"]
    return enc


def build_candidates(args: argparse.Namespace) -> list:
    """The encoders to choose among: each name of ``--encoder a,b,...``, a sentence encoder in
    every mode unless ``--mode`` fixes one. One candidate means no selection."""
    from signrm.feature_select import mode_candidates

    names = [n.strip() for n in args.encoder.split(",")]
    if "" in names:
        raise UserError(f"--encoder {args.encoder}: empty name in the comma-separated list")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--encoder {args.encoder}: {', '.join(twice)} given more than once")
    in_list = len(names) > 1
    encoders = [build_encoder(args, n, in_list=in_list) for n in names]
    if in_list:  # an option that no encoder of the list takes is still an error
        kinds = {e.kind for e in encoders}
        for flag, value, family in (
            ("--layer", args.layer, "causal_lm"),
            ("--chat-template", args.chat_template, "causal_lm"),
            ("--mode", args.mode, "sentence"),
        ):
            if value is not None and family not in kinds:
                what = "causal LM" if family == "causal_lm" else "sentence"
                raise UserError(
                    f"{flag} applies to {what} encoders; --encoder {args.encoder} has none"
                )
    out = []
    for enc in encoders:
        auto = enc.kind == "sentence" and args.mode in (None, "auto")
        out.extend(mode_candidates(enc) if auto else [enc])
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a reward model on a text preference file",
        description=(
            "Embed a preference file (JSONL/CSV/Parquet; TRL prompt/chosen/rejected or pair "
            "prompt/response_a/response_b/label, optional annotator_id/margin/weight), fit an "
            "estimator on a training split, print held-out order consistency, save the model."
        ),
    )
    p.add_argument(
        "prefs",
        help="text preference file (.jsonl, .csv, .parquet), or a feature directory streamed out "
        "of core (Parquet shards, or xa.npy + xb.npy + y.npy)",
    )
    p.add_argument(
        "--estimator",
        default="sign",
        choices=estimator_names(),
        help="sign, bt (Bradley-Terry / RLHF), thurstone (probit), clf-mlp / clf-lgb "
        "(classification reward model), em (latent-class BT, needs annotator ids), npmle "
        "(nonparametric mixture of BT annotators, needs annotator ids)",
    )
    p.add_argument(
        "--encoder",
        default="minilm",
        help="minilm (packaged), smollm2 (packaged GGUF), a local folder / .gguf, or a hub name; "
        "several, comma-separated (minilm,smollm2): the one with the best cross-validated "
        "held-out order consistency on the training split is used",
    )
    p.add_argument(
        "--encoder-kind",
        default="auto",
        choices=("auto", "sentence", "causal_lm"),
        help="how to read --encoder (auto: from the folder's files; hub names -> sentence)",
    )
    p.add_argument(
        "--layer", type=int, default=None, help="causal LMs: hidden layer (default -1 = final)"
    )
    p.add_argument(
        "--mode",
        default=None,
        choices=("auto", "concat", "response", "separate", "average"),
        help="sentence encoders: how prompt and response are embedded; auto (default) chooses "
        "by 5-fold cross-validation by prompt on the training split (see --select-max)",
    )
    p.add_argument(
        "--select-max",
        type=positive_int,
        default=None,
        metavar="N",
        help="choosing features (--mode auto, --encoder a,b): cross-validate on a seeded "
        "prompt-grouped subsample of at most N training comparisons (default 2000)",
    )
    p.add_argument(
        "--select-slack",
        type=float,
        default=None,
        metavar="S",
        help="choosing features: keep the first candidate (concat, response, separate, average; "
        "encoders in --encoder order) within S paired standard errors of the best "
        "cross-validated score (default 0: the best score, exact ties to the first; 1 = the "
        "one-standard-error rule)",
    )
    p.add_argument(
        "--chat-template",
        default=None,
        choices=("auto", "yes", "no"),
        help="causal LMs: wrap prompt/response in the tokenizer's chat template (default auto)",
    )
    p.add_argument(
        "--head",
        default="linear",
        choices=(*HEADS, "auto"),
        help="reward head of sign, bt, thurstone: linear (exact L-BFGS) or mlp (Adam); auto: "
        "choose between them with the features, by the same cross-validation (text files, one "
        "process; adds an MLP fit per fold and feature candidate)",
    )
    p.add_argument(
        "--n-classes", type=positive_int, default=3, help="latent classes for --estimator em"
    )
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out directory")
    p.add_argument(
        "--split",
        default="random",
        choices=("random", "user", "prompt"),
        help="how to hold out test comparisons: at random, whole annotators or whole prompts",
    )
    p.add_argument("--test-size", type=float, default=0.2, help="held-out share (0 = no test)")
    p.add_argument(
        "--seed", type=int, default=0, help="random_state of the split, encoder and estimator"
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train torch heads on N processes (torchrun, DistributedDataParallel; gloo on CPU)",
    )
    p.add_argument(
        "--on-invalid",
        default="error",
        choices=("error", "drop"),
        help="rows with an empty prompt or response, or two identical responses: stop with an "
        "error, or drop them (reported)",
    )
    p.add_argument(
        "--on-duplicate",
        default="warn",
        choices=("warn", "error", "drop"),
        help="comparisons repeated with the same prompt, responses and annotator: keep them "
        "with a warning, stop with an error, or drop all but the first",
    )
    add_format_arg(p, "PREFS")
    add_runtime_args(p)
    p.set_defaults(func=run)


def fit_distributed_cli(estimator, train, args: argparse.Namespace):
    """Train ``estimator``'s settings on ``train`` with ``args.nproc`` torchrun processes.

    The training split is written once to a temporary Parquet file that every process reads;
    rank 0 saves the model, which is loaded back here.
    """
    import tempfile

    import signrm
    from signrm.train import launch

    distributed = estimator_names(distributed=True)
    if args.estimator not in distributed:
        raise UserError(
            f"--nproc trains torch heads: use --estimator {', '.join(distributed)} "
            f"(not {args.estimator})"
        )
    head = "mlp" if args.estimator == "clf-mlp" else args.head
    with tempfile.TemporaryDirectory(prefix="signrm-ddp-") as tmp:
        data_path = Path(tmp) / "train.parquet"
        train.write(data_path)
        argv = ["--data", str(data_path), "--out", str(Path(tmp) / "model"),
                "--estimator", args.estimator, "--head", head,
                "--seed", str(args.seed)]  # fmt: skip
        if args.no_progress:
            argv.append("--quiet")
        say(f"training on {args.nproc} processes (torchrun, DistributedDataParallel)")
        code = launch(args.nproc, argv)
        if code != 0:
            raise UserError(f"distributed training failed (exit code {code}); see the log above")
        return signrm.load(Path(tmp) / "model")


def run_streaming(args: argparse.Namespace, out: Path) -> int:
    """Fit a linear BT/Thurstone/sign model on a feature directory, out of core."""
    from signrm.streaming import open_source

    streaming = args.nproc == 1
    names = estimator_names(streaming=True)
    if streaming and (args.estimator not in names or args.head != "linear"):
        raise UserError(
            f"{args.prefs} is a feature directory: streaming fits take --estimator "
            f"{', '.join(names)} with --head linear (MLP heads: add --nproc N, which loads it in "
            "memory)"
        )
    estimator = make_estimator(args.estimator, args.head, args.seed, args.n_classes)
    if not streaming:
        from signrm.train import load_data

        estimator = fit_distributed_cli(estimator, load_data(args.prefs), args)
    else:
        estimator.verbose = not args.no_progress
        source = open_source(args.prefs)
        t0 = time.perf_counter()
        estimator.fit(source)
        say(f"fitted out of core in {time.perf_counter() - t0:.1f} s")
    how = "streamed" if streaming else f"{args.nproc} processes"
    print(f"estimator          {args.estimator} (head {args.head}, {how}, from {args.prefs})")
    if getattr(estimator, "agreement_", None) is not None:
        print(f"train agreement    {estimator.agreement_:.4f}  (mean s sign(margin))")
    estimator.save(out)
    print(f"saved              {out}")
    return 0


def order_consistency(estimator, data) -> float | None:
    """``estimator.score(data)``, or None when every label of ``data`` is a tie (undefined)."""
    if len(data) == 0 or bool(np.all(np.asarray(data.y) == 0.5)):
        return None
    return float(estimator.score(data))


def training_rows(texts, args: argparse.Namespace) -> np.ndarray:
    """Indices of the comparisons that ``data.split`` (``--split``, ``--test-size``, ``--seed``)
    puts on the training side, found before embedding (the split reads only the labels, the
    annotator and prompt ids)."""
    from signrm.data import PreferenceData

    n = len(texts)
    if args.test_size == 0:
        return np.arange(n)
    codes, _ = texts.prompt_codes()
    rows = PreferenceData.from_differences(
        np.arange(n, dtype=np.float64)[:, None], texts.y, user=texts.annotator, prompt=codes
    )
    train, _ = rows.split(by=args.split, test_size=args.test_size, random_state=args.seed)
    return np.asarray(train.differences[:, 0], dtype=np.int64)


def candidate_estimators(args: argparse.Namespace) -> list:
    """The estimator of ``--estimator``/``--head``; with ``--head auto`` one per head."""
    if args.head != "auto":
        return [make_estimator(args.estimator, args.head, args.seed, args.n_classes)]
    if not estimator_spec(args.estimator).heads:
        raise UserError(f"--head auto: --estimator {args.estimator} has no choice of head")
    if args.nproc > 1:
        raise UserError("--head auto runs on one process; pass --head linear or mlp with --nproc")
    return [make_estimator(args.estimator, h, args.seed, args.n_classes) for h in HEADS]


def choose_features(texts, candidates: list, estimator, args: argparse.Namespace):
    """:func:`signrm.feature_select.select_features` on the training split only (so that the
    held-out figure printed later is not used to choose). Candidates are scored with the
    estimator itself, except ``em`` and ``npmle``: restarts or per-annotator fits would make
    the 5 x candidates fits cost minutes, and their annotators are BT models, so linear BT
    scores the features."""
    from signrm.feature_select import DEFAULT_MAX_COMPARISONS, DEFAULT_SLACK, select_features

    train = texts.subset(training_rows(texts, args))
    if args.estimator in ("em", "npmle"):
        estimator = [make_estimator("bt", "linear", args.seed, args.n_classes)]
    with warnings_as_lines():
        return select_features(
            train,
            candidates,
            estimator,
            max_comparisons=args.select_max or DEFAULT_MAX_COMPARISONS,
            random_state=args.seed,
            slack=DEFAULT_SLACK if args.select_slack is None else args.select_slack,
            show_progress=False if args.no_progress else None,
        )


def _show(value: float | None) -> str:
    return "n/a (all ties)" if value is None else f"{value:.4f}"


def run(args: argparse.Namespace) -> int:
    from signrm.persistence import check_replaceable
    from signrm.text_model import TextRewardModel
    from signrm.textdata import read_text

    out = Path(args.out)
    check_replaceable(out)  # only a signrm model directory is ever replaced, even with --force
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"{out} exists and is not empty; pass --force to replace it")
    if not 0.0 <= args.test_size < 1.0:
        raise UserError(f"--test-size must be in [0, 1), got {args.test_size}")
    if args.nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {args.nproc}")
    if args.select_slack is not None and not args.select_slack >= 0:
        raise UserError(f"--select-slack must be >= 0, got {args.select_slack}")
    if Path(args.prefs).is_dir():
        if args.format is not None:
            raise UserError(f"--format applies to a preference file; {args.prefs} is a directory")
        if args.head == "auto":
            raise UserError(
                f"--head auto chooses the head on a text file; {args.prefs} is a feature "
                "directory: pass --head linear or mlp"
            )
        return run_streaming(args, out)
    estimators = candidate_estimators(args)

    with warnings_as_lines():
        texts = read_text(
            args.prefs,
            format=args.format,
            on_invalid=args.on_invalid,
            on_duplicate=args.on_duplicate,
        )
    n_users = 0 if texts.annotator is None else len(set(texts.annotator))
    say(
        f"read {len(texts)} comparisons ({texts.convention} convention), "
        f"{len(set(texts.prompts))} prompts, {n_users or 'no'} annotator ids"
    )
    if args.estimator in ("em", "npmle") and texts.annotator is None:
        raise UserError(f"{args.prefs}: --estimator {args.estimator} needs an annotator_id column")
    if args.split == "user" and texts.annotator is None:
        raise UserError(f"{args.prefs}: --split user needs an annotator_id column")

    candidates = build_candidates(args)
    selection = None
    if len(candidates) > 1 or len(estimators) > 1:
        selection = choose_features(texts, candidates, estimators, args)
        encoder = selection.encoder
        # the chosen head; a single estimator stays itself (em is scored by a BT stand-in)
        estimator = selection.estimator if len(estimators) > 1 else estimators[0]
    else:
        encoder, estimator = candidates[0], estimators[0]
    head = getattr(estimator, "head", args.head)
    t0 = time.perf_counter()
    with warnings_as_lines():
        data = texts.to_preference_data(
            encoder, random_state=args.seed, show_progress=False if args.no_progress else None
        )
    say(
        f"embedded with {encoder.describe()}: d = {data.n_features} ({time.perf_counter() - t0:.1f} s)"
    )

    if args.test_size > 0:
        train, test = data.split(by=args.split, test_size=args.test_size, random_state=args.seed)
    else:
        train, test = data, None
    t0 = time.perf_counter()
    with warnings_as_lines():
        if args.nproc > 1:
            estimator = fit_distributed_cli(estimator, train, args)
        else:
            estimator.fit(train)
    fit_s = time.perf_counter() - t0
    train_oc = order_consistency(estimator, train)
    summary = {
        "estimator": args.estimator,
        "head": head,
        "n_train": len(train),
        "n_test": 0 if test is None else len(test),
        "split": args.split,
        "seed": args.seed,
        "train_order_consistency": train_oc,
        "source": str(args.prefs),
    }
    if selection is not None:
        summary["feature_selection"] = selection.to_dict()
        first, *rows = selection.lines()
        print(f"features           chosen by {first}")
        for row in rows:
            print(f"  {row}")
    print(f"estimator          {args.estimator} (head {head})")
    print(f"train comparisons  {len(train)}   order consistency {_show(train_oc)}")
    if test is not None:
        test_oc = order_consistency(estimator, test)
        summary["test_order_consistency"] = test_oc
        print(f"held-out ({args.split:<6}) {len(test)}   order consistency {_show(test_oc)}")
    print(f"fit time           {fit_s:.1f} s")
    model = TextRewardModel(estimator, encoder)
    model.save(out, extra={"fit": summary})
    print(f"saved              {out}")
    return 0
