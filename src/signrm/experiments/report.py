"""Summaries and Markdown reports of experiment results (means with 95 % intervals over seeds)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from signrm.metrics import mean_ci

__all__ = [
    "summarize",
    "sign_paper_table",
    "rate_slopes",
    "rate_groups",
    "bt_vs_clf_findings",
    "bt_vs_clf_robustness",
    "format_table",
    "write_report",
]

_META = {
    "key",
    "experiment",
    "kind",
    "seed",
    "fit_seconds",
    "job_seconds",
    "estimator_spec",
}
_METRICS = (
    "angular_error_deg",
    "disagreement",
    "bon_improvement",
    "bon16_improvement",
    "test_order_consistency",
    "label_error_rate",
    "mean_abs_golden_diff",
    "label_agreement",
    "fit_seconds",
)


def _setting_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in _META and c not in _METRICS]


def summarize(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per setting: ``<metric>_mean``, ``_lo``, ``_hi`` (95 % t interval) and ``n_seeds``."""
    metrics = [m for m in (metrics or _METRICS) if m in df.columns]
    by = [c for c in _setting_columns(df) if df[c].nunique(dropna=False) > 1] or ["experiment"]
    rows = []
    for keys, grp in df.groupby(by, dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys))
        row["n_seeds"] = int(grp["seed"].nunique())
        for m in metrics:
            mean, lo, hi = mean_ci(grp[m].to_numpy(dtype=float))
            row[f"{m}_mean"], row[f"{m}_lo"], row[f"{m}_hi"] = mean, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(mean: float, lo: float, hi: float, digits: int = 1, pct: bool = False) -> str:
    if not np.isfinite(mean):
        return "–"
    f = 100.0 if pct else 1.0
    return f"{mean * f:.{digits}f} [{lo * f:.{digits}f}, {hi * f:.{digits}f}]"


def sign_paper_table(df: pd.DataFrame) -> pd.DataFrame:
    """Estimator x n table: angular error (deg) and disagreement (%) with 95 % intervals."""
    s = summarize(df, ["angular_error_deg", "disagreement", "fit_seconds"])
    if "n" not in s.columns:
        s["n"] = df["n"].iloc[0]
    if "estimator" not in s.columns:
        s["estimator"] = df["estimator"].iloc[0]
    rows = []
    for _, r in s.sort_values(["estimator", "n"]).iterrows():
        rows.append(
            {
                "estimator": r["estimator"],
                "n": int(r["n"]),
                "angular error (deg)": _ci(
                    r["angular_error_deg_mean"],
                    r["angular_error_deg_lo"],
                    r["angular_error_deg_hi"],
                ),
                "disagreement (%)": _ci(
                    r["disagreement_mean"], r["disagreement_lo"], r["disagreement_hi"], pct=True
                ),
                "fit (s)": f"{r['fit_seconds_mean']:.1f}",
                "seeds": int(r["n_seeds"]),
            }
        )
    return pd.DataFrame(rows)


