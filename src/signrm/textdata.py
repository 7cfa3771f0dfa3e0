"""Text preference files: JSONL, CSV or Parquet -> :class:`TextPreferences` -> ``PreferenceData``.

Two conventions are read (detected from the columns):

- **TRL**: ``prompt`` (optional), ``chosen``, ``rejected`` — plain text, or chat messages
  (lists of ``{"role", "content"}``; without a ``prompt`` column the shared leading messages are
  the prompt, TRL's "implicit prompt"). The chosen response becomes alternative a (label 1).
- **pair**: ``prompt``, ``response_a``, ``response_b``, ``label`` with label in
  ``{a, b, tie}`` or ``{1, 0, 0.5}`` (1 / ``a`` = response_a preferred).

Optional columns in both: ``annotator_id`` (-> ``user``), ``margin`` (TRL's margin, finite) and
``weight`` (>= 0). Other columns are ignored (listed in :attr:`TextPreferences.report`). In CSV
files, chat messages are JSON strings in the cell.

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
embeds them and returns :class:`signrm.data.PreferenceData` directly. It is also available as
``PreferenceData.read_text``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signrm.data import FORMATS, format_of, iter_jsonl, open_text
from signrm.errors import UserError, option_hint

__all__ = ["TextPreferences", "read_text", "read_texts_table", "render_messages"]

_TRL = "trl"
_PAIR = "pair"
_OPTIONAL = ("annotator_id", "margin", "weight")
_LABELS = {"a": 1.0, "b": 0.0, "tie": 0.5, "1": 1.0, "0": 0.0, "0.5": 0.5, "1.0": 1.0, "0.0": 0.0}


# ---------------------------------------------------------------------------------- reading rows
def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower()
        if fmt not in FORMATS:
            raise UserError(f"{path}: unknown format {format!r}; use jsonl, csv or parquet")
        return fmt
    return format_of(path, error=UserError)


def _iter_records(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, record) pairs; location is ``file:line`` or ``file: row i``."""
    if fmt == "jsonl":
        for lineno, rec in iter_jsonl(path, error=UserError):
            yield f"{path}:{lineno}", dict(rec)
    elif fmt == "csv":
        with open_text(path) as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UserError(f"{path}:1: malformed CSV header ({exc})") from None
            header = [h.strip() for h in header]
            dup = {h for h in header if header.count(h) > 1}
            if dup:
                raise UserError(f"{path}:1: duplicate column(s) {sorted(dup)}")
            start = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise UserError(f"{path}:{start}: malformed CSV ({exc})") from None
                if row and any(cell.strip() for cell in row):
                    if len(row) != len(header):
                        raise UserError(
                            f"{path}:{start}: {len(row)} fields, the header has {len(header)}"
                        )
                    rec = {h: (None if v == "" else v) for h, v in zip(header, row)}
                    yield f"{path}:{start}", rec
                start = reader.line_num + 1
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


# ---------------------------------------------------------------------------------- parsing values
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _messages(v: Any, where: str, col: str) -> list[dict[str, str]] | None:
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


def _text(v: Any, where: str, col: str) -> str:
    if _is_missing(v):
        raise UserError(f"{where}: missing value in column {col!r}")
    msgs = _messages(v, where, col)
    if msgs is not None:
        return render_messages(msgs)
    if not isinstance(v, str):
        raise UserError(f"{where}: column {col!r} must be text, got {type(v).__name__} {v!r}")
    return v


def _label(v: Any, where: str) -> float:
    if _is_missing(v):
        raise UserError(f"{where}: missing value in column 'label'")
    if isinstance(v, bool):
        raise UserError(f"{where}: column 'label': got boolean {v}; use a, b, tie or 1, 0, 0.5")
    if isinstance(v, int | float | np.integer | np.floating):
        if float(v) in (0.0, 0.5, 1.0):
            return float(v)
    elif isinstance(v, str) and v.strip().lower() in _LABELS:
        return _LABELS[v.strip().lower()]
    raise UserError(f"{where}: column 'label': {v!r} is not one of a, b, tie, 1, 0, 0.5")


