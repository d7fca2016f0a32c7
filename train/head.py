"""`edgestar train head`: train a process reward head on a GGUF model's own hidden states.

Three stages, each resumable, all on the CPU:

1. Collect (`collect_states`): the model's own search (`edgestar.search.run_search`, MCTS by
   default) on problems with known answers, terminal-guided (rStar's first rounds: a terminal is
   +1 when its answer is `equivalent` to the gold one, else -1, backed up to Q). Every node's
   hidden state is the one the llama.cpp backend recorded while sampling its last token
   (`Candidate.hidden`: no second pass); only steps the runtime writes itself (rstar's answer
   after the final code's output) cost one cached decode (`hidden_states`). Per node: the state,
   N, Q, kind, and how many correct / wrong terminals lie below it. Problems are cut into shards
   written atomically as `states-NNNNN.npz`; a killed run resumes by skipping existing shards;
   with a Ray address the shards fan out as Ray tasks, like the rollouts. `strategy` may also be
   `best_of_n` or `beam`, which back nothing up: a node's N and Q are then the Monte Carlo
   estimate of the terminals below it (N = their number, Q = (right - wrong) / N, Math-Shepherd's
   label). Best-of-n spends every token on a chain that reaches an answer, where MCTS at width w
   leaves most of each level's w siblings unvisited: on a 0.5B model it labels several times more
   answers per CPU second, which is what an answer-ranking head needs.
2. Fit (`fit_head`): a linear head or a small MLP on standardized states, with rStar's pairwise
   loss on sibling pairs (chosen: the 2 highest-Q children that reach a correct answer; rejected:
   the 2 lowest-Q children that reach only wrong ones; Q margin >= 0.5, as train/datasets.py's
   `ppm_pairs`), and/or regression of tanh(output) to Q on every visited step and to +-1 on
   every answer step, visited or not (`loss`). A ridge penalty on the weights (`l2`); given a
   grid, it is chosen by cross-validation grouped by problem on the training rows alone.
   `outcome` fits only the answer steps: logistic regression of right/wrong (an outcome reward
   head). Measured on Qwen2.5-Coder-0.5B (benchmarks/head/README.md), sibling steps labelled by
   one rollout each rank at chance under every step loss, while answer steps carry the signal
   that choosing among finished chains needs.
3. Report (`evaluate_head`): on problems never trained on (a seeded share of each training
   source, plus whole `holdout` sources: generator families never seen), per source: pairwise
   accuracy (share of held-out sibling pairs ordered right), answer-pair accuracy (pairs of a
   right and a wrong answer step of one problem ordered right: `answer_pairs`) and the AUROC of
   final-answer correctness (the head's score of each answer step vs whether it is right).

Output folder: problems.jsonl, config.json, states-*.npz, head.npz (bound to the model file's
sha256), report.json, report.md. torch is used for fitting only (train/ may); using the head
needs numpy alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.checkpoint import atomic_write_text
from edgestar.head import Head, file_sha256, save_head
from edgestar.types import InputError, ModelError

from ._head_report import HeadReport, SourceFigures, auroc
from .problems import load_source, normalize_question, questions_in
from .schema import ProblemRecord

__all__ = [
    "HeadReport",
    "HeadTrainConfig",
    "SourceFigures",
    "answer_pairs",
    "auroc",
    "collect_states",
    "evaluate_head",
    "fit_head",
    "sibling_pairs",
    "train_head",
    "training_rows",
]

LOSSES = ("pairwise", "regression", "both", "outcome")
"""pairwise: rStar's loss on sibling steps; regression: tanh(output) to Q on every visited step
and to +-1 on every answer step; both: their sum; outcome: logistic regression of answer
correctness on the answer steps alone (an outcome reward head: score = 2 P(right) - 1)."""
STRATEGIES = ("mcts", "best_of_n", "beam")
"""Searches that collect: MCTS backs terminal values up itself; the others get N and Q from the
terminals below each node (`_node_records`)."""


@dataclass(frozen=True)
class HeadTrainConfig:
    problems: tuple[str, ...]
    """Training problem sources (train/problems.py specs): synthetic[:skills],
    reasoning-gym:NAME, a .jsonl file."""
    holdout: tuple[str, ...] = ()
    """Sources used only for evaluation (a generator family the head never sees)."""
    exclude: tuple[str, ...] = ()
    """JSONL evaluation files: a problem whose question is in one is never searched (neither
    trained on nor used for the held-out figures), as a recipe's `exclude:`."""
    n: int = 48
    """Problems per source."""
    seed: int = 0
    step_format: str = "plain"
    strategy: str = "mcts"
    width: int = 4
    rollouts: int = 8
    max_step_tokens: int = 256
    max_depth: int = 12
    temperature: float = 0.8
    threads: int = 1
    n_ctx: int = 4096
    shard_size: int = 8
    heldout_share: float = 0.25
    loss: str = "outcome"
    hidden: tuple[int, ...] = ()
    """MLP hidden widths; () = a linear head."""
    epochs: int = 300
    code_first: bool = False
    """tir: every chain opens inside a code block (`SearchConfig.code_first`), as the runtime's
    default search for a chat model does, so the head learns from the chains it will rank."""
    max_collect_seconds: float | None = None
    """Stop starting new shards after this long; fit on the shards done (resume adds more)."""
    lr: float = 1e-2
    weight_decay: float = 1e-2
    l2: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    """Ridge penalty on the head's weights (not its biases), added to the loss. Given several,
    the fit picks one by `cv_folds`-fold cross-validation grouped by problem on the training rows
    (the unpenalised loss on each left-out fold, summed) and refits on all of them: a choice made
    on training problems alone, never on the held-out ones."""
    cv_folds: int = 5

    def __post_init__(self) -> None:
        if not self.problems:
            raise InputError("train head: give at least one --problems source")
        if self.strategy not in STRATEGIES:
            raise InputError(f"train head: strategy must be one of {', '.join(STRATEGIES)}")
        for name in ("n", "width", "rollouts", "max_step_tokens", "max_depth", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"train head: {name} must be a positive whole number, got {v!r}")
        if self.shard_size < 1 or self.epochs < 1:
            raise InputError("train head: shard_size and epochs must be >= 1")
        if not 0 < self.heldout_share < 1:
            raise InputError("train head: heldout_share must be in (0, 1)")
        if self.loss not in LOSSES:
            raise InputError(f"train head: loss must be one of {', '.join(LOSSES)}")
        if any(h < 1 for h in self.hidden):
            raise InputError("train head: MLP widths must be >= 1")
        if not self.l2 or any(not (isinstance(v, (int, float)) and v >= 0) for v in self.l2):
            raise InputError(f"train head: l2 must be one or more numbers >= 0, got {self.l2!r}")
        if self.cv_folds < 2:
            raise InputError("train head: cv_folds must be >= 2")


