"""Out-of-core fits: a thin entry point over the one linear engine.

The linear :class:`~signrm.BradleyTerry` and :class:`~signrm.SignEstimator` fit any source of
chunks (:mod:`signrm.data.sources`): an in-memory dataset is a source of one chunk, Parquet shards
and ``.npy`` pairs are read ``chunk_rows`` at a time, so memory is bounded by the chunk size, not
by the number of comparisons. Every evaluation of an objective and its gradient is one pass over
the chunks computing exactly the in-memory objective (:mod:`signrm.engine.linear`), so a streaming
fit agrees with the in-memory fit to solver tolerance (1e-4 degrees on the benchmark data), with
the same defaults, including the sign estimator's cross-validated bandwidth.

Usage::

    src = signrm.streaming.open_source("shards/")          # directory of *.parquet
    est = signrm.SignEstimator().fit(src)                  # or fit_streaming(est, src)
    est = signrm.SignEstimator().fit("shards/")            # a path is opened the same way

Multi-process training of torch heads lives in :mod:`signrm.train`.
"""

from __future__ import annotations

from signrm.data import sources as _sources
from signrm.data.sources import (  # noqa: F401  (re-exported)
    Chunk,
    MemorySource,
    NpyPair,
    ParquetShards,
    StreamingSource,
    as_source,
    is_streaming_source,
    open_source,
)

__all__ = [*_sources.__all__, "fit_streaming"]


def fit_streaming(estimator, source, progress: bool | None = None):
    """Fit a linear :class:`BradleyTerry` or :class:`SignEstimator` on a source or a path.

    The same as ``estimator.fit(source)``; ``progress`` overrides the estimator's ``verbose``
    for this fit (a bar in comparisons per second). Sets the estimator's usual attributes plus
    ``n_passes_`` (full passes over the data) and ``fit_seconds_``; returns the estimator.
    """
    from signrm.estimators.bradley_terry import BradleyTerry
    from signrm.estimators.sign import SignEstimator

    kind = type(estimator).__name__
    if not isinstance(estimator, (BradleyTerry, SignEstimator)):
        raise ValueError(
            f"streaming fits support BradleyTerry and SignEstimator (linear heads), not {kind}; "
            "load the data with source.to_data() if they fit in memory"
        )
    if estimator.head != "linear":
        raise ValueError(
            f"{kind}(head={estimator.head!r}): streaming fits are for linear heads; train torch "
            "heads on several processes with `signrm train` (see docs/scale.md)"
        )
    if not is_streaming_source(source):
        raise TypeError(
            f"expected a signrm.streaming source or a path, got {type(source).__name__}"
        )
    if progress is None:
        return estimator.fit(source)
    verbose = estimator.verbose
    estimator.verbose = bool(progress)
    try:
        return estimator.fit(source)
    finally:
        estimator.verbose = verbose
