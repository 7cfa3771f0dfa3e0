"""Declarative experiment configs (YAML or TOML), validated up front.

A config is a grid of settings times seeds; each (setting, seed) is one job::

    name: sign-paper
    kind: sign_paper            # which job function runs (see JOB_KINDS)
    seeds: 5                    # an int (0..N-1) or a list of ints
    fixed: {panel: symmetric}   # parameters shared by every job
    grid:                       # a mapping of lists (cartesian product) or a list of such mappings
      n: [1000, 10000]
      estimator: [rlhf, sign]
    exclude: [{estimator: em5, n: 100000}]   # optional partial settings to skip
    estimators:                 # name -> class (a signrm.registry name or a class name) and
      rlhf: {class: BradleyTerry, params: {head: linear}}   # keyword parameters
      thurstone: {class: thurstone}
    profiles:                   # optional named overrides (e.g. quick), applied with --profile
      quick: {seeds: 2, grid: {n: [1000]}}

Every key and value is checked before any job starts; errors name the key and the allowed values.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from signrm.errors import UserError
from signrm.registry import CLASSES, estimator_names
from signrm.simulate.battery import BATTERY_NAMES

__all__ = [
    "ExperimentConfig",
    "load_config",
    "check_value",
    "packaged_configs",
    "JOB_KINDS",
    "ESTIMATOR_NAMES",
    "read_config_file",
    "job_key",
]

#: what ``estimators.<name>.class`` may say: a registry name (``bt``) or a class name
ESTIMATOR_NAMES = (*estimator_names(), *CLASSES)

_TOP_KEYS = {
    "name",
    "kind",
    "description",
    "seeds",
    "fixed",
    "grid",
    "exclude",
    "estimators",
    "profiles",
}

# Per kind: allowed parameters (grid or fixed) -> allowed values (tuple) or a type checker name.
_POP_KINDS = (
    "gaussian",
    "laplace",
    "two_point",
    "exp_two_point",
    "skewed",
    "mixture",
    "homogeneous",
)
#: what every simulated-population kind takes: size, estimator, choice model, evaluation pairs
_SIMULATED_CHOICES: dict[str, Any] = {
    "n": "posint",
    "estimator": "estimator",
    "choice": ("bt", "thurstone", "bottleneck"),
    "beta": "posfloat_or_null",
    "n_eval_pairs": "posint",
}
JOB_KINDS: dict[str, dict[str, Any]] = {
    "sign_paper": {
        "panel": "twin_variant",
        "n": "posint",
        "estimator": "estimator",
        "choice": ("bt", "thurstone", "bottleneck"),
        "beta": "posfloat_or_null",
        "pairing": ("cross_prompt", "same_prompt"),
        "per_user": "posint_or_null",
        "n_eval_pairs": "posint",
    },
    "synthetic": {
        "population": _POP_KINDS,
        "n_personas": "posint",
        "dim": "posint",
        "spread": "posfloat",
        "spread_dims": "posint_or_null",
        "scale_dist": ("none", "lognormal", "exponential", "two_point"),
        "scale_sigma": "posfloat",
        "scale_corr": ("independent", "correlated"),
        "population_seed": "int",
        **_SIMULATED_CHOICES,
    },
    "bt_vs_clf": {
        "panel": ("symmetric", "asymmetric"),
        "n": "posint",
        "beta": "posfloat",
        "pairing": ("same_prompt", "cross_prompt"),
        "candidates": ("random", "similar", "diversified"),
        "estimator": "estimator",
        "train_candidates": "posint",
        "test_candidates": "posint",
        "test_fraction": "fraction",
    },
    "battery": {
        "panel": BATTERY_NAMES,
        "coupling": "unit_interval",
        "n_personas": "posint",
        "dim": "posint",
        "population_seed": "int",
        **_SIMULATED_CHOICES,
    },
}
_REQUIRED = {
    "battery": ("panel", "n", "estimator"),
    "sign_paper": ("n", "estimator"),
    "synthetic": ("n", "estimator"),
    "bt_vs_clf": ("n", "beta", "pairing", "candidates", "estimator"),
}
_DEFAULTS = {
    "battery": {
        "coupling": 0.7,
        "n_personas": 200,
        "dim": 8,
        "population_seed": 0,
        "choice": "bt",
        "beta": None,
        "n_eval_pairs": 20000,
    },
    "sign_paper": {
        "panel": "symmetric",
        "choice": "bt",
        "beta": None,
        "pairing": "cross_prompt",
        "per_user": None,
        "n_eval_pairs": 20000,
    },
    "synthetic": {
        "population": "exp_two_point",
        "n_personas": 200,
        "dim": 8,
        "spread": 3.0 / 2**0.5,
        "spread_dims": None,
        "scale_dist": "none",
        "scale_sigma": 1.0,
        "scale_corr": "independent",
        "population_seed": 0,
        "choice": "bt",
        "beta": None,
        "n_eval_pairs": 20000,
    },
    "bt_vs_clf": {
        "panel": "symmetric",
        "train_candidates": 10,
        "test_candidates": 64,
        "test_fraction": 0.25,
    },
}


def job_key(experiment: str, setting: dict, seed: int, estimator_spec: dict | None = None) -> str:
    """Stable id of a job: a hash of the experiment name, setting, estimator spec and seed."""
    blob = json.dumps(
        {"e": experiment, "s": setting, "seed": int(seed), "est": estimator_spec},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass
class ExperimentConfig:
    """A validated experiment: ``settings`` (list of dicts) x ``seeds``."""

    name: str
    kind: str
    seeds: list[int]
    fixed: dict
    settings: list[dict]
    estimators: dict[str, dict]
    description: str = ""
    source: str = ""
    raw: dict = field(default_factory=dict)

    def jobs(self) -> list[dict]:
        """Every job: ``{"key", "experiment", "kind", "setting", "seed"}`` (setting includes fixed)."""
        out = []
        for setting in self.settings:
            full = {**_DEFAULTS[self.kind], **self.fixed, **setting}
            spec = self.estimators.get(full["estimator"])
            for seed in self.seeds:
                out.append(
                    {
                        "key": job_key(self.name, full, seed, spec),
                        "experiment": self.name,
                        "kind": self.kind,
                        "setting": full,
                        "seed": int(seed),
                        "estimator_spec": spec,
                    }
                )
        return out

    @property
    def n_jobs(self) -> int:
        return len(self.settings) * len(self.seeds)


def packaged_configs() -> dict[str, Path]:
    """Names and paths of the configs shipped in ``signrm/experiments/configs``."""
    folder = resources.files("signrm.experiments") / "configs"
    out = {}
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith((".yaml", ".yml", ".toml")):
            out[name.rsplit(".", 1)[0]] = Path(str(entry))
    return dict(sorted(out.items()))


def read_config_file(path: Path) -> dict:
    """The top-level mapping of a YAML or TOML file (by suffix); ``UserError`` naming the file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: invalid TOML ({' '.join(str(exc).split())})") from None
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return doc


