"""Tests for the training stack: train/trainer.py (config, split, resumable loop), train/sft.py
(policy SFT with prompt masking, step-level DPO), train/ppm_train.py (Bradley-Terry PPM,
pairwise accuracy) and quantize/bnb.py (CUDA-only quantized loading).

Everything runs on the tiny 'test' preset on CPU with one thread: SFT must cut the solutions'
per-token NLL by more than half and make greedy decoding reproduce the training solutions; the
PPM must order held-out pairs correctly; two runs with one seed give the same safetensors hash;
a run killed with SIGKILL (mid-training, while writing the checkpoint, before the final rename)
and resumed gives the same hash as an uninterrupted run. GPU tests are skipped without CUDA.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgestar.backends.base import StepRequest  # noqa: E402
from edgestar.backends.torch_backend import TorchPolicy, TorchReward  # noqa: E402
from edgestar.checkpoint import VALUE_HEAD_FILE, read_meta  # noqa: E402
from edgestar.formats import RSTAR, Marker, rstar_solution  # noqa: E402
from edgestar.quantize import bnb  # noqa: E402
from edgestar.train.datasets import PreferencePair, SFTExample  # noqa: E402
from edgestar.train.ppm_train import pairwise_accuracy, train_ppm  # noqa: E402
from edgestar.train.sft import (  # noqa: E402
    build_sft_features,
    sequence_nll,
    train_policy,
    train_policy_dpo,
)
from edgestar.train.tiny import make_tiny_checkpoint  # noqa: E402
from edgestar.train.trainer import (  # noqa: E402
    TRAIN_PRESETS,
    RunDir,
    TrainConfig,
    TrainReport,
    file_sha256,
    split_eval,
)
from edgestar.types import InputError  # noqa: E402

pytestmark = pytest.mark.torch
torch.set_num_threads(1)


def sft_examples(n: int = 40, seed: int = 0) -> list[SFTExample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(2, 9)
        steps = [
            (f"Compute {a} plus {b}.", f"x = {a} + {b}"),
            (f"Multiply by {c}.", f"y = x * {c}"),
        ]
        total = str((a + b) * c)
        sol = rstar_solution(steps, "print(y)", total, total)
        out.append(SFTExample(f"p{i}", RSTAR.prompt(f"What is ({a} + {b}) * {c}?"), sol, 1.0))
    return out


def step_pairs(n: int = 48, seed: int = 1) -> list[PreferencePair]:
    """Same prefix; chosen multiplies (the right step), rejected adds (a wrong one)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(2, 9)
        prefix = (
            RSTAR.prompt(f"What is ({a} + {b}) * {c}?")
            + f"# Step 1: Compute {a} plus {b}.\nx = {a} + {b}\n{Marker.END_STEP}\n"
        )
        good = f"# Step 2: Multiply the result by {c}.\ny = x * {c}\n{Marker.END_STEP}\n"
        bad = f"# Step 2: Add {c} to the result.\ny = x + {c}\n{Marker.END_STEP}\n"
        out.append(PreferencePair(f"q{i}", prefix, good, bad, 0.9, -0.8, kind="pivotal"))
    return out


def small_cfg(**kw: object) -> TrainConfig:
    base = dict(lr=3e-3, epochs=2, batch_size=8, eval_fraction=0.1, save_every_steps=3)
    base.update(kw)
    return TrainConfig.preset("cpu-tiny", **base)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("base") / "base", "test")


def weights_hash(folder: Path) -> str:
    return file_sha256(folder / "model.safetensors")


# ----------------------------------------------------------------------------------- config


