"""Tests for off-the-shelf process reward models (edgestar/prm.py, quantize/prm_export.py,
quantize/prm_reference.py): tiny random checkpoints of each family's structure, built with
transformers, converted by `edgestar quantize`, scored through llama.cpp and compared with a
torch reference of the family's published scoring rule; their use as --ppm in a solve; and the
refusals (unknown or mismatched family, a head bound to another file).

Families and the tiny models standing in for them (random weights, sharpened so that scores
spread; one tokenizer with the needed special tokens):
- skywork-o1: Qwen2ForCausalLM + v_head.summary (Linear(h, 1)) in model.safetensors;
- qwen2.5-math-prm: Qwen2Model ("model.*") + score.0 / score.2 (Linear-ReLU-Linear(h, 2)), no
  lm_head, a ChatML template, `<extra_0>` a special token;
- math-shepherd: LlamaForCausalLM, "ки" a special token (the real one is a Mistral whose
  SentencePiece vocabulary edgestar's exporter does not take: see prm.py);
- rlhflow: LlamaForCausalLM with a chat template whose assistant turn ends "+<|im_end|>".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")

from click.testing import CliRunner  # noqa: E402

import edgestar  # noqa: E402
from edgestar.cli import main  # noqa: E402
from edgestar.formats import Marker  # noqa: E402
from edgestar.prm import PRM_FAMILIES, PrmReward, open_prm, parse_prm_spec  # noqa: E402
from edgestar.quantize.deploy import quantize_one  # noqa: E402
from edgestar.quantize.prm_reference import reference_step_probabilities  # noqa: E402
from edgestar.train.tiny import (  # noqa: E402
    TinyConfig,
    build_tokenizer,
    make_tiny_checkpoint,
    sharpen_checkpoint,
)
from edgestar.types import Budget, InputError, ModelError, SearchConfig  # noqa: E402

pytestmark = [pytest.mark.llama, pytest.mark.torch]
torch.set_num_threads(1)

FAMILIES = tuple(PRM_FAMILIES)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TURNS = (  # Llama-3-like: the assistant's content is trimmed and directly followed by its end
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n\n{{ m['content'] | trim }}<|im_end|>"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n\n{% endif %}"
)
SPECIALS = (*Marker.ALL, "<extra_0>", "ки", "<|im_start|>", "<|im_end|>")
SAMPLES = [
    (
        "What is 12 + 30?",
        ["We add the two numbers.", "12 + 30 = 42\nso the sum is 42", "The answer is \\boxed{42}."],
    ),
    ("Compute 7 * 6.", ["7 * 6 = 48", "", "The answer is \\boxed{48}."]),
    ("x - 3 = 4; find x.", ["Add 3 to both sides:\n\nx = 7"]),
]
ARCH = {
    "skywork-o1": "qwen2",
    "qwen2.5-math-prm": "qwen2",
    "math-shepherd": "llama",
    "rlhflow": "llama",
}
TEMPLATE = {"qwen2.5-math-prm": CHATML, "rlhflow": TURNS}
KV = dict(n_ctx=1024, kv_f32=True)


def _save_tensors(path: Path, extra: dict[str, torch.Tensor], drop: tuple[str, ...] = ()) -> None:
    from safetensors.torch import load_file, save_file

    sd = {k: v for k, v in load_file(str(path)).items() if not k.startswith(drop)}
    sd.update({k: v.contiguous() for k, v in extra.items()})
    save_file(sd, str(path), metadata={"format": "pt"})


def build_prm_checkpoint(root: Path, family: str, seed: int = 1) -> Path:
    """A tiny random checkpoint with the published structure of `family`'s PRM (no
    edgestar.json: an off-the-shelf checkpoint)."""
    tok = build_tokenizer(special_tokens=SPECIALS)
    tok.chat_template = TEMPLATE.get(family, tok.chat_template)
    out = make_tiny_checkpoint(
        root / family, TinyConfig(arch=ARCH[family], seed=seed), tokenizer=tok
    )
    sharpen_checkpoint(out)
    (out / "edgestar.json").unlink()
    g = torch.Generator().manual_seed(seed + 7)
    h = TinyConfig().hidden_size
    st = out / "model.safetensors"
    if family == "skywork-o1":
        w = torch.randn(1, h, generator=g) * (3 / h**0.5)
        _save_tensors(st, {"v_head.summary.weight": w, "v_head.summary.bias": torch.tensor([0.1])})
    elif family == "qwen2.5-math-prm":
        head = {
            "score.0.weight": torch.randn(h, h, generator=g) / h**0.5,
            "score.0.bias": torch.randn(h, generator=g) * 0.1,
            "score.2.weight": torch.randn(2, h, generator=g) * (3 / h**0.5),
            "score.2.bias": torch.randn(2, generator=g) * 0.1,
        }
        _save_tensors(st, head, drop=("lm_head.",))  # a Qwen2Model backbone + score, no LM head
        cfg = json.loads((out / "config.json").read_text())
        cfg["architectures"] = ["Qwen2ForProcessRewardModel"]
        (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prm_ckpt")
    return {f: build_prm_checkpoint(root, f) for f in FAMILIES}


@pytest.fixture(scope="module")
def ggufs(ckpts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prm_gguf")
    out = {}
    for f, ck in ckpts.items():
        named = None if PRM_FAMILIES[f].head else f  # head families are recognised
        quantize_one(ck, "gguf", "f32", root / f"{f}.gguf", verify=False, prm_family=named)
        out[f] = root / f"{f}.gguf"
    return out


TINY = Path(__file__).resolve().parent.parent / "models" / "edgestar-tiny" / "policy.q4_k_m.gguf"
"""The shipped tiny policy (rstar format): it writes real steps, so a search has steps to score."""
SMALL = SearchConfig(width=2, max_step_tokens=48, max_depth=4, beam_width=2)


@pytest.fixture(scope="module")
def policy_gguf() -> Path:
    if not TINY.is_file():
        pytest.skip("the shipped tiny policy is not in this checkout")
    return TINY


# ------------------------------------------------------------------------------ parity


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_scores_match_the_published_rule_in_torch(family: str, ckpts, ggufs) -> None:  # type: ignore[no-untyped-def]
    prm = open_prm(ggufs[family], **KV, threads=1)
    assert isinstance(prm, PrmReward) and prm.family.name == family
    try:
        with pytest.raises(InputError, match="scores a question and its steps"):
            prm.score(["a bare prefix"])
        got, ref = [], []
        for q, steps in SAMPLES:
            ours = prm.step_probabilities(q, steps)
            theirs = reference_step_probabilities(ckpts[family], family, q, steps)
            assert len(ours) == len(theirs) == len(steps)
            got += ours
            ref += theirs
        diff = np.abs(np.array(got) - np.array(ref)).max()
        assert diff < 1e-4, (family, got, ref)
        assert np.std(ref) > 0.02  # the steps score differently: not a constant to agree on
        # the search's view: 2 P - 1 of each path's last step
        q, steps = SAMPLES[0]
        paths = [steps[:1], steps[:2], steps]
        assert prm.score_paths(q, paths) == pytest.approx([2 * p - 1 for p in got[:3]], abs=1e-5)
    finally:
        prm.close()


@pytest.mark.slow
def test_cached_prefix_decodes_only_what_a_step_adds(ggufs) -> None:  # type: ignore[no-untyped-def]
    """One decode per scored step: a child's input extends its parent's, so the KV cache makes
    it cost the new tokens only; the scores do not depend on the cache."""
    q, steps = SAMPLES[0]
    for family in FAMILIES:
        prm = open_prm(ggufs[family], **KV, threads=1)
        assert prm is not None
        try:
            ctx = prm.engine._rt.ctx
            cold = prm.step_probabilities(q, steps)
            rows = ctx.rows_decoded
            prm.engine.clear_cache()
            r0 = ctx.rows_decoded
            last = prm.probability(q, steps)
            uncached = ctx.rows_decoded - r0
            full = len(prm.input_ids(q, steps))
            assert uncached == full  # from scratch: the whole input
            assert rows < sum(len(prm.input_ids(q, steps[: k + 1])) for k in range(len(steps)))
            assert last == pytest.approx(cold[-1], abs=1e-5)
        finally:
            prm.close()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["skywork-o1", "rlhflow"])
def test_paths_scored_together_equal_one_at_a_time(family: str, ggufs) -> None:  # type: ignore[no-untyped-def]
    """`score_paths` decodes a call's paths together (more paths than the PRM context has
    sequences, so in waves; nested, sibling and duplicate paths, from a cold cache) and gives
    what scoring each alone from scratch gives."""
    q, steps = SAMPLES[0]
    paths = [steps[: k + 1] for k in range(3)] + [
        steps[:1] + [f"Then {i} more."] for i in range(18)
    ]
    paths.append(paths[4])
    together = open_prm(ggufs[family], **KV, threads=1)
    alone = open_prm(ggufs[family], **KV, threads=1)
    assert together is not None and alone is not None
    try:
        got = together.score_paths(q, paths)
        want = []
        for p in paths:
            alone.engine.clear_cache()
            want.append(2 * alone.probability(q, p) - 1)
        assert np.abs(np.array(got) - np.array(want)).max() < 1e-5
        assert np.std(got) > 0.01
        assert together.engine._rt.ctx.rows_decoded < sum(
            len(together.input_ids(q, p)) for p in paths
        )
    finally:
        together.close()
        alone.close()


# ------------------------------------------------------------------------------ conversion


@pytest.mark.slow
def test_quantize_cli_writes_gguf_head_and_verifies(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sky.gguf"
    r = CliRunner().invoke(
        main, ["quantize", str(ckpts["skywork-o1"]), "--quant", "f32", "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["details"]["prm_family"] == "skywork-o1"
    assert d["details"]["prm_parity"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "sky.prm-head.npz").is_file()
    from edgestar.gguf_meta import PRM_KEYS, read_kv

    kv = read_kv(out)
    assert kv[PRM_KEYS["family"]] == "skywork-o1" and kv[PRM_KEYS["role"]] == "prm"
    # q8_0: quantized through llama.cpp; the head binds to the quantized file and still scores
    q8 = tmp_path / "sky.q8.gguf"
    r = CliRunner().invoke(main, ["quantize", str(ckpts["skywork-o1"]), "--out", str(q8), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["details"]["prm_parity"]["max_abs_diff"] < 0.05
    # re-quantizing the F32 GGUF: the metadata travels, the head is bound to the new file
    rq = tmp_path / "sky.rq8.gguf"
    r = CliRunner().invoke(main, ["quantize", str(out), "--out", str(rq), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["details"]["head"] == str(tmp_path / "sky.rq8.prm-head.npz")
    prm = open_prm(rq, threads=1)
    assert prm is not None and prm.family.name == "skywork-o1"
    prm.close()
    # a family that is unknown, or not the checkpoint's
    for args, msg in (
        (["--prm", "bogus"], "unknown PRM family 'bogus'"),
        (["--prm", "rlhflow"], "holds a skywork-o1 head, not a rlhflow PRM"),
    ):
        r = CliRunner().invoke(
            main, ["quantize", str(ckpts["skywork-o1"]), "--out", str(tmp_path / "x.gguf"), *args]
        )
        assert r.exit_code != 0 and msg in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ in a solve


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_solve_with_prm_as_ppm(family: str, ggufs, policy_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    spec = str(ggufs[family]) if PRM_FAMILIES[family].head else f"{family}:{ggufs[family]}"
    with edgestar.load(model=policy_gguf, ppm=spec, threads=1, n_ctx=2048) as s:
        assert isinstance(s.reward, PrmReward)
        res = s.solve("What is 2 + 3?", strategy="beam", budget=Budget(rollouts=2), config=SMALL)
        assert res.tree is not None
        scored = [n for n in res.tree["nodes"] if n["prior"] is not None]
        assert scored, "the PRM scored no step"
        # a node's prior is the PRM's score of the path to it
        by_id = {n["id"]: n for n in res.tree["nodes"]}
        n = scored[-1]
        path = []
        while n["parent"] is not None:
            path.append(n["text"])
            n = by_id[n["parent"]]
        want = s.reward.score_paths("What is 2 + 3?", [path[::-1]])[0]
        assert scored[-1]["prior"] == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_cli_solve_with_prm(ggufs, policy_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(
        main,
        ["solve", "What is 2 + 3?", "--model", str(policy_gguf), "--ppm",
         f"rlhflow:{ggufs['rlhflow']}", "--strategy", "beam", "--width", "2",
         "--rollouts", "2", "--threads", "1", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["stats"]["reward_calls"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("family", ["math-shepherd", "skywork-o1"])
def test_same_file_shares_the_policy_backend(family: str, ggufs) -> None:  # type: ignore[no-untyped-def]
    """Policy and PRM from one file: one llama.cpp context; the PRM's reads (logits, or hidden
    states switched on for its decodes only) leave the policy's generation as it was."""
    from edgestar.backends.base import StepRequest

    path = ggufs[family]
    req = [StepRequest("What is 2 + 3?\n", 2, seed=5, max_tokens=12)]
    q, steps = SAMPLES[0]
    with edgestar.load(model=path, ppm=f"{family}:{path}", step_format="plain", threads=1) as s:
        assert isinstance(s.reward, PrmReward)
        assert s.reward.engine is s.policy and not s.reward.own_engine
        before = s.policy.propose(req)
        shared = s.reward.step_probabilities(q, steps)
        after = s.policy.propose(req)
        assert [c.text for c in after[0].candidates] == [c.text for c in before[0].candidates]
        assert all(c.hidden is None for c in after[0].candidates)
    alone = open_prm(f"{family}:{path}", threads=1)
    assert alone is not None
    try:
        assert alone.step_probabilities(q, steps) == pytest.approx(shared, abs=1e-3)
    finally:
        alone.close()