def _check_value(where: str, key: str, value: Any, rule: Any, estimators: dict) -> None:
    if isinstance(rule, tuple):
        if value not in rule:
            raise UserError(
                f"{where}: {key}={value!r} is not allowed; allowed values: "
                + ", ".join(repr(v) for v in rule)
            )
        return
    ok = True
    if rule == "posint":
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        want = "a positive integer"
    elif rule == "posint_or_null":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
        want = "a positive integer or null"
    elif rule == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "an integer"
    elif rule in ("posfloat", "posfloat_or_null"):
        ok = (value is None and rule == "posfloat_or_null") or (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )
        want = "a positive number" + (" or null" if rule == "posfloat_or_null" else "")
    elif rule == "bool":
        ok = isinstance(value, bool)
        want = "true or false"
    elif rule == "str":
        ok = isinstance(value, str)
        want = "a string"
    elif rule == "mapping_or_null":
        ok = value is None or isinstance(value, dict)
        want = "a mapping of keys to values, or null"
    elif rule == "unit_interval":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        want = "a number in [0, 1]"
    elif rule == "fraction":
        ok = isinstance(value, (int, float)) and 0 < value < 1
        want = "a number in (0, 1)"
    elif rule == "twin_variant":
        from signrm.simulate.battery import parse_battery_variant
        from signrm.simulate.twin_panel import TWIN_VARIANTS

        try:
            ok = value in TWIN_VARIANTS or parse_battery_variant(value) is not None
        except ValueError:
            ok = False
        want = "a twin-panel variant: " + ", ".join(TWIN_VARIANTS) + " (battery-NAME@COUPLING)"
    elif rule == "estimator":
        ok = value in estimators
        want = "one of the names under 'estimators': " + ", ".join(sorted(estimators))
    if not ok:
        raise UserError(f"{where}: {key}={value!r} is not allowed; expected {want}")


