"""The shipped edgestar-tiny bundle (models/edgestar-tiny): it is found by name, and is the
default until models/edgestar-smol ships (tests/test_default_bundle.py tests that one), its
checksums verify (and a tampered copy is refused), it solves the 20 pinned test-split problems at
the default budget with about the accuracy its model card states, and `edgestar solve` with no
model argument answers the README's first question."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgestar
from edgestar.answer import equivalent
from edgestar.bundle import MANIFEST, default_bundle_path, read_bundle, shipped_bundles
from edgestar.types import ModelError

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "models" / "edgestar-tiny"
CARD = ROOT / "models" / "edgestar-tiny.md"
PINNED = 20
PINNED_SLACK = 3
"""How far under the card's pinned score a run may land. The card's figure was measured on one
CPU (a Xeon with AVX-512; llama.cpp compiles its kernels for the CPU it is built on, and on CPUs
without AMX it also repacks the quantized weights), and MCTS samples: a logit that rounds
differently can re-draw a trajectory, as another seed does. Seeds 0, 1, 2 on that Xeon gave
11, 9 and 10 of 20 (issue 16), so a drop of 3 is allowed; a broken bundle scores far lower."""


def _card_pinned() -> int:
    """The card's stated score on the pinned problems: 'pinned test problems ... N/20'."""
    m = re.search(r"pinned test problems.*?(\d+)/20", CARD.read_text(encoding="utf-8"), re.S)
    assert m, "the model card states no score on the 20 pinned problems"
    return int(m.group(1))


def _pinned_problems() -> list:
    from edgestar.train.problems import load_source
    from edgestar.train.recipe import load_recipe

    recipe = load_recipe(ROOT / "train" / "recipes" / "edgestar-tiny.yaml")
    t = recipe.test
    return load_source(t.source, t.n, t.seed, difficulty=t.difficulty)[:PINNED]


def test_default_bundle_is_found_and_verifies() -> None:
    smol = ROOT / "models" / "edgestar-smol"
    found = default_bundle_path()
    assert found is not None
    assert found.resolve() == (smol if (smol / MANIFEST).is_file() else BUNDLE).resolve()
    assert shipped_bundles()["edgestar-tiny"].resolve() == BUNDLE.resolve()
    b = read_bundle("edgestar-tiny")
    assert b.step_format == "rstar" and b.policy.kind == "gguf" and b.ppm is not None
    assert b.policy.quant == "q4_k_m" and b.ppm.quant == "q8_0"
    assert "onnx" in b.alternates
    total = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert total < 60e6, f"the shipped bundle is {total / 1e6:.1f} MB"


def test_tampered_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(BUNDLE, copy)
    f = copy / read_bundle(BUNDLE).policy.file
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum|SHA|sha256|changed"):
        read_bundle(copy)


@pytest.mark.slow
def test_pinned_problems_at_the_default_budget(capsys: pytest.CaptureFixture[str]) -> None:
    problems = _pinned_problems()
    assert len(problems) == PINNED
    right = 0
    with edgestar.load("edgestar-tiny", threads=1) as solver:
        for p in problems:
            r = solver.solve(p.question, seed=0)
            right += r.answer is not None and equivalent(r.answer, p.answer)
    stated = _card_pinned()
    with capsys.disabled():
        print(f"\nshipped edgestar-tiny: {right}/{PINNED} pinned test problems (card: {stated}/20)")
    assert right >= stated - PINNED_SLACK, f"{right}/{PINNED}, card {stated}/{PINNED}"


def test_cli_solves_without_naming_a_model() -> None:
    q = "A shop sells pens at 3 for $2. How much do 18 pens cost?"
    out = subprocess.run(
        [sys.executable, "-m", "edgestar", "solve", "--threads", "1", q],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "no answer printed"