# ------------------------------------------------------------------------------ stage 1


def _problems(cfg: HeadTrainConfig) -> list[tuple[ProblemRecord, bool]]:
    """(problem, is_holdout_source) for every source, ids made unique per source."""
    out: list[tuple[ProblemRecord, bool]] = []
    seen: set[str] = set()
    banned = {normalize_question(q) for f in cfg.exclude for q in questions_in(f)}
    for specs, hold in ((cfg.problems, False), (cfg.holdout, True)):
        for spec in specs:
            for p in load_source(spec, cfg.n, cfg.seed):
                if normalize_question(p.question) in banned:
                    continue
                src = spec  # the spec names the generator family (synthetic:skills, rg:NAME)
                pid = f"{spec}/{p.id}"
                if pid in seen:
                    continue
                seen.add(pid)
                out.append((ProblemRecord(**{**p.to_dict(), "id": pid, "source": src}), hold))
    if not out:
        raise InputError("train head: the problem sources gave no problems")
    # round-robin over sources, so that a collection cut short still covers each of them
    by_src: dict[str, list[tuple[ProblemRecord, bool]]] = {}
    for item in out:
        by_src.setdefault(item[0].source, []).append(item)
    queues = list(by_src.values())
    return [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]


def _node_records(tree: Any, mc: bool = False) -> list[dict[str, Any]]:
    """Per node (root excluded): parent, kind, N, Q, correct, answer, tokens generated, and the
    correct / wrong terminals below it (a failed or invalid step counts as wrong). `mc`: the
    search backed nothing up (best-of-n, beam), so a node's N and Q are the count and mean +-1
    outcome of those terminals."""
    good = [0] * len(tree.nodes)
    bad = [0] * len(tree.nodes)
    for n in reversed(tree.nodes):  # children have larger ids than their parents
        if n.terminal:
            if n.correct:
                good[n.id] += 1
            else:
                bad[n.id] += 1
        if n.parent is not None:
            good[n.parent] += good[n.id]
            bad[n.parent] += bad[n.id]
    rows = []
    for n in tree.nodes[1:]:
        seen = good[n.id] + bad[n.id]
        visits, q = (seen, (good[n.id] - bad[n.id]) / seen) if mc and seen else (n.N, n.Q)
        rows.append(
            {"id": n.id, "parent": n.parent, "kind": n.kind, "N": visits, "Q": round(q, 6),
             "correct": n.correct, "good": good[n.id], "bad": bad[n.id], "answer": n.answer,
             "tokens": n.n_tokens}
        )  # fmt: skip
    return rows