def check_value(where: str, key: str, value: Any, rule: Any) -> None:
    """Check one config value against a rule (a tuple of allowed values or a type-rule name such
    as ``"posint"``, ``"posfloat_or_null"``, ``"bool"``); raises ``UserError`` naming the key."""
    _check_value(where, key, value, rule, {})


def _param_error(class_name: str, params: dict) -> str | None:
    """The message of the estimator's declared parameter check on ``params``, or None."""
    from signrm.registry import check_estimator_params

    try:
        check_estimator_params(class_name, **params)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _validate_estimators(doc: dict, where: str) -> dict[str, dict]:
    est = doc.get("estimators")
    if not isinstance(est, dict) or not est:
        raise UserError(f"{where}: 'estimators' must map names to {{class: ..., params: {{...}}}}")
    out = {}
    for name, spec in est.items():
        if not isinstance(spec, dict) or "class" not in spec:
            raise UserError(f"{where}: estimators.{name} needs a 'class' key")
        bad = set(spec) - {"class", "params"}
        if bad:
            raise UserError(
                f"{where}: estimators.{name} has unknown key(s) {sorted(bad)}; allowed: class, params"
            )
        if not isinstance(spec["class"], str) or spec["class"] not in ESTIMATOR_NAMES:
            raise UserError(
                f"{where}: estimators.{name}.class={spec['class']!r} is not allowed; allowed values: "
                + ", ".join(ESTIMATOR_NAMES)
            )
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise UserError(f"{where}: estimators.{name}.params must be a mapping")
        from signrm.registry import parameter_names

        accepted = parameter_names(spec["class"])
        unknown = set(params) - set(accepted)
        if unknown:
            raise UserError(
                f"{where}: estimators.{name}.params has unknown key(s) {sorted(unknown)}; "
                f"{spec['class']} accepts: {', '.join(sorted(accepted))}"
            )
        message = _param_error(spec["class"], params)
        if message is not None:
            # name the parameter whose value alone fails the estimator's check, if there is one
            culprit = next((k for k in params if _param_error(spec["class"], {k: params[k]})), None)
            if culprit is None:
                raise UserError(
                    f"{where}: estimators.{name}.params={params!r} are not allowed together: "
                    f"{message}"
                )
            raise UserError(
                f"{where}: estimators.{name}.params.{culprit}={params[culprit]!r} is not allowed: "
                f"{_param_error(spec['class'], {culprit: params[culprit]})}"
            )
        out[str(name)] = {"class": spec["class"], "params": dict(params)}
    return out


def _expand(grid: Any, where: str) -> list[dict]:
    grids = grid if isinstance(grid, list) else [grid]
    settings: list[dict] = []
    for g in grids:
        if not isinstance(g, dict) or not g:
            raise UserError(
                f"{where}: 'grid' must be a mapping of lists or a list of such mappings"
            )
        keys = list(g)
        values = [v if isinstance(v, list) else [v] for v in g.values()]
        for combo in itertools.product(*values):
            s = dict(zip(keys, combo))
            if s not in settings:
                settings.append(s)
    return settings