def _number(v: Any, where: str, col: str, nonnegative: bool) -> float:
    if _is_missing(v):
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


def _trl_texts(rec: dict, where: str, has_prompt: bool) -> tuple[str, str, str]:
    chosen_m = _messages(rec["chosen"], where, "chosen") if not _is_missing(rec["chosen"]) else None
    rejected_m = (
        _messages(rec["rejected"], where, "rejected") if not _is_missing(rec["rejected"]) else None
    )
    if has_prompt or chosen_m is None or rejected_m is None:
        prompt = _text(rec["prompt"], where, "prompt") if has_prompt else ""
        return (
            prompt,
            _text(rec["chosen"], where, "chosen"),
            _text(rec["rejected"], where, "rejected"),
        )
    # implicit prompt: the shared leading messages
    if not chosen_m or not rejected_m:
        raise UserError(f"{where}: empty chat in 'chosen' or 'rejected'")
    if chosen_m[:-1] != rejected_m[:-1]:
        raise UserError(
            f"{where}: without a 'prompt' column, 'chosen' and 'rejected' must share all "
            "messages but the last (TRL implicit prompt)"
        )
    prompt = render_messages(chosen_m[:-1]) if len(chosen_m) > 1 else ""
    return prompt, chosen_m[-1]["content"], rejected_m[-1]["content"]


# ---------------------------------------------------------------------------------- container
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
    convention: str = _PAIR
    source: str | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        self.y = np.asarray(self.y, dtype=np.float64)
        for name in ("text_a", "text_b", "y", "annotator", "margin", "weight"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"{name} has {len(v)} entries, prompts has {n}")
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
        from signrm.data import PreferenceData

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
        """Write JSONL (pair convention), atomically."""
        from signrm.data import atomic_write

        path = Path(path)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.to_records())
        if path.suffix.lower() == ".gz":
            return atomic_write(path, lambda p: Path(p).write_bytes(gzip.compress(text.encode())))
        return atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))

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


