"""Declared hyper-parameter constraints, the estimator registry and the CLI's option vocabulary."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

import signrm
from signrm import registry
from signrm.cli import build_parser, main
from signrm.errors import UserError


def _data(n: int = 60, d: int = 3, users: bool = False) -> signrm.PreferenceData:
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    y = (xa.sum(1) > xb.sum(1)).astype(float)
    user = np.arange(n) % 6 if users else None
    return signrm.PreferenceData.from_arrays(xa, xb, y, user=user)


# Issue 13's list of values that cannot work, and one per kind of constraint besides.
BAD_PARAMETERS = [
    ("LatentClassBT", {"l2": -1}, "l2 must be >= 0, got -1"),
    ("BradleyTerry", {"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
    ("BradleyTerry", {"tol": -1}, "tol must be >= 0, got -1"),
    ("SignEstimator", {"tol": -1}, "tol must be >= 0, got -1"),
    ("LatentClassBT", {"tol": -1}, "tol must be >= 0, got -1"),
    ("BradleyTerry", {"validation_fraction": 1.5}, r"validation_fraction must be in \[0, 1\)"),
    ("ClassificationRM", {"patience": -1}, "patience must be an integer >= 1, got -1"),
    ("BradleyTerry", {"hidden_sizes": (0,)}, "hidden_sizes must be a sequence of integers >= 1"),
    ("SignEstimator", {"n_stages": 1.5}, "n_stages must be an integer >= 1, got 1.5"),
    ("BradleyTerry", {"l2": "x"}, "l2 must be >= 0, got 'x'"),
    ("SignEstimator", {"hidden_sizes": (-4,)}, r"hidden_sizes must be .*got \(-4,\)"),
    ("ClassificationRM", {"hidden_sizes": (-4,)}, r"hidden_sizes must be .*got \(-4,\)"),
    ("BradleyTerry", {"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ("ClassificationRM", {"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ("SignEstimator", {"lambdas": ()}, r"lambdas must be a non-empty sequence .* got \(\)"),
    ("SignEstimator", {"lambdas": 5}, "lambdas must be a non-empty sequence .* got 5"),
    ("SignEstimator", {"lambdas": (1.0, float("inf"))}, "lambdas must be"),
    ("BradleyTerry", {"link": "cauchit"}, "link must be 'logit' or 'probit', got 'cauchit'"),
    ("BradleyTerry", {"head": "tree"}, "head must be one of the reward heads 'linear' or 'mlp'"),
    ("SignEstimator", {"random_state": -1}, "random_state must be None or an integer"),
    ("LatentClassBT", {"verbose": "yes"}, "verbose must be True or False"),
    ("ClassificationRM", {"num_leaves": 1}, "num_leaves must be an integer >= 2"),
    ("ClassificationRM", {"backend": "xgboost"}, "backend must be 'mlp', 'lightgbm' or a scikit"),
]


@pytest.mark.parametrize(
    "cls,params,match", BAD_PARAMETERS, ids=[f"{c}-{next(iter(p))}" for c, p, _ in BAD_PARAMETERS]
)
def test_a_value_that_cannot_work_is_a_one_line_error_at_fit(cls, params, match):
    est = registry.make_estimator(cls, **params)  # stored unchanged, no check in __init__
    assert est.get_params()[next(iter(params))] is next(iter(params.values()))
    data = _data(users=cls == "LatentClassBT")
    with pytest.raises(InvalidParameterError, match=match) as info:
        est.fit(data)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    assert not any(k.endswith("_") for k in vars(est))  # nothing was fitted


@pytest.mark.parametrize("name", registry.estimator_names())
def test_defaults_satisfy_the_constraints_and_every_parameter_is_declared(name):
    est = registry.make_estimator(name)
    est._validate_params()  # scikit-learn's own method, not a signrm replacement
    assert type(est)._validate_params.__module__ == "signrm.estimators.base"
    assert set(est.get_params()) <= set(type(est)._parameter_constraints)


@pytest.mark.parametrize("name", registry.estimator_names())
def test_clone_and_one_random_state_default(name):
    est = registry.make_estimator(name, verbose=False)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert est.get_params()["random_state"] == 0  # reproducible by default, every estimator
    assert "Defaults\n        to 0" in type(est).__doc__ or "Defaults to 0" in type(est).__doc__


def test_clone_of_a_fitted_estimator_is_unfitted():
    est = signrm.BradleyTerry(l2=1e-3).fit(_data())
    twin = clone(est)
    assert twin.l2 == 1e-3 and not hasattr(twin, "coef_")


def test_registry_names_classes_and_fixed_parameters():
    names = registry.estimator_names()
    assert {"sign", "bt", "thurstone", "clf-mlp", "clf-lgb", "em"} <= set(names)
    assert names[0] == "sign"  # the CLI's default comes first
    streaming = set(registry.estimator_names(streaming=True))
    assert {"sign", "bt", "thurstone"} <= streaming and not {"clf-mlp", "clf-lgb", "em"} & streaming
    assert "clf-mlp" in registry.estimator_names(distributed=True)
    assert "clf-lgb" not in registry.estimator_names(distributed=True)
    assert registry.estimator_class("clf-lgb") is signrm.ClassificationRM
    assert registry.estimator_class("LatentClassBT") is signrm.LatentClassBT
    thurstone = registry.make_estimator("thurstone", head="mlp")
    assert (thurstone.link, thurstone.head) == ("probit", "mlp")
    assert registry.name_of(thurstone) == "thurstone"
    assert registry.name_of(signrm.ClassificationRM(backend="lightgbm")) == "clf-lgb"
    assert registry.name_of(signrm.SignEstimator(n_stages=2)) == "sign"
    assert registry.name_of(registry.make_estimator(names[1])) == names[1]
    assert registry.make_estimator("BradleyTerry", link="probit").link == "probit"
    with pytest.raises(UserError, match=r"'bt' is BradleyTerry\(link='logit'\)"):
        registry.make_estimator("bt", link="probit")
    with pytest.raises(UserError, match=r"takes no parameter\(s\) \['head'\]"):
        registry.make_estimator("em", head="mlp")
    registry.check_estimator_params("sign", n_stages=3)  # what configs run before any job
    with pytest.raises(InvalidParameterError, match="n_stages must be an integer >= 1, got 0"):
        registry.check_estimator_params("sign", n_stages=0)
    for bad in ("xgb", "NotFittedError", "PreferenceEstimator", "load"):
        with pytest.raises(
            UserError, match="unknown estimator .*choose from sign, .*bt, .*LatentClassBT"
        ):
            registry.estimator_class(bad)


def test_experiment_config_takes_registry_names():
    from signrm.experiments import load_config
    from signrm.experiments.jobs import make_estimator

    doc = {
        "name": "t",
        "kind": "synthetic",
        "seeds": 1,
        "grid": {"n": [100], "estimator": ["probit"]},
        "estimators": {"probit": {"class": "thurstone", "params": {"l2": 0.01}}},
    }
    cfg = load_config(doc)
    est = make_estimator(cfg.estimators["probit"], seed=3)
    assert (type(est), est.link, est.l2, est.random_state) == (
        signrm.BradleyTerry,
        "probit",
        0.01,
        3,
    )
    doc["estimators"]["probit"]["params"] = {"link": "logit"}
    with pytest.raises(UserError, match=r"estimators\.probit\.params\.link='logit' is not allowed"):
        load_config(doc)


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("signrm",)):
    """Every (command path, action) of the parser tree, sub-commands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_cli_option_has_help_and_head_has_choices():
    options = list(_options(build_parser()))
    assert len(options) > 50
    missing = [f"{' '.join(p)} {a.option_strings or a.dest}" for p, a in options if not a.help]
    assert not missing, missing
    heads = [(p, a) for p, a in options if "--head" in a.option_strings]
    assert {p[-1] for p, _ in heads} >= {"fit", "train"}
    for p, a in heads:  # fit can also choose the head by cross-validation
        assert tuple(a.choices) == (
            ("linear", "mlp", "auto") if p[-1] == "fit" else ("linear", "mlp")
        )
    # --batch-size is a training batch (comparisons per step); embedding batches have their own flag
    batch = {p[-1] for p, a in options if "--batch-size" in a.option_strings}
    assert batch == {"train"}
    embed = {p[-1] for p, a in options if "--embed-batch-size" in a.option_strings}
    assert embed == {"fit", "score", "best-of-n"}
    estimators = [a for p, a in options if "--estimator" in a.option_strings and p[-1] == "fit"]
    assert tuple(estimators[0].choices) == registry.estimator_names()


def test_cli_prints_an_invalid_parameter_as_one_line(tmp_path, capsys):
    path = tmp_path / "pairs.parquet"
    _data().write(path)
    code = main(["train", "--data", str(path), "--out", str(tmp_path / "m"), "--estimator",
                 "bt", "--head", "linear", "--batch-size", "0", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: batch_size must be an integer >= 1, got 0\n"
    assert not (tmp_path / "m").exists()
