"""Summaries, tables and curves of ``bench_llm.py`` (kept apart so the script stays short)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def summarise(records: list[dict], key: str) -> list[dict]:
    """Mean, sd and per-seed values of the metrics, one row per method (first-seen order)."""
    rows = []
    for name in dict.fromkeys(r[key] for r in records):
        group = [r for r in records if r[key] == name]
        row = {"method": name, "n_seeds": len(group)}
        for m in ("disagree", "consist", "bon_gain", "wall_s", "steps"):
            vals = [r[m] for r in group if m in r]
            if vals:
                row[m] = float(np.mean(vals))
                row[f"{m}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                row[f"{m}_seeds"] = vals
        row["finite"] = all(r.get("finite", True) for r in group)
        if "max_grad_norm_seen" in group[0]:
            row["max_grad_norm"] = max(r["max_grad_norm_seen"] for r in group)
            row["reward_sd"] = float(np.mean([r["reward_sd"] for r in group]))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = "| method | disagree | consist | best-of-4 gain | wall s | steps | finite |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:

        def cell(m, r=r, fmt="{:.3f}"):
            if m not in r:
                return "-"
            seeds = ", ".join(fmt.format(v) for v in r[f"{m}_seeds"])
            return f"{fmt.format(r[m])} ± {fmt.format(r[m + '_sd'])} ({seeds})"

        wall = f"{r['wall_s']:.0f}" if "wall_s" in r else "-"
        steps = f"{r['steps']:.0f}" if "steps" in r else "-"
        lines.append(
            f"| {r['method']} | {cell('disagree')} | {cell('consist')} | {cell('bon_gain')} "
            f"| {wall} | {steps} | {'yes' if r['finite'] else 'NO'} |"
        )
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from signrm.data import atomic_write

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    groups = (("reward models", "loss_type", 0), ("DPO (LoRA)", "margin_loss", 1))
    for title, key, col in groups:
        for r in records:
            if key not in r or not r.get("curves", {}).get("step"):
                continue
            c = r["curves"]
            label = f"{r[key]} s{r['seed']}"
            axes[0, col].plot(c["step"], c["loss"], label=label, lw=1)
            axes[1, col].plot(c["step"], c["grad_norm"], label=label, lw=1)
        axes[0, col].set_title(f"{title}: training loss")
        axes[1, col].set_title(f"{title}: gradient norm (before clipping)")
        axes[1, col].set_yscale("log")
        axes[1, col].set_xlabel("step")
        axes[0, col].legend(fontsize=6)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
