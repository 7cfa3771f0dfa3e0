"""``TextRewardModel``: a fitted estimator plus the encoder that made its features.

Its directory is one signrm model directory (``model.json`` ...) that also holds
``encoder.json``: ``{"encoder": <config>, "identity": <identity>, ...extra}``, written in the
same atomic save and covered by the model's checksums. Nothing in ``encoder.json`` is trusted at
load: its keys are checked against the encoder's options, a relative model path resolves inside
the model folder (or is refused), the cache identity is recomputed from the model actually
loaded (the saved ``model_id`` is ignored), and an encoder whose options now differ from the
saved identity (another ``mode``, ``layer`` ...) is refused.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import UserError

__all__ = ["ENCODER_FILE", "TextRewardModel"]

ENCODER_FILE = "encoder.json"
_RUNTIME = {"self", "cache_dir", "show_progress", "tokenizer", "model_id"}


def _json_default(v: Any):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _encoder_classes() -> dict[str, type]:
    from signrm.embed import CausalLMEncoder, SentenceEncoder

    return {cls.kind: cls for cls in (SentenceEncoder, CausalLMEncoder)}


def _portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The encoder config to store: a local model path made absolute (cwd-independent)."""
    config = dict(config)
    model = config.get("model")
    if isinstance(model, str) and not Path(model).is_absolute():
        local = Path(model).expanduser()
        if local.exists():
            config["model"] = str(local.resolve())
    return config


def _resolve_model(name: Any, folder: Path, enc_path: Path) -> str:
    """``model`` of a stored config: absolute paths as written by ``save``; a relative path only
    inside the model folder; anything else is an alias or a hub name."""
    if not isinstance(name, str) or not name:
        raise UserError(f"{enc_path}: 'model' must be a non-empty string, got {name!r}")
    path = Path(name)
    if path.is_absolute():
        return name
    inside = (folder / path).resolve()
    root = folder.resolve()
    if inside != root and root not in inside.parents:
        raise UserError(
            f"{enc_path}: encoder model path {name!r} leaves the model folder; refusing it"
        )
    if inside.exists():
        return str(inside)
    if name.startswith((".", "~")) or "\\" in name:
        raise UserError(f"{enc_path}: encoder model path {name!r} does not exist")
    return name  # an alias (minilm, smollm2) or a hub name


def _check_config(config: Any, folder: Path, enc_path: Path) -> tuple[type, dict[str, Any]]:
    """The encoder class and its keyword arguments, from the stored config."""
    if not isinstance(config, dict):
        raise UserError(f"{enc_path}: 'encoder' must be a JSON object")
    config = dict(config)
    classes = _encoder_classes()
    kind = config.pop("kind", None)
    if kind not in classes:
        raise UserError(
            f"{enc_path}: unknown encoder kind {kind!r} (expected one of {sorted(classes)})"
        )
    cls = classes[kind]
    config.pop("model_id", None)  # the identity comes from what is actually loaded
    config.pop("identity", None)
    allowed = set(inspect.signature(cls.__init__).parameters) - _RUNTIME
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise UserError(
            f"{enc_path}: unknown {kind} encoder options {unknown} (allowed: {sorted(allowed)})"
        )
    config["model"] = _resolve_model(config.get("model"), folder, enc_path)
    return cls, config


def _check_identity(saved: Any, now: dict | None, enc_path: Path) -> None:
    """Refuse an encoder whose feature options differ from those the model was fitted with;
    warn when only the model files changed."""
    if saved is None or now is None:
        return
    if not isinstance(saved, dict):
        raise UserError(f"{enc_path}: 'identity' must be a JSON object")
    changed = sorted(
        k for k in set(saved) | set(now) if k != "model" and saved.get(k) != now.get(k)
    )
    if changed:
        what = "; ".join(f"{k}: fitted with {saved.get(k)!r}, now {now.get(k)!r}" for k in changed)
        raise UserError(
            f"{enc_path}: the encoder would give other features than the model was fitted on "
            f"({what}); refusing to use it"
        )
    if saved.get("model") != now.get("model"):
        warnings.warn(
            f"{enc_path}: the model was fitted with the encoder {saved.get('model')!r}, which "
            f"now resolves to {now.get('model')!r}; rewards may be meaningless",
            UserWarning,
            stacklevel=3,
        )


class TextRewardModel:
    """A fitted estimator plus the encoder that made its features: texts in, rewards out.

    Saved as one model directory: the estimator's files plus ``encoder.json`` (the encoder's
    config and identity), which is what ``signrm fit`` writes and ``signrm score`` /
    ``signrm best-of-n`` read.
    """

    def __init__(self, estimator, encoder):
        self.estimator = estimator
        self.encoder = encoder

    def reward(
        self,
        responses: Sequence[str],
        prompts: Sequence[str] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Reward of each (prompt, response), float64 ``(n,)``."""
        X = self.encoder.encode(list(responses), prompts, show_progress=show_progress)
        return np.asarray(self.estimator.reward(X), dtype=np.float64)

    def save(self, path: str | os.PathLike, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Save the estimator and ``encoder.json`` to ``path`` in one crash-safe step.

        ``extra``: more JSON keys for ``encoder.json`` (``signrm fit`` stores its summary).
        """
        from signrm.persistence import save

        extra = dict(extra or {})
        reserved = sorted({"encoder", "identity"} & set(extra))
        if reserved:
            raise ValueError(f"extra may not set {reserved}")
        info = {
            "encoder": _portable_config(self.encoder.get_config()),
            "identity": self.encoder.identity,
            **extra,
        }
        text = json.dumps(info, indent=2, default=_json_default)
        return save(self.estimator, path, extra_files={ENCODER_FILE: text})

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | bool | None = None,
        show_progress: bool | None = None,
    ) -> TextRewardModel:
        """Load a directory written by :meth:`save` (or ``signrm fit``), checking everything."""
        import signrm

        path = Path(path)
        enc_path = path / ENCODER_FILE
        if not enc_path.is_file():
            raise UserError(
                f"{path}: no {ENCODER_FILE}; this model was not fitted on texts "
                "(use `signrm fit PREFS --encoder ...`)"
            )
        estimator = signrm.load(path)  # verifies the checksums, encoder.json's included
        try:
            info = json.loads(enc_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{enc_path}: corrupt encoder file ({exc})") from None
        if not isinstance(info, dict) or "encoder" not in info:
            raise UserError(f"{enc_path}: corrupt encoder file (no 'encoder' object)")
        enc_cls, config = _check_config(info["encoder"], path, enc_path)
        try:
            encoder = enc_cls(cache_dir=cache_dir, show_progress=show_progress, **config)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{enc_path}: invalid encoder settings ({exc})") from None
        _check_identity(info.get("identity"), encoder.identity, enc_path)
        return cls(estimator, encoder)
