"""Analysis of experiment results: summaries over seeds, rate slopes, findings (pandas/numpy).

The Markdown writer (:mod:`.report`) and the plots (:mod:`.plots`) both read these tables;
nothing here formats Markdown or draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signrm.metrics import mean_ci

__all__ = [
    "setting_columns",
    "summarize",
    "format_interval",
    "sign_paper_table",
    "head_to_head",
    "rate_slopes",
    "rate_groups",
    "bt_vs_clf_findings",
    "bt_vs_clf_robustness",
    "phase_table",
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
    "bt_bias_deg",
    "sign_bias_deg",
)


def setting_columns(df: pd.DataFrame) -> list[str]:
    """The columns that describe a job's setting (not metrics, not bookkeeping)."""
    return [c for c in df.columns if c not in _META and c not in _METRICS]


def summarize(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per setting: ``<metric>_mean``, ``_lo``, ``_hi`` (95 % t interval) and ``n_seeds``."""
    metrics = [m for m in (metrics or _METRICS) if m in df.columns]
    by = [c for c in setting_columns(df) if df[c].nunique(dropna=False) > 1] or ["experiment"]
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


def format_interval(mean: float, lo: float, hi: float, digits: int = 1, pct: bool = False) -> str:
    """``"12.3 [11.0, 13.6]"`` (``pct``: values as percentages); ``"–"`` for NaN."""
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
                "angular error (deg)": format_interval(
                    r["angular_error_deg_mean"],
                    r["angular_error_deg_lo"],
                    r["angular_error_deg_hi"],
                ),
                "disagreement (%)": format_interval(
                    r["disagreement_mean"], r["disagreement_lo"], r["disagreement_hi"], pct=True
                ),
                "fit (s)": f"{r['fit_seconds_mean']:.1f}",
                "seeds": int(r["n_seeds"]),
            }
        )
    return pd.DataFrame(rows)


def head_to_head(df: pd.DataFrame) -> pd.DataFrame:
    """Sign (and sign-cv) against RLHF at each n, from the seed means.

    Columns: ``n``, ``estimator``, ``angular_error_deg``, ``rlhf_angular_error_deg``,
    ``error_ratio`` (estimator / RLHF), ``disagreement``, ``rlhf_disagreement`` (shares in
    [0, 1]). Empty when the results hold no ``rlhf`` or no sign estimator.
    """
    ests = set(df["estimator"])
    signs = [e for e in ("sign", "sign-paper", "sign-cv") if e in ests]
    rows = []
    if "rlhf" not in ests or not signs:
        return pd.DataFrame(rows)
    for n, grp in df.groupby("n"):
        m = grp.groupby("estimator")[["angular_error_deg", "disagreement"]].mean()
        for est in signs:
            if not {"rlhf", est} <= set(m.index):
                continue
            rows.append(
                {
                    "n": int(n),
                    "estimator": est,
                    "angular_error_deg": float(m.loc[est, "angular_error_deg"]),
                    "rlhf_angular_error_deg": float(m.loc["rlhf", "angular_error_deg"]),
                    "error_ratio": float(
                        m.loc[est, "angular_error_deg"] / m.loc["rlhf", "angular_error_deg"]
                    ),
                    "disagreement": float(m.loc[est, "disagreement"]),
                    "rlhf_disagreement": float(m.loc["rlhf", "disagreement"]),
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


def _paired_differences(grp: pd.DataFrame, est: str, base: str, metric: str) -> list[float]:
    """Per seed, ``metric`` of ``est`` minus that of ``base`` on the same data (seeds with both)."""
    diffs = []
    for _, sg in grp.groupby("seed"):
        v = sg.set_index("estimator")[metric]
        if est in v and base in v:
            diffs.append(float(v[est] - v[base]))
    return diffs


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
        m, lo, hi = mean_ci(_paired_differences(grp, best_clf, bt_names[0], metric))
        per_clf = {}
        for c in clf_names:
            cm, clo, chi = mean_ci(_paired_differences(grp, c, bt_names[0], metric))
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
        for c in setting_columns(df)
        if c not in ("n", "estimator") and df[c].nunique(dropna=False) > 1
    ]
    if not group_cols:
        return [("", df)]
    out = []
    for k, grp in df.groupby(group_cols, dropna=False, sort=True):
        k = k if isinstance(k, tuple) else (k,)
        out.append((", ".join(f"{c}={_label_value(v)}" for c, v in zip(group_cols, k)), grp))
    return out


def phase_table(df: pd.DataFrame, estimator: str = "sign", base: str = "rlhf") -> pd.DataFrame:
    """When does the sign estimator win: one row per (panel, coupling, n) from the seed means.

    Columns: ``panel``, ``coupling``, ``n``, ``bt_bias_deg`` (the population BT bias: the
    infinite-data BT angle), ``sign_bias_deg`` (the same for the maximum-score target: 0 under
    symmetric heterogeneity), ``base_error_deg``/``error_deg`` (mean angular errors of ``base``
    and ``estimator``), ``error_ratio`` (estimator / base), ``disagreement_diff_pts``
    (estimator minus base, percentage points), ``bias_share`` (bias / base error: near 1 where
    RLHF's error is its bias), ``panel_weight`` (the estimator's mean weight on the panel model's
    estimate, NaN when not recorded) and ``n_seeds``. Empty without both estimators.
    """
    keys = [k for k in ("panel", "coupling", "n") if k in df.columns]
    if not {estimator, base} <= set(df.get("estimator", pd.Series(dtype=str))):
        return pd.DataFrame()
    rows = []
    for setting, grp in df.groupby(keys, sort=True):
        m = grp.groupby("estimator")[["angular_error_deg", "disagreement"]].mean()
        if not {estimator, base} <= set(m.index):
            continue
        row = dict(zip(keys, setting if isinstance(setting, tuple) else (setting,)))
        bias = float(grp["bt_bias_deg"].mean()) if "bt_bias_deg" in grp else float("nan")
        sbias = float(grp["sign_bias_deg"].mean()) if "sign_bias_deg" in grp else float("nan")
        base_err = float(m.loc[base, "angular_error_deg"])
        row.update(
            bt_bias_deg=bias,
            sign_bias_deg=sbias,
            base_error_deg=base_err,
            error_deg=float(m.loc[estimator, "angular_error_deg"]),
            error_ratio=float(m.loc[estimator, "angular_error_deg"]) / base_err,
            disagreement_diff_pts=100.0
            * float(m.loc[estimator, "disagreement"] - m.loc[base, "disagreement"]),
            bias_share=bias / base_err,
            panel_weight=float(grp.loc[grp["estimator"] == estimator, "panel_weight"].mean())
            if "panel_weight" in grp
            else float("nan"),
            n_seeds=int(grp.loc[grp["estimator"] == estimator, "seed"].nunique()),
        )
        rows.append(row)
    return pd.DataFrame(rows)