# ---------------------------------------------------------------------------------- reader
def _first_locations(locs: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(locs[:k])
    return shown + (f" and {len(locs) - k} more" if len(locs) > k else "")


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
    path : ``.jsonl`` / ``.json`` (JSON lines), ``.csv`` or ``.parquet`` (``.gz`` for the text
        formats).
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
        raise ValueError(f"on_invalid must be 'error' or 'drop', got {on_invalid!r}")
    if on_duplicate not in ("warn", "error", "drop"):
        raise ValueError(f"on_duplicate must be 'warn', 'error' or 'drop', got {on_duplicate!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = _format_of(path, format)
    rename = dict(columns or {})
    prompts, text_a, text_b, ys, locs = [], [], [], [], []
    opt: dict[str, list] = {c: [] for c in _OPTIONAL}
    invalid: list[tuple[str, str]] = []
    report: list[str] = []

    # The schema is the union of the columns of all records, so that a column first seen after
    # line 1 is neither ignored nor silently defaulted: every record must then have it.
    records = [
        (where, {rename.get(k, k): v for k, v in raw.items()} if rename else raw)
        for where, raw in _iter_records(path, fmt)
    ]
    if not records:
        raise UserError(f"{path}: no records")
    first_where, first = records[0]
    keys = set(first)
    if {"chosen", "rejected"} <= keys:
        convention, required = _TRL, ("chosen", "rejected")
    elif {"response_a", "response_b", "label"} <= keys:
        convention, required = _PAIR, ("prompt", "response_a", "response_b", "label")
    else:
        raise UserError(
            f"{first_where}: cannot tell the convention from columns {sorted(keys)}; need "
            "'chosen' and 'rejected' (TRL, with optional 'prompt') or 'prompt', "
            "'response_a', 'response_b', 'label' (pair)"
        )
    all_keys: dict[str, str] = {}  # column -> first record that has it
    for where, rec in records:
        for k in rec:
            all_keys.setdefault(k, where)
    has_prompt = "prompt" in all_keys
    present_optional = tuple(c for c in _OPTIONAL if c in all_keys)
    known = set(required) | {"prompt"} | set(_OPTIONAL)
    extra = sorted(set(all_keys) - known)
    if extra:
        report.append(f"ignored column(s) {extra}")
    expected = set(required) | ({"prompt"} if has_prompt else set()) | set(present_optional)

    for where, rec in records:
        missing = expected - set(rec)
        if missing:
            others = sorted(c for c in missing if c not in required)
            seen = "; ".join(f"{c!r} first appears at {all_keys[c]}" for c in others)
            raise UserError(
                f"{where}: missing column(s) {sorted(missing)}" + (f" ({seen})" if seen else "")
            )

        if convention == _TRL:
            prompt, a, b = _trl_texts(rec, where, has_prompt)
            y = 1.0
        else:
            prompt = _text(rec["prompt"], where, "prompt")
            a = _text(rec["response_a"], where, "response_a")
            b = _text(rec["response_b"], where, "response_b")
            y = _label(rec["label"], where)
        for c in present_optional:
            if c == "annotator_id":
                v = rec[c]
                if _is_missing(v) or (isinstance(v, str) and not v.strip()):
                    raise UserError(f"{where}: missing value in column 'annotator_id'")
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
                opt[c].append(str(v))
            else:
                opt[c].append(_number(rec[c], where, c, nonnegative=c == "weight"))

        cols_a, cols_b = (
            ("chosen", "rejected") if convention == _TRL else ("response_a", "response_b")
        )
        problem = None
        if has_prompt and not prompt.strip():
            problem = "empty 'prompt'"
        elif not a.strip():
            problem = f"empty {cols_a!r}"
        elif not b.strip():
            problem = f"empty {cols_b!r}"
        elif a == b:
            problem = f"{cols_a!r} and {cols_b!r} are identical"
        if problem is not None:
            if on_invalid == "error":
                raise UserError(
                    f"{where}: {problem} (pass {option_hint('on_invalid', 'drop')} to drop such "
                    "rows)"
                )
            invalid.append((where, problem))
            for c in present_optional:
                opt[c].pop()
            continue
        prompts.append(prompt)
        text_a.append(a)
        text_b.append(b)
        ys.append(y)
        locs.append(where)

    if invalid:
        msg = f"dropped {len(invalid)} invalid row(s): " + _first_locations(
            [f"{w} ({p})" for w, p in invalid]
        )
        report.append(msg)
    if not prompts:
        raise UserError(f"{path}: no valid comparisons left")

    # duplicates: same prompt, same unordered pair of responses, same annotator
    ann = opt["annotator_id"] if "annotator_id" in present_optional else None
    seen: dict[tuple, int] = {}
    dups: list[int] = []
    conflicts = 0
    for i in range(len(prompts)):
        pair = (text_a[i], text_b[i]) if text_a[i] <= text_b[i] else (text_b[i], text_a[i])
        key = (prompts[i], pair, None if ann is None else ann[i])
        if key in seen:
            dups.append(i)
            j = seen[key]
            same_order = text_a[i] == text_a[j]
            if (ys[i] if same_order else 1.0 - ys[i]) != ys[j]:
                conflicts += 1
        else:
            seen[key] = i
    if dups:
        who = "" if ann is None else " by the same annotator"
        msg = (
            f"{len(dups)} duplicate comparison(s){who} ({conflicts} with a conflicting label): "
            + _first_locations([locs[i] for i in dups])
        )
        if on_duplicate == "error":
            raise UserError(f"{path}: {msg} (pass {option_hint('on_duplicate', 'warn', 'drop')})")
        if on_duplicate == "drop":
            msg = "dropped " + msg
        else:
            msg = "kept " + msg
        report.append(msg)
    keep = np.ones(len(prompts), dtype=bool)
    if dups and on_duplicate == "drop":
        keep[dups] = False

    def arr(c: str, dtype):
        return np.asarray(opt[c], dtype=dtype)[keep] if c in present_optional else None

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
        convention=convention,
        source=str(path),
    )
    if data.weight is not None and data.weight.sum() <= 0:
        raise UserError(f"{path}: all weights are zero")
    for line in report:
        if not line.startswith("ignored"):
            warnings.warn(f"{path}: {line}", UserWarning, stacklevel=2)
    if encoder is None:
        return data
    return data.to_preference_data(encoder, show_progress=show_progress)


def read_texts_table(
    path: str | os.PathLike, *, format: str | None = None, require: Sequence[str] = ("response",)
) -> list[dict[str, Any]]:
    """Rows of a JSONL/CSV/Parquet file of texts to score (``prompt``, ``response``, ...).

    Every required column must be present in every row; chat messages are rendered with
    :func:`render_messages`. Each row gets ``_where`` (its ``file:line``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = _format_of(path, format)
    rows = []
    for where, rec in _iter_records(path, fmt):
        for col in require:
            if col not in rec:
                raise UserError(f"{where}: missing column {col!r}")
        out = dict(rec)
        for col in ("prompt", "response"):
            if col in rec and not _is_missing(rec[col]):
                out[col] = _text(rec[col], where, col)
        out["_where"] = where
        rows.append(out)
    if not rows:
        raise UserError(f"{path}: no records")
    return rows


def _json_default(v: Any):  # pragma: no cover - used by writers
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def write_jsonl(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows as JSON lines, atomically (temp file + ``os.replace``)."""
    from signrm.data import atomic_write

    buf = io.StringIO()
    for r in rows:
        buf.write(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n")
    text = buf.getvalue()
    return atomic_write(Path(path), lambda p: Path(p).write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------------------------- text models
ENCODER_FILE = "encoder.json"


class TextRewardModel:
    """A fitted estimator plus the encoder that made its features: texts in, rewards out.

    Saved as the estimator's own directory (``model.json`` ...) plus ``encoder.json`` (the
    encoder's config and identity), which is what ``signrm fit`` writes and ``signrm score`` /
    ``signrm best-of-n`` read.
    """

    def __init__(self, estimator, encoder):
        self.estimator = estimator
        self.encoder = encoder

    def reward(
        self,
        responses: Sequence[str],
        prompts: Sequence[str] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Reward of each (prompt, response), float64 ``(n,)``."""
        X = self.encoder.encode(list(responses), prompts, show_progress=show_progress)
        return np.asarray(self.estimator.reward(X), dtype=np.float64)

    def save(self, path: str | os.PathLike, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Save the estimator to ``path`` then write ``encoder.json`` atomically."""
        from signrm.data import atomic_write

        config = self.encoder.get_config()
        path = Path(self.estimator.save(path) or path)
        info = {"encoder": config, "identity": self.encoder.identity, **dict(extra or {})}
        text = json.dumps(info, indent=2, default=_json_default)
        atomic_write(path / ENCODER_FILE, lambda p: Path(p).write_text(text, encoding="utf-8"))
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | bool | None = None,
        show_progress: bool | None = None,
    ) -> TextRewardModel:
        """Load a directory written by :meth:`save` (or ``signrm fit``)."""
        import signrm
        from signrm.embed import encoder_from_config

        path = Path(path)
        enc_path = path / ENCODER_FILE
        if not enc_path.is_file():
            raise UserError(
                f"{path}: no {ENCODER_FILE}; this model was not fitted on texts "
                "(use `signrm fit PREFS --encoder ...`)"
            )
        try:
            info = json.loads(enc_path.read_text(encoding="utf-8"))
            config = dict(info["encoder"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{enc_path}: corrupt encoder file ({exc})") from None
        estimator = signrm.load(path)
        encoder = encoder_from_config(config, cache_dir=cache_dir, show_progress=show_progress)
        saved = info.get("identity")
        if saved is not None and encoder.identity is not None and saved != encoder.identity:
            warnings.warn(
                f"{enc_path}: the encoder now resolves to {encoder.identity.get('model')!r}, "
                f"the model was fitted with {saved.get('model')!r}; rewards may be meaningless",
                UserWarning,
                stacklevel=2,
            )
        return cls(estimator, encoder)
