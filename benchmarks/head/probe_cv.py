"""What a linear probe on Qwen2.5-Coder-0.5B's hidden states can learn about its own answers:
leave-one-generator-family-out answer-pair accuracy for several feature sets, and a learning
curve. Reads an `edgestar train head` run's states; runs no model.

    python benchmarks/head/probe_cv.py RUN_DIR [--l2 30,100,300]

For every answer step with a known outcome: logistic regression of right/wrong (features
standardized on the training fold, ridge penalty l2 * |w|^2 / n, L-BFGS in torch), fitted on
every family but one and scored on that one; a (right, wrong) pair of answers to the same
problem counts as ordered right when the right one scores higher (ties count wrong).

Feature sets: the answer step's hidden state (what the shipped head reads); that plus a "the
chain ran code" flag (repeated 8 times so the penalty does not drown it); the answer state with
its parent step's state; the answer state with the mean state along the path. The learning curve
refits the answer-state probe on a seeded half and three quarters of the problems.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def load(run: Path) -> dict[str, Any]:
    """Per answer with a known outcome: its state, its parent's, the path's mean, code flag,
    outcome, source, problem."""
    cols: dict[str, list[Any]] = defaultdict(list)
    for f in sorted(run.glob("states-*.npz")):
        z = np.load(f)
        meta: list[dict[str, Any]] = json.loads(bytes(z["meta"]).decode())
        states = z["states"]
        row = {(n["problem"], n["id"]): i for i, n in enumerate(meta)}
        for i, n in enumerate(meta):
            if n["kind"] != "answer" or n["correct"] is None:
                continue
            path, cur = [], n
            while cur is not None:
                path.append(row[(n["problem"], cur["id"])])
                j = row.get((n["problem"], cur["parent"]))
                cur = meta[j] if j is not None else None
            cols["answer"].append(states[i])
            cols["parent"].append(states[path[1]] if len(path) > 1 else states[i])
            cols["mean"].append(states[path].mean(0))
            cols["code"].append(float(any(meta[j]["kind"] == "code" for j in path[1:])))
            cols["y"].append(float(n["correct"]))
            cols["source"].append(n["source"])
            cols["problem"].append(n["problem"])
    return {k: np.array(v) if k not in ("source", "problem") else v for k, v in cols.items()}


def fit(x: np.ndarray, y: np.ndarray, l2: float) -> Callable[[np.ndarray], np.ndarray]:
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a = torch.tensor(((x - mu) / sd).astype(np.float32))
    t = torch.tensor(y, dtype=torch.float32)
    w = torch.zeros(a.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + b, t)
        loss = loss + l2 * (w * w).sum() / len(t)
        loss.backward()
        return loss

    opt.step(closure)  # type: ignore[arg-type]
    return lambda z: (torch.tensor(((z - mu) / sd).astype(np.float32)) @ w + b).detach().numpy()


def lofo(
    d: dict[str, Any], x: np.ndarray, l2: float, keep: set[str] | None = None
) -> tuple[int, int]:
    """(pairs ordered right, pairs) over every family left out in turn."""
    y, src, prob = d["y"], d["source"], d["problem"]
    good = total = 0
    for fam in sorted(set(src)):
        te = [i for i in range(len(y)) if src[i] == fam]
        tr = [i for i in range(len(y)) if src[i] != fam and (keep is None or prob[i] in keep)]
        score = dict(zip(te, fit(x[tr], y[tr], l2)(x[te]), strict=True))
        by: dict[str, list[int]] = defaultdict(list)
        for i in te:
            by[prob[i]].append(i)
        for rows in by.values():
            for r in rows:
                for w in rows:
                    if y[r] == 1 and y[w] == 0:
                        total += 1
                        good += bool(score[r] > score[w])
    return good, total


def main() -> None:
    args = sys.argv[1:]
    l2s = [30.0, 100.0]
    if "--l2" in args:
        i = args.index("--l2")
        l2s = [float(v) for v in args[i + 1].split(",")]
        del args[i : i + 2]
    if len(args) != 1 or not Path(args[0]).is_dir():
        sys.exit("usage: probe_cv.py RUN_DIR [--l2 30,100,300]")
    torch.set_num_threads(1)
    d = load(Path(args[0]))
    code = np.repeat(d["code"][:, None], 8, axis=1)
    sets = {
        "answer state": d["answer"],
        "answer state + ran code": np.hstack([d["answer"], code]),
        "answer + parent state": np.hstack([d["answer"], d["parent"]]),
        "answer + path-mean state": np.hstack([d["answer"], d["mean"]]),
    }
    print(f"{len(d['y'])} answers, {int(d['y'].sum())} right, {len(set(d['problem']))} problems, "
          f"{len(set(d['source']))} families")  # fmt: skip
    print("\n| features | l2 | answer pairs ordered right |\n|---|---|---|")
    for name, x in sets.items():
        for l2 in l2s:
            g, t = lofo(d, x, l2)
            print(f"| {name} | {l2:g} | {g}/{t} = {g / t:.3f} |")
    print(
        "\n| share of training problems | draw | answer pairs ordered right (answer state, "
        f"l2 {l2s[-1]:g}) |\n|---|---|---|"
    )
    rng = np.random.default_rng(0)
    problems = sorted(set(d["problem"]))
    for share in (0.5, 0.75):
        for draw in range(2):
            keep = set(rng.choice(problems, int(share * len(problems)), replace=False).tolist())
            g, t = lofo(d, d["answer"], l2s[-1], keep)
            print(f"| {share:g} | {draw} | {g}/{t} = {g / t:.3f} |")
    g, t = lofo(d, d["answer"], l2s[-1])
    print(f"| 1 | - | {g}/{t} = {g / t:.3f} |")


if __name__ == "__main__":
    main()
