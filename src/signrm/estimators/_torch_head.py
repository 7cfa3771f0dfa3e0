"""Mixin for estimators whose reward is a torch head (MLP, or linear trained by SGD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from signrm.engine.torch_train import (
    TrainConfig,
    predict_rewards,
    seed_everything,
    train_pairwise,
)
from signrm.heads import make_head


class TorchHeadMixin:
    """Stores the head in ``head_module_``; saves it as ``head.safetensors``."""

    head_module_: torch.nn.Module

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            validation_fraction=self.validation_fraction,
            weight_decay=self.weight_decay,
            random_state=self.random_state,
            progress=self.verbose,
        )

    def _new_head(self, n_features: int) -> torch.nn.Module:
        """A freshly initialised head; the initialisation is drawn from ``random_state``."""
        with torch.random.fork_rng(devices=[]):
            seed_everything(self.random_state)
            return make_head(self.head, n_features, tuple(self.hidden_sizes))

    def _fit_pairwise_head(self, data, **loss_options):
        """Check ``data``, build a fresh head and train it on the pairs (the one torch trainer,
        on one process or under ``torch.distributed``); ``loss_options`` go to ``train_pairwise``
        (``loss``, ``lambdas``, ``margin_offset``, ...). Returns ``data`` checked."""
        data = self._check_data(data)
        data.require_alternatives(f"{type(self).__name__}(head={self.head!r})")
        self.n_features_in_ = data.n_features
        self.head_module_ = self._new_head(data.n_features)
        self.history_ = train_pairwise(
            self.head_module_, data.xa, data.xb, data.y, data.weight, self._train_config(),
            **loss_options,
        )  # fmt: skip
        return data

    def _torch_reward(self, X: np.ndarray) -> np.ndarray:
        return predict_rewards(self.head_module_, X)

    def _save_extra(self, directory: Path) -> None:
        if getattr(self, "head_module_", None) is None:
            return
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in self.head_module_.state_dict().items()}
        save_file(state, str(directory / "head.safetensors"))

    def _load_extra(self, directory: Path) -> None:
        path = directory / "head.safetensors"
        if not path.exists():
            return
        from safetensors.torch import load_file

        head = self._new_head(int(self.n_features_in_))
        head.load_state_dict(load_file(str(path)))
        head.eval()
        self.head_module_ = head
