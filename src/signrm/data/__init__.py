"""The data layer: where comparisons enter signrm and are validated.

- :mod:`~signrm.data.preference` — :class:`PreferenceData`, the validated in-memory container.
- :mod:`~signrm.data.sources` — chunked sources (:class:`MemorySource`, :class:`ParquetShards`,
  :class:`NpyPair`; :func:`as_source`, :func:`open_source`), the input of the linear engine.
- :mod:`~signrm.data.validation` — what a valid comparison is (labels, features, weights, ids,
  column discovery), shared by all of the above and the text reader.
- :mod:`~signrm.data.io` — formats, compressed text, atomic writes, JSON lines.
- ``text_*`` modules — the text preference reader (schema inference, record parsing, duplicate
  detection), used through :func:`signrm.textdata.read_text`.
"""

from signrm.data.chunks import Chunk, StreamingSource
from signrm.data.io import (
    FORMATS,
    atomic_write,
    format_of,
    iter_jsonl,
    open_text,
    read_frame,
    read_jsonl_frame,
    write_frame,
    write_frame_jsonl,
    write_jsonl,
)
from signrm.data.npy_source import NpyPair
from signrm.data.parquet_source import ParquetShards
from signrm.data.preference import PreferenceData
from signrm.data.sources import MemorySource, as_source, is_streaming_source, open_source
from signrm.data.validation import IgnoredColumnsWarning

__all__ = [
    "PreferenceData",
    "Chunk",
    "StreamingSource",
    "MemorySource",
    "ParquetShards",
    "NpyPair",
    "as_source",
    "open_source",
    "is_streaming_source",
    "IgnoredColumnsWarning",
    "FORMATS",
    "atomic_write",
    "format_of",
    "open_text",
    "iter_jsonl",
    "read_frame",
    "write_frame",
    "read_jsonl_frame",
    "write_frame_jsonl",
    "write_jsonl",
]
