"""LLM reward models and direct alignment with the sign loss, end to end (SmolLM2-135M, TRL).

    python benchmarks/bench_llm.py --quick                 # 2 CPU cores, under 20 minutes
    accelerate launch --mixed_precision bf16 benchmarks/bench_llm.py --full --model DIR   # GPU

Texts are the twin panel's prompt–response pairs (chatterbot-corpus); labels come from the
panel's personas under a population of ``--panel`` (default ``battery-decisive_minority``: a
decisive minority with its own taste, so the pooled BT fit is biased). A fixed random split of
prompts gives training prompts (the simulated comparisons) and held-out prompts, scored against
the population-average utility ``u_bar(x) = theta_bar . phi(x)``: ``disagree`` (share of all
same-prompt held-out pairs ordered unlike ``u_bar``), ``consist`` (order consistency with fresh
simulated labels) and ``bon_gain`` (best-of-4 ``u_bar`` gain over a random pick, as a share of
the oracle's, best-of-4 by ``u_bar`` itself).

Reward models (``SignRewardTrainer``, ``loss_type`` bt / sign / clf, several seeds): SmolLM2 as an
``AutoModelForSequenceClassification``. ``--quick`` freezes the lower layers and fine-tunes the
top ``--top-layers`` decoder layers (default 0), the final norm and the score head on *cached
lower-layer activations* (:mod:`signrm.integrations.cached`): the frozen layers run once per text,
instead of twice per pair at every step and epoch as with LoRA (which also back-propagates
through every adapted layer). The cached model is checked to give the same rewards as the full
``AutoModelForSequenceClassification`` with the trained parts put back (``equivalence_gap``).
``--full`` trains the whole ``AutoModelForSequenceClassification`` on the texts (bf16 on a GPU).
Ablations of the sign loss (seed 0): no margin normalisation, no BT warm-up, no lambda schedule
(lambda = 15 from the first sign step). ``--ablation`` runs instead the two-seed stability
ablation of ``benchmarks/_llm_ablation.py`` (with an evaluation split, the adaptive lambda, and
``--ablation-set scale`` for reward heads far from unit scale).

Direct alignment (``SignDPOTrainer``, margin_loss sigmoid = standard DPO vs sign): LoRA (peft) on
the top layers of the causal LM, reference log-probs precomputed; held-out disagreement of the
implicit reward ``beta log pi / pi_ref`` with ``u_bar``.

Results: ``OUT/bench_llm.json``, ``OUT/bench_llm.md`` and ``OUT/bench_llm_curves.png`` (loss and
gradient-norm curves), written atomically (default OUT: benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _llm_report import plot, summarise, table
from _runinfo import commit, write_text_atomic

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"
ABLATIONS = {
    "sign, no margin normalisation": {"no_scale": True},
    "sign, no BT warm-up": {"sign_warmup_ratio": 0.0},
    "sign, no lambda schedule (15 throughout)": {"lambda_stages": 1},
}


# -- data ---------------------------------------------------------------------------------------
def prompt_text(prompt: str) -> str:
    return f"Question: {prompt}\nAnswer:"


def full_text(prompt: str, response: str) -> str:
    return f"{prompt_text(prompt)} {response}"


def local_model(model: str | None) -> Path:
    """``model``, else the packaged SmolLM2 GGUF's dequantised copy (made once, then < 1 s)."""
    if model:
        return Path(model)
    from signrm.embed import CausalLMEncoder

    return CausalLMEncoder("smollm2").plain_model_dir()


def make_split(panel, n_train: int, n_test: int, seed: int = 20261201):
    """Alternative indices (rows of the panel) of ``n_train`` training and ``n_test`` held-out
    prompts, chosen at random (fixed across seeds)."""
    rng = np.random.default_rng(seed)
    prompts = rng.permutation(np.unique(panel.prompt_ids))
    train = np.flatnonzero(np.isin(panel.prompt_ids, prompts[:n_train]))
    test = np.flatnonzero(np.isin(panel.prompt_ids, prompts[n_train : n_train + n_test]))
    return train, test


def comparisons(panel, rows: np.ndarray, n: int, seed: int):
    """``n`` simulated same-prompt comparisons among ``rows``: (chosen, rejected, annotator),
    chosen and rejected as positions into ``rows`` (n,) each."""
    from signrm.simulate import simulate_comparisons

    d = simulate_comparisons(
        panel.population,
        panel.embeddings[rows],
        n,
        pairing="same_prompt",
        prompt_ids=panel.prompt_ids[rows],
        random_state=seed,
    )
    win = d.y == 1
    return np.where(win, d.item_a, d.item_b), np.where(win, d.item_b, d.item_a), d.user


