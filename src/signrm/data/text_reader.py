"""Text preference files: JSONL, CSV or Parquet -> :class:`TextPreferences` -> ``PreferenceData``.

Two conventions are read (detected from the columns, :mod:`signrm.data.text_schema`):

- **TRL**: ``prompt`` (optional), ``chosen``, ``rejected`` — plain text, or chat messages
  (lists of ``{"role", "content"}``; without a ``prompt`` column the shared leading messages are
  the prompt, TRL's "implicit prompt"). The chosen response becomes alternative a (label 1).
- **pair**: ``prompt``, ``response_a``, ``response_b``, ``label`` with label in
  ``{a, b, tie}`` or ``{1, 0, 0.5}`` (1 / ``a`` = response_a preferred).

Optional columns in both: ``annotator_id`` (-> ``user``), ``margin`` (TRL's margin, finite) and
``weight`` (>= 0). Other columns are ignored, listed in :attr:`TextPreferences.report` and
reported by an :class:`~signrm.data.validation.IgnoredColumnsWarning` (which suggests the known
name for a misspelled one: ``weights`` -> ``weight``). In CSV files, chat messages are JSON strings
in the cell. Text files are UTF-8 (a byte-order mark is skipped), optionally ``.gz``/``.bz2``/``.xz``.

The columns of a file are those of *all* its records (JSON lines may differ from line to line): a
column that any record has (``prompt`` or an optional one) must be in every record, with a value.
There is no default: a record without it raises, naming its line and the column (and where the
column first appears), as does an empty value (``null``, an empty CSV cell). Every value is
validated on every row.

Nothing is dropped silently: a malformed line raises :class:`~signrm.errors.UserError` naming the
file, line (JSONL/CSV, 1-based physical line) or row (Parquet, 1-based) and column; empty texts and
pairs of two identical responses raise unless ``on_invalid="drop"`` (then they are dropped and
reported); duplicate comparisons (same prompt, same two responses in either order, same annotator)
are reported and kept by default (``on_duplicate="warn"``), or raise / are dropped on request.

``read_text(path)`` returns the texts (:class:`TextPreferences`); ``read_text(path, encoder)``
embeds them and returns :class:`signrm.data.PreferenceData` directly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.data.io import resolve_format
from signrm.data.text_duplicates import find_duplicates
from signrm.data.text_preferences import TextPreferences
from signrm.data.text_records import (
    annotator_value,
    is_missing,
    iter_records,
    label_value,
    number_value,
    text_value,
    trl_texts,
)
from signrm.data.text_schema import TRL, TextSchema, infer_schema
from signrm.data.validation import warn_ignored_columns
from signrm.errors import UserError, option_hint

__all__ = ["read_text", "read_texts_table"]


def _first_locations(locs: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(locs[:k])
    return shown + (f" and {len(locs) - k} more" if len(locs) > k else "")


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a preference file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _parse(schema: TextSchema, where: str, rec: dict[str, Any]) -> tuple[str, str, str, float]:
    """(prompt, text_a, text_b, y) of one record."""
    if schema.convention == TRL:
        return (*trl_texts(rec, where, schema.has_prompt), 1.0)
    return (
        text_value(rec["prompt"], where, "prompt"),
        text_value(rec["response_a"], where, "response_a"),
        text_value(rec["response_b"], where, "response_b"),
        label_value(rec["label"], where),
    )


def _problem(schema: TextSchema, prompt: str, a: str, b: str) -> str | None:
    """Why a comparison is invalid (an empty text, two identical responses), or None."""
    col_a, col_b = schema.answer_columns
    if schema.has_prompt and not prompt.strip():
        return "empty 'prompt'"
    if not a.strip():
        return f"empty {col_a!r}"
    if not b.strip():
        return f"empty {col_b!r}"
    if a == b:
        return f"{col_a!r} and {col_b!r} are identical"
    return None


def read_text(
    path: str | os.PathLike,
    encoder=None,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    on_invalid: str = "error",
    on_duplicate: str = "warn",
    show_progress: bool | None = None,
):
    """Read a text preference file (TRL or pair convention; see the module docstring).

    Parameters
    ----------
    path : ``.jsonl`` / ``.json`` (JSON lines), ``.csv`` or ``.parquet`` (``.gz``, ``.bz2`` or
        ``.xz`` for the text formats).
    encoder : an :class:`signrm.embed.Encoder`; when given, the texts are embedded and a
        ``PreferenceData`` is returned, else the :class:`TextPreferences`.
    format : override the format guessed from the suffix.
    columns : rename file columns to the canonical names, e.g. ``{"question": "prompt"}``.
    on_invalid : ``"error"`` (default) or ``"drop"`` rows with an empty prompt or response or two
        identical responses (dropped rows are reported).
    on_duplicate : ``"warn"`` (default: keep and report), ``"error"`` or ``"drop"`` (keep the first)
        for comparisons repeated with the same prompt, responses and annotator.
    """
    if on_invalid not in ("error", "drop"):
        raise UserError(f"on_invalid must be 'error' or 'drop', got {on_invalid!r}")
    if on_duplicate not in ("warn", "error", "drop"):
        raise UserError(f"on_duplicate must be 'warn', 'error' or 'drop', got {on_duplicate!r}")
    path = _existing_file(path)
    fmt = resolve_format(path, format)
    rename = dict(columns or {})
    # The schema is the union of the columns of all records, so that a column first seen after
    # line 1 is neither ignored nor silently defaulted: every record must then have it.
    records = [
        (where, {rename.get(k, k): v for k, v in raw.items()} if rename else raw)
        for where, raw in iter_records(path, fmt)
    ]
    if not records:
        raise UserError(f"{path}: no records")
    schema = infer_schema(records)
    report: list[str] = []
    note = warn_ignored_columns(schema.ignored, schema.known, str(path))
    if note:
        report.append(note)

    rows: list[tuple[str, str, str, float, str]] = []  # prompt, a, b, y, location
    opt: dict[str, list] = {c: [] for c in schema.optional}
    invalid: list[tuple[str, str]] = []
    for where, rec in records:
        schema.check_columns(where, rec)
        prompt, a, b, y = _parse(schema, where, rec)
        values = {
            c: annotator_value(rec[c], where)
            if c == "annotator_id"
            else number_value(rec[c], where, c, nonnegative=c == "weight")
            for c in schema.optional
        }
        problem = _problem(schema, prompt, a, b)
        if problem is not None:
            if on_invalid == "error":
                raise UserError(
                    f"{where}: {problem} (pass {option_hint('on_invalid', 'drop')} to drop such "
                    "rows)"
                )
            invalid.append((where, problem))
            continue
        rows.append((prompt, a, b, y, where))
        for c, v in values.items():
            opt[c].append(v)

    if invalid:
        report.append(
            f"dropped {len(invalid)} invalid row(s): "
            + _first_locations([f"{w} ({p})" for w, p in invalid])
        )
    if not rows:
        raise UserError(f"{path}: no valid comparisons left")
    prompts, text_a, text_b, ys, locs = (list(col) for col in zip(*rows))

    dups = find_duplicates(prompts, text_a, text_b, ys, opt.get("annotator_id"))
    keep = np.ones(len(rows), dtype=bool)
    if dups:
        who = "" if "annotator_id" not in opt else " by the same annotator"
        msg = (
            f"{len(dups.rows)} duplicate comparison(s){who} ({dups.conflicts} with a conflicting "
            "label): " + _first_locations([locs[i] for i in dups.rows])
        )
        if on_duplicate == "error":
            raise UserError(f"{path}: {msg} (pass {option_hint('on_duplicate', 'warn', 'drop')})")
        report.append(("dropped " if on_duplicate == "drop" else "kept ") + msg)
        if on_duplicate == "drop":
            keep[dups.rows] = False

    def arr(c: str, dtype):
        return np.asarray(opt[c], dtype=dtype)[keep] if c in opt else None

    idx = np.flatnonzero(keep)
    data = TextPreferences(
        prompts=[prompts[i] for i in idx],
        text_a=[text_a[i] for i in idx],
        text_b=[text_b[i] for i in idx],
        y=np.asarray(ys, dtype=np.float64)[keep],
        annotator=arr("annotator_id", object),
        margin=arr("margin", np.float64),
        weight=arr("weight", np.float64),
        locations=[locs[i] for i in idx],
        report=report,
        convention=schema.convention,
        source=str(path),
    )
    if data.weight is not None and data.weight.sum() <= 0:
        raise UserError(f"{path}: all weights are zero")
    for line in report:
        if line != note:  # the ignored columns were warned about above
            warnings.warn(f"{path}: {line}", UserWarning, stacklevel=2)
    if encoder is None:
        return data
    return data.to_preference_data(encoder, show_progress=show_progress)


def read_texts_table(
    path: str | os.PathLike, *, format: str | None = None, require: Sequence[str] = ("response",)
) -> list[dict[str, Any]]:
    """Rows of a JSONL/CSV/Parquet file of texts to score (``prompt``, ``response``, ...).

    Every required column must be present in every row; chat messages are rendered with
    :func:`~signrm.data.text_records.render_messages`. Each row gets ``_where`` (its
    ``file:line``).
    """
    path = _existing_file(path)
    fmt = resolve_format(path, format)
    rows = []
    for where, rec in iter_records(path, fmt):
        for col in require:
            if col not in rec:
                raise UserError(f"{where}: missing column {col!r}")
        out = dict(rec)
        for col in ("prompt", "response"):
            if col in rec and not is_missing(rec[col]):
                out[col] = text_value(rec[col], where, col)
        out["_where"] = where
        rows.append(out)
    if not rows:
        raise UserError(f"{path}: no records")
    return rows
