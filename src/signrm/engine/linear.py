"""Deterministic full-batch solvers of linear heads over a source of chunks.

Every quantity a linear fit needs — the Bradley–Terry objective and gradient, the smoothed
maximum-score objective on the unit sphere, margin moments, exact agreements, held-out scores —
is a weighted sum over comparisons. :class:`Passes` reads a source (an in-memory
:class:`~signrm.data.PreferenceData` is a source of one chunk, Parquet shards and ``.npy`` pairs
are sources of many) and yields :class:`Block` objects; the solvers sum over blocks and all-reduce
the sums over the process group. So an in-memory fit, a streaming fit and a multi-process fit run
this same code and agree to solver tolerance.

Conventions: ``D`` (m, d) differences phi(a) - phi(b); ``y`` (m,) labels in {0, 0.5, 1};
``s = 2 y - 1``; ``w`` (m,) non-negative weights (ones when the data have none, zero on rows a
:class:`Passes` excludes). Objectives are weighted means: weights are divided by their total
``wsum`` over the rows in use (:func:`weight_totals`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, special

from signrm.engine.group import ProcessGroup, current_group

# --------------------------------------------------------------------------- blocks and passes


@dataclass
class Block:
    """Comparisons of one chunk as the solvers see them (``w`` already masked)."""

    D: np.ndarray
    y: np.ndarray
    w: np.ndarray
    margin: np.ndarray | None = None
    xa: np.ndarray | None = None
    xb: np.ndarray | None = None

    @property
    def s(self) -> np.ndarray:
        return 2.0 * self.y - 1.0

    def margins(self, theta: np.ndarray) -> np.ndarray:
        """``D theta`` in float64, shape (m,)."""
        return np.asarray(self.D @ theta.astype(self.D.dtype, copy=False), dtype=np.float64)


RowFilter = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
"""``keep(rows, user) -> bool mask``: which of a chunk's rows (global indices) a fit uses."""


#: Largest block (rows x features multiplied in one product) whose fit runs BLAS on one thread.
#: Between products the fit does numpy work on one core while idle BLAS threads spin on the
#: other, so on 2 cores threads cost more than they give until the products are large. Measured
#: (default SignEstimator vs one BLAS thread, same process, idle 2-core machine, d = 384):
#: n = 43,834: 1.45 / 0.99 s vs 0.55 / 0.51 s; n = 1e5: 2.20 vs 1.68 s; n = 3e5: 7.95 vs 7.63 s;
#: n = 1e6: 10.6 vs 14.5 s (threads win). Under load the gap at small n grows to 4-5x.
SINGLE_THREAD_MAX_VALUES = 2**27


def single_threaded_blas():
    """Context manager (``threadpoolctl``): BLAS (numpy's and scipy's) on one thread inside."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _blas_limit(source):
    """One BLAS thread for the fit's passes when its largest product is small (else None)."""
    rows = getattr(source, "chunk_rows", None) or getattr(source, "n_samples", None)
    d = getattr(source, "n_features", None)
    if rows is None or d is None or int(rows) * int(d) > SINGLE_THREAD_MAX_VALUES:
        return None
    return single_threaded_blas()


class _PassState:
    """Counters, the progress bar and the BLAS thread limit shared by a fit's :class:`Passes`."""

    def __init__(self, progress: bool, desc: str, source=None, limit_threads: bool = False):
        from tqdm.auto import tqdm

        self.n_passes = 0
        self.seconds = 0.0
        self.bar = tqdm(
            desc=desc, unit="cmp", unit_scale=True, disable=not progress, dynamic_ncols=True
        )
        self.blas = _blas_limit(source) if limit_threads else None

    def close(self) -> None:
        self.bar.close()
        if self.blas is not None:
            self.blas.restore_original_limits()
            self.blas = None


