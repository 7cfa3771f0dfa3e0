"""Fine-tune the top layers of a decoder reward model on cached lower-layer activations.

With the lower layers of an ``AutoModelForSequenceClassification`` (Llama-style decoder) frozen,
their output never changes: :func:`lower_activations` runs them once over the texts, and
:func:`cached_top_model` returns a small ``nn.Module`` that maps a row of that cache to a reward
through copies of the top decoder layers, the final norm and the score head. Its inputs are row
indices as one-token sequences (``chosen_ids=[row]``), so TRL's collator and
:class:`signrm.integrations.trl.SignRewardTrainer` train it unchanged; :func:`put_back` copies the
trained parts into the full model, which then gives the same rewards on the texts. On a CPU this
is far cheaper than LoRA, which runs the whole network forward (and backward through every
adapted layer) at every step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["lower_activations", "cached_top_model", "put_back", "score_rows", "score_texts"]


@torch.no_grad()
def lower_activations(
    seq_model, tokenizer, texts: list[str], n_lower: int, batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states entering decoder layer ``n_lower`` (the output of layer ``n_lower - 1``;
    ``n_lower = num_hidden_layers`` gives the last layer's output before the final norm),
    (n, T, hidden) float32, and the attention mask (n, T) long, right padded to the longest text
    (texts run in batches of similar length, so short texts are not padded to the longest).
    """
    layers = seq_model.model.layers
    if not 0 < n_lower <= len(layers):
        raise ValueError(f"n_lower={n_lower} must be in 1..{len(layers)}")
    ids = tokenizer(list(texts))["input_ids"]
    lengths = np.array([len(x) for x in ids])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    mask = torch.zeros((len(ids), int(lengths.max(initial=1))), dtype=torch.long)
    hidden: torch.Tensor | None = None
    captured: list[torch.Tensor] = []

    def keep(module, inputs, output):
        captured.append((output[0] if isinstance(output, tuple) else output).float())
        raise _StopForward

    handle = layers[n_lower - 1].register_forward_hook(keep)
    base = seq_model.model.eval()
    order = np.argsort(lengths, kind="stable")  # batches of similar length: little padding
    try:
        for s in range(0, len(ids), batch_size):
            rows = order[s : s + batch_size]
            width = int(lengths[rows].max())
            batch = torch.full((len(rows), width), pad, dtype=torch.long)
            for j, r in enumerate(rows):
                batch[j, : lengths[r]] = torch.tensor(ids[r])
                mask[r, : lengths[r]] = 1
            try:
                base(input_ids=batch, attention_mask=mask[rows, :width], use_cache=False)
            except _StopForward:
                pass
            h = captured.pop()
            if hidden is None:
                hidden = torch.zeros((len(ids), mask.shape[1], h.shape[-1]), dtype=torch.float32)
            hidden[torch.as_tensor(rows), :width] = h
    finally:
        handle.remove()
    return hidden, mask


class _StopForward(Exception):
    """Raised by the capture hook: the layers above ``n_lower`` need not run."""


class _TopLayers(nn.Module):
    """Copies of the top decoder layers, final norm and score head of a sequence classifier,
    run on cached hidden states; ``input_ids`` (batch, 1) are rows of the cache."""

    def __init__(self, seq_model, hidden: torch.Tensor, mask: torch.Tensor, n_lower: int):
        super().__init__()
        self.config = copy.deepcopy(seq_model.config)
        self.layers = copy.deepcopy(seq_model.model.layers[n_lower:])
        self.norm = copy.deepcopy(seq_model.model.norm)
        self.score = copy.deepcopy(seq_model.score)
        self.rotary_emb = copy.deepcopy(seq_model.model.rotary_emb)
        self.register_buffer("hidden", hidden, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        for p in self.parameters():
            p.requires_grad_(True)

    def add_model_tags(self, tags) -> None:  # TRL tags its models; nothing to tag here
        return None

    def forward(self, input_ids=None, attention_mask=None, **kw):
        from transformers.masking_utils import create_causal_mask
        from transformers.modeling_outputs import SequenceClassifierOutputWithPast

        rows = input_ids[:, 0]
        m = self.mask[rows]
        last = m.sum(1) - 1  # the last real token, as LlamaForSequenceClassification pools
        if len(self.layers):
            width = int(m.sum(1).max())
            h, m = self.hidden[rows][:, :width], m[:, :width]
            pos = torch.arange(width, device=h.device)[None].expand(h.shape[0], -1)
            causal = create_causal_mask(
                config=self.config, inputs_embeds=h, attention_mask=m, cache=None,
                position_ids=pos,
            )  # fmt: skip
            pe = self.rotary_emb(h, position_ids=pos)
            for layer in self.layers:
                h = layer(h, attention_mask=causal, position_embeddings=pe, position_ids=pos)
            pooled = h[torch.arange(len(h)), last]
        else:  # no layer on top: only the last token's cached state is needed
            pooled = self.hidden[rows, last]
        # the final norm acts on each token alone, so pooling before it changes nothing
        return SequenceClassifierOutputWithPast(logits=self.score(self.norm(pooled)))


def cached_top_model(seq_model, hidden: torch.Tensor, mask: torch.Tensor, n_lower: int):
    """The reward model ``row -> reward`` on the cache (see the module docstring)."""
    if hidden.shape[:2] != mask.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and mask {tuple(mask.shape)} differ")
    return _TopLayers(seq_model, hidden, mask, n_lower)


def put_back(seq_model, top, n_lower: int) -> None:
    """Copy the trained top layers, norm and score head of ``top`` into ``seq_model``."""
    for i, layer in enumerate(top.layers):
        seq_model.model.layers[n_lower + i].load_state_dict(layer.state_dict())
    seq_model.model.norm.load_state_dict(top.norm.state_dict())
    seq_model.score.load_state_dict(top.score.state_dict())


@torch.no_grad()
def score_rows(top, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Rewards (m,) float64 of cache ``rows`` (m,)."""
    top.eval()
    out = [
        top(input_ids=torch.as_tensor(rows[s : s + batch_size], dtype=torch.long)[:, None])
        .logits.squeeze(-1)
        .double()
        .cpu()
        .numpy()
        for s in range(0, len(rows), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def score_texts(seq_model, tokenizer, texts: list[str], batch_size: int = 16) -> np.ndarray:
    """Rewards (m,) float64 of ``texts`` under a sequence classifier (right padding)."""
    tokenizer.padding_side = "right"
    seq_model.eval()
    device = next(seq_model.parameters()).device
    out = []
    for s in range(0, len(texts), batch_size):
        enc = tokenizer(texts[s : s + batch_size], padding=True, return_tensors="pt").to(device)
        out.append(seq_model(**enc).logits.squeeze(-1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
