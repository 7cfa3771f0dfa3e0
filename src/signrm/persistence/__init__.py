"""Save and load estimators without pickle: ``model.json`` + ``arrays.npz`` (+ extra files).

Layout of a model directory (format version 2):

- ``model.json``: ``"format": "signrm-model"`` (the marker that makes a directory a signrm
  model), class name, signrm version, hyper-parameters (``tuple_params`` names those given as
  tuples, which JSON stores as lists), scalar learned attributes (None included), ``files``:
  the sha256 of every other file of the directory, and ``checksum``: the sha256 of the rest of
  ``model.json`` (canonical JSON);
- ``arrays.npz``: learned numpy arrays (loaded with ``allow_pickle=False``);
- optional files written by the estimator (``head.safetensors`` for torch heads,
  ``booster.txt`` for LightGBM) or passed as ``extra_files`` (``encoder.json`` of a
  :class:`~signrm.text_model.TextRewardModel`).

Saving only ever replaces a signrm model directory (or an empty one), crash-safely: see
:mod:`signrm.persistence._dirswap`. Loading checks everything: checksums, format version,
class, parameter names and values (``_validate_params``), attribute names, finite arrays and
weights, and that the model computes a finite reward. Version-1 directories (no checksums)
still load, with every check but the checksums.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import UserError
from signrm.persistence import _checks
from signrm.persistence._dirswap import (
    MODEL_FORMAT,
    PARTIAL_MARKER,
    check_replaceable,
    path_lock,
    recover,
    replace_directory,
)

__all__ = ["save", "load", "check_replaceable"]

FORMAT_VERSION = 2


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


def _state(estimator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Learned state split into numpy arrays and JSON scalars."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for name in estimator._state_attributes():
        if not hasattr(estimator, name):
            continue
        value = getattr(estimator, name)
        if isinstance(value, np.ndarray):
            arrays[name] = value.astype(str) if value.dtype == object else value
        else:
            scalars[name] = _jsonable(value, name)
    return arrays, scalars


def _check_extra_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name == "model.json":
        raise ValueError(f"invalid extra file name {name!r}")


def save(
    estimator,
    path: str | os.PathLike,
    *,
    extra_files: Mapping[str, str | bytes] | None = None,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Save a fitted estimator to the directory ``path``, crash-safely; returns its path.

    ``metadata``: provenance recorded in ``model.json`` next to the estimator's own
    ``metadata_`` (read back as ``metadata_``), e.g. how and on how many processes it was fitted.

    ``path`` must be missing, empty or a signrm model directory (:func:`check_replaceable`).
    ``extra_files`` (name -> text or bytes) are written into the same directory and covered by
    its checksums, in the same atomic step.
    """
    from signrm import __version__

    estimator._check_fitted()
    given = estimator.get_params(deep=False)
    params = {k: _jsonable(v, k) for k, v in given.items()}
    tuple_params = sorted(k for k, v in given.items() if isinstance(v, tuple))
    arrays, scalars = _state(estimator)
    metadata = _jsonable(
        {**(getattr(estimator, "metadata_", None) or {}), **dict(metadata or {})}, "metadata_"
    )
    extra = dict(extra_files or {})
    for name in extra:
        _check_extra_name(name)

    def write(tmp: Path) -> None:
        np.savez(tmp / "arrays.npz", **arrays)
        estimator._save_extra(tmp)
        for name, content in extra.items():
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            (tmp / name).write_bytes(data)
        files = {
            p.name: _checks.file_digest(p)
            for p in sorted(tmp.iterdir())
            if p.is_file() and p.name != PARTIAL_MARKER
        }
        meta = {
            "format": MODEL_FORMAT,
            "format_version": FORMAT_VERSION,
            "signrm_version": __version__,
            "class": type(estimator).__name__,
            "params": params,
            "tuple_params": tuple_params,
            "attributes": scalars,
            "arrays": sorted(arrays),
            "metadata": metadata,
            "files": files,
        }
        meta["checksum"] = _checks.canonical_checksum(meta)
        with open(tmp / "model.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2)

    return replace_directory(path, write)


def _restore_tuples(meta: dict[str, Any]) -> dict[str, Any]:
    # JSON turns tuples into lists: restore the tuples (every list, for files that predate
    # ``tuple_params``), so that ``get_params()`` equals the saved estimator's.
    params = dict(meta["params"])
    tuples = meta.get("tuple_params")
    for key, value in params.items():
        if isinstance(value, list) and (tuples is None or key in tuples):
            params[key] = tuple(value)
    return params


def _build(cls: type, params: dict[str, Any], meta_path: Path):
    _checks.check_params(cls, params, meta_path)
    try:
        est = cls(**params)
        if hasattr(est, "_parameter_constraints"):
            est._validate_params()
    except (TypeError, ValueError) as exc:
        raise UserError(f"{meta_path}: invalid parameters ({exc})") from None
    return est


def _load_arrays(est, path: Path, names: list[str]) -> None:
    npz_path = path / "arrays.npz"
    for name in names:
        _checks.check_state_name(est, name, "array", path / "model.json")
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            missing = sorted(set(names) - set(npz.files))
            if missing:
                raise UserError(f"{npz_path}: missing arrays {missing}")
            for key in names:
                value = npz[key]
                _checks.check_array(key, value, npz_path)
                setattr(est, key, value)
    except FileNotFoundError:
        raise UserError(f"{npz_path}: missing (the model directory is incomplete)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{npz_path}: corrupt arrays file ({type(exc).__name__}: {exc})") from None


def load(path: str | os.PathLike):
    """Load an estimator saved with :func:`save` / ``estimator.save``, checking every file."""
    path = Path(path)
    if not os.path.lexists(path) and path.parent.is_dir():
        absolute = Path(os.path.abspath(path))
        with contextlib.suppress(OSError), path_lock(absolute):  # e.g. a read-only parent
            recover(absolute)
    meta_path = path / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: not a signrm model directory (no model.json)")
    meta = _checks.read_meta(meta_path)
    _checks.verify_files(path, meta)
    cls = _checks.estimator_class(meta["class"], meta_path)
    est = _build(cls, _restore_tuples(meta), meta_path)
    for key, value in (meta.get("attributes") or {}).items():
        _checks.check_state_name(est, key, "attribute", meta_path)
        setattr(est, key, value)
    _load_arrays(est, path, list(meta.get("arrays") or []))
    est.metadata_ = meta.get("metadata") or {}
    try:
        est._load_extra(path)
    except Exception as exc:  # noqa: BLE001 - safetensors, lightgbm and torch raise their own
        raise UserError(
            f"{path}: corrupt model files ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    _checks.check_fitted_state(est, path)
    return est
