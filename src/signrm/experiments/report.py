"""Markdown reports of experiment results (``report.md``, ``summary.csv``, PNG plots).

The numbers come from :mod:`.analysis` (means with 95 % intervals over seeds, slopes, findings);
the figures from :mod:`.plots`, imported only when a report draws them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import (
    bt_vs_clf_findings,
    bt_vs_clf_robustness,
    head_to_head,
    phase_table,
    rate_groups,
    rate_slopes,
    sign_paper_table,
    summarize,
)

__all__ = ["format_table", "head_to_head_lines", "write_report"]


def _protocol_lines(out: Path, name: str, df: pd.DataFrame) -> list[str]:
    """What was run: seeds, grid values and estimator settings (from the stored config)."""
    lines = ["### Protocol as run", ""]
    n_seeds = df["seed"].nunique()
    lines.append(
        f"- {n_seeds} seeds; n in {sorted(int(v) for v in df['n'].unique())}; beta in "
        f"{sorted(float(v) for v in df['beta'].unique())}; pairing "
        f"{sorted(df['pairing'].unique())}; candidates {sorted(df['candidates'].unique())}."
    )
    if "train_candidates" in df and "test_candidates" in df:
        lines.append(
            f"- {int(df['train_candidates'].iloc[0])} candidates per training prompt, "
            f"{int(df['test_candidates'].iloc[0])} per held-out prompt (best-of-"
            f"{int(df['test_candidates'].iloc[0])})."
        )
    cfg_path = out / f"config-{name}.yaml"
    if cfg_path.exists():
        import yaml

        try:
            doc = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:  # pragma: no cover
            doc = {}
        if doc.get("description"):
            lines.append(f"- {doc['description']}")
        for est, spec in (doc.get("estimators") or {}).items():
            params = ", ".join(f"{k}={v}" for k, v in (spec.get("params") or {}).items())
            lines.append(f"- {est}: {spec.get('class')}({params})")
    return lines + [""]


def format_table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """A Markdown table (no tabulate dependency)."""
    if frame.empty:
        return "(no rows)"
    cols = list(frame.columns)

    def fmt(v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return format(float(v), floatfmt) if np.isfinite(v) else "–"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _section_phase(df: pd.DataFrame, out: Path, plots: bool) -> list[str]:
    """When does the sign estimator win: error ratio and disagreement difference against RLHF."""
    table = phase_table(df)
    lines = [
        "## When does the sign estimator win (battery panels: coupling x n)",
        "",
        "Default `SignEstimator()` against RLHF (`BradleyTerry()`), seed means. `bias` is the "
        "population BT bias (the infinite-data BT angle), `sign bias` the infinite-data "
        "maximum-score angle (0 under symmetric heterogeneity; asymmetric tastes move the "
        "majority ordering the sign estimator targets); `share` = bias / RLHF's error "
        "(near 1: RLHF's error is its bias); `panel step` = the default's mean weight on the "
        "panel model's estimate in its panel step (docs/adaptive.md; 0 where it did not run).",
        "",
    ]
    if table.empty:
        return lines + ["_No rows with both `rlhf` and `sign`._", ""]
    shown = table.assign(
        bias=table["bt_bias_deg"].map(lambda v: f"{v:.1f}"),
        **{"sign bias": table["sign_bias_deg"].map(lambda v: f"{v:.1f}")},
        share=table["bias_share"].map(lambda v: f"{v:.2f}"),
        rlhf=table["base_error_deg"].map(lambda v: f"{v:.1f}"),
        sign=table["error_deg"].map(lambda v: f"{v:.1f}"),
        ratio=table["error_ratio"].map(lambda v: f"{v:.2f}"),
        **{"dis diff (pts)": table["disagreement_diff_pts"].map(lambda v: f"{v:+.2f}")},
        **{"panel step": table["panel_weight"].map(lambda v: "-" if v != v else f"{v:.2f}")},
    )
    cols = [c for c in ("panel", "coupling", "n") if c in shown] + [
        "bias", "sign bias", "rlhf", "sign", "share", "ratio", "dis diff (pts)", "panel step",
        "n_seeds",
    ]  # fmt: skip
    lines += [format_table(shown[cols]), ""]
    if plots:
        from .plots import plot_phase

        for p in plot_phase(table, out):
            lines += [f"![phase diagram]({p.name})", ""]
    return lines


def _section_sign_paper(df: pd.DataFrame, out: Path, plots: bool) -> list[str]:
    lines = ["## sign-paper: RLHF (BT) vs sign vs EM on the twin panel", ""]
    lines += [
        "Angular error between the fitted direction and the population average theta_bar, and "
        "disagreement with the population ordering on 20,000 random pairs; mean [95 % interval] "
        "over seeds.",
        "",
    ]
    panels = df.groupby("panel", sort=False) if "panel" in df else [(None, df)]
    for panel, grp in panels:
        if panel is not None:
            lines += [f"### panel `{panel}`", ""]
        lines += [format_table(sign_paper_table(grp)), ""]
        lines += head_to_head_lines(grp)
    if plots:
        from .plots import plot_error_vs_n

        for path in plot_error_vs_n(df, out):
            lines += [f"![{path.stem}]({path.name})", ""]
    return lines


def head_to_head_lines(df: pd.DataFrame) -> list[str]:
    """Markdown bullet lines of :func:`.analysis.head_to_head` (none without RLHF and sign)."""
    table = head_to_head(df)
    if table.empty:
        return []
    lines = ["Sign vs RLHF at each n (ratio of mean angular errors; disagreement difference):", ""]
    for r in table.itertuples(index=False):
        dd = 100 * (r.disagreement - r.rlhf_disagreement)
        lines.append(
            f"- n = {r.n}: {r.estimator}/RLHF angular error = {r.error_ratio:.2f} "
            f"({r.angular_error_deg:.1f} vs {r.rlhf_angular_error_deg:.1f} deg); "
            f"disagreement {100 * r.disagreement:.1f} % vs "
            f"{100 * r.rlhf_disagreement:.1f} % ({dd:+.1f} points)"
        )
    return lines + [""]


def _section_rates(df: pd.DataFrame, out: Path, plots: bool, name: str) -> list[str]:
    lines = [f"## {name}: angular error against n (log-log)", ""]
    for label, grp in rate_groups(df):
        if label:
            lines += [f"### {label}", ""]
        lines += [format_table(sign_paper_table(grp)), ""]
        lines += [
            "Fitted log-log slopes of the mean angular error (slope over all n with a 95 % interval "
            "from per-seed fits; tail slope over the three largest n):",
            "",
            format_table(rate_slopes(grp)),
            "",
        ]
    if plots:
        from .plots import plot_rates

        for path in plot_rates(df, out):
            lines += [f"![{path.stem}]({path.name})", ""]
    return lines


def _section_bt_vs_clf(df: pd.DataFrame, out: Path, plots: bool, name: str) -> list[str]:
    f1, f2 = bt_vs_clf_findings(df)
    rob = bt_vs_clf_robustness(df)
    lines = [f"## {name}: BT vs classification reward models (seed 003)", ""]
    lines += [
        "Best-of-N golden reward improvement on held-out prompts (argmax of the fitted reward among "
        "all test candidates, minus their mean golden reward; golden reward in units of its "
        "standard deviation). Intervals: 95 % over seeds of the paired (same data) differences; "
        "'within seed noise' means the interval contains 0.",
        "",
    ]
    lines += _protocol_lines(out, name, df)
    if "label_error_rate" in df:
        err = df.groupby("beta")["label_error_rate"].mean()
        lines += [
            "Label error rate by beta (random same-prompt pairs and all pairings pooled): "
            + ", ".join(f"beta={b:g}: {100 * e:.0f} %" for b, e in err.items()),
            "",
        ]
    lines += [
        "### Finding 1: classification at least matches BT (setting by setting)",
        "",
        "Mean improvement per model, each CLF model's paired difference to BT-MLP with its 95 % "
        "interval, and the verdict for the better CLF model ('best verdict').",
        "",
        format_table(
            f1.drop(columns=["clf_minus_bt", "ci_lo", "ci_hi", "reproduces", "significant"]).rename(
                columns={"verdict": "best verdict"}
            )
            if not f1.empty
            else f1
        ),
        "",
    ]
    if not f1.empty:
        lines.append(
            f"Best CLF >= BT-MLP in {int(f1['reproduces'].sum())} of {len(f1)} settings "
            f"({int((f1['reproduces'] & f1['significant']).sum())} with a 95 % interval above 0; "
            f"{int((~f1['reproduces'] & f1['significant']).sum())} significantly reversed). The "
            "best of two CLF models is a selection that favours CLF, so per model:"
        )
        for col in [c for c in f1.columns if c.endswith(" verdict")]:
            v = f1[col].astype(str)
            lines.append(
                f"- {col.removesuffix(' verdict')} >= BT-MLP in {int(v.str.startswith('yes').sum())}"
                f" of {len(v)} settings ({int((v == 'yes').sum())} significant; "
                f"{int((v == 'no (reversed)').sum())} significantly reversed)."
            )
        lines.append("")
    if not rob.empty:
        lines += [
            "### Finding 1b: classification is more robust to label noise",
            "",
            "Mean improvement at each beta (quality sub-grid); retention = noisiest / cleanest; "
            "gap to BT-MLP at the noisiest and at the cleanest beta.",
            "",
            format_table(rob),
            "",
        ]
        for (n, pairing, cand), grp in rob.groupby(["n", "pairing", "candidates"]):
            g = grp.set_index("estimator")
            bt_names = [e for e in g.index if "bt" in e.lower()]
            if not bt_names:
                continue
            bt = bt_names[0]
            for est in [e for e in g.index if "clf" in e.lower()]:
                more = g.loc[est, "retention"] >= g.loc[bt, "retention"]
                wider = g.loc[est, "gap_vs_bt_noisiest"] > g.loc[est, "gap_vs_bt_cleanest"]
                lines.append(
                    f"- n={int(n)}, {pairing}, {cand}: {est} keeps "
                    f"{100 * g.loc[est, 'retention']:.0f} % of its clean-label improvement vs "
                    f"{bt}'s {100 * g.loc[bt, 'retention']:.0f} %; its gap to {bt} is "
                    f"{g.loc[est, 'gap_vs_bt_noisiest']:+.2f} at the noisiest beta and "
                    f"{g.loc[est, 'gap_vs_bt_cleanest']:+.2f} at the cleanest -> more robust: "
                    f"{'yes' if (more and wider) else 'partly' if (more or wider) else 'no'}."
                )
        lines.append("")
    lines += [
        "### Finding 2: cross-prompt beats same-prompt (setting by setting)",
        "",
        format_table(f2),
        "",
    ]
    if not f2.empty:
        lines.append(
            f"Reproduces in {int(f2['reproduces'].sum())} of {len(f2)} settings "
            f"({int((f2['reproduces'] & f2['significant']).sum())} significant; "
            f"{int((~f2['reproduces'] & f2['significant']).sum())} significantly reversed)."
        )
        lines.append("")
        by_cand = f2.groupby("candidates")["cross_minus_same"].mean()
        lines.append(
            "Mean cross-minus-same gain by candidate selection (over estimators): "
            + ", ".join(f"{c}: {v:+.3f}" for c, v in by_cand.items())
            + ". Seed 003 expects the largest gain where same-prompt responses lack diversity "
            "('similar')"
            + (
                f": {'reproduces' if by_cand.idxmax() == 'similar' else 'does not reproduce'} "
                f"(largest: {by_cand.idxmax()})."
                if "similar" in by_cand.index
                else "."
            )
        )
        lines.append("")
    if plots:
        from .plots import plot_bt_vs_clf

        for path in plot_bt_vs_clf(df, out):
            lines += [f"![{path.stem}]({path.name})", ""]
    return lines


def _current_rows(df: pd.DataFrame, out: Path, name: str) -> tuple[pd.DataFrame, int]:
    """Keep the rows whose job key belongs to ``OUT/config-NAME.yaml`` (the last config run)."""
    cfg_path = out / f"config-{name}.yaml"
    if "key" not in df or not cfg_path.exists():
        return df, 0
    from .config import load_config

    try:
        import yaml

        keys = {j["key"] for j in load_config(yaml.safe_load(cfg_path.read_text("utf-8"))).jobs()}
    except Exception:  # a hand-edited or foreign config: report everything
        return df, 0
    keep = df["key"].isin(keys)
    if not keep.any():
        return df, 0
    return df[keep], int((~keep).sum())


def write_report(
    out_dir: str | os.PathLike, df: pd.DataFrame | None = None, plots: bool = True
) -> Path:
    """Write ``OUT/report.md`` (and PNG plots) from the results in ``out_dir``."""
    from signrm.data import atomic_write

    from .runner import read_results

    out = Path(out_dir)
    df = read_results(out) if df is None else df
    if df.empty:
        raise ValueError(f"no results in {out}")
    lines = ["# signrm experiment report", ""]
    for name, grp in df.groupby("experiment", sort=False):
        grp, stale = _current_rows(grp, out, str(name))
        grp = grp.dropna(axis=1, how="all")
        if stale:
            lines += [
                f"_{stale} stored rows of `{name}` belong to a superseded config (other estimator "
                f"settings, seeds or grid) and are ignored; they stay in results.sqlite._",
                "",
            ]
        kind = grp["kind"].iloc[0] if "kind" in grp else "sign_paper"
        if kind == "battery":
            lines += _section_phase(grp, out, plots)
        elif kind == "sign_paper":
            lines += _section_sign_paper(grp, out, plots)
        elif kind == "synthetic":
            lines += _section_rates(grp, out, plots, name)
        else:
            lines += _section_bt_vs_clf(grp, out, plots, name)
        secs = grp["job_seconds"].sum() if "job_seconds" in grp else float("nan")
        lines += [f"_{len(grp)} jobs, {secs:.0f} s of compute._", ""]
    summary = summarize(df)
    atomic_write(out / "summary.csv", lambda t: summary.to_csv(t, index=False), suffix=".csv")
    text = "\n".join(lines) + "\n"
    path = out / "report.md"
    atomic_write(path, lambda t: Path(t).write_text(text, encoding="utf-8"), suffix=".md")
    return path
