"""Records of text preference files and the values in them.

:func:`iter_records` yields each record of a JSONL, CSV or Parquet file with its location
(``file:line`` — the 1-based physical line — or ``file: row i``); the ``*_value`` functions parse one
cell (texts, chat messages, labels, numbers, annotator ids) and raise
:class:`~signrm.errors.UserError` naming the location and the column.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.data.io import iter_jsonl, open_text, read_errors
from signrm.data.validation import VALID_LABELS
from signrm.errors import UserError

__all__ = [
    "iter_records",
    "is_missing",
    "messages_value",
    "render_messages",
    "text_value",
    "label_value",
    "number_value",
    "annotator_value",
    "trl_texts",
]

#: Label spellings of the pair convention (1 / ``a`` = response_a preferred).
LABEL_WORDS = {"a": 1.0, "b": 0.0, "tie": 0.5, **{repr(v): v for v in VALID_LABELS}}
LABEL_WORDS.update({str(int(v)): v for v in VALID_LABELS if v.is_integer()})


# ---------------------------------------------------------------------------------- records
def _next_row(reader, where: str, what: str = "CSV") -> list[str] | None:
    """The next row of a ``csv.reader`` (None at the end); a malformed row raises naming
    ``where`` (``file:line``)."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise UserError(f"{where}: malformed {what} ({exc})") from None


def _iter_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with read_errors(path), open_text(path) as fh:
        reader = csv.reader(fh)
        header = _next_row(reader, f"{path}:1", "CSV header")
        if header is None:
            return
        header = [h.strip() for h in header]
        dup = {h for h in header if header.count(h) > 1}
        if dup:
            raise UserError(f"{path}:1: duplicate column(s) {sorted(dup)}")
        start = reader.line_num + 1
        while (row := _next_row(reader, f"{path}:{start}")) is not None:
            if row and any(cell.strip() for cell in row):
                if len(row) != len(header):
                    raise UserError(
                        f"{path}:{start}: {len(row)} fields, the header has {len(header)}"
                    )
                yield f"{path}:{start}", {h: (None if v == "" else v) for h, v in zip(header, row)}
            start = reader.line_num + 1


def iter_records(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, record) pairs of a ``jsonl``, ``csv`` or ``parquet`` file; location is
    ``file:line`` or ``file: row i``. An empty CSV cell is None."""
    if fmt == "jsonl":
        for lineno, rec in iter_jsonl(path, error=UserError):
            yield f"{path}:{lineno}", dict(rec)
    elif fmt == "csv":
        yield from _iter_csv(path)
    else:
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover
            raise ImportError("reading Parquet needs pyarrow") from exc
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise UserError(f"{path}: cannot read Parquet ({exc})") from None
        for i, rec in enumerate(table.to_pylist(), start=1):
            yield f"{path}: row {i}", rec


# ---------------------------------------------------------------------------------- values
def is_missing(v: Any) -> bool:
    """True for None and NaN (an empty cell)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def messages_value(v: Any, where: str, col: str) -> list[dict[str, str]] | None:
    """A list of chat messages, or None when ``v`` is plain text."""
    if isinstance(v, str):
        s = v.lstrip()
        if not s.startswith("[{"):
            return None
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            return None  # text that merely looks like JSON
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, list):
        raise UserError(
            f"{where}: column {col!r} must be text or a list of chat messages, got "
            f"{type(v).__name__}"
        )
    out = []
    for m in v:
        if not isinstance(m, Mapping) or "content" not in m or "role" not in m:
            raise UserError(
                f"{where}: column {col!r}: every chat message needs 'role' and 'content'"
            )
        content = m["content"]
        if not isinstance(content, str):
            raise UserError(f"{where}: column {col!r}: message content must be text")
        out.append({"role": str(m["role"]), "content": content})
    return out


def render_messages(messages: Sequence[Mapping[str, str]]) -> str:
    """Chat messages as one text: a single message is its content; several are
    ``role: content`` lines."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def text_value(v: Any, where: str, col: str) -> str:
    """A text cell (chat messages are rendered with :func:`render_messages`)."""
    if is_missing(v):
        raise UserError(f"{where}: missing value in column {col!r}")
    msgs = messages_value(v, where, col)
    if msgs is not None:
        return render_messages(msgs)
    if not isinstance(v, str):
        raise UserError(f"{where}: column {col!r} must be text, got {type(v).__name__} {v!r}")
    return v


def label_value(v: Any, where: str) -> float:
    """A pair-convention label: ``a``/``b``/``tie`` or 1/0/0.5 -> 1.0/0.0/0.5."""
    if is_missing(v):
        raise UserError(f"{where}: missing value in column 'label'")
    if isinstance(v, bool):
        raise UserError(f"{where}: column 'label': got boolean {v}; use a, b, tie or 1, 0, 0.5")
    if isinstance(v, int | float | np.integer | np.floating):
        if float(v) in VALID_LABELS:
            return float(v)
    elif isinstance(v, str) and v.strip().lower() in LABEL_WORDS:
        return LABEL_WORDS[v.strip().lower()]
    raise UserError(f"{where}: column 'label': {v!r} is not one of a, b, tie, 1, 0, 0.5")


def number_value(v: Any, where: str, col: str, nonnegative: bool) -> float:
    """A finite number (``nonnegative`` for weights); text holding a number is converted."""
    if is_missing(v):
        raise UserError(f"{where}: missing value in column {col!r}")
    try:
        if isinstance(v, bool):
            raise TypeError
        x = float(v)
    except (TypeError, ValueError):
        raise UserError(f"{where}: column {col!r}: {v!r} is not a number") from None
    if not math.isfinite(x):
        raise UserError(f"{where}: column {col!r}: {v!r} is not finite")
    if nonnegative and x < 0:
        raise UserError(f"{where}: column {col!r}: weight {x} is negative")
    return x


def annotator_value(v: Any, where: str) -> str:
    """An annotator id as text (a whole float such as ``3.0`` is ``"3"``)."""
    if is_missing(v) or (isinstance(v, str) and not v.strip()):
        raise UserError(f"{where}: missing value in column 'annotator_id'")
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def trl_texts(rec: dict, where: str, has_prompt: bool) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of a TRL record; without a ``prompt`` column, chats share
    their leading messages as the prompt (TRL's implicit prompt)."""
    chosen, rejected = rec["chosen"], rec["rejected"]
    chosen_m = None if is_missing(chosen) else messages_value(chosen, where, "chosen")
    rejected_m = None if is_missing(rejected) else messages_value(rejected, where, "rejected")
    if has_prompt or chosen_m is None or rejected_m is None:
        prompt = text_value(rec["prompt"], where, "prompt") if has_prompt else ""
        return prompt, text_value(chosen, where, "chosen"), text_value(rejected, where, "rejected")
    if not chosen_m or not rejected_m:
        raise UserError(f"{where}: empty chat in 'chosen' or 'rejected'")
    if chosen_m[:-1] != rejected_m[:-1]:
        raise UserError(
            f"{where}: without a 'prompt' column, 'chosen' and 'rejected' must share all "
            "messages but the last (TRL implicit prompt)"
        )
    prompt = render_messages(chosen_m[:-1]) if len(chosen_m) > 1 else ""
    return prompt, chosen_m[-1]["content"], rejected_m[-1]["content"]
