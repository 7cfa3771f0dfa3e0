"""Duplicate comparisons in text preferences: the same prompt, the same two responses (in either
order) and the same annotator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Duplicates", "find_duplicates"]


@dataclass(frozen=True)
class Duplicates:
    """``rows``: indices of the repeats (each row after its first occurrence); ``conflicts``: how
    many of them disagree with the first occurrence's label (after aligning the order)."""

    rows: list[int]
    conflicts: int

    def __bool__(self) -> bool:
        return bool(self.rows)


def find_duplicates(
    prompts: Sequence[str],
    text_a: Sequence[str],
    text_b: Sequence[str],
    y: Sequence[float],
    annotators: Sequence[str] | None = None,
) -> Duplicates:
    """Repeated comparisons among ``n`` rows (``y`` = 1 when ``text_a`` is preferred)."""
    first: dict[tuple, int] = {}
    rows: list[int] = []
    conflicts = 0
    for i in range(len(prompts)):
        a, b = text_a[i], text_b[i]
        key = (
            prompts[i],
            (a, b) if a <= b else (b, a),
            None if annotators is None else annotators[i],
        )
        j = first.setdefault(key, i)
        if j == i:
            continue
        rows.append(i)
        aligned = y[i] if a == text_a[j] else 1.0 - y[i]
        conflicts += aligned != y[j]
    return Duplicates(rows, int(conflicts))