def validate(doc: dict, where: str = "config") -> ExperimentConfig:
    """Validate a config mapping and expand its grid; raises ``UserError`` on the first problem."""
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise UserError(
            f"{where}: unknown top-level key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    for key in ("name", "kind", "grid", "estimators"):
        if key not in doc:
            raise UserError(f"{where}: missing required key '{key}'")
    kind = doc["kind"]
    if kind not in JOB_KINDS:
        raise UserError(
            f"{where}: kind={kind!r} is not allowed; allowed values: {', '.join(JOB_KINDS)}"
        )
    seeds = doc.get("seeds", 5)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        seeds = list(range(seeds))
    if not (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise UserError(f"{where}: seeds={seeds!r} must be a positive int or a list of ints")
    estimators = _validate_estimators(doc, where)
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise UserError(f"{where}: 'fixed' must be a mapping")
    rules = JOB_KINDS[kind]
    settings = _expand(doc["grid"], where)
    exclude = doc.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise UserError(f"{where}: 'exclude' must be a list of mappings")
    for part, label in (
        (fixed, "fixed"),
        *((s, "grid") for s in settings),
        *((e, "exclude") for e in exclude),
    ):
        for key, value in part.items():
            if key not in rules:
                raise UserError(
                    f"{where}: {label} key {key!r} is not a parameter of kind {kind!r}; "
                    f"allowed: {', '.join(rules)}"
                )
            _check_value(f"{where} ({label})", key, value, rules[key], estimators)
    settings = [
        s for s in settings if not any(all(s.get(k) == v for k, v in e.items()) for e in exclude)
    ]
    if not settings:
        raise UserError(f"{where}: the grid is empty after 'exclude'")
    for s in settings:
        full = {**_DEFAULTS[kind], **fixed, **s}
        missing = [k for k in _REQUIRED[kind] if full.get(k) is None]
        if missing:
            raise UserError(f"{where}: every setting needs {missing} (in 'grid' or 'fixed')")
        if full.get("choice") == "bottleneck" and full.get("beta") is None:
            raise UserError(f"{where}: choice='bottleneck' needs 'beta' (e.g. 0.5, 1, 3, 10)")
        for key in ("train_candidates", "test_candidates"):
            if kind == "bt_vs_clf" and full[key] < 2:
                raise UserError(f"{where}: {key}={full[key]!r} is not allowed; it must be >= 2")
    _check_resources(kind, [{**_DEFAULTS[kind], **fixed, **s} for s in settings], where)
    return ExperimentConfig(
        name=str(doc["name"]),
        kind=kind,
        seeds=[int(s) for s in seeds],
        fixed=dict(fixed),
        settings=settings,
        estimators=estimators,
        description=str(doc.get("description", "")),
        raw=copy.deepcopy(doc),
    )


# The synthetic population's shape parameters (make_population), shared with `signrm simulate`.
POPULATION_KEYS = (
    "n_personas",
    "dim",
    "spread",
    "spread_dims",
    "scale_dist",
    "scale_sigma",
    "scale_corr",
)

# Per kind: the parameters a data-dependent check needs (see _check_resources).
_RESOURCE_KEYS = {
    "bt_vs_clf": ("panel", "train_candidates", "test_candidates", "test_fraction"),
    "synthetic": ("population", *POPULATION_KEYS, "population_seed"),
}


def _check_resources(kind: str, settings: list[dict], where: str) -> None:
    """Checks that need the data: the twin panel's candidate pools (``bt_vs_clf``) and the
    population built from each ``synthetic`` setting (e.g. an odd ``n_personas`` in a symmetric
    family). Each distinct combination is checked once."""
    from .jobs import check_candidates, synthetic_population

    check = {"bt_vs_clf": check_candidates, "synthetic": synthetic_population}.get(kind)
    if check is None:
        return
    seen = set()
    for full in settings:
        part = {k: full[k] for k in _RESOURCE_KEYS[kind]}
        tag = json.dumps(part, sort_keys=True, default=str)
        if tag in seen:
            continue
        seen.add(tag)
        try:
            check(part)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None


def _apply_profile(doc: dict, profile: str | None, where: str) -> dict:
    profiles = doc.get("profiles") or {}
    if profile is None:
        return {k: v for k, v in doc.items() if k != "profiles"}
    if profile not in profiles:
        allowed = ", ".join(sorted(profiles)) or "(none defined)"
        raise UserError(f"{where}: profile {profile!r} is not defined; allowed values: {allowed}")
    over = profiles[profile] or {}
    if not isinstance(over, dict):
        raise UserError(f"{where}: profiles.{profile} must be a mapping")
    out = {k: copy.deepcopy(v) for k, v in doc.items() if k != "profiles"}
    for key, value in over.items():
        if key in ("fixed",) and isinstance(value, dict):
            out[key] = {**(out.get(key) or {}), **value}
        elif key == "grid" and isinstance(value, dict) and isinstance(out.get("grid"), dict):
            out["grid"] = {**out["grid"], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(source: str | Path | dict, profile: str | None = None) -> ExperimentConfig:
    """Load and validate a config: a path, a packaged name (``sign-paper``...) or a mapping."""
    if isinstance(source, dict):
        doc, where = source, "config"
    else:
        path = Path(source)
        if not path.exists():
            shipped = packaged_configs()
            if str(source) in shipped:
                path = shipped[str(source)]
            else:
                raise UserError(
                    f"config {str(source)!r} not found: give a YAML/TOML path or one of the "
                    f"packaged configs: {', '.join(shipped)}"
                )
        if path.suffix not in (".yaml", ".yml", ".toml"):
            raise UserError(f"{path}: config files must end in .yaml, .yml or .toml")
        doc, where = read_config_file(path), str(path)
    doc = _apply_profile(doc, profile, where)
    cfg = validate(doc, where)
    cfg.source = where
    return cfg
