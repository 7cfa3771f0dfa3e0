"""``TextPreferences``: pairwise preferences over texts, as read from a file (not embedded)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signrm.data.io import write_jsonl
from signrm.data.preference import PreferenceData
from signrm.data.text_schema import PAIR
from signrm.errors import UserError

__all__ = ["TextPreferences"]


@dataclass
class TextPreferences:
    """Pairwise preferences over texts, as read from a file (nothing embedded yet).

    All per-comparison fields have length n: ``prompts``, ``text_a``, ``text_b`` (lists of str),
    ``y`` (float64 in {0, 0.5, 1}; 1 = ``text_a`` preferred), ``annotator`` (str ids or None),
    ``margin`` and ``weight`` (float64 or None), ``locations`` (``file:line`` of each row).
    ``report`` lists what the reader noticed (duplicates, dropped rows, ignored columns).
    """

    prompts: list[str]
    text_a: list[str]
    text_b: list[str]
    y: np.ndarray
    annotator: np.ndarray | None = None
    margin: np.ndarray | None = None
    weight: np.ndarray | None = None
    locations: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    convention: str = PAIR
    source: str | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        self.y = np.asarray(self.y, dtype=np.float64)
        for name in ("text_a", "text_b", "y", "annotator", "margin", "weight"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise UserError(f"{name} has {len(v)} entries, prompts has {n}")
        if not self.locations:
            self.locations = [f"row {i + 1}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        users = "" if self.annotator is None else f", {len(set(self.annotator))} annotators"
        return (
            f"TextPreferences(n={len(self)}, prompts={len(set(self.prompts))}{users}, "
            f"convention={self.convention!r})"
        )

    def subset(self, idx) -> TextPreferences:
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)

        def take(v):
            if v is None:
                return None
            return [v[i] for i in idx] if isinstance(v, list) else np.asarray(v)[idx]

        return TextPreferences(
            prompts=take(self.prompts),
            text_a=take(self.text_a),
            text_b=take(self.text_b),
            y=take(self.y),
            annotator=take(self.annotator),
            margin=take(self.margin),
            weight=take(self.weight),
            locations=take(self.locations),
            report=list(self.report),
            convention=self.convention,
            source=self.source,
        )

    def prompt_codes(self) -> tuple[np.ndarray, list[str]]:
        """Integer prompt ids ``(n,)`` (by first appearance) and the unique prompts."""
        uniq = list(dict.fromkeys(self.prompts))
        where = {p: i for i, p in enumerate(uniq)}
        return np.array([where[p] for p in self.prompts], dtype=np.int64), uniq

    @property
    def has_prompts(self) -> bool:
        return any(p != "" for p in self.prompts)

    def embed(self, encoder, *, show_progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features of both sides, ``(xa, xb)`` each ``(n, d)`` float32; every distinct
        (prompt, response) is encoded once (and cached by the encoder)."""
        pairs_a = list(zip(self.prompts, self.text_a))
        pairs_b = list(zip(self.prompts, self.text_b))
        items = list(dict.fromkeys(pairs_a + pairs_b))
        where = {it: i for i, it in enumerate(items)}
        prompts = [p for p, _ in items] if self.has_prompts else None
        feats = encoder.encode([t for _, t in items], prompts, show_progress=show_progress)
        ia = [where[it] for it in pairs_a]
        ib = [where[it] for it in pairs_b]
        return feats[ia], feats[ib]

    def to_preference_data(
        self,
        encoder,
        *,
        balance: bool | str = "auto",
        random_state: int | None = 0,
        show_progress: bool | None = None,
    ):
        """Embed the texts and return :class:`signrm.data.PreferenceData`.

        ``user`` = annotator ids, ``prompt`` = integer prompt ids (see :meth:`prompt_codes`).
        ``balance``: TRL files always put the chosen response first (every y = 1); with
        ``balance=True`` (``"auto"``: when all labels are equal) a seeded random half of the
        pairs is presented b-first with the label flipped (and the margin kept, it is
        orientation-free). Margin-based fits are unchanged by this; it lets label summaries and
        any estimator that needs both classes work.
        """
        xa, xb = self.embed(encoder, show_progress=show_progress)
        y = self.y.copy()
        if balance == "auto":
            balance = len(np.unique(y)) == 1
        if balance:
            rng = np.random.default_rng(random_state)
            flip = rng.random(len(y)) < 0.5
            xa, xb = np.where(flip[:, None], xb, xa), np.where(flip[:, None], xa, xb)
            y = np.where(flip, 1.0 - y, y)
        codes, _ = self.prompt_codes()
        return PreferenceData.from_arrays(
            xa,
            xb,
            y,
            user=self.annotator,
            prompt=codes,
            weight=self.weight,
            margin=self.margin,
        )

    def to_records(self) -> list[dict[str, Any]]:
        """Rows in the pair convention (ties kept), with the optional columns that exist."""
        labels = {1.0: "a", 0.0: "b", 0.5: "tie"}
        rows = []
        for i in range(len(self)):
            r: dict[str, Any] = {
                "prompt": self.prompts[i],
                "response_a": self.text_a[i],
                "response_b": self.text_b[i],
                "label": labels[float(self.y[i])],
            }
            if self.annotator is not None:
                r["annotator_id"] = str(self.annotator[i])
            if self.margin is not None:
                r["margin"] = float(self.margin[i])
            if self.weight is not None:
                r["weight"] = float(self.weight[i])
            rows.append(r)
        return rows

    def write(self, path: str | os.PathLike) -> Path:
        """Write JSONL (pair convention), atomically (``.gz``/``.bz2``/``.xz`` compressed)."""
        return write_jsonl(path, self.to_records())

    def to_trl_dataset(self, *, on_tie: str = "error"):
        """A ``datasets.Dataset`` in TRL's explicit-prompt preference format: ``prompt``,
        ``chosen``, ``rejected`` (+ ``annotator_id``, ``margin``, ``weight`` when present).
        Ties have no TRL form: ``on_tie="error"`` (default) or ``"drop"`` (reported)."""
        from datasets import Dataset

        ties = np.flatnonzero(self.y == 0.5)
        if len(ties):
            if on_tie != "drop":
                raise UserError(
                    f"{len(ties)} tie(s) (first at {self.locations[ties[0]]}) have no TRL form; "
                    "pass on_tie='drop'"
                )
            warnings.warn(f"to_trl_dataset: dropped {len(ties)} tie(s)", UserWarning, stacklevel=2)
        keep = np.flatnonzero(self.y != 0.5)
        cols: dict[str, list] = {"prompt": [], "chosen": [], "rejected": []}
        for i in keep:
            a_wins = self.y[i] == 1.0
            cols["prompt"].append(self.prompts[i])
            cols["chosen"].append(self.text_a[i] if a_wins else self.text_b[i])
            cols["rejected"].append(self.text_b[i] if a_wins else self.text_a[i])
        if self.annotator is not None:
            cols["annotator_id"] = [str(self.annotator[i]) for i in keep]
        if self.margin is not None:
            cols["margin"] = [float(self.margin[i]) for i in keep]
        if self.weight is not None:
            cols["weight"] = [float(self.weight[i]) for i in keep]
        return Dataset.from_dict(cols)
