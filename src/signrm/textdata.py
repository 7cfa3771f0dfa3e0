"""Text preference files (TRL / pair conventions) -> texts + labels: a thin re-export.

The reader lives in the data package: :mod:`signrm.data.text_reader` (``read_text``,
``read_texts_table``), :mod:`signrm.data.text_schema` (conventions and columns),
:mod:`signrm.data.text_records` (records and values), :mod:`signrm.data.text_duplicates` and
:mod:`signrm.data.text_preferences` (``TextPreferences``). ``from signrm.textdata import ...`` keeps
working; ``TextRewardModel`` lives in :mod:`signrm.text_model`.
"""

from __future__ import annotations

from typing import Any

from signrm.data.io import json_default as _json_default  # noqa: F401 (old private name)
from signrm.data.io import write_jsonl
from signrm.data.text_preferences import TextPreferences
from signrm.data.text_reader import read_text, read_texts_table
from signrm.data.text_records import render_messages

__all__ = ["TextPreferences", "read_text", "read_texts_table", "render_messages", "write_jsonl"]

_MOVED = {"TextRewardModel": "signrm.text_model", "ENCODER_FILE": "signrm.text_model"}


def __getattr__(name: str) -> Any:
    """``TextRewardModel`` (and ``ENCODER_FILE``) moved to :mod:`signrm.text_model`; imported
    lazily from there so old imports keep working without an import cycle."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
