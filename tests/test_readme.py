"""The README's 15-line example runs as printed and shows what its comment claims."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_python_block(text: str) -> str:
    match = re.search(r"```python\n(.*?)```", text, flags=re.S)
    assert match, "README has no python code block"
    return match.group(1)


def test_readme_example_is_at_most_15_lines_and_reproduces_its_comment():
    code = _first_python_block(README.read_text())
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 15, f"README example has {len(lines)} non-blank lines"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    bt_angle, sign_angle = (float(v) for v in out.getvalue().split())
    # The comment says ~12.9 vs ~4.9 degrees (the default: cross-fitted bandwidth).
    assert bt_angle >= 9.0, bt_angle
    assert sign_angle <= 6.0, sign_angle
    assert abs(bt_angle - 12.9) < 0.5 and abs(sign_angle - 4.9) < 0.5, (bt_angle, sign_angle)