@pytest.mark.slow
def test_bundle_with_a_prm(ggufs, policy_gguf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A bundle whose ppm is a converted PRM (its head file listed beside it)."""
    import shutil

    from edgestar.bundle import write_manifest

    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copy(policy_gguf, b / "policy.gguf")
    shutil.copy(ggufs["qwen2.5-math-prm"], b / "qwen2.5-math-prm.gguf")
    shutil.copy(ggufs["qwen2.5-math-prm"].with_name("qwen2.5-math-prm.prm-head.npz"), b)
    files = ["policy.gguf", "qwen2.5-math-prm.gguf", "qwen2.5-math-prm.prm-head.npz"]
    write_manifest(
        b,
        {
            "name": "tiny-prm",
            "step_format": "rstar",
            "policy": {"file": "policy.gguf", "kind": "gguf", "quant": "q4_k_m"},
            "ppm": {"file": "qwen2.5-math-prm.gguf", "kind": "gguf", "quant": "f32"},
            "files": {f: {} for f in files},
            "search": {"strategy": "beam", "width": 2, "max_step_tokens": 48,
                       "budget": {"rollouts": 2}},
        },
    )  # fmt: skip
    with edgestar.load(b, threads=1, device="cpu") as solver:
        assert isinstance(solver.reward, PrmReward)
        assert solver.reward.family.name == "qwen2.5-math-prm"
        assert solver.solve("What is 2 + 3?").stats.reward_calls > 0


@pytest.mark.slow
def test_solve_bench_reports_memory_with_a_prm(ggufs, policy_gguf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgestar.solvebench import run_solve_bench

    spec = f"math-shepherd:{ggufs['math-shepherd']}"
    rep = run_solve_bench(
        None, tmp_path, questions=("What is 2 + 3?",), runs=1, threads=1, progress=False,
        model=policy_gguf, ppm=spec,
    )  # fmt: skip
    assert rep.data["median_peak_rss_mb"] > 0 and spec in rep.data["bundle"]
    with pytest.raises(InputError, match="--ppm needs --model"):
        run_solve_bench(None, tmp_path / "x", ppm=spec)


# ------------------------------------------------------------------------------ refusals


def test_family_table_is_validated() -> None:
    from edgestar.prm import PrmFamily

    with pytest.raises(ValueError, match="a head exactly when"):
        PrmFamily("x", reads="hidden", layout="lines", sep="\n")
    with pytest.raises(ValueError, match="needs sep"):
        PrmFamily("x", reads="logits", layout="tagged")


def test_spec_parsing(tmp_path: Path) -> None:
    assert parse_prm_spec("rlhflow:/x/y.gguf") == ("rlhflow", Path("/x/y.gguf"))
    assert parse_prm_spec("a/b.gguf") == (None, Path("a/b.gguf"))
    with pytest.raises(InputError, match="unknown PRM family 'bogus'"):
        parse_prm_spec("bogus:x.gguf")
    odd = tmp_path / "x:y.gguf"
    odd.write_bytes(b"")
    assert parse_prm_spec(odd) == (None, odd)


@pytest.mark.slow
def test_unknown_and_mismatched_families_are_refused(
    ggufs, policy_gguf: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base = ["solve", "What is 1 + 1?", "--model", str(policy_gguf)]
    cases = {
        f"bogus:{ggufs['rlhflow']}": "unknown PRM family 'bogus'",
        f"rlhflow:{ggufs['skywork-o1']}": "is a skywork-o1 PRM, not rlhflow",
    }
    for spec, msg in cases.items():
        r = CliRunner().invoke(main, [*base, "--ppm", spec])
        assert r.exit_code != 0 and msg in r.output, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    # a head bound to another file
    other = tmp_path / "other.gguf"
    other.write_bytes(ggufs["skywork-o1"].read_bytes() + b"\0" * 64)
    (tmp_path / "skywork-o1.prm-head.npz").write_bytes(  # the name its metadata records
        (ggufs["skywork-o1"].parent / "skywork-o1.prm-head.npz").read_bytes()
    )
    with pytest.raises(ModelError, match="head belongs to another file"):
        open_prm(other)
    # a PRM head is no head for a policy
    with pytest.raises(ModelError, match="head of a process reward model"):
        edgestar.load(
            model=ggufs["skywork-o1"], ppm=ggufs["skywork-o1"].parent / "skywork-o1.prm-head.npz"
        )
    # an unknown family recorded in a GGUF's metadata
    with pytest.raises(ModelError, match="unknown PRM family"):
        from edgestar.prm import _family_of

        _family_of(_with_family(ggufs["rlhflow"], tmp_path / "odd.gguf", "nope"), None)


def _with_family(src: Path, dst: Path, family: str) -> Path:
    """A copy of `src` whose edgestar.prm.family is `family` (same length: patched in place)."""
    data = src.read_bytes()
    i = data.index(b"rlhflow", data.index(b"edgestar.prm.family"))
    dst.write_bytes(data[:i] + family.encode().ljust(7, b"_")[:7] + data[i + 7 :])
    return dst
