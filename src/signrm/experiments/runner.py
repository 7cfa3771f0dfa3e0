"""Resumable, parallel experiment runner.

Each (setting, seed) is one job with a stable key. Finished jobs are appended to a SQLite table
(``OUT/results.sqlite``, one committed transaction per job), so a killed run loses nothing that had
finished, and a rerun skips every key already present. ``OUT/results.csv`` is rewritten atomically
from the table at the end of a run. Jobs run in joblib worker processes; the parent process writes
results and drives a tqdm progress bar.

A run holds an exclusive lock on ``OUT/.signrm-run.lock`` (which records the holder's pid, host
and start time): a second run on the same folder stops at once with an error naming the holder
instead of computing every job again. Workers are ``spawn``-ed processes that exit as soon as
their parent dies (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread everywhere), so a killed
run leaves no orphan behind. A corrupt ``results.sqlite`` (or row) raises a one-line
:class:`~signrm.errors.UserError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from signrm.errors import UserError

from .config import ExperimentConfig, load_config
from .jobs import run_job

__all__ = ["ResultStore", "run_experiment", "read_results"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    finished REAL NOT NULL,
    row TEXT NOT NULL
)
"""


def _jsonable(value):
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class ResultStore:
    """Append-only SQLite table of job results (one row per job key)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as con:
            con.execute(_SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection (one transaction, committed on success); a corrupt database raises a
        :class:`UserError` naming the file."""
        try:
            con = sqlite3.connect(self.path, timeout=60)
            try:
                with con:
                    con.execute("PRAGMA journal_mode=WAL")
                    yield con
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"{self.path}: corrupt results database ({exc}); move it away to start over "
                "(results.csv next to it holds the rows of the last finished run)"
            ) from None

    def done_keys(self) -> set[str]:
        with self._db() as con:
            return {r[0] for r in con.execute("SELECT key FROM results")}

    def add(self, row: dict) -> None:
        payload = json.dumps({k: _jsonable(v) for k, v in row.items()})
        with self._db() as con:
            con.execute(
                "INSERT OR REPLACE INTO results (key, experiment, finished, row) VALUES (?, ?, ?, ?)",
                (row["key"], row["experiment"], time.time(), payload),
            )

    def frame(self, experiment: str | None = None) -> pd.DataFrame:
        with self._db() as con:
            if experiment is None:
                rows = con.execute("SELECT key, row FROM results ORDER BY finished").fetchall()
            else:
                rows = con.execute(
                    "SELECT key, row FROM results WHERE experiment = ? ORDER BY finished",
                    (experiment,),
                ).fetchall()
        return pd.DataFrame([self._parse(key, text) for key, text in rows])

    def _parse(self, key: str, text: str) -> dict:
        try:
            row = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"{self.path}: corrupt row of job {key!r} ({exc}); delete that row to rerun the job"
            ) from None
        if not isinstance(row, dict):
            raise UserError(f"{self.path}: corrupt row of job {key!r} (not a JSON object)")
        return row


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.signrm-run.lock`` for one run; raise :class:`UserError` naming the holder if
    another run holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = out / ".signrm-run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise UserError(
                f"{out} is in use by another experiment run ({holder}); wait for it to finish "
                "or use another output folder"
            ) from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def read_results(out_dir: str | os.PathLike) -> pd.DataFrame:
    """All result rows of an output folder (SQLite table, else ``results.csv``)."""
    out = Path(out_dir)
    db = out / "results.sqlite"
    if db.exists():
        return ResultStore(db).frame()
    csv = out / "results.csv"
    if csv.exists():
        return pd.read_csv(csv)
    raise FileNotFoundError(f"no results.sqlite or results.csv in {out}")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from signrm.data import atomic_write

    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False), suffix=".csv")


def run_experiment(
    config: ExperimentConfig | str | os.PathLike | dict,
    out_dir: str | os.PathLike,
    *,
    workers: int = 1,
    profile: str | None = None,
    progress: bool = True,
    max_jobs: int | None = None,
) -> pd.DataFrame:
    """Run every unfinished job of ``config`` and return all of its result rows.

    ``workers`` processes (joblib/loky; 1 = in process). Finished jobs already in
    ``out_dir/results.sqlite`` are skipped. ``max_jobs`` stops after that many new jobs (for tests
    and partial runs). Returns the experiment's rows (finished before and now).
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config, profile=profile)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be an integer >= 1, got {workers!r}")
    if max_jobs is not None and (
        isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 0
    ):
        raise UserError(f"max_jobs must be an integer >= 0 (or None for all), got {max_jobs!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _run_locked(cfg, out, workers, progress, max_jobs)


def _run_locked(
    cfg: ExperimentConfig, out: Path, workers: int, progress: bool, max_jobs: int | None
) -> pd.DataFrame:
    store = ResultStore(out / "results.sqlite")
    import yaml

    from signrm.data import atomic_write

    atomic_write(
        out / f"config-{cfg.name}.yaml",
        lambda tmp: Path(tmp).write_text(yaml.safe_dump(cfg.raw, sort_keys=False)),
        suffix=".yaml",
    )
    done = store.done_keys()
    todo = [j for j in cfg.jobs() if j["key"] not in done]
    # Longest jobs first (large n) keeps workers busy at the end.
    todo.sort(key=lambda j: -int(j["setting"].get("n", 0)))
    if max_jobs is not None:
        todo = todo[:max_jobs]
    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.n_jobs,
        initial=cfg.n_jobs - len([j for j in cfg.jobs() if j["key"] not in done]),
        desc=cfg.name,
        unit="job",
        disable=not progress,
    )
    threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        for row in _iterate(todo, workers, threads):
            store.add(row)
            bar.update(1)
    finally:
        bar.close()
        frame = store.frame()
        if not frame.empty:
            _write_csv(frame, out / "results.csv")
    return store.frame(cfg.name)


def _iterate(todo: list[dict], workers: int, threads: int) -> Iterable[dict]:
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            yield run_job(job, threads=threads)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(todo)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )
    try:
        futures = [pool.submit(run_job, job, threads) for job in todo]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_init(parent_pid: int) -> None:
    """In each worker: die with the parent (no orphan keeps computing after a kill)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="signrm-parent-watch").start()