def text_pairs(panel, chosen, rejected, annot):
    """A TRL preference dataset (prompt, chosen, rejected, annotator_id) of panel rows."""
    import datasets

    return datasets.Dataset.from_dict(
        {
            "prompt": [prompt_text(panel.prompts[i]) for i in chosen],
            "chosen": [" " + panel.responses[i] for i in chosen],
            "rejected": [" " + panel.responses[i] for i in rejected],
            "annotator_id": [f"persona-{int(u):03d}" for u in annot],
        }
    )


def all_pairs(panel, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every same-prompt pair among ``rows`` (positions into ``rows``)."""
    pid = panel.prompt_ids[rows]
    ia, ib = [], []
    for p in np.unique(pid):
        idx = np.flatnonzero(pid == p)
        i, j = np.triu_indices(len(idx), 1)
        ia.append(idx[i])
        ib.append(idx[j])
    return np.concatenate(ia), np.concatenate(ib)


def population_scores(panel, rows, reward, u_bar, held_labels) -> dict:
    """The three held-out metrics of a reward (m,) over ``rows``."""
    from signrm.metrics import best_of_n, disagreement_rate, order_consistency

    reward = np.asarray(reward, dtype=np.float64)
    ia, ib = all_pairs(panel, rows)
    ca, cb = held_labels
    group = panel.prompt_ids[rows]
    oracle = best_of_n(u_bar, u_bar, group, 4, n_repeats=20, random_state=0)
    return {
        "disagree": disagreement_rate(reward[ia] - reward[ib], u_bar[ia] - u_bar[ib]),
        "consist": order_consistency(reward[ca] - reward[cb], np.ones(len(ca))),
        "bon_gain": best_of_n(reward, u_bar, group, 4, n_repeats=20, random_state=0) / oracle,
    }


# -- training runs ------------------------------------------------------------------------------
def curves(history: list[dict]) -> dict:
    rows = [h for h in history if "loss" in h and "grad_norm" in h]
    return {
        "step": [int(h["step"]) for h in rows],
        "loss": [float(h["loss"]) for h in rows],
        "grad_norm": [float(h["grad_norm"]) for h in rows],
        "lambda": [float(h.get("lambda", 0.0)) for h in rows],  # 0 = BT / warm-up
    }


def trainer_args(args, seed: int) -> dict:
    """The training arguments both trainers share in this benchmark."""
    import torch

    gpu = torch.cuda.is_available()
    return dict(save_strategy="no", report_to="none", bf16=args.full and gpu, seed=seed,
                gradient_checkpointing=False, use_cpu=not gpu, disable_tqdm=True,
                dataloader_num_workers=0)  # fmt: skip


def pairs_dataset(args, data, pairs):
    """The training dataset of ``pairs`` = (chosen, rejected, annotator): texts (``--full``) or
    rows of the activation cache as one-token "texts" (``--quick``)."""
    import datasets

    chosen, rejected, annot = pairs
    if args.full:
        return text_pairs(data["panel"], chosen, rejected, annot)
    where = data["cache_pos"]
    return datasets.Dataset.from_dict(
        {
            "chosen_ids": [[int(where[i])] for i in chosen],
            "rejected_ids": [[int(where[i])] for i in rejected],
            "annotator_id": [f"persona-{u:03d}" for u in annot],
        }
    )


def run_reward(args, loss_type, seed, data, tok, work, extra=None, pairs=None, eval_pairs=None):
    """Train one reward model with SignRewardTrainer on ``pairs`` (default: the seed's
    comparisons), evaluating on ``eval_pairs`` if given; returns its record."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from signrm.integrations.cached import cached_top_model, put_back, score_rows, score_texts
    from signrm.integrations.trl import SignRewardConfig, SignRewardTrainer

    extra = dict(extra or {})
    no_scale = extra.pop("no_scale", False)
    head_scale = extra.pop("head_scale", None)
    torch.manual_seed(seed)
    seq = AutoModelForSequenceClassification.from_pretrained(data["model_dir"], num_labels=1)
    seq.config.pad_token_id = tok.pad_token_id
    ds = pairs_dataset(args, data, data["train"][seed] if pairs is None else pairs)
    eval_ds = None if eval_pairs is None else pairs_dataset(args, data, eval_pairs)
    if args.full:
        model = seq
    else:
        model = cached_top_model(seq, data["hidden"], data["mask"], data["n_lower"])
    if head_scale is not None:  # ablation: rewards (margins) far from unit scale
        with torch.no_grad():
            model.score.weight.mul_(head_scale)
    cfg = SignRewardConfig(
        output_dir=str(work / f"rm-{loss_type}-{seed}"),
        loss_type=loss_type,
        per_device_train_batch_size=args.batch,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=args.lr_warmup,
        logging_steps=args.log_every,
        **trainer_args(args, seed),
        max_grad_norm=args.max_grad_norm,
        **extra,
    )
    trainer = SignRewardTrainer(
        model=model, args=cfg, train_dataset=ds, eval_dataset=eval_ds, processing_class=tok
    )
    if no_scale:  # ablation: lambda acts on the raw margins
        trainer._margin_scale = lambda m, training: torch.ones((), dtype=m.dtype, device=m.device)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    test = data["test"]
    if args.full:
        texts = [full_text(data["panel"].prompts[i], data["panel"].responses[i]) for i in test]
        reward = score_texts(trainer.model, tok, texts)
    else:
        reward = score_rows(trainer.model, data["cache_pos"][test])
        if seed == args.seeds[0] and loss_type == "sign" and not extra and pairs is None:
            put_back(seq, trainer.model, data["n_lower"])
            few = test[:8]
            texts = [full_text(data["panel"].prompts[i], data["panel"].responses[i]) for i in few]
            gap = float(np.max(np.abs(score_texts(seq, tok, texts) - reward[:8])))
            data["equivalence_gap"] = gap
    rec = {
        "loss_type": loss_type,
        "seed": seed,
        "wall_s": wall,
        "steps": int(trainer.state.global_step),
        **population_scores(data["panel"], test, reward, data["u_bar_test"], data["held"]),
        "reward_sd": float(np.std(reward)),
        "finite": bool(np.all(np.isfinite(reward))),
        "margin_scale": trainer.margin_scale.value,
        "curves": curves(trainer.state.log_history),
        "adaptive_lambda": trainer.adaptive_lambda.record() if trainer.adaptive_lambda else None,
    }
    logs = trainer.state.log_history
    if eval_ds is not None:
        rec["eval_curve"] = {
            "step": [int(h["step"]) for h in logs if "eval_accuracy" in h],
            "accuracy": [float(h["eval_accuracy"]) for h in logs if "eval_accuracy" in h],
        }

    rec["max_grad_norm_seen"] = max(rec["curves"]["grad_norm"] or [float("nan")])
    return rec


def run_dpo(args, margin_loss, seed, data, tok, ref_logps, work) -> dict:
    """Train one LoRA policy with SignDPOTrainer; held-out implicit-reward disagreement."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from signrm.integrations.dpo import SignDPOConfig, SignDPOTrainer, sequence_logps

    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_pretrained(data["model_dir"])
    n_layers = lm.config.num_hidden_layers
    chosen, rejected, annot = (v[: args.dpo_pairs] for v in data["train"][seed])
    panel = data["panel"]
    ds = text_pairs(panel, chosen, rejected, annot)
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj", "o_proj"],
        layers_to_transform=list(range(n_layers - args.dpo_layers, n_layers)),
        task_type="CAUSAL_LM",
    )
    cfg = SignDPOConfig(
        output_dir=str(work / f"dpo-{margin_loss}-{seed}"),
        margin_loss=margin_loss,
        beta=args.beta,
        per_device_train_batch_size=args.dpo_batch,
        num_train_epochs=1,
        learning_rate=args.dpo_lr,
        lr_scheduler_type="constant",
        logging_steps=1,
        **trainer_args(args, seed),
        precompute_ref_log_probs=True,
        max_length=128,
    )
    trainer = SignDPOTrainer(
        model=lm, args=cfg, train_dataset=ds, processing_class=tok, peft_config=lora
    )
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    logs = trainer.state.log_history
    rows = data["dpo_test"]
    prompts = [prompt_text(panel.prompts[i]) for i in rows]
    responses = [" " + panel.responses[i] for i in rows]
    policy = trainer.model.eval()
    lp = sequence_logps(policy, tok, prompts, responses).double().numpy()
    implicit = args.beta * (lp - ref_logps)
    u_bar = data["u_bar"][rows]
    return {
        "margin_loss": margin_loss,
        "seed": seed,
        "wall_s": wall,
        "steps": int(trainer.state.global_step),
        **population_scores(panel, rows, implicit, u_bar, data["dpo_held"]),
        "train_reward_acc": [h["rewards/accuracies"] for h in logs if "rewards/accuracies" in h],
        "curves": curves(trainer.state.log_history),
    }


def linear_reference(data, seeds) -> list[dict]:
    """BT and sign linear heads on the panel's own features (u_bar is linear in them), on the
    same comparisons: how far each loss gets when the features are right."""
    from signrm import BradleyTerry, PreferenceData, SignEstimator

    panel, test = data["panel"], data["test"]
    out = []
    for seed in seeds:
        chosen, rejected, _ = data["train"][seed]
        pd = PreferenceData.from_arrays(
            xa=panel.embeddings[chosen], xb=panel.embeddings[rejected], y=np.ones(len(chosen))
        )
        for name, est in (("bt", BradleyTerry()), ("sign", SignEstimator())):
            theta = est.fit(pd).coef_
            reward = panel.embeddings[test].astype(np.float64) @ theta
            scores = population_scores(panel, test, reward, data["u_bar_test"], data["held"])
            out.append({"loss_type": f"linear {name} (MiniLM features)", "seed": seed, **scores})
    return out


def prepare(args, tok):
    """Panel, split, simulated comparisons per seed, held-out labels and the activation cache."""
    from transformers import AutoModelForSequenceClassification

    from signrm.simulate import load_twin_panel

    t0 = time.perf_counter()
    panel = load_twin_panel(args.panel)
    train, test = make_split(panel, args.train_prompts, args.test_prompts)
    u_bar = panel.embeddings.astype(np.float64) @ panel.population.mean_utility()
    data = {"panel": panel, "test": test, "u_bar": u_bar, "u_bar_test": u_bar[test]}
    data["train"] = {}
    for s in args.seeds:  # panel rows of the chosen and rejected alternatives
        c, r, u = comparisons(panel, train, args.n_comparisons, 1000 + s)
        data["train"][s] = (train[c], train[r], u)
    data["held"] = comparisons(panel, test, args.n_held, 99)[:2]
    dpo_rows = test[
        np.isin(panel.prompt_ids[test], np.unique(panel.prompt_ids[test])[: args.dpo_test_prompts])
    ]
    data["dpo_test"] = dpo_rows
    data["dpo_held"] = comparisons(panel, dpo_rows, args.n_held // 2, 98)[:2]
    print(f"comparisons simulated ({time.perf_counter() - t0:.0f} s)", flush=True)
    data["model_dir"] = str(local_model(args.model))
    if not args.full:
        rows = np.concatenate([train, test])
        texts = [full_text(panel.prompts[i], panel.responses[i]) for i in rows]
        seq = AutoModelForSequenceClassification.from_pretrained(data["model_dir"], num_labels=1)
        n_lower = seq.config.num_hidden_layers - args.top_layers
        t0 = time.perf_counter()
        data["hidden"], data["mask"] = cached_activations(args, seq, tok, texts, n_lower)
        data["cache_s"] = time.perf_counter() - t0
        print(f"activations of {len(texts)} texts cached ({data['cache_s']:.0f} s)", flush=True)
        data["n_lower"] = n_lower
        pos = np.full(panel.n_alternatives, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        data["cache_pos"] = pos
    return data


def cached_activations(args, seq, tok, texts, n_lower):
    """:func:`signrm.integrations.cached.lower_activations`, read from / saved to
    ``--activation-cache`` when given (the file records the texts and ``n_lower`` it was made
    for; a mismatch is recomputed, never reused)."""
    import torch

    from signrm.data import atomic_write
    from signrm.integrations.cached import lower_activations

    key = {"model": str(args.model), "texts": list(texts), "n_lower": n_lower}
    path = args.activation_cache
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        if saved["key"] == json.dumps(key):
            return saved["hidden"], saved["mask"]
    hidden, mask = lower_activations(seq, tok, texts, n_lower)
    if path is not None:
        blob = {"key": json.dumps(key), "hidden": hidden, "mask": mask}
        atomic_write(path, lambda p: torch.save(blob, p))
    return hidden, mask


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="CPU: cached activations (default)")
    mode.add_argument("--full", action="store_true", help="GPU: train the whole model on texts")
    ap.add_argument("--model", default=None, help="local model folder (default: packaged SmolLM2)")
    ap.add_argument("--panel", default="battery-decisive_minority")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--train-prompts", type=int, default=24)
    ap.add_argument("--test-prompts", type=int, default=12)
    ap.add_argument("--n-comparisons", type=int, default=4000)
    ap.add_argument("--n-held", type=int, default=4000)
    ap.add_argument("--top-layers", type=int, default=0, help="0 = final norm + head")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-warmup", type=int, default=10)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--ablation", action="store_true", help="sign-loss ablation only")
    ap.add_argument("--ablation-name", default="bench_llm_ablation", help="results file name")
    ap.add_argument("--ablation-set", default="stability", choices=["stability", "scale"])
    ap.add_argument("--eval-share", type=float, default=0.2, help="--ablation: held-out share")
    ap.add_argument("--eval-every", type=int, default=10, help="--ablation: steps per evaluation")
    ap.add_argument("--activation-cache", type=Path, help="reuse (or save) the --quick cache")
    ap.add_argument("--no-dpo", action="store_true")
    ap.add_argument("--dpo-pairs", type=int, default=12)
    ap.add_argument("--dpo-batch", type=int, default=4)
    ap.add_argument("--dpo-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--dpo-layers", type=int, default=2, help="LoRA on the top layers only")
    ap.add_argument("--dpo-lr", type=float, default=5e-4)
    ap.add_argument("--dpo-test-prompts", type=int, default=3)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    import torch
    from transformers import AutoTokenizer

    from signrm.integrations.dpo import sequence_logps

    args = parse(argv)
    torch.set_num_threads(args.threads)
    start, load0 = time.time(), os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_llm_"))
    model_dir = local_model(args.model)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    data = prepare(args, tok)
    print(f"data ready in {time.time() - start:.0f} s", flush=True)
    if args.ablation:
        from _llm_ablation import run_ablation

        return run_ablation(args, data, tok, work, start, load0)

    records = linear_reference(data, args.seeds)
    plan = [(lt, s, None) for s in args.seeds for lt in ("bt", "sign", "clf")]
    if not args.no_ablations:
        plan += [(name, args.seeds[0], extra) for name, extra in ABLATIONS.items()]
    for name, seed, extra in plan:
        loss_type = "sign" if extra is not None else name
        rec = run_reward(args, loss_type, seed, data, tok, work, extra)
        rec["loss_type"] = name
        records.append(rec)
        print(
            f"{name} seed {seed}: disagree {rec['disagree']:.3f} ({rec['wall_s']:.0f} s)",
            flush=True,
        )
    dpo = []
    if not args.no_dpo:
        from transformers import AutoModelForCausalLM

        panel, rows = data["panel"], data["dpo_test"]
        ref = AutoModelForCausalLM.from_pretrained(data["model_dir"]).eval()
        ref_lp = (
            sequence_logps(
                ref,
                tok,
                [prompt_text(panel.prompts[i]) for i in rows],
                [" " + panel.responses[i] for i in rows],
            )
            .double()
            .numpy()
        )
        base = population_scores(panel, rows, ref_lp, data["u_bar"][rows], data["dpo_held"])
        dpo.append(
            {
                "margin_loss": "reference log-prob (no training)",
                "seed": 0,
                **base,
                "curves": {"step": [], "loss": [], "grad_norm": []},
            }
        )
        for seed in args.dpo_seeds:
            for margin_loss in ("sigmoid", "sign"):
                rec = run_dpo(args, margin_loss, seed, data, tok, ref_lp, work)
                dpo.append(rec)
                print(
                    f"dpo {margin_loss} seed {seed}: disagree {rec['disagree']:.3f} "
                    f"({rec['wall_s']:.0f} s)",
                    flush=True,
                )

    rm_rows, dpo_rows = summarise(records, "loss_type"), summarise(dpo, "margin_loss")
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    meta = {
        "command": cmd,
        "commit": commit(),
        "started_unix": start,
        "wall_s_total": time.time() - start,
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cuda": torch.cuda.is_available(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "cache_s": data.get("cache_s"),
        "equivalence_gap": data.get("equivalence_gap"),
    }
    result = {"meta": meta, "reward_models": rm_rows, "dpo": dpo_rows, "runs": records + dpo}
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch: rank 0 reports
        return
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "bench_llm.json", json.dumps(result, indent=1, default=float))
    plot(records + dpo, args.out / "bench_llm_curves.png")
    md = [
        f"# bench_llm ({'full' if args.full else 'quick'})",
        "",
        f"`{cmd}` at commit {meta['commit']}, {meta['wall_s_total']:.0f} s in all "
        f"(activation cache {meta['cache_s'] or 0:.0f} s), load average "
        f"{load0[0]:.1f} -> {meta['loadavg_end'][0]:.1f}, {args.threads} threads.",
        f"Panel {args.panel}; {args.train_prompts} training / {args.test_prompts} held-out "
        f"prompts; {args.n_comparisons} comparisons per seed; mean ± sd over seeds "
        "(per-seed values in brackets).",
        "",
        "## Reward models (SignRewardTrainer)",
        "",
        table(rm_rows),
        "",
        "## Direct alignment (SignDPOTrainer, LoRA)",
        "",
        table(dpo_rows) if dpo_rows else "(not run)",
        "",
    ]
    write_text_atomic(args.out / "bench_llm.md", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
