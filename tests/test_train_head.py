"""`edgestar train head` end to end on the shipped tiny policy (real steps, real answers): search
with known answers, record states, fit, report, resume; plus the pure parts (pairs, AUROC)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("llama_cpp")

from click.testing import CliRunner  # noqa: E402

import edgestar  # noqa: E402
from edgestar.cli import main  # noqa: E402
from edgestar.head import HeadReward, file_sha256, load_head  # noqa: E402
from edgestar.train.head import (  # noqa: E402
    HeadTrainConfig,
    answer_pairs,
    auroc,
    collect_states,
    sibling_pairs,
    train_head,
    training_rows,
)
from edgestar.types import InputError  # noqa: E402

pytestmark = [pytest.mark.llama, pytest.mark.torch]

TINY = Path(__file__).resolve().parent.parent / "models" / "edgestar-tiny" / "policy.q4_k_m.gguf"
CFG = HeadTrainConfig(
    problems=("synthetic:fraction_arithmetic,remainders,word_rates",),
    holdout=("synthetic:gcd_lcm",),
    n=8, step_format="rstar", rollouts=4, width=2, max_step_tokens=64, max_depth=8,
    shard_size=4, heldout_share=0.25, loss="both", l2=(0.0,),
)  # fmt: skip
"""The step losses (the head's Q on every node is checked below); the outcome loss, the CLI's
default, has its own tests."""


def test_auroc_and_pairs() -> None:
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.9], [True, True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.5, 0.6], [True, True]) is None
    recs = [
        {"problem": "p", "parent": 0, "Q": 0.8, "good": 2, "bad": 0},
        {"problem": "p", "parent": 0, "Q": -1.0, "good": 0, "bad": 1},
        {"problem": "p", "parent": 0, "Q": 0.2, "good": 0, "bad": 0},  # never finished
        {"problem": "p", "parent": 0, "Q": 0.6, "good": 0, "bad": 2},  # margin 0.2 < 0.5
        {"problem": "q", "parent": 0, "Q": -1.0, "good": 0, "bad": 1},  # another problem
    ]
    assert sibling_pairs(recs) == [(0, 1)]
    ans = [
        {"problem": "p", "kind": "answer", "correct": True, "answer": "42"},
        {"problem": "p", "kind": "answer", "correct": False, "answer": "13"},
        {"problem": "p", "kind": "answer", "correct": False, "answer": "42.0"},  # judged wrong
        {"problem": "p", "kind": "answer", "correct": True, "answer": "42"},
        {"problem": "p", "kind": "text", "correct": None, "answer": None},
        {"problem": "q", "kind": "answer", "correct": False, "answer": "7"},  # another problem
    ]
    assert answer_pairs(ans) == [(0, 1), (3, 1)]  # "42.0" normalizes to the right answer


def test_evaluation_questions_are_never_searched(tmp_path: Path) -> None:
    from edgestar.train.head import _problems
    from edgestar.train.problems import load_source

    drawn = [p.question for p in load_source(CFG.problems[0], CFG.n, CFG.seed)]
    evalset = tmp_path / "eval.jsonl"
    # one drawn question, typed differently (case, spacing), and one the draw does not hold
    evalset.write_text(
        json.dumps({"question": "  " + drawn[2].upper() + " "}) + "\n"
        + json.dumps({"question": "What is 1 + 1?"}) + "\n"
    )  # fmt: skip
    kept = [p.question for p, _ in _problems(CFG)]
    assert drawn[2] in kept
    cfg = HeadTrainConfig(**{**CFG.__dict__, "exclude": (str(evalset),)})
    now = [p.question for p, _ in _problems(cfg)]
    assert drawn[2] not in now and len(now) == len(kept) - 1
    with pytest.raises(InputError, match="no such evaluation file"):
        _problems(HeadTrainConfig(**{**CFG.__dict__, "exclude": (str(tmp_path / "x.jsonl"),)}))


def test_train_head_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = train_head(TINY, out, CFG)
    head = load_head(out / "head.npz")
    assert head.model_sha256 == file_sha256(TINY) and head.kind == "linear"
    assert head.meta["code_first"] is False  # which chains it learnt from travels with it
    rep = json.loads((out / "report.json").read_text())
    srcs = {s["source"]: s for s in rep["per_source"]}
    assert srcs["synthetic:gcd_lcm"]["unseen"] and not srcs[CFG.problems[0]]["unseen"]
    assert rep["train_nodes"] > 20 and report.overall.heldout_problems >= 6
    assert "| source |" in (out / "report.md").read_text()
    # the head learned its training signal: its scores rank the training nodes' Q
    states, recs, spent = collect_states(TINY, out, CFG)  # resumed: nothing searched again
    assert spent < 1.0 and len(recs) == len(states)
    ok = training_rows(recs, CFG)
    train = [i for i, r in enumerate(recs) if ok[i] and r["N"] > 0 and r["kind"] != "error"]
    s = head.score(states[train])
    q = np.array([recs[i]["Q"] for i in train])
    assert np.corrcoef(s, q)[0, 1] > 0.3
    # the head works as the solver's reward, bound to this model
    with edgestar.load(model=TINY, ppm=out, threads=1, device="cpu") as solver:
        assert isinstance(solver.reward, HeadReward)
        r = solver.solve("What is 12 + 30?", strategy="beam", budget=edgestar.Budget(rollouts=2))
        assert r.stats.reward_calls > 0
    # other collection settings in the same folder are refused, not mixed
    with pytest.raises(InputError, match="other settings"):
        collect_states(TINY, out, HeadTrainConfig(**{**CFG.__dict__, "width": 3}))


def test_best_of_n_labels_each_step_by_the_answers_below_it(tmp_path: Path) -> None:
    cfg = HeadTrainConfig(**{**CFG.__dict__, "n": 3, "holdout": (), "strategy": "best_of_n"})
    states, recs, _ = collect_states(TINY, tmp_path / "bon", cfg)
    assert len(states) == len(recs) > 0
    # every chain reaches an answer or a failed step: each recorded step has terminals below it,
    # and its N and Q are their count and mean +-1 outcome (best-of-n backs nothing up itself)
    for r in recs:
        assert r["N"] == r["good"] + r["bad"] > 0
        assert r["Q"] == pytest.approx((r["good"] - r["bad"]) / r["N"], abs=1e-6)
    roots = [r for r in recs if r["parent"] == 0]
    assert len(roots) == cfg.n * min(cfg.rollouts, 8)  # one first step per chain
    with pytest.raises(InputError, match="strategy"):
        HeadTrainConfig(**{**CFG.__dict__, "strategy": "greedy"})


def test_train_head_cli(tmp_path: Path) -> None:
    run = CliRunner()
    res = run.invoke(
        main,
        ["train", "head", "--model", str(TINY), "--problems", "synthetic:integer_arithmetic",
         "--holdout", "synthetic:gcd_lcm", "-n", "3", "--rollouts", "2", "--width", "2",
         "--max-step-tokens", "64", "--mlp", "8", "--loss", "pairwise",
         "--out", str(tmp_path / "h")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output + res.stderr
    assert "| source |" in res.stdout and load_head(tmp_path / "h").kind == "mlp2"
    bad = run.invoke(main, ["train", "head", "--model", str(tmp_path / "x.txt"), "--problems",
                            "synthetic", "--out", str(tmp_path / "o")])  # fmt: skip
    assert bad.exit_code != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.output + bad.stderr


def test_ray_collects_the_same_states(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cfg = HeadTrainConfig(**{**CFG.__dict__, "n": 2, "holdout": (), "shard_size": 1})
    h1, r1, _ = collect_states(TINY, tmp_path / "one", cfg)
    h2, r2, _ = collect_states(TINY, tmp_path / "ray", cfg, ray_address="local")
    assert [(r["problem"], r["kind"], r["N"], r["Q"]) for r in r1] == [
        (r["problem"], r["kind"], r["N"], r["Q"]) for r in r2
    ]
    assert h1.shape == h2.shape


def test_rollouts_take_a_head_as_their_ppm(tmp_path: Path) -> None:
    """PPM-augmented rollouts (train/rollouts.py) accept a head bound to the policy."""
    from edgestar.head import Head, save_head
    from edgestar.train.problems import load_source
    from edgestar.train.rollouts import RolloutConfig, read_trees, run_rollouts

    rng = np.random.default_rng(0)
    head = Head((rng.normal(0, 0.1, (256, 1)),), (np.zeros(1),), np.zeros(256), np.ones(256),
                model_sha256=file_sha256(TINY))  # fmt: skip
    path = save_head(head, tmp_path / "h.npz")
    probs = load_source("synthetic:remainders", 2, 0)
    cfg = RolloutConfig(width=2, rollouts=2, escalate_rollouts=0, max_step_tokens=64,
                        use_ppm=True)  # fmt: skip
    run_rollouts(probs, TINY, tmp_path / "r", cfg, ppm_path=path)
    nodes = [n for r in read_trees(tmp_path / "r") for n in r["tree"]["nodes"][1:]]
    assert any(n["prior"] is not None for n in nodes)


def _answer_rows(problems: int, per: int, rng: np.random.Generator) -> list[dict]:
    """Answer steps only (+-1 by correctness), `per` chains per problem, siblings of one root."""
    recs = []
    for p in range(problems):
        for k in range(per):
            ok = bool(rng.random() < 0.5)
            recs.append({"problem": f"p{p}", "parent": 0, "id": k + 1, "kind": "answer",
                         "correct": ok, "N": 1, "Q": 1.0 if ok else -1.0,
                         "good": int(ok), "bad": int(not ok)})  # fmt: skip
    return recs


def test_l2_is_chosen_by_cross_validation_over_problems() -> None:
    """With a grid of penalties the fit picks one on left-out training problems: the strong one
    when the states carry no signal (64 noise dimensions, 40 rows: no penalty overfits), a weak
    one when a direction separates right from wrong; the choice and the losses are recorded."""
    from edgestar.train.head import fit_head, heldout_fold

    rng = np.random.default_rng(0)
    cfg = HeadTrainConfig(problems=("synthetic",), l2=(0.0, 0.1, 1e3), epochs=200, cv_folds=4)
    recs = _answer_rows(10, 4, rng)
    noise = rng.normal(size=(len(recs), 64))
    head = fit_head(noise, recs, cfg, "0" * 64, "m")
    assert head.meta["l2"] == 1e3 and set(head.meta["l2_cv"]) == {"0.0", "0.1", "1000.0"}
    assert np.abs(head.weights[0]).max() < 1e-2  # shrunk to nothing
    signal = noise.copy()
    signal[:, 0] = [1.0 if r["correct"] else -1.0 for r in recs]
    head = fit_head(signal, recs, cfg, "0" * 64, "m")
    assert head.meta["l2"] < 1e3
    s = head.score(signal)
    assert all((s[i] > 0) == r["correct"] for i, r in enumerate(recs))
    # folds group whole problems and are stable
    assert heldout_fold("p3", 4, 0) == heldout_fold("p3", 4, 0)
    assert len({heldout_fold(f"p{i}", 4, 0) for i in range(40)}) == 4
    single = fit_head(signal, recs, HeadTrainConfig(problems=("synthetic",), l2=(0.0,)),
                      "0" * 64, "m")  # fmt: skip
    assert single.meta["l2"] == 0.0 and "l2_cv" not in single.meta
    for bad in ((), (-1.0,)):
        with pytest.raises(InputError, match="l2"):
            HeadTrainConfig(problems=("synthetic",), l2=bad)


def test_outcome_loss_learns_from_answer_steps_alone() -> None:
    """The outcome head (the default loss) fits right/wrong of the answer steps and nothing
    else: intermediate steps whose Q runs against the answers' signal do not pull it, and on
    new problems it orders each problem's right answer above its wrong ones."""
    from edgestar.train.head import evaluate_head, fit_head

    rng = np.random.default_rng(1)
    recs, rows = [], []
    for p in range(60):
        for k in range(4):
            ok = k % 2 == 0
            x = rng.normal(size=32)
            x[0] = (1.0 if ok else -1.0) + rng.normal(0, 0.5)
            base = {"problem": f"p{p}", "source": "s", "holdout": False, "N": 1,
                    "good": int(ok), "bad": int(not ok)}  # fmt: skip
            # a step before the answer whose Q (and state) says the opposite of the answer's
            recs.append({**base, "parent": 0, "id": 2 * k + 1, "kind": "text", "correct": None,
                         "answer": None, "Q": -1.0 if ok else 1.0})  # fmt: skip
            rows.append(np.r_[3.0 if ok else -3.0, rng.normal(size=31)])
            recs.append({**base, "parent": 2 * k + 1, "id": 2 * k + 2, "kind": "answer",
                         "correct": ok, "answer": str(k), "Q": 1.0 if ok else -1.0})  # fmt: skip
            rows.append(x)
    states = np.array(rows)
    tr = [i for i, r in enumerate(recs) if int(r["problem"][1:]) < 40]
    te = [i for i, r in enumerate(recs) if int(r["problem"][1:]) >= 40]
    cfg = HeadTrainConfig(problems=("synthetic",), epochs=200)
    assert cfg.loss == "outcome" and len(cfg.l2) > 1
    head = fit_head(states[tr], [recs[i] for i in tr], cfg, "0" * 64, "m")
    assert head.meta["train_nodes"] == 160 and head.meta["train_pairs"] == 0
    _, overall = evaluate_head(head, states[te], [recs[i] for i in te])
    assert overall.answer_pairs == 20 * 4 and overall.answer_pair_accuracy >= 0.9
    assert overall.auroc >= 0.9
    both = fit_head(states[tr], [recs[i] for i in tr],
                    HeadTrainConfig(problems=("synthetic",), loss="regression", l2=(0.0,)),
                    "0" * 64, "m")  # fmt: skip
    _, reg = evaluate_head(both, states[te], [recs[i] for i in te])
    assert reg.answer_pair_accuracy < overall.answer_pair_accuracy  # the steps misled it
