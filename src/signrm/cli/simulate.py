"""``signrm simulate CONFIG --out FILE``: write a simulated preference dataset.

CONFIG (YAML/TOML) keys, all optional but ``n``::

    source: twin_panel          # twin_panel | synthetic
    panel: symmetric            # twin_panel: symmetric | asymmetric
    n: 10000                    # number of comparisons
    pairing: cross_prompt       # cross_prompt | same_prompt | similar | diversified
    choice: bt                  # bt | thurstone | bottleneck
    beta: null                  # bottleneck annotation quality (needed for choice: bottleneck)
    per_user: null              # comparisons per annotator
    seed: 0
    population:                 # synthetic only: make_population keywords
      kind: gaussian
      n_personas: 200
      dim: 8
    n_items: 5000               # synthetic only: number of alternatives (phi ~ N(0, I/2))

FILE's format follows its suffix (.csv, .parquet, .jsonl) and loads with ``PreferenceData.read``.
The ground truth theta_bar is written next to it as ``FILE.truth.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from signrm.errors import UserError

_KEYS = {
    "source": ("twin_panel", "synthetic"),
    "panel": ("symmetric", "asymmetric"),
    "pairing": ("cross_prompt", "same_prompt", "similar", "diversified"),
    "choice": ("bt", "thurstone", "bottleneck"),
}
# Other keys -> the experiment config's type rules (signrm.experiments.config.check_value).
_OTHER = {
    "n": "posint",
    "beta": "posfloat_or_null",
    "per_user": "posint_or_null",
    "seed": "int",
    "population": "mapping_or_null",
    "n_items": "posint",
}


def _population_rules() -> dict:
    """``population:`` keys -> rules: those of a ``synthetic`` experiment, plus make_population's."""
    from signrm.experiments.config import JOB_KINDS, POPULATION_KEYS

    syn = JOB_KINDS["synthetic"]
    rules = {"kind": syn["population"]}
    for key in POPULATION_KEYS:
        rules[key] = syn[key]
    rules.update({"n_types": "posint", "antithetic": "bool", "name": "str"})
    return rules


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated preference dataset (twin panel or synthetic population)",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("config", help="YAML/TOML simulation config")
    parser.add_argument("--out", required=True, help="output file (.csv, .parquet or .jsonl)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--n", type=int, default=None, help="override the config's n")
    parser.set_defaults(func=run)


def _load(path: str) -> dict:
    from signrm.experiments.config import read_config_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config not found: {p}")
    return read_config_file(p)


def validate_config(doc: dict, where: str = "config") -> None:
    """Check every key and value of a simulation config; raises ``UserError`` naming the key."""
    from signrm.experiments.config import check_value

    unknown = set(doc) - set(_KEYS) - set(_OTHER)
    if unknown:
        raise UserError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: "
            f"{', '.join(sorted(set(_KEYS) | set(_OTHER)))}"
        )
    for key, allowed in _KEYS.items():
        if key in doc and doc[key] not in allowed:
            raise UserError(
                f"{where}: {key}={doc[key]!r} is not allowed; allowed values: {', '.join(allowed)}"
            )
    for key, rule in _OTHER.items():
        if key in doc:
            check_value(where, key, doc[key], rule)
    if doc.get("choice") == "bottleneck" and doc.get("beta") is None:
        raise UserError(f"{where}: choice='bottleneck' needs 'beta' (e.g. 0.5, 1, 3, 10)")
    rules = _population_rules()
    spec = doc.get("population") or {}
    bad = set(spec) - set(rules) - {"mean"}
    if bad:
        raise UserError(
            f"{where}: population has unknown key(s) {sorted(bad)}; allowed: "
            f"{', '.join(sorted(set(rules) | {'mean'}))}"
        )
    for key, value in spec.items():
        if key in rules:
            check_value(where, f"population.{key}", value, rules[key])
    mean = spec.get("mean")
    if mean is not None and not (
        isinstance(mean, list)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mean)
    ):
        raise UserError(
            f"{where}: population.mean={mean!r} is not allowed; expected a list of dim numbers"
        )


def simulate_from_config(
    doc: dict, seed: int | None = None, n: int | None = None, where: str = "config"
):
    """Validate a simulation config and return ``(PreferenceData, truth dict)``."""
    import numpy as np

    from signrm.simulate import load_twin_panel, make_population, simulate_comparisons

    validate_config(doc, where)
    n = int(n if n is not None else doc.get("n", 0))
    if n < 1:
        raise UserError("n: give a positive number of comparisons (config key 'n' or --n)")
    seed = int(seed if seed is not None else doc.get("seed", 0))
    source = doc.get("source", "twin_panel")
    pairing = doc.get("pairing", "cross_prompt")
    if source == "twin_panel":
        panel = load_twin_panel(doc.get("panel", "symmetric"))
        pop, X, prompt_ids = panel.population, panel.embeddings, panel.prompt_ids
        golden = panel.golden(panel.alt_prompt, panel.alt_response)
    else:
        spec = dict(doc.get("population") or {})
        kind = spec.pop("kind", "gaussian")
        try:
            pop = make_population(kind, random_state=seed, **spec)
        except ValueError as exc:
            raise UserError(f"{where}: population: {exc}") from None
        n_items = int(doc.get("n_items", 5000))
        rng = np.random.default_rng([seed, 1])
        X = rng.standard_normal((n_items, pop.dim)) / np.sqrt(2.0)
        prompt_ids, golden = None, X @ pop.mean_utility()
        if pairing != "cross_prompt":
            raise UserError(f"pairing={pairing!r} needs prompts: use source: twin_panel")
    data = simulate_comparisons(
        pop,
        X,
        n,
        pairing=pairing,
        choice=doc.get("choice", "bt"),
        beta=doc.get("beta"),
        per_user=doc.get("per_user"),
        prompt_ids=prompt_ids,
        golden=golden if pairing in ("similar", "diversified") else None,
        random_state=seed,
    )
    truth = {
        "theta_bar": pop.mean_utility().tolist(),
        "population": pop.name,
        "n": n,
        "seed": seed,
        "config": doc,
    }
    return data, truth


def run(args: argparse.Namespace) -> int:
    from signrm.data import atomic_write

    doc = _load(args.config)
    data, truth = simulate_from_config(doc, seed=args.seed, n=args.n, where=args.config)
    path = data.write(args.out)
    truth_path = Path(str(path) + ".truth.json")
    atomic_write(truth_path, lambda t: Path(t).write_text(json.dumps(truth, default=str)), ".json")
    print(f"wrote {len(data)} comparisons to {path} (ground truth in {truth_path})")
    return 0
