"""Schema inference for text preference files: the convention and the columns every record needs.

Two conventions (detected from the first record's columns):

- **TRL**: ``prompt`` (optional), ``chosen``, ``rejected`` — the chosen response is alternative a.
- **pair**: ``prompt``, ``response_a``, ``response_b``, ``label``.

Optional columns in both: ``annotator_id``, ``margin``, ``weight``. The columns of a file are
those of *all* its records: a column that any record has (``prompt`` or an optional one) must be
in every record; other columns are ignored and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from signrm.errors import UserError

__all__ = ["TRL", "PAIR", "OPTIONAL", "TextSchema", "infer_schema"]

TRL = "trl"
PAIR = "pair"
#: Optional columns of both conventions.
OPTIONAL = ("annotator_id", "margin", "weight")
_REQUIRED = {TRL: ("chosen", "rejected"), PAIR: ("prompt", "response_a", "response_b", "label")}


@dataclass(frozen=True)
class TextSchema:
    """What a text preference file holds.

    ``convention`` is :data:`TRL` or :data:`PAIR`; ``has_prompt`` whether any record has a
    ``prompt``; ``optional`` the optional columns present; ``first_seen`` maps each column to the
    location of the first record holding it; ``ignored`` lists the columns not used (sorted).
    """

    convention: str
    has_prompt: bool
    optional: tuple[str, ...]
    first_seen: dict[str, str] = field(repr=False)
    ignored: list[str]

    @property
    def required(self) -> tuple[str, ...]:
        return _REQUIRED[self.convention]

    @property
    def known(self) -> tuple[str, ...]:
        """The column names this convention uses (for suggestions when a name is misspelled)."""
        return tuple(dict.fromkeys((*self.required, "prompt", *OPTIONAL)))

    @property
    def answer_columns(self) -> tuple[str, str]:
        """The columns of alternatives a and b."""
        return ("chosen", "rejected") if self.convention == TRL else ("response_a", "response_b")

    @property
    def expected(self) -> set[str]:
        """The columns every record must have."""
        return set(self.required) | ({"prompt"} if self.has_prompt else set()) | set(self.optional)

    def check_columns(self, where: str, rec: dict[str, Any]) -> None:
        """Raise when the record at ``where`` lacks an expected column (naming where an optional
        column first appears)."""
        missing = self.expected - set(rec)
        if missing:
            others = sorted(c for c in missing if c not in self.required)
            seen = "; ".join(f"{c!r} first appears at {self.first_seen[c]}" for c in others)
            raise UserError(
                f"{where}: missing column(s) {sorted(missing)}" + (f" ({seen})" if seen else "")
            )


def infer_schema(records: Sequence[tuple[str, dict[str, Any]]]) -> TextSchema:
    """The :class:`TextSchema` of ``(location, record)`` pairs (at least one)."""
    first_where, first = records[0]
    keys = set(first)
    if {"chosen", "rejected"} <= keys:
        convention = TRL
    elif {"response_a", "response_b", "label"} <= keys:
        convention = PAIR
    else:
        raise UserError(
            f"{first_where}: cannot tell the convention from columns {sorted(keys)}; need "
            "'chosen' and 'rejected' (TRL, with optional 'prompt') or 'prompt', "
            "'response_a', 'response_b', 'label' (pair)"
        )
    first_seen: dict[str, str] = {}
    for where, rec in records:
        for k in rec:
            first_seen.setdefault(k, where)
    known = set(_REQUIRED[convention]) | {"prompt"} | set(OPTIONAL)
    return TextSchema(
        convention=convention,
        has_prompt="prompt" in first_seen,
        optional=tuple(c for c in OPTIONAL if c in first_seen),
        first_seen=first_seen,
        ignored=sorted(set(first_seen) - known),
    )