def _collect_shard(
    model: Path,
    items: list[tuple[ProblemRecord, bool]],
    cfg: HeadTrainConfig,
    lora: Path | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    from edgestar.backends.llamacpp import LlamaCppPolicy
    from edgestar.executor import Executor
    from edgestar.formats import get_format
    from edgestar.search import run_search
    from edgestar.types import Budget, SearchConfig

    from .rollouts import problem_seed

    fmt = get_format(cfg.step_format)
    scfg = SearchConfig(
        width=cfg.width, temperature=cfg.temperature, max_step_tokens=cfg.max_step_tokens,
        max_depth=cfg.max_depth, code_first=cfg.code_first,
    )  # fmt: skip
    states: list[np.ndarray] = []
    recs: list[dict[str, Any]] = []
    pol = LlamaCppPolicy(model, n_ctx=cfg.n_ctx, n_threads=cfg.threads, lora=lora)
    try:
        pol.enable_hidden()
        with Executor() as runner:
            for p, hold in items:
                _, tree = run_search(
                    p.question, policy=pol, fmt=fmt, strategy=cfg.strategy,
                    budget=Budget(rollouts=cfg.rollouts), config=scfg, runner=runner,
                    seed=problem_seed(cfg.seed, p.id), gold=p.answer, keep_tree=False,
                )  # fmt: skip
                nodes = tree.nodes[1:]
                rows = _node_records(tree, mc=cfg.strategy != "mcts")
                missing = [n for n, r in zip(nodes, rows, strict=True)
                           if n.hidden is None and r["N"] > 0]  # fmt: skip
                if missing:  # runtime-written steps: one cached decode each
                    for n, h in zip(missing, pol.hidden_states([tree.prefix(n) for n in missing]),
                                    strict=True):  # fmt: skip
                        n.hidden = h
                for n, r in zip(nodes, rows, strict=True):
                    if n.hidden is None:
                        continue  # never visited and never recorded (a capped candidate)
                    states.append(np.asarray(n.hidden, dtype=np.float32))
                    recs.append({**r, "problem": p.id, "source": p.source, "holdout": hold})
    finally:
        pol.close()
    d = pol_n_embd(model) if not states else states[0].shape[0]
    return (np.stack(states) if states else np.zeros((0, d), np.float32)), recs


def pol_n_embd(model: Path) -> int:
    from edgestar.backends._llama_raw import check_gguf

    md = check_gguf(model).metadata
    arch = md.get("general.architecture", "")
    return int(md.get(f"{arch}.embedding_length", 1))


def _shard_path(out: Path, i: int) -> Path:
    return out / f"states-{i:05d}.npz"


def collect_states(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: HeadTrainConfig,
    progress: bool = False,
    ray_address: str | None = None,
    lora: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]], float]:
    """Search every problem, record states; returns (states, node records, seconds spent now).
    Resumes: shards already written are read back, not searched again. `ray_address` ('local',
    'auto' or a cluster) searches the missing shards as Ray tasks (as rollouts do); a problem's
    seed depends only on its id, so the states do not depend on where a shard ran. `lora`: a
    GGUF LoRA adapter applied to `model` while searching (the states are the adapted model's)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adapter = Path(lora) if lora is not None else None
    keys = (
        _COLLECT_KEYS
        + (("exclude",) if cfg.exclude else ())
        + (("code_first",) if cfg.code_first else ())
    )  # older runs keep their keys
    keyed = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k in keys}))
    cfg_path = out / "config.json"
    made = {"collect": keyed, "model_sha256": file_sha256(model)}
    if adapter is not None:
        made["adapter_sha256"] = file_sha256(adapter)
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if {k: old.get(k) for k in ("collect", "model_sha256", "adapter_sha256")} != {
            "adapter_sha256": None,
            **made,
        }:
            raise InputError(
                f"{out} holds states collected with other settings or another model or "
                "adapter; use a new --out folder"
            )
    else:
        atomic_write_text(cfg_path, json.dumps({**made, "model_path": str(model)}, indent=1) + "\n")
    items = _problems(cfg)
    shards = [items[i : i + cfg.shard_size] for i in range(0, len(items), cfg.shard_size)]
    t0 = time.perf_counter()
    todo = [i for i in range(len(shards)) if not _shard_path(out, i).is_file()]
    if ray_address is not None and todo:
        _collect_on_ray(ray_address, Path(model), out, shards, todo, cfg, adapter)
    done = []
    for i, shard in enumerate(shards):
        path = _shard_path(out, i)
        if not path.is_file():
            spent = time.perf_counter() - t0
            if cfg.max_collect_seconds is not None and spent > cfg.max_collect_seconds:
                continue
            h, recs = _collect_shard(Path(model), shard, cfg, adapter)
            _write_states(path, h, recs)
            if progress:
                print(f"shard {i + 1}/{len(shards)}: {len(recs)} nodes", flush=True)
        done.append(i)
    seconds = time.perf_counter() - t0
    if not done:
        raise InputError("train head: no state shard collected yet")
    hs, recs = [], []
    for i in done:
        try:
            with np.load(_shard_path(out, i), allow_pickle=False) as z:
                hs.append(z["states"])
                recs += json.loads(bytes(z["meta"]).decode())
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{_shard_path(out, i)}: corrupt state shard ({e})") from None
    return np.concatenate(hs), recs, seconds


def _collect_on_ray(
    address: str,
    model: Path,
    out: Path,
    shards: list,
    todo: list[int],
    cfg: HeadTrainConfig,
    lora: Path | None = None,
) -> None:
    from .rollouts import ray_map

    ray_map(
        address, _collect_shard, {i: (model, shards[i], cfg, lora) for i in todo},
        lambda i, res: _write_states(_shard_path(out, i), *res),
    )  # fmt: skip


def _write_states(path: Path, h: np.ndarray, recs: list[dict[str, Any]]) -> None:
    meta = np.frombuffer(json.dumps(recs).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, states=h.astype(np.float32), meta=meta)
    os.replace(tmp, path)


_COLLECT_KEYS = (
    "problems", "holdout", "n", "seed", "step_format", "strategy", "width", "rollouts",
    "max_step_tokens", "max_depth", "temperature", "n_ctx", "shard_size",
)  # fmt: skip


# ------------------------------------------------------------------------------ stage 2


_UNSCORED = ("error", "invalid")


def _target(r: dict[str, Any]) -> float | None:
    """The value a row is regressed to, or None when it has none to learn."""
    if r["kind"] == "answer" and r.get("correct") is not None:
        return 1.0 if r["correct"] else -1.0
    if r["N"] > 0 and r["kind"] not in _UNSCORED:
        return float(r["Q"])
    return None


def training_rows(recs: Sequence[dict[str, Any]], cfg: HeadTrainConfig) -> list[bool]:
    """Per row: True when it may be trained on (not a holdout source, not a held-out problem)."""
    return [
        not (r["holdout"] or heldout_problem(r["problem"], cfg.heldout_share, cfg.seed))
        for r in recs
    ]


def heldout_problem(problem_id: str, share: float, seed: int) -> bool:
    h = hashlib.sha256(f"head-split:{seed}:{problem_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2**64 < share


def sibling_pairs(
    recs: Sequence[dict[str, Any]], per_side: int = 2, margin: float = 0.5
) -> list[tuple[int, int]]:
    """(chosen, rejected) row indices, rStar's rule (see the module docstring)."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(recs):
        groups.setdefault((r["problem"], r["parent"]), []).append(i)
    pairs = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        pos = sorted((i for i in rows if recs[i]["good"] > 0), key=lambda i: -recs[i]["Q"])
        neg = sorted(
            (i for i in rows if recs[i]["good"] == 0 and recs[i]["bad"] > 0),
            key=lambda i: recs[i]["Q"],
        )
        for c in pos[:per_side]:
            for r in neg[:per_side]:
                if recs[c]["Q"] - recs[r]["Q"] >= margin:
                    pairs.append((c, r))
    return pairs