#: Largest feature matrix (bytes) whose fold rows an in-memory fit copies. A copy makes a fold's
#: passes cost its share of the rows, but fresh memory costs more than the passes it saves once
#: the data are large, and doubles the fit's memory: at n = 1e6, d = 384 (1.5 GB) building the
#: two fold copies took 9.6 s of a 41.6 s default sign fit on 2 cores (first-touch page faults);
#: with zero weights outside the fold instead, the same fit took 33.2 s, same answer.
COPY_FOLDS_MAX_BYTES = 256 * 2**20


class Passes:
    """Runs passes over a source; ``keep`` restricts the rows (cross-validation folds).

    ``limit_threads``: run BLAS on one thread until :meth:`close` when the fit's products are
    small (:data:`SINGLE_THREAD_MAX_VALUES`); the caller must then close the passes.

    With several processes, row ``i`` belongs to rank ``i % world_size``. For a source held in
    memory the rows in use are copied once and reused by every pass (folds cost no more than
    their size) on several processes or when the features take at most
    :data:`COPY_FOLDS_MAX_BYTES`; otherwise, and for chunked sources, excluded rows get zero
    weight.
    """

    def __init__(
        self,
        source,
        *,
        group: ProcessGroup | None = None,
        keep: RowFilter | None = None,
        progress: bool = False,
        desc: str = "",
        limit_threads: bool = False,
        _state: _PassState | None = None,
    ) -> None:
        self.source = source
        self.group = group or current_group()
        self.keep = keep
        self.state = _state or _PassState(progress, desc, source, limit_threads)
        self._cached: Block | None = None
        self._totals: WeightTotals | None = None
        self.in_memory = bool(getattr(source, "in_memory", False))

    def restrict(self, keep: RowFilter) -> Passes:
        """A view of the same source that also requires ``keep`` (shares counters and bar)."""
        outer = self.keep
        both = keep if outer is None else (lambda r, u: outer(r, u) & keep(r, u))
        return Passes(self.source, group=self.group, keep=both, _state=self.state)

    def _mask(self, chunk) -> np.ndarray | None:
        n = len(chunk)
        mask = self.group.local_rows(chunk.start, n)
        if self.keep is not None:
            rows = np.arange(chunk.start, chunk.start + n)
            k = np.asarray(self.keep(rows, getattr(chunk, "user", None)), dtype=bool)
            mask = k if mask is None else mask & k
        return mask

    def _copy_rows(self, chunk) -> bool:
        """Copy the rows in use (in memory): always for a rank's share (a fraction 1/world_size
        of the rows), else up to :data:`COPY_FOLDS_MAX_BYTES` of features."""
        return self.group.distributed or chunk.differences.nbytes <= COPY_FOLDS_MAX_BYTES

    def _block(self, chunk, copy_rows: bool) -> Block:
        mask = self._mask(chunk)
        w = np.ones(len(chunk)) if chunk.weight is None else np.asarray(chunk.weight, np.float64)
        D = chunk.differences
        xa, xb, y, margin = chunk.xa, chunk.xb, chunk.y, chunk.margin
        if mask is not None and copy_rows:
            # only what the sign and BT objectives read: the alternatives serve reward
            # centring, which is fitted on all rows
            idx = np.flatnonzero(mask)
            return Block(D[idx], y[idx], w[idx], None if margin is None else margin[idx])
        if mask is not None:
            w = w * mask
        return Block(D, y, w, margin, xa, xb)

    def blocks(self, label: str = "") -> Iterator[Block]:
        st = self.state
        t0 = time.perf_counter()
        if label:
            st.bar.set_postfix_str(f"{label}, pass {st.n_passes + 1}", refresh=False)
        if self.in_memory:
            if self._cached is None:
                (chunk,) = list(self.source)
                self._cached = self._block(chunk, copy_rows=self._copy_rows(chunk))
            yield self._cached
            st.bar.update(len(self._cached.y))
        else:
            for chunk in self.source:
                yield self._block(chunk, copy_rows=False)
                st.bar.update(len(chunk))
        st.n_passes += 1
        st.seconds += time.perf_counter() - t0

    def allreduce(self, value):
        return self.group.allreduce_sum(value)

    def close(self) -> None:
        """End the fit's passes: close the progress bar, restore BLAS threads."""
        self.state.close()


