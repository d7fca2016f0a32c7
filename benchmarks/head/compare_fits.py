"""Which head to fit: linear or MLP, rStar's pairwise loss, regression to Q, or both, measured on
the held-out problems of a `edgestar train head` run folder (its collected states; no search).

    python benchmarks/head/compare_fits.py RUN_DIR [--mlp 64] [--seeds 3]
    python benchmarks/head/compare_fits.py RUN_DIR --mlp 0 --losses both --l2 0,0.01,0.1,1

`--mlp 0` fits linear heads only. `--l2` fits each ridge penalty, plus (given several) the one
that 5-fold cross-validation over the training problems picks (`cv`), as `edgestar train head`.
Prints, per variant, the held-out pairwise accuracy (sibling steps), answer-pair accuracy
(a right and a wrong answer of one problem) and AUROC of final-answer correctness over all
held-out problems and over the first source never trained on, as mean over fit seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.train.head import (
    HeadTrainConfig,
    collect_states,
    evaluate_head,
    fit_head,
    training_rows,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--mlp", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--losses", default="pairwise,regression,both")
    ap.add_argument("--l2", default="0", help="comma list of ridge penalties")
    a = ap.parse_args()
    l2s: list[tuple[float, ...]] = [(float(v),) for v in a.l2.split(",")]
    if len(l2s) > 1:
        l2s.append(tuple(v for (v,) in l2s))
    cfg, states, recs = load_run(Path(a.run))
    ok = training_rows(recs, cfg)
    tr = [i for i, t in enumerate(ok) if t]
    te = [i for i, t in enumerate(ok) if not t]
    rows = []
    heads = ((), (a.mlp,)) if a.mlp else ((),)
    for hidden, loss, l2 in itertools.product(heads, a.losses.split(","), l2s):
        figs = []
        for seed in range(a.seeds):
            c = dataclasses.replace(cfg, hidden=hidden, loss=loss, seed=seed, l2=l2)
            head = fit_head(states[tr], [recs[i] for i in tr], c, "0" * 64, "x")
            per, overall = evaluate_head(head, states[te], [recs[i] for i in te])
            unseen = [s for s in per if s.unseen]
            figs.append((overall.pairwise_accuracy, overall.answer_pair_accuracy, overall.auroc,
                         unseen[0].pairwise_accuracy if unseen else None,
                         unseen[0].answer_pair_accuracy if unseen else None,
                         unseen[0].auroc if unseen else None))  # fmt: skip
        mean = [_mean([f[k] for f in figs]) for k in range(6)]
        pen = f"{l2[0]:g}" if len(l2) == 1 else f"cv (picked {head.meta['l2']:g})"
        rows.append((f"{'linear' if not hidden else f'mlp{hidden[0]}'}", loss, pen, *mean))
    print(f"{len(tr)} training rows, {len(te)} held-out rows ({a.seeds} fit seeds each)\n")
    print("| head | loss | l2 | pairwise acc | answer-pair acc | AUROC | unseen pairwise acc | "
          "unseen answer-pair acc | unseen AUROC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r[:3]) + " | " + " | ".join(_f(x) for x in r[3:]) + " |")


def load_run(run: Path) -> tuple[HeadTrainConfig, np.ndarray, list[dict[str, Any]]]:
    """A finished `edgestar train head` run folder: its config, states and node records (the
    shards already collected are read back; nothing is searched)."""
    rep = json.loads((run / "report.json").read_text())
    cfg = HeadTrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in rep["config"].items()})  # fmt: skip
    model = str(json.loads((run / "config.json").read_text())["model_path"])
    states, recs, _ = collect_states(model, run, dataclasses.replace(cfg, max_collect_seconds=0))
    return cfg, states, recs


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
