"""Text features for reward models: encoders with an on-disk cache.

>>> from signrm.embed import SentenceEncoder
>>> X = SentenceEncoder().encode(["Paris.", "I don't know."], prompts=["Capital of France?"] * 2)
>>> X.shape
(2, 384)
"""

from __future__ import annotations

import os
from typing import Any

from signrm.embed.base import EmbeddingCache, Encoder, default_cache_dir, text_key
from signrm.embed.causal_lm import CausalLMEncoder
from signrm.embed.sentence import SentenceEncoder
from signrm.errors import UserError, option_hint

__all__ = [
    "Encoder",
    "SentenceEncoder",
    "CausalLMEncoder",
    "EmbeddingCache",
    "default_cache_dir",
    "text_key",
    "make_encoder",
    "encoder_from_config",
]

_KINDS = {"sentence": SentenceEncoder, "causal_lm": CausalLMEncoder}


def make_encoder(
    name: str = "minilm",
    *,
    kind: str = "auto",
    layer: int = -1,
    **kwargs: Any,
) -> Encoder:
    """Build an encoder from a name as the CLI accepts it.

    ``name``: ``"minilm"`` (packaged sentence model), ``"smollm2"`` (packaged causal LM), a local
    folder or ``.gguf`` file, or a hub name. ``kind``: ``"sentence"``, ``"causal_lm"`` or
    ``"auto"``: a folder with ``modules.json`` is a sentence-transformers model, a ``.gguf`` or
    a folder with a ``config.json`` is a causal LM, a hub name defaults to a sentence model.
    ``layer`` (other than -1) is for causal LMs only: it raises for a sentence encoder.
    """
    from pathlib import Path

    if kind == "auto":
        low = name.lower()
        path = Path(name).expanduser()
        if low in {"minilm", "all-minilm-l6-v2"} or low.startswith("sentence-transformers/"):
            kind = "sentence"
        elif low.startswith("smollm2") or path.suffix == ".gguf":
            kind = "causal_lm"
        elif path.is_dir():
            if (path / "modules.json").exists():
                kind = "sentence"
            elif (path / "config.json").exists() or any(path.glob("*.gguf")):
                kind = "causal_lm"
            else:
                raise ValueError(
                    f"{name}: neither a sentence-transformers folder (modules.json) nor a "
                    "transformers/GGUF model (config.json or *.gguf)"
                )
        else:
            kind = "sentence"
    if kind == "sentence":
        if layer != -1:
            raise UserError(
                f"{option_hint('layer', layer)} applies to causal LM encoders; {name!r} is a "
                "sentence encoder (it has no layer choice)"
            )
        return SentenceEncoder(name, **kwargs)
    if kind in ("causal_lm", "causal"):
        return CausalLMEncoder(name, layer=layer, **kwargs)
    raise ValueError(f"encoder kind must be 'sentence', 'causal_lm' or 'auto', got {kind!r}")


def encoder_from_config(
    config: dict[str, Any], *, cache_dir: str | os.PathLike | bool | None = None, **kwargs: Any
) -> Encoder:
    """Rebuild an encoder from :meth:`Encoder.get_config` (as stored in ``encoder.json``)."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown encoder kind {kind!r} (expected one of {sorted(_KINDS)})")
    config.pop("identity", None)
    config.update(kwargs)
    return _KINDS[kind](cache_dir=cache_dir, **config)
