"""Encoder interface and the on-disk embedding cache.

An encoder maps texts (optionally paired with their prompts) to a float32 matrix ``(n, d)``.
Subclasses implement :meth:`Encoder._encode_batch`; the base class handles batching, the progress
bar, de-duplication and the cache.

Cache layout (one directory per encoder identity), below one cache root ``ROOT``: the
``cache_dir=`` / ``--cache-dir`` given, else ``$SIGNRM_CACHE``, else
``$XDG_CACHE_HOME/signrm`` or ``~/.cache/signrm`` (:func:`cache_root`); all three name the same
root, so that ``--cache-dir ~/.cache/signrm`` reuses the default cache::

    ROOT/embeddings/<sha256(identity)[:24]>/identity.json
    ROOT/embeddings/<sha256(identity)[:24]>/<chunk>.npz   keys (m,) S64, vectors (m, d) f4, digest

Each text's key is ``sha256(prompt + "\\x1f" + response)``; the identity holds the model id, the
layer and every option that changes the features, so the cache is keyed by (model id, layer, text
hash). Chunks are written atomically (temp file + ``os.replace``) every ``flush_every`` texts, so an
interrupted run keeps what it computed. A chunk that cannot be read, has the wrong shape or dtype,
holds non-finite values, or fails its sha256 digest is deleted and its texts are recomputed: a
corrupt entry is never returned.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signrm.errors import EncoderError, ResourceError

__all__ = [
    "Encoder",
    "EmbeddingCache",
    "cache_root",
    "default_cache_dir",
    "text_key",
    "model_unavailable",
]

_SEP = "\x1f"  # unit separator between prompt and response in the text key
_EMBEDDINGS = "embeddings"  # sub-directory of the cache root


def cache_root() -> Path:
    """The default cache root: ``$SIGNRM_CACHE``, else ``$XDG_CACHE_HOME/signrm`` or
    ``~/.cache/signrm``."""
    root = os.environ.get("SIGNRM_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "signrm"


def default_cache_dir() -> Path:
    """Where embeddings are cached by default: ``cache_root() / "embeddings"``."""
    return cache_root() / _EMBEDDINGS


def text_key(response: str, prompt: str | None = None) -> bytes:
    """Hex sha256 (64 bytes, ASCII) of one (prompt, response) item."""
    payload = response if prompt is None else f"{prompt}{_SEP}{response}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest().encode("ascii")


def _digest(keys: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(keys).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EmbeddingCache:
    """Chunked on-disk store of embeddings for one encoder identity.

    Parameters
    ----------
    root : the cache root (see :func:`cache_root`); entries go to ``root/embeddings/<id>``.
    identity : JSON-serialisable description of the encoder (model id, layer, options).
    dim : feature dimension d, or None when not yet known (checked on read once known).
    """

    def __init__(self, root: str | os.PathLike, identity: dict[str, Any], dim: int | None = None):
        blob = json.dumps(identity, sort_keys=True, default=str)
        self.identity = identity
        digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.dir = Path(root).expanduser() / _EMBEDDINGS / digest
        self.dim = dim
        self._index: dict[bytes, tuple[Path, int]] | None = None

    # -- reading -----------------------------------------------------------------------------
    def _chunks(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.npz") if not p.name.startswith("."))

    def _discard(self, path: Path, reason: str) -> None:
        warnings.warn(
            f"embedding cache: discarding corrupt chunk {path} ({reason}); recomputing its texts",
            RuntimeWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)

    def _build_index(self) -> dict[bytes, tuple[Path, int]]:
        index: dict[bytes, tuple[Path, int]] = {}
        for path in self._chunks():
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys = z["keys"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                self._discard(path, type(exc).__name__)
                continue
            if keys.ndim != 1 or keys.dtype != np.dtype("S64"):
                self._discard(path, "bad key array")
                continue
            for row, key in enumerate(keys.tolist()):
                index[key] = (path, row)
        return index

    def _load_chunk(self, path: Path) -> np.ndarray | None:
        """Vectors of a chunk after full validation, or None (chunk discarded)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, vectors, digest = z["keys"], z["vectors"], str(z["digest"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            self._discard(path, type(exc).__name__)
            return None
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] != keys.shape[0]:
            self._discard(path, f"bad vector array {vectors.dtype} {vectors.shape}")
            return None
        if self.dim is not None and vectors.shape[1] != self.dim:
            self._discard(path, f"dimension {vectors.shape[1]} != {self.dim}")
            return None
        if digest != _digest(keys, vectors):
            self._discard(path, "checksum mismatch")
            return None
        if not np.isfinite(vectors).all():
            self._discard(path, "non-finite values")
            return None
        if self.dim is None:
            self.dim = int(vectors.shape[1])
        return vectors

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """Cached vectors of those ``keys`` that are present and valid."""
        if self._index is None:
            self._index = self._build_index()
        by_chunk: dict[Path, list[tuple[bytes, int]]] = {}
        for key in set(keys):
            hit = self._index.get(key)
            if hit is not None:
                by_chunk.setdefault(hit[0], []).append((key, hit[1]))
        found: dict[bytes, np.ndarray] = {}
        for path, entries in by_chunk.items():
            vectors = self._load_chunk(path)
            if vectors is None:  # discarded: forget every key of that chunk
                self._index = {k: v for k, v in self._index.items() if v[0] != path}
                continue
            for key, row in entries:
                found[key] = vectors[row]
        return found

    # -- writing -----------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Create the cache directory now (before anything is computed), or raise
        :class:`~signrm.errors.ResourceError` saying why it cannot be."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResourceError(
                f"embedding cache: cannot create {self.dir} ({exc.strerror or exc}); use another "
                "cache directory or turn the cache off"
            ) from exc

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one chunk of ``(m,)`` keys and ``(m, d)`` float32 vectors, atomically."""
        if len(keys) == 0:
            return
        karr = np.asarray(list(keys), dtype="S64")
        varr = np.ascontiguousarray(vectors, dtype=np.float32)
        digest = _digest(karr, varr)
        self.dir.mkdir(parents=True, exist_ok=True)
        ident = self.dir / "identity.json"
        if not ident.exists():
            text = json.dumps(self.identity, sort_keys=True, indent=2, default=str)
            _atomic_write_bytes(ident, lambda fh: fh.write(text.encode()))
        path = self.dir / f"{digest[:32]}.npz"
        _atomic_write_bytes(
            path, lambda fh: np.savez(fh, keys=karr, vectors=varr, digest=np.array(digest))
        )
        if self._index is not None:
            for row, key in enumerate(karr.tolist()):
                self._index[key] = (path, row)


@contextlib.contextmanager
def quiet_hf(enabled: bool) -> Iterator[None]:
    """Silence transformers' loading bars and info logs while ``enabled`` (restored after).

    The GGUF de-quantising bar of transformers ignores its own progress-bar switch (it calls
    ``tqdm`` directly), so that module's ``tqdm`` is replaced by a disabled one for the duration.
    """
    if not enabled:
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - older or trimmed transformers
        gguf_utils = None
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    was_bar = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        hf_logging.set_verbosity(level)
        if was_bar:
            hf_logging.enable_progress_bar()


def _hub_unreachable(exc: BaseException) -> bool:
    """Whether a loading error (or its cause) says the hub could not be reached."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        name = type(e).__name__
        text = str(e).lower()
        if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or (
            "couldn't connect" in text or "offline mode" in text
        ):
            return True
        e = e.__cause__ or e.__context__
    return False


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def model_unavailable(name: str, exc: BaseException) -> ResourceError | None:
    """A one-line :class:`~signrm.errors.ResourceError` for a hub model ``name`` that failed to
    load because it is not stored locally and the hub cannot be reached; None for other errors."""
    if not (_hub_offline() or _hub_unreachable(exc)):
        return None
    why = "offline (HF_HUB_OFFLINE=1)" if _hub_offline() else "unreachable"
    return ResourceError(
        f"model {name!r} could not be found locally and the Hugging Face hub is {why}; use a "
        "local model folder or file, a packaged model (minilm, smollm2), or download it first"
    )


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class Encoder(ABC):
    """Maps responses (optionally with their prompts) to features, float32 ``(n, d)``.

    Parameters common to all encoders
    ---------------------------------
    batch_size : texts per forward pass.
    cache_dir : cache root (embeddings go to ``cache_dir/embeddings``); ``None`` =
        :func:`cache_root` (``$SIGNRM_CACHE`` or ``~/.cache/signrm``), ``False`` = no cache.
    show_progress : tqdm bar; ``None`` = only when stderr is a terminal.
    """

    #: short name of the encoder family, stored in ``encoder.json``
    kind: str = "base"
    _call_progress: bool | None = None  # show_progress= of the running encode() call

    def __init__(
        self,
        *,
        batch_size: int = 32,
        cache_dir: str | os.PathLike | bool | None = None,
        show_progress: bool | None = None,
        flush_every: int = 4096,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self.flush_every = int(flush_every)
        self._cache: EmbeddingCache | None = None

    # -- to implement ------------------------------------------------------------------------
    @property
    @abstractmethod
    def identity(self) -> dict[str, Any] | None:
        """Everything that determines the features (model id, layer, options), or None when the
        model cannot be identified (then nothing is cached)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature dimension d."""

    @abstractmethod
    def _encode_batch(self, texts: list[str], prompts: list[str] | None) -> np.ndarray:
        """Features of one batch, ``(len(texts), d)``."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this encoder (JSON-serialisable), with ``kind``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be described for saving")

    # -- public ------------------------------------------------------------------------------
    @property
    def cache(self) -> EmbeddingCache | None:
        if self.cache_dir is False or self.identity is None:
            return None
        if self._cache is None:
            root = cache_root() if self.cache_dir in (None, True) else self.cache_dir
            self._cache = EmbeddingCache(root, self.identity, dim=None)
        return self._cache

    def encode(
        self,
        texts: Sequence[str],
        prompts: Sequence[str] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Features of ``texts`` (responses), each paired with ``prompts[i]`` when given.

        Returns float32 ``(n, d)``. Identical (prompt, text) items are computed once; cached items
        are read from disk; new ones are written to the cache every ``flush_every`` texts.
        """
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of texts, not a single string")
        texts = [str(t) for t in texts]
        if prompts is not None:
            prompts = [str(p) for p in prompts]
            if len(prompts) != len(texts):
                raise ValueError(f"{len(prompts)} prompts for {len(texts)} texts")
        previous, self._call_progress = self._call_progress, show_progress
        try:
            return self._encode_all(texts, prompts, show_progress)
        finally:
            self._call_progress = previous

    def _encode_all(
        self, texts: list[str], prompts: list[str] | None, show_progress: bool | None
    ) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # The model is loaded only when something must be computed: a fully cached call never
        # touches it (and so costs no model start-up).

        keys = [text_key(t, None if prompts is None else prompts[i]) for i, t in enumerate(texts)]
        first: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        cache = self.cache
        found = cache.get(list(first)) if cache is not None else {}
        todo = [i for k, i in first.items() if k not in found]
        if todo:
            if cache is not None:
                cache.ensure_writable()  # fail now, not after computing everything
            dim = self.dim
            if cache is not None and found and next(iter(found.values())).shape[0] != dim:
                raise EncoderError(
                    f"embedding cache {cache.dir} holds {next(iter(found.values())).shape[0]}-d "
                    f"vectors but the encoder gives {dim}-d ones; delete that directory"
                )
        else:
            dim = next(iter(found.values())).shape[0]
        # longest first: similar lengths share a batch (less padding), and the slowest batch
        # shows up at the start of the progress bar rather than at the end.
        todo.sort(key=lambda i: -len(texts[i]) - (0 if prompts is None else len(prompts[i])))

        progress = self.progress_enabled(show_progress)
        computed: dict[bytes, np.ndarray] = {}
        pend_keys: list[bytes] = []
        pend_vecs: list[np.ndarray] = []
        bar = None
        if todo and progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"embedding ({self.describe()})", unit="text")
        try:
            for sl in _batches(len(todo), self.batch_size):
                idx = todo[sl]
                batch_t = [texts[i] for i in idx]
                batch_p = None if prompts is None else [prompts[i] for i in idx]
                out = np.asarray(self._encode_batch(batch_t, batch_p), dtype=np.float32)
                if out.shape != (len(idx), dim):
                    raise RuntimeError(
                        f"{type(self).__name__} returned shape {out.shape}, expected {(len(idx), dim)}"
                    )
                if not np.isfinite(out).all():
                    bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
                    raise EncoderError(
                        f"{self.describe()} produced non-finite features (NaN or inf), e.g. for "
                        f"the text {batch_t[bad][:60]!r}"
                    )
                for j, i in enumerate(idx):
                    computed[keys[i]] = out[j]
                    pend_keys.append(keys[i])
                    pend_vecs.append(out[j])
                if cache is not None and len(pend_keys) >= self.flush_every:
                    cache.put(pend_keys, np.stack(pend_vecs))
                    pend_keys, pend_vecs = [], []
                if bar is not None:
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
            if cache is not None and pend_keys:
                cache.put(pend_keys, np.stack(pend_vecs))

        out = np.empty((n, dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k] if k in found else computed[k]
        return out

    def progress_enabled(self, override: bool | None = None) -> bool:
        """Whether to show progress: ``override``, else the ``show_progress`` of the running
        :meth:`encode` call (so that loading the model inside it is quiet too), else the
        encoder's ``show_progress``, else whether stderr is a TTY."""
        value = override
        if value is None:
            value = self._call_progress
        if value is None:
            value = self.show_progress
        return sys.stderr.isatty() if value is None else bool(value)

    def describe(self) -> str:
        ident = self.identity or {}
        return str(ident.get("model", type(self).__name__))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"
