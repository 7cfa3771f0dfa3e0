"""Resumable, parallel experiment runner.

Each (setting, seed) is one job with a stable key. Finished jobs are appended to a SQLite table
(``OUT/results.sqlite``, one committed transaction per job), so a killed run loses nothing that had
finished, and a rerun skips every key already present. ``OUT/results.csv`` is rewritten atomically
from the table at the end of a run. Jobs run in joblib worker processes; the parent process writes
results and drives a tqdm progress bar.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

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
        with self._connect() as con:
            con.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def done_keys(self) -> set[str]:
        with self._connect() as con:
            return {r[0] for r in con.execute("SELECT key FROM results")}

    def add(self, row: dict) -> None:
        payload = json.dumps({k: _jsonable(v) for k, v in row.items()})
        with self._connect() as con:  # one transaction, committed on exit
            con.execute(
                "INSERT OR REPLACE INTO results (key, experiment, finished, row) VALUES (?, ?, ?, ?)",
                (row["key"], row["experiment"], time.time(), payload),
            )

    def frame(self, experiment: str | None = None) -> pd.DataFrame:
        with self._connect() as con:
            if experiment is None:
                rows = con.execute("SELECT row FROM results ORDER BY finished").fetchall()
            else:
                rows = con.execute(
                    "SELECT row FROM results WHERE experiment = ? ORDER BY finished", (experiment,)
                ).fetchall()
        return pd.DataFrame([json.loads(r[0]) for r in rows])


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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
        todo = todo[: int(max_jobs)]
    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.n_jobs,
        initial=cfg.n_jobs - len([j for j in cfg.jobs() if j["key"] not in done]),
        desc=cfg.name,
        unit="job",
        disable=not progress,
    )
    workers = max(1, int(workers))
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
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=workers, return_as="generator_unordered", batch_size=1)
    yield from parallel(delayed(run_job)(job, threads) for job in todo)
