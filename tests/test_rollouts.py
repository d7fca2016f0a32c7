"""Rollout shards: deterministic per problem, resumable, and the same on Ray as in one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgestar.train.rollouts import RolloutConfig, problem_seed, read_trees, run_rollouts
from edgestar.types import InputError, ModelError

pytestmark = [pytest.mark.torch, pytest.mark.slow]

PROBLEMS = [
    {"id": f"p{i}", "question": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)}
    for i in range(4)
]
CFG = RolloutConfig(width=2, rollouts=2, escalate_rollouts=0, max_step_tokens=12, shard_size=2)


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    from edgestar.train.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("pol") / "policy", "test")


def test_seed_depends_only_on_run_seed_and_id():
    assert problem_seed(0, "p1") == problem_seed(0, "p1") != problem_seed(1, "p1")


def test_shards_resume_and_determinism(policy: Path, tmp_path: Path):
    a = run_rollouts(PROBLEMS, policy, tmp_path / "a", CFG)
    assert (a.problems, a.shards, a.shards_reused) == (4, 2, 0)
    assert a.tokens_generated > 0
    again = run_rollouts(PROBLEMS, policy, tmp_path / "a", CFG)
    assert again.shards_reused == 2
    # A killed run leaves whole shards only; delete one and the rerun redoes just that one.
    (tmp_path / "a" / "trees-00001.jsonl").unlink()
    b = run_rollouts(PROBLEMS, policy, tmp_path / "a", CFG)
    assert b.shards_reused == 1
    fresh = run_rollouts(PROBLEMS, policy, tmp_path / "b", CFG)
    ta, tb = read_trees(tmp_path / "a"), read_trees(tmp_path / "b")
    assert [r["tree"] for r in ta] == [r["tree"] for r in tb]
    assert fresh.solved == b.solved


def test_corrupt_shard_is_a_clear_error(policy: Path, tmp_path: Path):
    run_rollouts(PROBLEMS[:2], policy, tmp_path, CFG)
    (tmp_path / "trees-00000.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(ModelError, match="corrupt rollout record"):
        read_trees(tmp_path)


def test_bad_config():
    with pytest.raises(InputError):
        RolloutConfig(width=0)
    with pytest.raises(InputError, match="unique"):
        run_rollouts(PROBLEMS + PROBLEMS[:1], "x", "/tmp/never", CFG)


def test_ray_gives_the_same_trees(policy: Path, tmp_path: Path):
    pytest.importorskip("ray")
    one = run_rollouts(PROBLEMS, policy, tmp_path / "one", CFG)
    ray = run_rollouts(PROBLEMS, policy, tmp_path / "ray", CFG, ray_address="local")
    assert one.solved == ray.solved
    t1 = [json.dumps(r["tree"], sort_keys=True) for r in read_trees(tmp_path / "one")]
    t2 = [json.dumps(r["tree"], sort_keys=True) for r in read_trees(tmp_path / "ray")]
    assert t1 == t2
