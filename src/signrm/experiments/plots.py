"""PNG plots of experiment results (matplotlib, Agg backend; only this module imports it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from signrm.metrics import mean_ci  # noqa: E402

from .analysis import rate_groups, rate_slopes  # noqa: E402

__all__ = ["plot_error_vs_n", "plot_rates", "rates_figure", "plot_bt_vs_clf"]

_ORDER = ["rlhf", "bt", "sign", "sign-cv", "em2", "em3", "em5"]


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
        style = "-o" if est in ("sign", "sign-paper", "sign-cv", "rlhf", "bt") else "--s"
        ax.plot(ns, m, style, label=est, ms=4)
        ax.fill_between(ns, lo, hi, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("comparisons n")
    ax.grid(True, which="both", alpha=0.3)


def plot_error_vs_n(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``error_vs_n.png``: angular error and disagreement against n, per estimator (95 % bands),
    one row per panel when the results hold several."""
    from signrm.data import atomic_write

    out_dir = Path(out_dir)
    groups = list(df.groupby("panel", sort=False)) if "panel" in df else [(None, df)]
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.8 * len(groups)), squeeze=False)
    for row, (panel, grp) in zip(axes, groups):
        _curves(row[0], grp, "angular_error_deg")
        row[0].set_ylabel("angular error to theta_bar (deg)")
        _curves(row[1], grp, "disagreement", scale=100.0)
        row[1].set_ylabel("disagreement with population order (%)")
        if panel is not None:
            row[0].set_title(f"panel {panel}", fontsize=9)
        row[0].legend(fontsize=8)
    name = df["experiment"].iloc[0]
    fig.suptitle(f"{name}: error against n (mean and 95 % interval over seeds)")
    fig.tight_layout()
    path = out_dir / "error_vs_n.png"
    atomic_write(path, lambda t: fig.savefig(t, dpi=110, format="png"), suffix=".png")
    plt.close(fig)
    return [path]


def rates_figure(df: pd.DataFrame):
    """Log-log angular error against n: one panel per setting (e.g. per population), one line
    per estimator with its fitted slope (``rate_slopes``) in the legend. Returns the Figure."""
    groups = rate_groups(df)
    colours = {e: f"C{i}" for i, e in enumerate(_ordered(df["estimator"].unique()))}
    fig, axes = plt.subplots(
        1, len(groups), figsize=(5.2 * len(groups), 4.5), squeeze=False, sharey=True
    )
    for ax, (label, grp) in zip(axes[0], groups):
        slopes = rate_slopes(grp).set_index("estimator")["slope"]
        for est in _ordered(grp["estimator"].unique()):
            means = grp[grp["estimator"] == est].groupby("n")["angular_error_deg"].mean()
            means = means.sort_index()
            ax.loglog(
                means.index.to_numpy(float),
                means.to_numpy(float),
                "o-",
                color=colours[est],
                label=f"{est} (slope {slopes[est]:.2f})",
            )
        ax.set_xlabel("comparisons n")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        if label:
            ax.set_title("\n".join(textwrap.wrap(label, 50)), fontsize=8)
    axes[0][0].set_ylabel("angular error (deg)")
    name = df["experiment"].iloc[0]
    fig.suptitle(f"{name}: angular error against n (mean over seeds; fitted log-log slope)")
    fig.tight_layout()
    return fig