@dataclass(frozen=True)
class WeightTotals:
    """Totals over the rows in use: count, weight sum and the weight of non-tie rows."""

    n: int
    wsum: float
    nontie: float


def weight_totals(passes: Passes, label: str = "checking") -> WeightTotals:
    """One pass (once per :class:`Passes` view): the totals, with the errors every entry point
    gives for degenerate data."""
    cached = getattr(passes, "_totals", None)
    if cached is not None:
        return cached
    acc = np.zeros(3)
    for b in passes.blocks(label):
        acc += [float(np.count_nonzero(b.w)), float(b.w.sum()), float(b.w[b.y != 0.5].sum())]
    n, wsum, nontie = passes.allreduce(acc)
    if not wsum > 0:
        raise ValueError("all weights are zero: there is nothing to learn")
    if not nontie > 0:
        raise ValueError("every comparison is a tie: there is nothing to learn")
    passes._totals = WeightTotals(int(n), float(wsum), float(nontie))
    return passes._totals


# --------------------------------------------------------------------------- folds


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fixed, well-spread hash of unsigned 64-bit integers."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def id_codes(ids: np.ndarray) -> np.ndarray:
    """Stable uint64 codes of ids (integers as themselves, other ids by CRC-32 of their text)."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iub":
        return ids.astype(np.int64).astype(np.uint64)
    uniq, inverse = np.unique(ids.astype(str), return_inverse=True)
    codes = np.array([zlib.crc32(u.encode()) for u in uniq], dtype=np.uint64)
    return codes[inverse.reshape(-1)]


def fold_of(
    rows: np.ndarray, user: np.ndarray | None, n_folds: int, seed: int, by_user: bool
) -> np.ndarray:
    """Fold (0 .. n_folds - 1) of each row: a hash of the user id (``by_user``) or the row index.

    A function of the global row index or id only, so memory, shards and processes agree.
    """
    key = id_codes(user) if by_user else np.asarray(rows, dtype=np.uint64)
    salt = _mix64(np.array([seed & 0xFFFFFFFF], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        h = _mix64(key ^ salt)
    return (h % np.uint64(n_folds)).astype(np.int64)


def count_users(passes: Passes) -> int:
    """Number of distinct user ids (0 when the source has none; then no data are read)."""
    if not getattr(passes.source, "has_user", True):
        return 0
    seen: set = set()
    for chunk in passes.source:
        user = getattr(chunk, "user", None)
        if user is None:
            return 0
        seen.update(np.unique(id_codes(user)).tolist())
    return len(seen)


# --------------------------------------------------------------------------- Bradley–Terry


def _nll_and_slope(m: np.ndarray, y: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row negative log-likelihood and its derivative in the margin."""
    if link == "logit":
        # y softplus(-m) + (1-y) softplus(m) = softplus(m) - y m
        return np.logaddexp(0.0, m) - y * m, special.expit(m) - y
    lp, lq = special.log_ndtr(m), special.log_ndtr(-m)
    logpdf = -0.5 * m * m - 0.5 * np.log(2 * np.pi)
    return -(y * lp + (1.0 - y) * lq), -y * np.exp(logpdf - lp) + (1.0 - y) * np.exp(logpdf - lq)