def rate_slopes(df: pd.DataFrame, metric: str = "angular_error_deg") -> pd.DataFrame:
    """Per estimator: log-log slope of the mean error against n (all n, and the last 3 n).

    The slope of a consistent estimator is negative (-1/3 for maximum score, -1/2 for a regular
    M-estimator); an estimator whose error levels off at a bias has a slope near 0 at large n.
    ``slope_lo``/``slope_hi`` are a 95 % interval from the per-seed slopes.
    """
    from scipy import stats

    rows = []
    for est, grp in df.groupby("estimator"):
        means = grp.groupby("n")[metric].mean().sort_index()
        ln, le = np.log(means.index.to_numpy(float)), np.log(means.to_numpy(float))
        slope = float(np.polyfit(ln, le, 1)[0]) if len(ln) >= 2 else float("nan")
        tail = float(np.polyfit(ln[-3:], le[-3:], 1)[0]) if len(ln) >= 3 else float("nan")
        per_seed = []
        for _, sg in grp.groupby("seed"):
            sg = sg.sort_values("n")
            if sg["n"].nunique() >= 2:
                per_seed.append(
                    np.polyfit(
                        np.log(sg["n"].to_numpy(float)), np.log(sg[metric].to_numpy(float)), 1
                    )[0]
                )
        _, lo, hi = mean_ci(per_seed)
        last = grp[grp["n"] == grp["n"].max()][metric]
        rows.append(
            {
                "estimator": est,
                "slope": slope,
                "slope_lo": lo,
                "slope_hi": hi,
                "tail_slope": tail,
                "error_at_max_n": float(last.mean()),
                "max_n": int(grp["n"].max()),
                "r2": float(stats.pearsonr(ln, le).statistic ** 2)
                if len(ln) >= 3 and np.ptp(le) > 0
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def bt_vs_clf_findings(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed 003's two findings, setting by setting.

    1. CLF at least matches BT: per (beta, n, pairing, candidates), the best CLF's mean best-of-N
       improvement is >= BT-MLP's (``reproduces``), and whether the gap exceeds the seed spread.
    2. Cross-prompt beats same-prompt: per (estimator, beta, n, candidates), cross minus same.
    """
    metric = "bon_improvement"
    keys = ["beta", "n", "pairing", "candidates"]
    f1 = []
    for k, grp in df.groupby(keys):
        means = grp.groupby("estimator")[metric].mean()
        bt_names = [e for e in means.index if "bt" in e.lower()]
        clf_names = [e for e in means.index if "clf" in e.lower()]
        if not bt_names or not clf_names:
            continue
        bt = means[bt_names[0]]
        best_clf = means[clf_names].idxmax()
        diffs = []
        for _, sg in grp.groupby("seed"):
            v = sg.set_index("estimator")[metric]
            if best_clf in v and bt_names[0] in v:
                diffs.append(v[best_clf] - v[bt_names[0]])
        m, lo, hi = mean_ci(diffs)
        per_clf = {}
        for c in clf_names:
            d = []
            for _, sg in grp.groupby("seed"):
                v = sg.set_index("estimator")[metric]
                if c in v and bt_names[0] in v:
                    d.append(v[c] - v[bt_names[0]])
            cm, clo, chi = mean_ci(d)
            per_clf[f"{c}-bt"] = f"{cm:+.2f} [{clo:+.2f}, {chi:+.2f}]"
            per_clf[f"{c} verdict"] = _verdict(bool(cm >= 0), bool(clo > 0 or chi < 0))
        f1.append(
            {
                **dict(zip(keys, k)),
                "bt_mlp": bt,
                **{c: means[c] for c in clf_names},
                **per_clf,
                "best_clf": best_clf,
                "clf_minus_bt": m,
                "ci_lo": lo,
                "ci_hi": hi,
                "reproduces": bool(means[best_clf] >= bt),
                "significant": bool(lo > 0 or hi < 0),
                "verdict": _verdict(bool(means[best_clf] >= bt), bool(lo > 0 or hi < 0)),
            }
        )
    f2 = []
    keys2 = ["estimator", "beta", "n", "candidates"]
    for k, grp in df.groupby(keys2):
        if set(grp["pairing"]) != {"same_prompt", "cross_prompt"}:
            continue
        same = grp[grp["pairing"] == "same_prompt"].set_index("seed")[metric]
        cross = grp[grp["pairing"] == "cross_prompt"].set_index("seed")[metric]
        common = same.index.intersection(cross.index)
        m, lo, hi = mean_ci((cross[common] - same[common]).to_numpy())
        f2.append(
            {
                **dict(zip(keys2, k)),
                "same_prompt": float(same.mean()),
                "cross_prompt": float(cross.mean()),
                "cross_minus_same": m,
                "ci_lo": lo,
                "ci_hi": hi,
                "reproduces": bool(m > 0),
                "significant": bool(lo > 0 or hi < 0),
                "verdict": _verdict(bool(m > 0), bool(lo > 0 or hi < 0)),
            }
        )
    return pd.DataFrame(f1), pd.DataFrame(f2)


def _verdict(reproduces: bool, significant: bool) -> str:
    if reproduces:
        return "yes" if significant else "yes, within seed noise"
    return "no (reversed)" if significant else "no, within seed noise"


def bt_vs_clf_robustness(df: pd.DataFrame) -> pd.DataFrame:
    """Robustness to label noise: per estimator, best-of-N improvement at each beta.

    Uses every (n, pairing, candidates) with more than one beta (the quality sub-grid).
    ``retention`` is the improvement at the noisiest beta divided by that at the cleanest one;
    ``gap_vs_bt`` is the estimator's mean improvement minus BT-MLP's at the noisiest beta.
    """
    rows = []
    for (n, pairing, cand), grp in df.groupby(["n", "pairing", "candidates"]):
        betas = sorted(grp["beta"].unique())
        if len(betas) < 2:
            continue
        means = grp.groupby(["estimator", "beta"])["bon_improvement"].mean().unstack("beta")
        bt_names = [e for e in means.index if "bt" in e.lower()]
        for est, r in means.iterrows():
            row = {"n": n, "pairing": pairing, "candidates": cand, "estimator": est}
            row.update({f"beta={b:g}": r[b] for b in betas})
            row["retention"] = r[betas[0]] / r[betas[-1]] if r[betas[-1]] else float("nan")
            if bt_names:
                row["gap_vs_bt_noisiest"] = r[betas[0]] - means.loc[bt_names[0], betas[0]]
                row["gap_vs_bt_cleanest"] = r[betas[-1]] - means.loc[bt_names[0], betas[-1]]
            rows.append(row)
    return pd.DataFrame(rows)


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


def _section_sign_paper(df: pd.DataFrame, out: Path, plots: bool) -> list[str]:
    lines = ["## sign-paper: RLHF (BT) vs sign vs EM on the twin panel", ""]
    lines += [
        "Angular error between the fitted direction and the population average theta_bar, and "
        "disagreement with the population ordering on 20,000 random pairs; mean [95 % interval] "
        "over seeds.",
        "",
        format_table(sign_paper_table(df)),
        "",
    ]
    lines += _head_to_head(df)
    if plots:
        from .plots import plot_error_vs_n

        for path in plot_error_vs_n(df, out):
            lines += [f"![{path.stem}]({path.name})", ""]
    return lines


def _head_to_head(df: pd.DataFrame) -> list[str]:
    ests = set(df["estimator"])
    signs = [e for e in ("sign", "sign-cv") if e in ests]
    if "rlhf" not in ests or not signs:
        return []
    lines = ["Sign vs RLHF at each n (ratio of mean angular errors; disagreement difference):", ""]
    for n, grp in df.groupby("n"):
        m = grp.groupby("estimator")[["angular_error_deg", "disagreement"]].mean()
        for est in signs:
            if not {"rlhf", est} <= set(m.index):
                continue
            ratio = m.loc[est, "angular_error_deg"] / m.loc["rlhf", "angular_error_deg"]
            dd = 100 * (m.loc[est, "disagreement"] - m.loc["rlhf", "disagreement"])
            lines.append(
                f"- n = {int(n)}: {est}/RLHF angular error = {ratio:.2f} "
                f"({m.loc[est, 'angular_error_deg']:.1f} vs "
                f"{m.loc['rlhf', 'angular_error_deg']:.1f} deg); "
                f"disagreement {100 * m.loc[est, 'disagreement']:.1f} % vs "
                f"{100 * m.loc['rlhf', 'disagreement']:.1f} % ({dd:+.1f} points)"
            )
    return lines + [""]


def _label_value(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "none"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def rate_groups(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Split a rates frame into its settings other than n and estimator (e.g. one population
    each): ``[(label, rows)]``, label ``"population=laplace, spread=1"`` (``""`` for one group).
    A setting that is null in some rows (e.g. ``spread_dims``) is a group of its own."""
    group_cols = [
        c
        for c in _setting_columns(df)
        if c not in ("n", "estimator") and df[c].nunique(dropna=False) > 1
    ]
    if not group_cols:
        return [("", df)]
    out = []
    for k, grp in df.groupby(group_cols, dropna=False, sort=True):
        k = k if isinstance(k, tuple) else (k,)
        out.append((", ".join(f"{c}={_label_value(v)}" for c, v in zip(group_cols, k)), grp))
    return out


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
        if kind == "sign_paper":
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