def plot_rates(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``rates_<experiment>.png``: ``rates_figure`` (one panel per setting) saved as PNG."""
    out_dir = Path(out_dir)
    fig = rates_figure(df)
    path = out_dir / f"rates_{df['experiment'].iloc[0]}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_bt_vs_clf(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``bt_vs_clf.png``: best-of-N improvement per model against beta (quality), against n
    (quantity) and per pairing x candidates (the three sub-grids; 95 % intervals over seeds)."""
    out_dir = Path(out_dir)
    ests = sorted(df["estimator"].unique())
    n0 = int(df["n"].min())
    base = df[(df["pairing"] == "same_prompt") & (df["candidates"] == "random")]
    quality = base[base["n"] == n0]
    beta0 = 1.0 if (base["beta"] == 1).any() else float(base["beta"].min()) if len(base) else 1.0
    quantity = base[base["beta"] == beta0]
    pairing = df[(df["n"] == n0) & (df["beta"] == beta0)]
    panels = []
    if quality["beta"].nunique() > 1:
        panels.append(("quality", quality))
    if quantity["n"].nunique() > 1:
        panels.append(("quantity", quantity))
    if pairing["pairing"].nunique() > 1 or pairing["candidates"].nunique() > 1:
        panels.append(("pairing", pairing))
    if not panels:
        panels.append(("pairing", df))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (kind, grp) in zip(axes[0], panels):
        if kind in ("quality", "quantity"):
            col = "beta" if kind == "quality" else "n"
            for est in ests:
                g = grp[grp["estimator"] == est]
                xs = sorted(g[col].unique())
                m, lo, hi = zip(*(mean_ci(g[g[col] == x]["bon_improvement"]) for x in xs))
                ax.errorbar(
                    xs,
                    m,
                    yerr=[np.subtract(m, lo), np.subtract(hi, m)],
                    fmt="-o",
                    capsize=3,
                    label=est,
                )
            ax.set_xscale("log")
            ticks = sorted(grp[col].unique())
            ax.set_xticks(ticks, [f"{t:g}" if kind == "quality" else f"{int(t):,}" for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("beta (annotator quality)" if kind == "quality" else "annotations n")
            ax.set_title(
                f"same-prompt, n={n0:,}" if kind == "quality" else f"same-prompt, beta={beta0:g}"
            )
        else:
            cells = sorted(
                {(c, p) for c, p in zip(grp["candidates"], grp["pairing"])},
                key=lambda t: (t[0], t[1] != "same_prompt"),
            )
            width = 0.8 / max(1, len(ests))
            for i, est in enumerate(ests):
                g = grp[grp["estimator"] == est]
                stats = [
                    mean_ci(g[(g["candidates"] == c) & (g["pairing"] == p)]["bon_improvement"])
                    for c, p in cells
                ]
                m, lo, hi = (np.array(v, dtype=float) for v in zip(*stats))
                pos = np.arange(len(cells)) + i * width
                ax.bar(pos, m, width, yerr=[m - lo, hi - m], label=est)
            ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
            ax.set_xticklabels([f"{c}\n{p.replace('_prompt', '')}" for c, p in cells], fontsize=8)
            ax.set_title(f"pairing, n={n0:,}, beta={beta0:g}")
        ax.set_ylabel("best-of-N golden improvement (sd)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "bt_vs_clf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_phase(table, out_dir: Path) -> list[Path]:
    """Phase diagram (one row of panels per battery panel): error ratio and disagreement
    difference of sign vs RLHF over coupling x n, each cell annotated with the population BT
    bias; ``table`` from :func:`signrm.experiments.analysis.phase_table`."""
    import matplotlib.pyplot as plt
    import numpy as np

    from signrm.data import atomic_write

    if table.empty:
        return []
    panels = list(dict.fromkeys(table["panel"]))
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 2.6 * len(panels) + 0.6), squeeze=False)
    for row, panel in zip(axes, panels):
        t = table[table["panel"] == panel]
        cs, ns = sorted(set(t["coupling"])), sorted(set(t["n"]))
        for ax, col, label, cmap, lim in (
            (row[0], "error_ratio", "angle ratio sign / RLHF", "RdBu_r", (0.0, 2.0)),
            (row[1], "disagreement_diff_pts", "disagreement sign - RLHF (pts)", "RdBu_r", (-8, 8)),
        ):
            grid = np.full((len(cs), len(ns)), np.nan)
            bias = np.full(len(cs), np.nan)
            for _, r in t.iterrows():
                grid[cs.index(r["coupling"]), ns.index(r["n"])] = r[col]
                bias[cs.index(r["coupling"])] = r["bt_bias_deg"]
            im = ax.imshow(grid, cmap=cmap, vmin=lim[0], vmax=lim[1], aspect="auto", origin="lower")
            for i in range(len(cs)):
                for j in range(len(ns)):
                    if np.isfinite(grid[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{grid[i, j]:.2f}" if col == "error_ratio" else f"{grid[i, j]:+.1f}",
                            ha="center",
                            va="center",
                            fontsize=8,
                        )
            ax.set_xticks(range(len(ns)), [f"{n:,}" for n in ns], fontsize=7)
            ax.set_yticks(range(len(cs)), [f"{c:g} (BT bias {b:.0f}°)" for c, b in zip(cs, bias)],
                          fontsize=7)  # fmt: skip
            ax.set_title(f"{panel}: {label}", fontsize=9)
            ax.set_xlabel("n comparisons", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8)
        row[0].set_ylabel("coupling", fontsize=8)
    fig.tight_layout()
    path = Path(out_dir) / "phase.png"
    atomic_write(path, lambda t: fig.savefig(t, dpi=110, format="png"), suffix=".png")
    plt.close(fig)
    return [path]