def bt_objective(
    passes: Passes,
    totals: WeightTotals,
    *,
    l2: float,
    link: str = "logit",
    use_margin: bool = True,
    center_coef: float = 0.0,
    label: str = "BT",
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``theta -> (f, grad)`` of ``sum wn nll(D theta - s offset) + l2/2 |theta|^2``
    (``+ center_coef sum wn ((xa + xb) theta)^2`` for TRL's reward centring)."""

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        acc = np.zeros(theta.size + 1)
        for b in passes.blocks(label):
            wn = b.w / totals.wsum
            m = b.margins(theta)
            if use_margin and b.margin is not None:
                m = m - b.s * b.margin
            nll, dm = _nll_and_slope(m, b.y, link)
            acc[0] += float(wn @ nll)
            acc[1:] += np.asarray(b.D.T @ (wn * dm).astype(b.D.dtype), dtype=np.float64)
            if center_coef > 0:
                S = b.xa + b.xb
                r = np.asarray(S @ theta.astype(S.dtype), dtype=np.float64)
                acc[0] += center_coef * float(wn @ (r * r))
                acc[1:] += (
                    2.0 * center_coef * np.asarray(S.T @ (wn * r).astype(S.dtype), dtype=np.float64)
                )
        acc = passes.allreduce(acc)
        return float(acc[0]) + 0.5 * l2 * float(theta @ theta), acc[1:] + l2 * theta

    return fun


def lbfgs(fun, x0: np.ndarray, max_iter: int, tol: float, ftol: float, callback=None):
    """scipy's L-BFGS-B with ``gtol=tol`` (projected gradient) and ``ftol``; ``callback`` is
    called with each iterate's result and may raise ``StopIteration``."""
    return optimize.minimize(
        fun,
        np.asarray(x0, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": int(max_iter), "gtol": float(tol), "ftol": float(ftol)},
    )


def fit_bt(
    passes: Passes,
    totals: WeightTotals,
    d: int,
    *,
    l2: float,
    link: str = "logit",
    use_margin: bool = True,
    center_coef: float = 0.0,
    theta0: np.ndarray | None = None,
    max_iter: int = 500,
    tol: float = 1e-4,
    label: str = "BT",
) -> tuple[np.ndarray, dict]:
    """Penalised BT (logit) / Thurstone (probit) maximum likelihood; returns ``(theta, info)``."""
    fun = bt_objective(
        passes, totals, l2=l2, link=link, use_margin=use_margin, center_coef=center_coef,
        label=label,
    )  # fmt: skip
    x0 = np.zeros(d) if theta0 is None else theta0
    res = lbfgs(fun, x0, max_iter, tol, 1e-12)
    info = {"objective": float(res.fun), "n_iter": int(res.nit), "converged": bool(res.success)}
    return res.x, info


def fit_bt_arrays(
    D: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, **kwargs
) -> tuple[np.ndarray, dict]:
    """:func:`fit_bt` on plain arrays (one in-memory chunk, one process), e.g. EM's M-step.

    ``kwargs``: those of :func:`fit_bt` (``l2``, ``link``, ``theta0``, ``max_iter``, ``tol``);
    a ``margin_offset`` (n,) array is the TRL margin of each row.
    """
    passes = Passes(array_source(D, y, w, kwargs.pop("margin_offset", None)), group=ProcessGroup())
    return fit_bt(passes, weight_totals(passes), D.shape[1], **kwargs)


class _InMemory(list):
    """A list of chunks held in memory: :class:`Passes` copies fold rows once and reuses them."""

    in_memory = True


def array_source(D, y, w=None, margin=None) -> _InMemory:
    """Checked arrays as a one-chunk in-memory source (no validation: callers pass clean data)."""
    from signrm.data.sources import Chunk

    return _InMemory([Chunk(np.asarray(y, dtype=np.float64), diff=D, weight=w, margin=margin)])


def mean_signed_difference(passes: Passes, totals: WeightTotals, d: int) -> np.ndarray:
    """``sum_i wn_i s_i D_i``: a starting direction when the BT solution is zero."""
    acc = np.zeros(d)
    for b in passes.blocks("mean signed difference"):
        acc += np.asarray(b.D.T @ (b.w / totals.wsum * b.s).astype(b.D.dtype), dtype=np.float64)
    return passes.allreduce(acc)


# --------------------------------------------------------------------------- the sign estimator


@dataclass
class SignStage:
    """One annealing stage: ``lam``, the margin scale at its start, the smoothed agreement at its
    end, L-BFGS iterations, and the unit vector reached."""

    lam: float
    scale: float
    objective: float
    n_iter: int
    theta: np.ndarray
    end_scale: float | None = None  # margin sd at ``theta`` (None when not evaluated there)

    def record(self) -> dict:
        return {"lam": self.lam, "scale": self.scale, "objective": self.objective,
                "n_iter": self.n_iter}  # fmt: skip


def margin_sd(passes: Passes, totals: WeightTotals, u: np.ndarray, label: str = "scale") -> float:
    """Weighted standard deviation of the margins ``D u`` (weights normalised by ``wsum``)."""
    acc = np.zeros(3)
    for b in passes.blocks(label):
        m, wn = b.margins(u), b.w / totals.wsum
        acc += [float(wn.sum()), float(wn @ m), float(wn @ (m * m))]
    s0, s1, s2 = passes.allreduce(acc)
    mean = s1 / s0
    return float(np.sqrt(max(s2 / s0 - mean * mean, 0.0)))


def unit(theta: np.ndarray, what: str = "the sign estimator's starting point") -> np.ndarray:
    norm = float(np.linalg.norm(theta))
    if norm == 0 or not np.isfinite(norm):
        raise ValueError(f"{what} is zero or not finite: the data carry no direction to fit")
    return np.asarray(theta, dtype=np.float64) / norm


def sign_stage(
    passes: Passes,
    totals: WeightTotals,
    u0: np.ndarray,
    lam: float,
    *,
    max_iter: int = 30,
    tol: float = 1e-4,
    noise_tol: float = 0.0,
    label: str = "sign stage",
    scale: float | None = None,
) -> SignStage:
    """Maximise ``sum wn s tanh(lam D u / (2 scale))`` over unit ``u`` from ``u0`` (L-BFGS).

    ``scale`` is the margins' standard deviation at the stage's start (one pass, unless the
    caller passes it: the previous stage's ``end_scale``), so lambda is dimensionless; the
    gradient is projected on the sphere's tangent space. The stage stops after ``max_iter``
    iterations, at a projected gradient below ``tol``, or (``noise_tol > 0``) after the first
    iteration that raises the objective by less than ``noise_tol`` of its standard error over
    rows, ``sqrt(sum wn^2 (s tanh - objective)^2)``: gains below the objective's sampling noise
    fit the sample, not the population.
    """
    u0 = unit(u0)
    if scale is None:
        scale = margin_sd(passes, totals, u0, label + " scale")
    scale = scale if scale > 0 else 1.0
    c = 0.5 * float(lam) / scale
    seen: dict[bytes, tuple[float, float, float]] = {}  # point -> (objective, its se, margin sd)

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        nv = np.linalg.norm(v)
        u = v / nv
        acc = np.zeros(v.size + 7)
        for b in passes.blocks(label):
            wn = b.w / totals.wsum
            ws = wn * b.s
            m = b.margins(u)
            th = np.tanh(c * m)
            acc[0] -= float(ws @ th)
            acc[1:-6] -= np.asarray(
                b.D.T @ (ws * c * (1.0 - th * th)).astype(b.D.dtype), np.float64
            )
            hit, w2 = b.s * th, wn * wn
            acc[-6:] += [float(wn.sum()), float(wn @ m), float(wn @ (m * m)),
                         float(w2.sum()), float(w2 @ hit), float(w2 @ (hit * hit))]  # fmt: skip
        acc = passes.allreduce(acc)
        s0, s1, s2, q0, q1, q2 = acc[-6:]
        f = -float(acc[0])
        se = float(np.sqrt(max(q2 - 2.0 * f * q1 + f * f * q0, 0.0)))
        seen[v.tobytes()] = (f, se, float(np.sqrt(max(s2 / s0 - (s1 / s0) ** 2, 0.0))))
        gu = acc[1:-6]
        return float(acc[0]), (gu - (gu @ u) * u) / nv

    previous = [u0.tobytes()]  # the last iterate (scipy evaluates the start first)

    def stop_at_noise(intermediate_result) -> None:
        key = np.asarray(intermediate_result.x, dtype=np.float64).tobytes()
        before, now = seen.get(previous[0]), seen.get(key)
        previous[0] = key
        if before is not None and now is not None and now[0] - before[0] < noise_tol * now[1]:
            raise StopIteration

    res = lbfgs(fun, u0, max_iter, tol, 1e-10, callback=stop_at_noise if noise_tol > 0 else None)
    end = seen.get(np.asarray(res.x, dtype=np.float64).tobytes())
    return SignStage(float(lam), scale, -float(res.fun), int(res.nit),
                     unit(res.x, "a sign stage's solution"), None if end is None else end[2])  # fmt: skip


# --------------------------------------------------------------------------- calibration


class MarginSpool:
    """The final margins, labels and normalised weights of every row in use, for calibration.

    In memory for in-memory sources; otherwise written in one pass to a temporary file (24 bytes
    per comparison) and read back in blocks, so memory does not grow with n. Also accumulates the
    exact agreement, the non-tie weight and the margins' (population) standard deviation.
    """

    block_rows = 1 << 16

    def __init__(self, passes: Passes, totals: WeightTotals, theta: np.ndarray, keep: bool):
        self._tmp = None
        self._arrays: list[np.ndarray] = []
        path = None
        if keep and not passes.in_memory:
            self._tmp = tempfile.TemporaryDirectory(prefix="signrm-calibration-")
            path = Path(self._tmp.name) / "margins.f8"
        self.path = path
        acc = np.zeros(5)  # agreement, nontie, count, sum m, sum m^2
        sink = open(path, "wb") if path else contextlib.nullcontext()
        with sink as fh:
            for b in passes.blocks("calibration"):
                m, wn = b.margins(theta), b.w / totals.wsum
                used = b.w > 0
                acc += [float(wn @ (b.s * np.sign(m))), float(wn[b.s != 0].sum()),
                        float(used.sum()), float(m[used].sum()), float((m[used] ** 2).sum())]  # fmt: skip
                rows = np.column_stack([m[used], b.y[used], wn[used]])
                if fh is not None:
                    fh.write(rows.tobytes())
                elif keep:
                    self._arrays.append(rows)
        agree, nontie, count, s1, s2 = passes.allreduce(acc)
        self.agreement, self.nontie, self.n = float(agree), float(nontie), int(count)
        mean = s1 / max(count, 1)
        self.sd = float(np.sqrt(max(s2 / max(count, 1) - mean * mean, 0.0)))
        self.group = passes.group

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self.path is None:
            for arr in self._arrays:
                yield arr[:, 0], arr[:, 1], arr[:, 2]
            return
        total = os.path.getsize(self.path) // 24
        with open(self.path, "rb") as fh:
            for _ in range(0, total, self.block_rows):
                arr = np.fromfile(fh, dtype=np.float64, count=3 * self.block_rows).reshape(-1, 3)
                yield arr[:, 0], arr[:, 1], arr[:, 2]

    def temperature(self) -> float:
        """Scalar ``a >= 0`` (per unit margin) minimising the cross-entropy of ``sigmoid(a m)``."""
        sd = self.sd or 1.0

        def nll(a: float) -> float:
            total = 0.0
            for m, y, wn in self.blocks():
                z = a * (m / sd)
                total += float(wn @ (np.logaddexp(0.0, z) - y * z))
            return float(self.group.allreduce_sum(total))

        res = optimize.minimize_scalar(nll, bounds=(0.0, 100.0), method="bounded")
        return float(res.x) / sd

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