def test_config_validation_and_presets() -> None:
    assert {"cpu-tiny", "cuda-0.5b"} <= set(TRAIN_PRESETS)
    cfg = TrainConfig.preset("cpu-tiny", lr=1e-2)
    assert cfg.lr == 1e-2 and cfg.device == "cpu" and TRAIN_PRESETS["cpu-tiny"].lr != 1e-2
    assert json.loads(json.dumps(cfg.to_json()))["adam_betas"] == [0.9, 0.999]
    bad = [
        dict(lr=0),
        dict(lr=float("nan")),
        dict(epochs=0),
        dict(batch_size=True),
        dict(grad_accum=1.5),
        dict(max_len=1),
        dict(warmup=1.0),
        dict(eval_fraction=0.7),
        dict(device="tpu"),
        dict(dtype="fp8"),
        dict(optimizer="sgd"),
        dict(lr_schedule="step"),
        dict(save_every_steps=-1),
        dict(max_steps=0),
    ]
    for kw in bad:
        with pytest.raises(InputError, match="TrainConfig"):
            TrainConfig(**kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="adamw8bit.*CUDA"):
        TrainConfig(optimizer="adamw8bit", device="cpu")
    with pytest.raises(InputError, match="preset"):
        TrainConfig.preset("no-such")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_only_options_fail_clearly_on_cpu(base_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="CUDA"):
        train_policy(base_dir, sft_examples(4), tmp_path / "o", TrainConfig(device="cuda"))
    with pytest.raises(InputError, match="adamw8bit.*CUDA"):
        train_policy(base_dir, sft_examples(4), tmp_path / "o", TrainConfig(optimizer="adamw8bit"))
    assert not (tmp_path / "o").exists()


def test_split_eval_groups_and_determinism() -> None:
    keys = [f"p{i // 2}" for i in range(40)]  # 20 problems, 2 trajectories each
    tr, ev = split_eval(keys, 0.1, seed=0)
    assert len(ev) == 4 and sorted(tr + ev) == list(range(40))
    assert {keys[i] for i in tr}.isdisjoint({keys[i] for i in ev})
    assert split_eval(keys, 0.1, seed=0) == (tr, ev)
    assert split_eval(keys, 0.1, seed=1) != (tr, ev)
    assert split_eval(keys, 0.0, seed=0) == (list(range(40)), [])
    tr1, ev1 = split_eval([""] * 10, 0.2, seed=0)  # one group: split items
    assert len(ev1) == 2 and len(tr1) == 8


# -------------------------------------------------------------------------------------- SFT


