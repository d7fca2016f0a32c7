"""The README's test command is exactly what CI runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"## Tests\s+```bash\n(.+?)\n```", readme, re.S)
    assert m, "README has no Tests command block"
    cmd = m.group(1).strip()
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1].strip() == cmd


def _first_contact_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    sec = readme.split("## Install and solve", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.+?)\n```", sec, re.S)
    assert len(blocks) >= 2, "the first-contact section lost its command blocks"
    cmds = [ln.split("  #", 1)[0].strip() for ln in blocks[1].splitlines() if ln.strip()]
    assert cmds and all(c.startswith(".venv/bin/edgestar ") for c in cmds)
    return cmds


@pytest.mark.slow
def test_first_contact_commands_run(tmp_path: Path) -> None:
    """The README's first-contact commands, as a new user types them (the shipped model, the
    tree page, a small eval), run and write what they say; the install line is `pip install .`
    plus the same `edgestar solve` (what CI installs is the same package, editable)."""
    first = (ROOT / "README.md").read_text().split("## Install and solve", 1)[1]
    assert ".venv/bin/pip install . && .venv/bin/edgestar solve " in first
    for cmd in _first_contact_commands():
        argv = [sys.executable, "-m", "edgestar", *shlex.split(cmd)[1:], "--threads", "1"]
        out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"{cmd}: {out.stderr[-500:]}"
    assert (tmp_path / "tree.html").stat().st_size > 1000
    assert (tmp_path / "eval" / "results.jsonl").read_text().count("\n") == 40