def fit_head(
    states: np.ndarray,
    recs: Sequence[dict[str, Any]],
    cfg: HeadTrainConfig,
    model_sha256: str,
    model_name: str,
) -> Head:
    """Fit a head on `states`/`recs` (the training rows only); with several `cfg.l2`, choose
    the penalty by cross-validation grouped by problem first (`meta['l2_cv']` keeps the losses)."""
    visited = _fit_rows(recs, cfg)
    if not visited:
        what = "judged answer steps (outcome loss)" if cfg.loss == "outcome" else "visited nodes"
        raise InputError(f"train head: no {what} to learn from")
    x = states.astype(np.float64)
    mean = x[visited].mean(0)
    scale = x[visited].std(0) + 1e-3
    z = (x - mean) / scale
    l2, cv = cfg.l2[0], {}
    if len(cfg.l2) > 1:
        cv = _cv_losses(z, recs, cfg)
        l2 = min(cfg.l2, key=lambda v: (cv[v], -v))  # ties: the stronger penalty
    net, n_pairs, n_nodes = _fit(z, recs, cfg, l2)
    lin = [m for m in net if m.__class__.__name__ == "Linear"]
    return Head(
        tuple(m.weight.detach().double().numpy().T.copy() for m in lin),
        tuple(m.bias.detach().double().numpy().copy() for m in lin),
        mean,
        scale,
        model_sha256=model_sha256,
        model_name=model_name,
        meta={"loss": cfg.loss, "train_pairs": n_pairs, "train_nodes": n_nodes, "l2": l2,
              **({"l2_cv": {str(k): round(v, 5) for k, v in cv.items()}} if cv else {})},
    )  # fmt: skip