def test_sft_labels_mask_the_prompt(base_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    ex = sft_examples(3)
    feats, dropped = build_sft_features(tok, ex, max_len=512)
    assert dropped == 0
    marker_ids = {tok.convert_tokens_to_ids(m) for m in Marker.ALL}
    for f, e in zip(feats, ex, strict=True):
        p = tok.encode(e.prompt, add_special_tokens=False)
        s = tok.encode(e.solution, add_special_tokens=False)
        assert f.n_prompt == len(p) and list(f.input_ids) == p + s + [tok.eos_token_id]
        assert list(f.labels[: len(p)]) == [-100] * len(p)
        assert list(f.labels[len(p) :]) == s + [tok.eos_token_id]
        n_markers = sum(e.solution.count(m) for m in Marker.ALL)
        assert sum(t in marker_ids for t in f.labels) == n_markers  # one id per marker
    short, dropped = build_sft_features(tok, ex, max_len=feats[0].n_prompt + 5)
    assert short[0].truncated and len(short[0].input_ids) == feats[0].n_prompt + 5
    _, dropped = build_sft_features(tok, ex, max_len=10)
    assert dropped == 3


@pytest.mark.slow
def test_sft_learns_the_solutions(base_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ex = sft_examples(40)
    cfg = small_cfg(lr=6e-3, epochs=16, eval_fraction=0.1, save_every_steps=0)
    rep = train_policy(base_dir, ex, tmp_path / "pol", cfg, progress=False)
    assert isinstance(rep, TrainReport) and rep.epochs == 16 and rep.n_eval == 4
    assert rep.steps == 16 * 5 and rep.tokens > 0 and rep.tokens_per_s > 0
    assert rep.final_loss < 0.3 * rep.first_loss
    assert len(rep.eval_losses) == 16 and rep.eval_losses[-1] < 0.5 * rep.eval_losses[0]
    assert rep.device == "cpu" and rep.dtype == "fp32"

    tok = AutoTokenizer.from_pretrained(base_dir)
    feats, _ = build_sft_features(tok, ex, 512)
    before = sequence_nll(AutoModelForCausalLM.from_pretrained(base_dir), feats, 0)
    after = sequence_nll(AutoModelForCausalLM.from_pretrained(tmp_path / "pol"), feats, 0)
    assert after < 0.5 * before, (before, after)

    meta = read_meta(tmp_path / "pol")
    assert meta.role == "policy" and meta.step_format == "rstar"
    assert set(Marker.ALL) <= set(meta.special_tokens)
    prov = meta.provenance
    assert prov["base"] == str(base_dir.resolve()) and prov["n_examples"] == 40
    assert prov["config"]["lr"] == 6e-3 and prov["report"]["steps"] == rep.steps
    assert TrainReport.from_json(prov["report"]) == rep
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pol"]  # no .partial, no .state
    assert not (tmp_path / "pol" / ".state").exists()

    # Greedy decoding through the runtime's policy reproduces the training solutions.
    policy = TorchPolicy(tmp_path / "pol", device="cpu")
    ratios = []
    for e in ex[:4]:
        req = StepRequest(e.prompt, k=1, seed=0, max_tokens=120, temperature=0.0)
        (prop,) = policy.propose([req])
        ratios.append(difflib.SequenceMatcher(None, prop.candidates[0].text, e.solution).ratio())
    policy.close()
    assert sum(ratios) / len(ratios) > 0.8, ratios


def test_same_seed_same_weights(base_dir: Path, tmp_path: Path) -> None:
    ex = sft_examples(16)
    cfg = small_cfg(epochs=1, batch_size=4, save_every_steps=2)
    train_policy(base_dir, ex, tmp_path / "a", cfg, progress=False)
    train_policy(base_dir, ex, tmp_path / "b", cfg, progress=False)
    train_policy(base_dir, ex, tmp_path / "c", cfg.replace(seed=1), progress=False)
    assert weights_hash(tmp_path / "a") == weights_hash(tmp_path / "b")
    assert weights_hash(tmp_path / "a") != weights_hash(tmp_path / "c")
    assert weights_hash(tmp_path / "a") != weights_hash(base_dir)


def test_grad_checkpointing_and_bf16_autocast(base_dir: Path, tmp_path: Path) -> None:
    """The CUDA presets' switches, exercised on CPU: checkpointing recomputes the same forward
    (same weights, bitwise); bf16 autocast trains and reports its dtype."""
    ex = sft_examples(12)
    cfg = small_cfg(epochs=1, batch_size=4)
    train_policy(base_dir, ex, tmp_path / "a", cfg, progress=False)
    train_policy(base_dir, ex, tmp_path / "g", cfg.replace(grad_checkpointing=True))
    assert weights_hash(tmp_path / "a") == weights_hash(tmp_path / "g")
    assert json.loads((tmp_path / "g" / "config.json").read_text())["use_cache"] is True
    rep = train_ppm(base_dir, step_pairs(12), tmp_path / "p", cfg.replace(dtype="bf16"))
    assert rep.dtype == "bf16" and rep.final_loss < rep.first_loss


def test_out_dir_rules(base_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ex = sft_examples(8)
    cfg = small_cfg(epochs=1, batch_size=4)
    out = tmp_path / "o"
    rep = train_policy(base_dir, ex, out, cfg, progress=True)  # stderr is not a TTY: no bar
    assert capsys.readouterr().err == ""
    h = weights_hash(out)
    with pytest.raises(InputError, match="force=True"):
        train_policy(base_dir, ex, out, cfg)
    assert train_policy(base_dir, ex, out, cfg, resume=True) == rep  # finished: stored report
    rep2 = train_policy(base_dir, ex, out, cfg.replace(seed=5), force=True, progress=False)
    assert rep2.steps == rep.steps and weights_hash(out) != h
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="exists"):
        train_policy(base_dir, ex, stray, cfg)
    with pytest.raises(InputError, match="not a training state"):
        train_policy(base_dir, ex, stray, cfg, resume=True)
    assert (stray / "notes.txt").read_text() == "mine"


def test_resume_refuses_other_data(base_dir: Path, tmp_path: Path) -> None:
    ex = sft_examples(16)
    cfg = small_cfg(epochs=1, batch_size=4, save_every_steps=1)
    out = tmp_path / "o"

    def stop(info: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_policy(base_dir, ex, out, cfg, on_step=stop)
    assert (out / ".state" / "state.pt").is_file()
    with pytest.raises(InputError, match="different run"):
        train_policy(base_dir, ex[:12], out, cfg, resume=True)
    # Saving more or less often is not a different run.
    rep = train_policy(base_dir, ex, out, cfg.replace(save_every_steps=0), resume=True)
    assert rep.resumed and rep.steps == 4


def test_run_dir_finishes_a_committed_partial(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / ".state").mkdir(parents=True)
    (out / ".state" / "state.pt").write_bytes(b"x")
    partial = tmp_path / ".run.partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    (partial / "edgestar.json").write_text("{}")
    with pytest.raises(InputError, match="resume=True"):
        RunDir(out, resume=False, force=False)
    rd = RunDir(out, resume=True, force=False)
    assert rd.status == "complete"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "edgestar.json"]
    assert not partial.exists()


# ----------------------------------------------------------------------------------- resume

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    from edgestar.train import sft
    from edgestar.train.datasets import SFTExample
    from edgestar.train.trainer import RunDir, TrainConfig

    base, data, out, cfg_json, where = sys.argv[1:6]
    examples = [SFTExample(**d) for d in json.load(open(data))]
    cfg = TrainConfig(**{**json.loads(cfg_json), "adam_betas": (0.9, 0.999)})

    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    on_step = None
    if where == "mid-training":  # state saved at step 3; killed right after step 4
        on_step = lambda info: die() if info.step == 4 else None
    elif where == "writing-checkpoint":  # weights written, edgestar.json not yet
        sft.write_meta = die
    elif where == "before-rename":  # the finished folder is complete but not renamed
        RunDir._commit_partial = die
    sft.train_policy(base, examples, out, cfg, on_step=on_step, progress=False)
    """
)


RESUME_EXAMPLES = sft_examples(24)
RESUME_CFG = small_cfg(epochs=2, batch_size=4, save_every_steps=3)  # 22 train rows: 6 steps/epoch


@pytest.fixture(scope="module")
def uninterrupted(
    base_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, TrainReport]:
    out = tmp_path_factory.mktemp("ref") / "ref"
    return out, train_policy(base_dir, RESUME_EXAMPLES, out, RESUME_CFG, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["mid-training", "writing-checkpoint", "before-rename"])
def test_killed_run_resumes_to_identical_weights(
    base_dir: Path, tmp_path: Path, where: str, uninterrupted: tuple[Path, TrainReport]
) -> None:
    ex, cfg = RESUME_EXAMPLES, RESUME_CFG
    ref_dir, ref = uninterrupted
    data = tmp_path / "data.json"
    data.write_text(json.dumps([dataclasses.asdict(e) for e in ex]))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(base_dir), str(data), str(out)]
        + [json.dumps(cfg.to_json()), where],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "edgestar.json").exists()
    if where == "mid-training":
        assert (out / ".state" / "state.pt").is_file()
    else:
        assert (tmp_path / ".run.partial").is_dir()
    seen: list[int] = []
    rep = train_policy(base_dir, ex, out, cfg, resume=True, progress=False, on_step=seen.append)
    assert [i.step for i in seen] == (list(range(4, 13)) if where == "mid-training" else [])
    assert rep.resumed == (where != "before-rename")  # the last one only renames
    assert weights_hash(out) == weights_hash(ref_dir)
    assert rep.steps == ref.steps == 12 and rep.epoch_losses == ref.epoch_losses
    assert rep.eval_losses == ref.eval_losses
    assert not (tmp_path / ".run.partial").exists() and not (out / ".state").exists()
    assert read_meta(out).role == "policy"


# -------------------------------------------------------------------------------------- PPM


def test_ppm_learns_to_prefer_the_right_step(base_dir: Path, tmp_path: Path) -> None:
    pairs = step_pairs(48)
    cfg = small_cfg(lr=1e-3, epochs=4, eval_fraction=0.25, save_every_steps=0)
    rep = train_ppm(base_dir, pairs, tmp_path / "ppm", cfg, progress=False)
    assert rep.n_eval == 12 and rep.n_train == 36 and rep.epochs == 4
    accs = [m["pairwise_accuracy"] for m in rep.eval_metrics]
    assert accs[-1] > 0.9 and rep.eval_losses[-1] < 0.5, rep.eval_metrics
    assert rep.first_loss == pytest.approx(0.6931, abs=1e-3)  # zero head: log 2
    assert rep.final_loss < 0.5 * rep.first_loss

    meta = read_meta(tmp_path / "ppm")
    assert meta.role == "ppm" and meta.value_head == {
        "hidden_size": 64,
        "score_scale": 5.0,
        "squash": "tanh",
    }
    assert meta.provenance["base"] == str(base_dir.resolve())
    assert meta.provenance["pair_kinds"] == {"pivotal": 48}
    assert (tmp_path / "ppm" / VALUE_HEAD_FILE).is_file()

    _, ev = split_eval([p.problem_id for p in pairs], cfg.eval_fraction, cfg.seed)
    held = [pairs[i] for i in ev]
    assert pairwise_accuracy(tmp_path / "ppm", held) == pytest.approx(accs[-1])
    assert pairwise_accuracy(tmp_path / "ppm", held) > 0.9
    rm = TorchReward(tmp_path / "ppm", device="cpu")
    s = rm.score([held[0].prefix + held[0].chosen, held[0].prefix + held[0].rejected])
    assert -1 < s[1] < s[0] < 1


def test_ppm_deterministic_and_resumable(base_dir: Path, tmp_path: Path) -> None:
    pairs = step_pairs(16)
    cfg = small_cfg(lr=1e-3, epochs=1, batch_size=4, save_every_steps=1)
    train_ppm(base_dir, pairs, tmp_path / "a", cfg, progress=False)

    def stop(info: object) -> None:
        if getattr(info, "step", 0) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ppm(base_dir, pairs, tmp_path / "b", cfg, on_step=stop)
    rep = train_ppm(base_dir, pairs, tmp_path / "b", cfg, resume=True, progress=False)
    assert rep.resumed
    for f in ("model.safetensors", VALUE_HEAD_FILE):
        assert file_sha256(tmp_path / "a" / f) == file_sha256(tmp_path / "b" / f)


# -------------------------------------------------------------------------------------- DPO


def test_dpo_moves_the_policy_towards_chosen_steps(base_dir: Path, tmp_path: Path) -> None:
    pairs = step_pairs(32, seed=2)
    cfg = small_cfg(lr=2e-3, epochs=4, eval_fraction=0.25, save_every_steps=0)
    rep = train_policy_dpo(base_dir, pairs, tmp_path / "dpo", cfg, beta=0.1, progress=False)
    assert rep.first_loss == pytest.approx(0.6931, abs=1e-2)  # policy == reference at step 0
    assert rep.eval_metrics[-1]["pref_accuracy"] > 0.9, rep.eval_metrics
    assert rep.eval_metrics[-1]["margin"] > 0.5
    meta = read_meta(tmp_path / "dpo")
    assert meta.role == "policy" and meta.provenance["method"] == "dpo"
    assert meta.provenance["beta"] == 0.1


# -------------------------------------------------------------------------------------- bnb


def test_bnb_available_is_a_bool() -> None:
    assert isinstance(bnb.bnb_available(), bool)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_quantized_loading_needs_cuda(base_dir: Path) -> None:
    for bits in (4, 8):
        with pytest.raises(InputError, match="needs CUDA"):
            bnb.load_quantized_for_training(base_dir, bits=bits)
    with pytest.raises(InputError, match="needs CUDA"):
        bnb.load_quantized_for_training(base_dir, bits=4, device="cpu")
    with pytest.raises(InputError, match="bits"):
        bnb.load_quantized_for_training(base_dir, bits=3)


# -------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [4, 8])
def test_gpu_quantized_load_runs_and_backprops(base_dir: Path, bits: int) -> None:
    model, tok = bnb.load_quantized_for_training(base_dir, bits=bits)
    ids = torch.tensor([tok.encode(RSTAR.prompt("What is 2 + 3?"))], device="cuda")
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    head = torch.nn.Linear(out.logits.shape[-1], 1, device="cuda")  # a stand-in adapter
    head(out.logits.float()).sum().backward()
    assert head.weight.grad is not None
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", ["adamw", "adamw8bit"])
def test_gpu_sft_and_ppm(base_dir: Path, tmp_path: Path, optimizer: str) -> None:
    cfg = small_cfg(
        lr=4e-3,
        epochs=10,
        device="cuda",
        dtype="auto",
        optimizer=optimizer,
        grad_checkpointing=True,
    )
    rep = train_policy(base_dir, sft_examples(40), tmp_path / "pol", cfg, progress=False)
    assert rep.device.startswith("cuda") and rep.final_loss < 0.5 * rep.first_loss
    pol = tmp_path / "pol"
    assert TorchPolicy(pol, device="cuda").propose(
        [StepRequest(RSTAR.prompt("What is 1 + 1?"), k=2, seed=0, max_tokens=8)]
    )
    prep = train_ppm(
        pol,
        step_pairs(48),
        tmp_path / "ppm",
        cfg.replace(lr=1e-3, epochs=4, eval_fraction=0.25),
        progress=False,
    )
    assert prep.eval_metrics[-1]["pairwise_accuracy"] > 0.9
