"""One self-evolution rise run (train/recipes/micro-rise.yaml or another recipe) under a chosen
training seed and torch numerics, its round-by-round table printed and written as JSON.

`benchmarks/rise/variants.sh` runs it once per seed and numerics variant (threads, oneDNN on/off,
AVX2 instead of AVX-512 kernels in ATen, MKL and oneDNN) so the figures in
benchmarks/rise/README.md can be reproduced. The seed replaces the recipe's seed (base
initialisation, rollout and evaluation sampling, replay draw) and every SFT stage's seed (data
order); problems and the held test split stay as the recipe has them.

    python benchmarks/rise/variants.py --seed 1 --out runs/rise/seed1 [--threads 2] [--no-mkldnn]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _reseed(recipe: Any, seed: int, threads: int) -> Any:
    def rnd(r: Any) -> Any:
        return dataclasses.replace(r, sft=dataclasses.replace(r.sft, seed=seed))

    return dataclasses.replace(
        recipe,
        seed=seed,
        threads=threads,
        bootstrap=rnd(recipe.bootstrap) if recipe.bootstrap is not None else None,
        rounds=tuple(rnd(r) for r in recipe.rounds),
    )


def _table(rows: tuple[dict[str, Any], ...]) -> list[str]:
    out = ["round  greedy  mcts   mcts_cov  train solved  SFT examples"]
    for r in rows:
        ev, ro, ds = r["eval"], r.get("rollouts", {}), r.get("datasets", {})
        out.append(
            f"{r['round']:>5}  {ev['greedy']:6.3f}  {ev['mcts']:5.3f}  "
            f"{ev.get('mcts_coverage', float('nan')):8.3f}  "
            f"{ro.get('solved_share', float('nan')):12.3f}  {ds.get('sft_examples', '-')}"
        )
    return out


_ROUND0 = ("base", "round0.sft", "round0.export", "round0.eval", "round0.report")
_SAME = ("name", "seed", "threads", "base", "test", "bootstrap", "eval")


def _seed_from_bootstrap(recipe: Any, src: Path, out: Path) -> None:
    """Copy src's finished base and round 0 into a new run folder for `recipe`, refusing unless
    everything those stages depend on is the same, so the result equals a run from scratch
    (every stage is deterministic given the recipe, seed and numerics)."""
    import hashlib
    import shutil

    from edgestar.train.evolve import _jsonable

    old = json.loads((src / "recipe.json").read_text())
    new = json.loads(json.dumps(_jsonable(dataclasses.asdict(recipe)), sort_keys=True))
    diff = [k for k in _SAME if old.get(k) != new.get(k)]
    if diff:
        raise SystemExit(f"{src}: differs from the recipe in {', '.join(diff)}; run from scratch")
    if out.exists():
        raise SystemExit(f"{out} exists")
    m = json.loads((src / "manifest.json").read_text())
    out.mkdir(parents=True)
    for d in ("base", "round0"):
        shutil.copytree(src / d, out / d, symlinks=True)
    rec_json = json.dumps(new, sort_keys=True)
    stages = {k: v for k, v in m["stages"].items() if k in _ROUND0}
    stages["base"] = {**stages["base"], "path": str((out / "base").resolve())}
    manifest = {"recipe_hash": hashlib.sha256(rec_json.encode()).hexdigest()[:16],
                "stages": stages, "from_bootstrap": str(src)}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(ROOT / "train" / "recipes" / "micro-rise.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch and llama.cpp threads")
    ap.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn off")
    ap.add_argument("--label", default="")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out")
    ap.add_argument("--out", required=True)
    ap.add_argument("--from-bootstrap", metavar="RUN_DIR",
                    help="start --out from RUN_DIR's base and round 0 (same seed, numerics and "
                    "bootstrap; only the rounds may differ), to measure other rounds cheaply")  # fmt: skip
    ap.add_argument("--ablate-self-data", action="store_true",
                    help="ablation: the rounds' SFT leaves out their own verified trajectories "
                    "(replay only), to measure how much of the rise comes from them")  # fmt: skip
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    from edgestar.train.evolve import evolve
    from edgestar.train.recipe import load_recipe

    recipe = _reseed(load_recipe(a.recipe), a.seed, a.threads)
    if a.ablate_self_data:
        import edgestar.train.evolve as ev

        ev.sft_examples = lambda tree, problem_id="", top_k=2: []  # type: ignore[assignment]
    resume = a.resume
    if a.from_bootstrap:
        _seed_from_bootstrap(recipe, Path(a.from_bootstrap), Path(a.out))
        resume = True
    rep = evolve(recipe, Path(a.out), resume=resume, progress=False, log=lambda s: None)
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA",
                                      "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS") if k in os.environ}  # fmt: skip
    head = (
        f"{recipe.name} seed {a.seed} threads {a.threads} mkldnn {torch.backends.mkldnn.enabled} "
        f"torch-cpu {torch.backends.cpu.get_cpu_capability()} env {env} {a.label}".rstrip()
    )
    lines = [head, f"{recipe.eval.n} held problems, {rep.seconds:.0f} s", *_table(rep.rounds)]
    print("\n".join(lines), flush=True)
    res = {"label": a.label, "seed": a.seed, "threads": a.threads,
           "mkldnn": torch.backends.mkldnn.enabled, "env": env, "seconds": rep.seconds,
           "cpu": platform.processor() or platform.machine(),
           "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "rounds": [{"round": r["round"], **{k: r["eval"][k] for k in ("greedy", "mcts")},
                       "solved_share": r.get("rollouts", {}).get("solved_share")}
                      for r in rep.rounds]}  # fmt: skip
    (Path(a.out) / "variant.json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