def _loss_terms(recs: Sequence[dict[str, Any]], cfg: HeadTrainConfig) -> tuple[Any, ...]:
    """(visited row indices, their targets, chosen rows, rejected rows, use_pairs, use_reg,
    outcome). With the outcome loss the "visited" rows are the judged answer steps alone."""
    import torch

    if cfg.loss == "outcome":
        ans = _fit_rows(recs, cfg)
        none = torch.zeros(0, dtype=torch.long)
        y = [1.0 if recs[i]["correct"] else 0.0 for i in ans]
        return (torch.tensor(ans, dtype=torch.long), torch.tensor(y), none, none, False,
                len(ans) > 0, True)  # fmt: skip
    visited = _fit_rows(recs, cfg)
    pairs = sibling_pairs(recs)
    use_pairs = cfg.loss in ("pairwise", "both") and len(pairs) > 0
    use_reg = cfg.loss in ("regression", "both") or not use_pairs
    return (
        torch.tensor(visited, dtype=torch.long),
        torch.tensor([_target(recs[i]) for i in visited], dtype=torch.float32),
        torch.tensor([c for c, _ in pairs], dtype=torch.long),
        torch.tensor([r for _, r in pairs], dtype=torch.long),
        use_pairs,
        use_reg and len(visited) > 0,
        False,
    )


def _is_judged_answer(r: dict[str, Any]) -> bool:
    return r["kind"] == "answer" and r.get("correct") is not None


def _fit_rows(recs: Sequence[dict[str, Any]], cfg: HeadTrainConfig) -> list[int]:
    """The rows a loss learns from. Outcome: the judged answer steps. The step losses: what the
    search scores, visited steps that are not failed or cut (those are -1 by rule), and every
    answer step, whose value is known without a visit (right: +1, wrong: -1)."""
    if cfg.loss == "outcome":
        return [i for i, r in enumerate(recs) if _is_judged_answer(r)]
    return [i for i, r in enumerate(recs) if _target(r) is not None]


