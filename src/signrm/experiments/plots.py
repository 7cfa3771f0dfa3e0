"""PNG plots of experiment results (matplotlib, Agg backend; only this module imports it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from signrm.metrics import mean_ci  # noqa: E402

__all__ = ["plot_error_vs_n", "plot_rates", "plot_bt_vs_clf"]

_ORDER = ["rlhf", "bt", "sign", "em2", "em3", "em5"]


def _ordered(names) -> list[str]:
    names = list(names)
    return sorted(names, key=lambda e: (_ORDER.index(e) if e in _ORDER else 99, e))


def _curves(ax, df: pd.DataFrame, metric: str, scale: float = 1.0) -> None:
    for est in _ordered(df["estimator"].unique()):
        grp = df[df["estimator"] == est]
        ns, m, lo, hi = [], [], [], []
        for n, g in grp.groupby("n"):
            mm, ll, hh = mean_ci(g[metric].to_numpy(float))
            ns.append(n), m.append(mm * scale), lo.append(ll * scale), hi.append(hh * scale)
        if not ns or not np.isfinite(m).any():
            continue
        style = "-o" if est in ("sign", "rlhf", "bt") else "--s"
        ax.plot(ns, m, style, label=est, ms=4)
        ax.fill_between(ns, lo, hi, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("comparisons n")
    ax.grid(True, which="both", alpha=0.3)


def plot_error_vs_n(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``error_vs_n.png``: angular error and disagreement against n, per estimator (95 % bands)."""
    out_dir = Path(out_dir)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    _curves(axes[0], df, "angular_error_deg")
    axes[0].set_ylabel("angular error to theta_bar (deg)")
    _curves(axes[1], df, "disagreement", scale=100.0)
    axes[1].set_ylabel("disagreement with population order (%)")
    axes[0].legend()
    name = df["experiment"].iloc[0]
    fig.suptitle(f"{name}: error against n (mean and 95 % interval over seeds)")
    fig.tight_layout()
    path = out_dir / "error_vs_n.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_rates(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``rates_<experiment>.png``: log-log angular error against n with fitted slopes."""
    out_dir = Path(out_dir)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for est in _ordered(df["estimator"].unique()):
        grp = df[df["estimator"] == est]
        means = grp.groupby("n")["angular_error_deg"].mean().sort_index()
        ns = means.index.to_numpy(float)
        slope, icpt = np.polyfit(np.log(ns), np.log(means.to_numpy(float)), 1)
        ax.loglog(ns, means.to_numpy(float), "o-", label=f"{est} (slope {slope:.2f})")
    ax.set_xlabel("comparisons n")
    ax.set_ylabel("angular error (deg)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    name = df["experiment"].iloc[0]
    ax.set_title(f"{name}: angular error against n")
    fig.tight_layout()
    path = out_dir / f"rates_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_bt_vs_clf(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``bt_vs_clf.png``: best-of-N improvement per model, one panel per (candidates, pairing)."""
    out_dir = Path(out_dir)
    panels = list(df.groupby(["candidates", "pairing"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, ((cand, pairing), grp) in zip(axes[0], panels):
        xs = sorted(grp["beta"].unique())
        width = 0.8 / max(1, grp["estimator"].nunique())
        for i, est in enumerate(sorted(grp["estimator"].unique())):
            g = grp[grp["estimator"] == est]
            m, lo, hi = zip(*(mean_ci(g[g["beta"] == b]["bon_improvement"]) for b in xs))
            pos = np.arange(len(xs)) + i * width
            ax.bar(pos, m, width, yerr=[np.subtract(m, lo), np.subtract(hi, m)], label=est)
        ax.set_xticks(np.arange(len(xs)) + 0.4 - width / 2)
        ax.set_xticklabels([f"beta={b:g}" for b in xs])
        ax.set_title(f"{cand}, {pairing}")
        ax.set_ylabel("best-of-N golden improvement")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "bt_vs_clf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
