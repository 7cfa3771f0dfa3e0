"""PNG plots of a :class:`signrm.diagnose.DiagnosisReport` (matplotlib, Agg backend).

Imported by the ``signrm diagnose`` command only; the core never imports it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["write_plots"]


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _annotator_plots(report, out: Path) -> dict[str, str]:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].hist(report.counts, bins=min(40, max(5, len(report.counts) // 5)), color="#4c72b0")
    axes[0].set(xlabel="comparisons per annotator", ylabel="annotators")
    axes[1].hist(report.agreement, bins=20, range=(0, 1), color="#55a868")
    axes[1].axvline(0.5, color="k", lw=0.8, ls=":")
    axes[1].set(xlabel="agreement with the other annotators", ylabel="annotators")
    plots = {"Annotators": _save(fig, out / "annotators.png")}

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(
        report.decisiveness_raw,
        report.decisiveness,
        s=np.sqrt(report.counts) * 3,
        alpha=0.5,
        color="#c44e52",
    )
    lim = np.quantile(np.r_[report.decisiveness_raw, report.decisiveness], [0.01, 0.99])
    ax.plot(lim, lim, color="k", lw=0.8, ls=":")
    ax.axhline(report.decisiveness_mean, color="#c44e52", lw=0.8)
    ax.set(
        xlabel="per-annotator scale (MAP)",
        ylabel="shrunken scale (empirical Bayes)",
        title="decisiveness: multiplier of the pooled BT margin",
    )
    plots["Decisiveness"] = _save(fig, out / "decisiveness.png")
    return plots


def _bic_plot(report, out: Path) -> dict[str, str]:
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ks = list(report.bic)
    ax.plot(ks, [report.bic[k] for k in ks], "o-", color="#8172b2")
    ax.set(
        xlabel="latent classes K",
        ylabel="BIC (lower is better)",
        xticks=ks,
        title="latent-class Bradley-Terry",
    )
    return {"Latent-class BIC": _save(fig, out / "bic.png")}


def _inference_plot(report, out: Path) -> dict[str, str]:
    inf = report.inference
    rows = [("disagreement (%)", inf.disagreement, 100.0)]
    if inf.angle is not None:
        rows.append(("angle (deg)", inf.angle, 1.0))
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 2.4), squeeze=False)
    for ax, (label, iv, k) in zip(axes[0], rows):
        # the subsampling interval corrects for the estimate's finite-sample bias, so it need
        # not contain the estimate: draw it as a segment and the estimate as a point
        ax.plot([k * iv.low, k * iv.high], [0, 0], "|-", color="#4c72b0", lw=2, ms=14,
                label="95 % interval")  # fmt: skip
        ax.plot([k * iv.estimate], [0], "o", color="#c44e52", label="estimate")
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel=label, yticks=[], title=f"{inf.reference_name} vs {inf.estimator_name}")
        top = max(iv.high, iv.estimate)
        ax.set_xlim(left=min(-0.05 * k * top, k * iv.low, -1e-3), right=max(1.2 * k * top, 1e-3))
        ax.legend(fontsize=7, loc="upper left")
    return {"BT vs sign": _save(fig, out / "bt_vs_sign.png")}


def write_plots(report, out: str | Path) -> dict[str, str]:
    """Write the report's PNGs into ``out``; returns {title: file name}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = _inference_plot(report, out)
    if report.users is not None:
        plots.update(_annotator_plots(report, out))
    if report.bic:
        plots.update(_bic_plot(report, out))
    return plots