def _loss(r: Any, terms: tuple[Any, ...]) -> Any:
    import torch

    vi, q, pc, pr, use_pairs, use_reg, outcome = terms
    loss = torch.zeros(())
    if outcome:
        # score = tanh(r) = 2 sigmoid(2 r) - 1, so 2 r is the logit of P(right)
        return torch.nn.functional.binary_cross_entropy_with_logits(2 * r[vi], q)
    if use_pairs:
        loss = loss - torch.nn.functional.logsigmoid(r[pc] - r[pr]).mean()
    if use_reg:
        loss = loss + ((torch.tanh(r[vi]) - q) ** 2).mean()
    return loss


def _fit(
    z: np.ndarray, recs: Sequence[dict[str, Any]], cfg: HeadTrainConfig, l2: float
) -> tuple[Any, int, int]:
    """Train one head on standardized states `z`; returns (net, pairs, visited nodes)."""
    import torch

    torch.manual_seed(cfg.seed)
    terms = _loss_terms(recs, cfg)
    xt = torch.tensor(z, dtype=torch.float32)
    dims = (z.shape[1], *cfg.hidden, 1)
    layers: list[torch.nn.Module] = []
    for a, b in zip(dims, dims[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.epochs):
        opt.zero_grad()
        loss = _loss(net(xt)[:, 0], terms)
        if l2 > 0:
            loss = loss + l2 * sum((w**2).sum() for w in weights)
        loss.backward()
        opt.step()
    return net, len(terms[2]) if terms[4] else 0, len(terms[0])


def _cv_losses(
    z: np.ndarray, recs: Sequence[dict[str, Any]], cfg: HeadTrainConfig
) -> dict[float, float]:
    """Per l2: the unpenalised loss on each left-out fold of problems, summed over the folds."""
    import torch

    problems = sorted({r["problem"] for r in recs})
    fold = {p: heldout_fold(p, cfg.cv_folds, cfg.seed) for p in problems}
    out = dict.fromkeys(cfg.l2, 0.0)
    for k in range(cfg.cv_folds):
        te = [i for i, r in enumerate(recs) if fold[r["problem"]] == k]
        tr = [i for i, r in enumerate(recs) if fold[r["problem"]] != k]
        if not te or not tr:
            continue
        rte = [recs[i] for i in te]
        terms = _loss_terms(rte, cfg)
        if not (terms[4] or terms[5]):
            continue
        for v in cfg.l2:
            net, _, _ = _fit(z[tr], [recs[i] for i in tr], cfg, v)
            with torch.no_grad():
                out[v] += float(_loss(net(torch.tensor(z[te], dtype=torch.float32))[:, 0], terms))
    return out


def heldout_fold(problem_id: str, folds: int, seed: int) -> int:
    """Which cross-validation fold a training problem falls in (seeded, stable)."""
    h = hashlib.sha256(f"head-cv:{seed}:{problem_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") % folds


# ------------------------------------------------------------------------------ stage 3


def _figures(
    name: str, scores: np.ndarray, recs: Sequence[dict[str, Any]], unseen: bool
) -> SourceFigures:
    pairs = sibling_pairs(recs)
    acc = float(np.mean([scores[c] > scores[r] for c, r in pairs] or [np.nan])) if pairs else None
    ans = [i for i, r in enumerate(recs) if _is_judged_answer(r)]
    labels = [bool(recs[i]["correct"]) for i in ans]
    apairs = answer_pairs(recs)
    aacc = float(np.mean([scores[c] > scores[r] for c, r in apairs])) if apairs else None
    return SourceFigures(
        source=name, heldout_problems=len({r["problem"] for r in recs}), pairs=len(pairs),
        pairwise_accuracy=None if acc is None else round(acc, 4), answers=len(ans),
        correct_answers=sum(labels),
        auroc=None if (a := auroc([scores[i] for i in ans], labels)) is None else round(a, 4),
        unseen=unseen, answer_pairs=len(apairs),
        answer_pair_accuracy=None if aacc is None else round(aacc, 4),
    )  # fmt: skip


def answer_pairs(recs: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """(right, wrong) row indices: every pair of judged answer steps of one problem whose
    answers differ, one right and one wrong. Choosing among a search's finished chains needs
    exactly this order; sibling steps (`sibling_pairs`) are what ranking partial paths needs."""
    from edgestar.answer import normalize

    by_problem: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        if _is_judged_answer(r) and r.get("answer") is not None:
            by_problem.setdefault(r["problem"], []).append(i)
    out = []
    for rows in by_problem.values():
        for c in rows:
            if not recs[c]["correct"]:
                continue
            key = normalize(recs[c]["answer"])
            out += [(c, w) for w in rows if not recs[w]["correct"]
                    and normalize(recs[w]["answer"]) != key]  # fmt: skip
    return out


def evaluate_head(
    head: Head, states: np.ndarray, recs: Sequence[dict[str, Any]]
) -> tuple[tuple[SourceFigures, ...], SourceFigures]:
    """Per-source and overall held-out figures for `head` on these rows."""
    scores = head.score(states) if len(recs) else np.zeros(0)
    per = []
    for src in sorted({r["source"] for r in recs}):
        idx = [i for i, r in enumerate(recs) if r["source"] == src]
        unseen = all(recs[i]["holdout"] for i in idx)
        per.append(_figures(src, scores[idx], [recs[i] for i in idx], unseen))
    return tuple(per), _figures("all held-out", scores, recs, False)


# ------------------------------------------------------------------------------ entry point


def train_head(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: HeadTrainConfig,
    progress: bool = False,
    ray_address: str | None = None,
    lora: str | os.PathLike[str] | None = None,
) -> HeadReport:
    """Collect, fit, evaluate; write head.npz + report.{json,md} into out_dir. `model` is a GGUF
    path or a model fetched by `edgestar pull` (a registry name or OWNER/REPO/FILE.gguf).
    `lora`: a GGUF LoRA adapter applied to it throughout; the head is then bound to the model
    file AND the adapter (edgestar.head), as a bundle with that base + adapter needs."""
    from edgestar.pull import resolve_model

    mpath, _ = resolve_model(model)
    if not (mpath.is_file() and mpath.suffix == ".gguf"):
        raise InputError(f"{mpath}: train head needs a .gguf model file")
    out = Path(out_dir)
    states, recs, collect_s = collect_states(mpath, out, cfg, progress, ray_address, lora)
    ok = training_rows(recs, cfg)
    tr = [i for i, t in enumerate(ok) if t]
    te = [i for i, t in enumerate(ok) if not t]
    t0 = time.perf_counter()
    sha = file_sha256(mpath)
    head = fit_head(states[tr], [recs[i] for i in tr], cfg, sha, mpath.name)
    fit_s = time.perf_counter() - t0
    per, overall = evaluate_head(head, states[te], [recs[i] for i in te])
    by_problem: dict[str, bool] = {}
    for r in recs:
        by_problem[r["problem"]] = by_problem.get(r["problem"], False) or bool(
            r["kind"] == "answer" and r["correct"]
        )
    report = HeadReport(
        model=mpath.name, model_sha256=sha, kind=head.kind, loss=cfg.loss,
        train_problems=len({recs[i]["problem"] for i in tr}), train_nodes=head.meta["train_nodes"],
        train_pairs=head.meta["train_pairs"], collect_seconds=round(collect_s, 1),
        fit_seconds=round(fit_s, 2),
        solved_share=round(sum(by_problem.values()) / max(1, len(by_problem)), 4),
        per_source=per, overall=overall, config=asdict(cfg), l2=head.meta["l2"],
    )  # fmt: skip
    head = Head(
        head.weights, head.biases, head.mean, head.scale, model_sha256=sha,
        model_name=mpath.name,
        meta={**head.meta, "model_bytes": mpath.stat().st_size,
              "heldout": asdict(overall), "problems": list(cfg.problems),
              "holdout_sources": list(cfg.holdout), "code_first": cfg.code_first,
              **({"adapter_name": Path(lora).name} if lora is not None else {})},
        adapter_sha256=file_sha256(lora) if lora is not None else None,
    )  # fmt: skip
    save_head(head, out / "head.npz")
    atomic_write_text(out / "report.json", json.dumps(report.to_json(), indent=1) + "\n")
    atomic_write_text(out / "report.md", report.to_markdown())
    return report
