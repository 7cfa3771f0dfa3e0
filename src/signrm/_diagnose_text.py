"""Markdown rendering of a :class:`signrm.diagnose.DiagnosisReport` (text only, no plotting)."""

from __future__ import annotations

import numpy as np

__all__ = ["report_markdown"]


def _quantiles(values: np.ndarray, fmt: str = "{:.3f}") -> str:
    q = np.quantile(values, [0.0, 0.1, 0.5, 0.9, 1.0])
    return " / ".join(fmt.format(v) for v in q)


def _annotators(r) -> list[str]:
    if r.users is None:
        return ["", "No annotator ids: per-annotator parts and latent classes are skipped."]
    top = np.sort(r.counts)[::-1]
    share = top[: max(1, len(top) // 10)].sum() / top.sum()
    low = np.argsort(r.agreement)[:3]
    lines = [
        "",
        "## Annotators",
        "",
        "| quantity | min / 10 % / median / 90 % / max |",
        "| --- | --- |",
        f"| comparisons per annotator | {_quantiles(r.counts, '{:.0f}')} |",
        f"| agreement with the others | {_quantiles(r.agreement)} |",
        f"| decisiveness (shrunken scale) | {_quantiles(r.decisiveness, '{:.2f}')} |",
        "",
        f"{len(r.users)} annotators; the busiest 10 % gave {100 * share:.0f} % of the comparisons.",
        "Agreement: share of an annotator's labels that a Bradley-Terry fit on the *other* "
        "annotators orders the same way. Lowest: "
        + ", ".join(f"{r.users[i]} ({r.agreement[i]:.2f}, n = {r.counts[i]})" for i in low)
        + ".",
        f"Decisiveness: each annotator's multiplier of the pooled BT margin, shrunk toward a "
        f"normal prior with mean {r.decisiveness_mean:.2f} and sd {r.decisiveness_sd:.2f} "
        f"(empirical Bayes): decisiveness varies by about "
        f"{100 * r.decisiveness_sd / max(abs(r.decisiveness_mean), 1e-12):.0f} % of its mean "
        "across annotators.",
    ]
    return lines


def _inference(r) -> list[str]:
    inf = r.inference
    lines = [
        "",
        f"## {inf.reference_name} vs {inf.estimator_name}",
        "",
        f"| statistic | estimate | {100 * inf.level:.0f} % interval |",
        "| --- | --- | --- |",
        f"| disagreement (share of pairs ordered differently) | {100 * inf.disagreement.estimate:.2f} % "
        f"| {100 * inf.disagreement.low:.2f} - {100 * inf.disagreement.high:.2f} % |",
    ]
    if inf.angle is not None:
        lines.append(
            f"| angle between the directions | {inf.angle.estimate:.1f} deg "
            f"| {inf.angle.low:.1f} - {inf.angle.high:.1f} deg |"
        )
    if inf.direction_radius is not None:
        lines.append(
            f"| {inf.estimator_name} direction: confidence radius | "
            f"{inf.direction_radius:.1f} deg | |"
        )
    lines += [
        "",
        f"Subsampling (m-out-of-n, Politis-Romano-Wolf): {inf.n_subsamples} subsamples of "
        f"{inf.subsample_units} of {inf.n_units} {inf.unit}s (about "
        f"{inf.mean_subsample_size:.0f} comparisons each), without replacement, rate "
        f"n^-{inf.rate:.3g} (the sign estimator's cube root).",
    ]
    return lines


def _bic(r) -> list[str]:
    if not r.bic:
        return []
    best = r.best_k
    lines = ["", "## Latent-class Bradley-Terry", "", "| K | BIC |", "| --- | --- |"]
    note = f"K = 1 is plain BT; BIC on {r.bic_comparisons} comparisons (whole annotators)."
    lines += [f"| {k} | {v:.1f}{' (best)' if k == best else ''} |" for k, v in r.bic.items()]
    return lines + ["", note]


def report_markdown(r, plots: dict[str, str]) -> str:
    """The whole report; ``plots`` maps titles to PNG paths (relative links)."""
    lines = [
        "# signrm diagnose",
        "",
        f"{r.n_comparisons} comparisons, {r.n_features} features.",
        "",
        f"**Recommendation: {r.recommendation}.** {r.reason}",
    ]
    lines += _annotators(r) + _inference(r) + _bic(r)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{t}]({p})" for t, p in plots.items()]
    if r.timings:
        lines += ["", "Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items()) + "."]
    return "\n".join(lines) + "\n"
