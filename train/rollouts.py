"""Rollouts: edgestar's own MCTS over every training problem, trees written to JSONL shards.

One MCTS implementation serves solving and data generation: each problem is searched with
`edgestar.search.run_search(..., gold=answer)`, so terminals are valued +1 / -1 against the
ground truth (rStar-Math's terminal-guided rounds); with a PPM (`use_ppm`) new children also get
the PPM's score as their initial Q (PPM-augmented rounds). A problem left unsolved is searched
again with `escalate_rollouts` (rStar: 16 rollouts, then 64+ on hard problems) and the bigger
tree is kept.

Problems are cut into shards of `shard_size`; shard i is written atomically as
`trees-{i:05d}.jsonl`, so a killed run resumes by skipping the shards that exist. Each problem's
seed depends only on the run seed and the problem id, never on its shard or worker, so a Ray
run (`ray_address`) yields the same trees as a single process.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgestar.checkpoint import atomic_write_text
from edgestar.types import InputError, ModelError

SHARD_GLOB = "trees-*.jsonl"


@dataclass(frozen=True)
class RolloutConfig:
    strategy: str = "mcts"
    width: int = 4
    rollouts: int = 8
    escalate_rollouts: int = 24
    """Rollouts for a second search of a problem the first one left unsolved (0: none)."""
    max_step_tokens: int = 96
    max_depth: int = 12
    temperature: float = 0.9
    top_p: float = 1.0
    use_ppm: bool = False
    threads: int = 1
    n_ctx: int = 2048
    shard_size: int = 32
    seed: int = 0
    step_format: str = "rstar"

    def __post_init__(self) -> None:
        for name in ("width", "rollouts", "max_step_tokens", "max_depth", "threads", "shard_size"):
            if getattr(self, name) < 1:
                raise InputError(f"rollout {name} must be >= 1")
        if self.escalate_rollouts < 0:
            raise InputError("rollout escalate_rollouts must be >= 0")


@dataclass(frozen=True)
class RolloutSummary:
    problems: int
    solved: int
    shards: int
    shards_reused: int
    tokens_generated: int
    tokens_evaluated: int
    seconds: float

    @property
    def solved_share(self) -> float:
        return self.solved / self.problems if self.problems else 0.0


def problem_seed(seed: int, problem_id: str) -> int:
    h = hashlib.sha256(f"{seed}:{problem_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFFFFFFFFFFFFFF


def _as_dict(p: Any) -> dict[str, Any]:
    if isinstance(p, dict):
        return p
    if hasattr(p, "to_json"):
        d = p.to_json()
        return json.loads(d) if isinstance(d, str) else dict(d)
    return asdict(p)


def search_problem(
    problem: dict[str, Any], policy: Any, reward: Any, runner: Any, cfg: RolloutConfig
) -> dict[str, Any]:
    """Search one problem (escalating once if unsolved); return its tree record."""
    from edgestar.formats import get_format
    from edgestar.search import run_search
    from edgestar.types import Budget, SearchConfig

    fmt = get_format(cfg.step_format)
    scfg = SearchConfig(
        width=cfg.width,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_step_tokens=cfg.max_step_tokens,
        max_depth=cfg.max_depth,
    )
    seed = problem_seed(cfg.seed, str(problem["id"]))
    tokens = evaluated = 0
    attempts = [cfg.rollouts] + ([cfg.escalate_rollouts] if cfg.escalate_rollouts else [])
    t0 = time.perf_counter()
    for i, n in enumerate(attempts):
        result, tree = run_search(
            problem["question"],
            policy=policy,
            fmt=fmt,
            strategy=cfg.strategy,
            budget=Budget(rollouts=n),
            config=scfg,
            reward=reward if cfg.use_ppm else None,
            runner=runner,
            seed=seed + i,
            gold=str(problem["answer"]),
        )
        tokens += result.stats.tokens_generated
        evaluated += result.stats.tokens_evaluated
        solved = any(nd.correct for nd in tree.nodes if nd.kind == "answer")
        if solved:
            break
    return {
        "id": problem["id"],
        "question": problem["question"],
        "answer": problem["answer"],
        "source": problem.get("source", ""),
        "solved": solved,
        "attempts": i + 1,
        "tokens_generated": tokens,
        "tokens_evaluated": evaluated,
        "seconds": round(time.perf_counter() - t0, 4),
        "tree": tree.to_dict(),
    }


def _process_shard(
    problems: list[dict[str, Any]],
    policy_path: str,
    ppm_path: str | None,
    cfg: RolloutConfig,
    lora_path: str | None = None,
) -> list[dict[str, Any]]:
    from edgestar.backends.loader import open_policy, open_reward
    from edgestar.executor import Executor
    from edgestar.head import HeadReward, is_head_path

    lora = Path(lora_path) if lora_path else None
    policy = open_policy(Path(policy_path), "cpu", cfg.threads, cfg.n_ctx, lora=lora)
    if ppm_path and is_head_path(ppm_path):  # a head on the policy's own hidden state
        reward: Any = HeadReward(policy, ppm_path, model_path=policy_path)
    else:
        reward = open_reward(Path(ppm_path), "cpu", cfg.threads, cfg.n_ctx) if ppm_path else None
    try:
        with Executor() as runner:
            return [search_problem(p, policy, reward, runner, cfg) for p in problems]
    finally:
        policy.close()
        if reward is not None:
            reward.close()


def _shard_path(out_dir: Path, i: int) -> Path:
    return out_dir / f"trees-{i:05d}.jsonl"


def run_rollouts(
    problems: Sequence[Any],
    policy_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: RolloutConfig,
    *,
    ppm_path: str | os.PathLike[str] | None = None,
    ray_address: str | None = None,
    progress: bool = False,
    lora_path: str | os.PathLike[str] | None = None,
) -> RolloutSummary:
    """Search every problem; write trees-*.jsonl shards into out_dir (resuming what exists).
    `lora_path`: a GGUF LoRA adapter applied to the `policy_path` GGUF."""
    if cfg.use_ppm and ppm_path is None:
        raise InputError("use_ppm needs a PPM (ppm_path)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recs = [_as_dict(p) for p in problems]
    ids = [str(r["id"]) for r in recs]
    if len(set(ids)) != len(ids):
        raise InputError("problem ids must be unique")
    shards = [recs[i : i + cfg.shard_size] for i in range(0, len(recs), cfg.shard_size)]
    todo = [i for i in range(len(shards)) if not _shard_path(out, i).is_file()]
    t0 = time.perf_counter()
    args = (str(policy_path), str(ppm_path) if ppm_path else None, cfg,
            str(lora_path) if lora_path else None)  # fmt: skip
    if ray_address is not None and todo:
        _run_on_ray(ray_address, out, shards, todo, args)
    else:
        bar = _bar(progress, len(todo))
        for i in todo:
            _write_shard(out, i, _process_shard(shards[i], *args))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    records = read_trees(out, expected_shards=len(shards))
    return RolloutSummary(
        problems=len(records),
        solved=sum(1 for r in records if r["solved"]),
        shards=len(shards),
        shards_reused=len(shards) - len(todo),
        tokens_generated=sum(r["tokens_generated"] for r in records),
        tokens_evaluated=sum(r["tokens_evaluated"] for r in records),
        seconds=round(time.perf_counter() - t0, 3),
    )


def _bar(progress: bool, total: int) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="rollout shards", unit="shard")


def _write_shard(out: Path, i: int, records: list[dict[str, Any]]) -> None:
    atomic_write_text(
        _shard_path(out, i), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    )


def ray_map(address: str, fn: Callable[..., Any], jobs: dict[int, tuple],
            done: Callable[[int, Any], None]) -> None:  # fmt: skip
    """Run `fn(*jobs[i])` for every i as Ray tasks and hand each result to `done(i, result)` as
    it arrives. `address`: 'local' starts Ray here (and stops it after), else a cluster to join
    ('auto' or host:port); a Ray already running in this process is used as it is."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray-address needs Ray: pip install 'ray[default]'") from None
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        task = ray.remote(fn)
        pending = {task.remote(*args): i for i, args in jobs.items()}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


def _run_on_ray(address: str, out: Path, shards: list, todo: list[int], args: tuple) -> None:
    ray_map(
        address, _process_shard, {i: (shards[i], *args) for i in todo},
        lambda i, records: _write_shard(out, i, records),
    )  # fmt: skip


def read_trees(out_dir: str | os.PathLike[str], expected_shards: int | None = None) -> list[dict]:
    """All tree records of a rollout folder, in shard order; a corrupt shard is a clear error."""
    out = Path(out_dir)
    paths = sorted(out.glob(SHARD_GLOB))
    if expected_shards is not None and len(paths) != expected_shards:
        raise ModelError(f"{out}: {len(paths)} rollout shards, expected {expected_shards}")
    records = []
    for p in paths:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
                rec["tree"]["nodes"]  # noqa: B018 - shape check
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ModelError(f"{p}:{n}: corrupt rollout record") from None
            records.append(rec)
    return records
