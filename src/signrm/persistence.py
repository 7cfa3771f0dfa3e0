"""Save and load estimators without pickle: ``model.json`` + ``arrays.npz`` (+ extra files).

Layout of a model directory:
- ``model.json``: class name, signrm version, hyper-parameters (``tuple_params`` names those
  given as tuples, which JSON stores as lists), scalar learned attributes (None included);
- ``arrays.npz``: learned numpy arrays (loaded with ``allow_pickle=False``);
- optional files written by the estimator (``head.safetensors`` for torch heads,
  ``booster.txt`` for LightGBM).
A save writes into a temporary directory and swaps it in, so a crash never leaves half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save", "load"]

FORMAT_VERSION = 1


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise ValueError(
        f"cannot save {where}={value!r}: only JSON values are stored (signrm never pickles); "
        "use a built-in option for it"
    )


def save(estimator, path: str | os.PathLike) -> Path:
    """Save a fitted estimator to the directory ``path`` (created or replaced atomically)."""
    from signrm import __version__

    estimator._check_fitted()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    given = estimator.get_params(deep=False)
    params = {k: _jsonable(v, k) for k, v in given.items()}
    tuple_params = sorted(k for k, v in given.items() if isinstance(v, tuple))
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for name in estimator._state_attributes():
        if not hasattr(estimator, name):
            continue
        value = getattr(estimator, name)
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                value = value.astype(str)
            arrays[name] = value
        else:
            scalars[name] = _jsonable(value, name)
    meta = {
        "format": "signrm-model",
        "format_version": FORMAT_VERSION,
        "signrm_version": __version__,
        "class": type(estimator).__name__,
        "params": params,
        "tuple_params": tuple_params,
        "attributes": scalars,
        "arrays": sorted(arrays),
        "metadata": _jsonable(getattr(estimator, "metadata_", None) or {}, "metadata_"),
    }
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        with open(tmp / "model.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2)
        np.savez(tmp / "arrays.npz", **arrays)
        estimator._save_extra(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / "model")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load(path: str | os.PathLike):
    """Load an estimator saved with ``save`` / ``estimator.save``."""
    from signrm import estimators

    path = Path(path)
    meta_path = path / "model.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{path}: not a signrm model directory (no model.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: corrupt model file ({exc.msg})") from None
    if meta.get("format") != "signrm-model":
        raise ValueError(f"{meta_path}: not a signrm model file")
    cls = getattr(estimators, meta["class"], None)
    if cls is None:
        raise ValueError(f"{meta_path}: unknown estimator class {meta['class']!r}")
    params = meta["params"]
    # JSON turns tuples into lists: restore the tuples (every list, for files that predate
    # ``tuple_params``), so that ``get_params()`` equals the saved estimator's.
    tuples = meta.get("tuple_params")
    for key, value in params.items():
        if isinstance(value, list) and (tuples is None or key in tuples):
            params[key] = tuple(value)
    est = cls(**params)
    for key, value in meta.get("attributes", {}).items():
        setattr(est, key, value)
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        for key in meta.get("arrays", []):
            setattr(est, key, npz[key])
    est.metadata_ = meta.get("metadata") or {}
    est._load_extra(path)
    return est
