"""Validation of what :func:`signrm.load` reads back: nothing in a model directory is trusted.

Every check raises :class:`~signrm.errors.UserError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from signrm.catalog import estimator_classes
from signrm.errors import UserError

__all__ = ["canonical_checksum", "file_digest", "read_meta", "verify_files", "estimator_class"]

#: format versions this signrm reads (1: no checksums; 2: checksummed manifest)
READABLE_VERSIONS = (1, 2)
_KEYS = {
    "format",
    "format_version",
    "signrm_version",
    "class",
    "params",
    "tuple_params",
    "attributes",
    "arrays",
    "metadata",
    "files",
    "checksum",
}
_TYPES = {
    "signrm_version": str,
    "class": str,
    "params": dict,
    "tuple_params": list,
    "attributes": dict,
    "arrays": list,
    "metadata": dict,
    "files": dict,
}


def canonical_checksum(meta: dict[str, Any]) -> str:
    """sha256 of ``meta`` without its ``checksum`` key, as canonical JSON (sorted keys)."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def file_digest(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_meta(meta_path: Path) -> dict[str, Any]:
    """Parse and check ``model.json``: structure, format version, checksum."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{meta_path}: corrupt model file ({exc.msg})") from None
    except UnicodeDecodeError:
        raise UserError(f"{meta_path}: corrupt model file (not UTF-8 text)") from None
    if not isinstance(meta, dict) or meta.get("format") != "signrm-model":
        raise UserError(f"{meta_path}: not a signrm model file")
    version = meta.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise UserError(
            f"{meta_path}: unknown format_version {version!r} (this signrm reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}); a newer signrm may have written it"
        )
    if version >= 2 or "checksum" in meta:
        if meta.get("checksum") != canonical_checksum(meta):
            raise UserError(
                f"{meta_path}: checksum mismatch: the file is corrupt or was edited after saving"
            )
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise UserError(f"{meta_path}: unknown keys {unknown}")
    for key in ("class", "params"):
        if key not in meta:
            raise UserError(f"{meta_path}: missing key {key!r}")
    for key, typ in _TYPES.items():
        if key in meta and meta[key] is not None and not isinstance(meta[key], typ):
            raise UserError(
                f"{meta_path}: {key!r} must be a JSON {'object' if typ is dict else typ.__name__}"
                f", got {type(meta[key]).__name__}"
            )
    for key in ("arrays", "tuple_params"):
        if not all(isinstance(v, str) for v in meta.get(key) or []):
            raise UserError(f"{meta_path}: {key!r} must list names (strings)")
    return meta


def verify_files(directory: Path, meta: dict[str, Any]) -> None:
    """Each file listed in the manifest exists and has its recorded sha256."""
    files = meta.get("files")
    if files is None:
        return
    for name, digest in sorted(files.items()):
        target = directory / name
        if "/" in name or name.startswith(".") or not target.is_file():
            raise UserError(f"{target}: missing (the model directory is incomplete)")
        if file_digest(target) != digest:
            raise UserError(
                f"{target}: checksum mismatch: the file is corrupt or was changed after saving"
            )


def _classes() -> dict[str, type]:
    """Estimator classes by class name (:mod:`signrm.catalog`, filled as they are defined)."""
    return dict(estimator_classes())


def estimator_class(name: str, meta_path: Path) -> type:
    """The estimator class named (by its class name) in ``model.json``."""
    classes = _classes()
    if name not in classes:
        raise UserError(
            f"{meta_path}: unknown estimator class {name!r} (expected one of "
            f"{', '.join(sorted(classes))})"
        )
    return classes[name]


def check_params(cls: type, params: dict[str, Any], meta_path: Path) -> None:
    """Every saved hyper-parameter is one that ``cls`` takes."""
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise UserError(f"{meta_path}: unknown parameters of {cls.__name__}: {', '.join(unknown)}")


def check_state_name(est, name: str, where: str, meta_path: Path) -> None:
    """``name`` is a learned attribute that ``est`` saves (never a method or a parameter)."""
    if name not in est._state_attributes():
        raise UserError(
            f"{meta_path}: {where} {name!r} is not a learned attribute of {type(est).__name__}"
        )


def check_array(name: str, value: np.ndarray, npz_path: Path) -> None:
    """Learned float arrays hold finite numbers."""
    if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
        raise UserError(f"{npz_path}: array {name!r} holds NaN or inf")
    if value.dtype.kind not in "biufcUS":
        raise UserError(f"{npz_path}: array {name!r} has unsupported dtype {value.dtype}")


def check_fitted_state(est, directory: Path) -> None:
    """The loaded model is usable: ``n_features_in_`` >= 1, finite torch weights, and the reward
    of one feature vector is computed and finite (a missing or wrong head fails here)."""
    where = directory / "model.json"
    d = getattr(est, "n_features_in_", None)
    if type(d) is not int or d < 1:
        raise UserError(f"{where}: n_features_in_ must be a positive integer, got {d!r}")
    for attr, module in vars(est).items():
        params = getattr(module, "parameters", None)
        if attr.endswith("_") and callable(params):
            for p in params():
                if not bool(p.detach().isfinite().all()):
                    raise UserError(f"{directory}: the weights of {attr} hold NaN or inf")
    try:
        r = np.asarray(est.reward(np.zeros((1, d))), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - any failure means the files do not make a model
        raise UserError(
            f"{directory}: the saved files do not make a working {type(est).__name__} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if r.shape != (1,) or not math.isfinite(float(r[0])):
        raise UserError(f"{directory}: the saved model gives a non-finite reward")
