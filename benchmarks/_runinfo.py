"""Run records shared by the benchmark scripts: which commit ran, and atomic result files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from signrm.data import atomic_write

_REPO = Path(__file__).resolve().parent.parent


def commit() -> str:
    """``git rev-parse --short HEAD`` (``+dirty`` with uncommitted changes under src/), or ``?``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=_REPO, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a killed run never leaves half a results file)."""
    atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))
