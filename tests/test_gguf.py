"""Tests for GGUF export (quantize/gguf_export.py), llama.cpp quantization
(quantize/gguf_quant.py) and the llama.cpp backends (edgestar/backends/llamacpp.py), against
torch on tiny random Llama and Qwen2 checkpoints made here (train/tiny.py).

The tiny checkpoints' 2-D weights are multiplied by SHARPEN: with transformers' default init
(std 0.02) attention is nearly uniform and logits nearly flat, so a wrong q/k layout moves logits
by only ~6e-3 and greedy decoding sits on near-ties. Sharpened, a wrong layout moves them by ~4.

Measured (2-core Xeon, 1 thread, sharpened test models, logit std ~0.65), with the bounds used:
- F32 GGUF vs torch, F32 KV: max |diff| 1.8e-6 (llama), 1.9e-6 (qwen2); bound 1e-3.
  (f16 export 4e-3, bf16 3e-2; the default F16 KV cache alone 3e-3.)
- quantized vs the F32 GGUF, over 3 prompts: q8_0 max drift 0.08, top-1 agreement 0.93 (bounds
  0.3 / 0.8); q4_0 1.13, 0.52 (bounds 2.5 / 0.3). Same file sizes: F32 572 kB, q8_0 163 kB,
  q4_0 109 kB.
- PPM score vs torch: 7e-7 (bound 1e-3).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from safetensors.torch import load_file, save_file  # noqa: E402

from edgestar.backends import llamacpp as lc  # noqa: E402
from edgestar.backends.base import Policy, Reward, StepRequest  # noqa: E402
from edgestar.backends.torch_backend import encode_prefix  # noqa: E402
from edgestar.formats import RSTAR, Marker, rstar_solution  # noqa: E402
from edgestar.quantize.gguf_export import export_gguf  # noqa: E402
from edgestar.quantize.gguf_quant import QUANTS, quantize_gguf  # noqa: E402
from edgestar.train.tiny import EOS_TOKEN, TinyConfig, build_tokenizer, make_tiny_checkpoint  # noqa: E402
from edgestar.train.tiny import sharpen_checkpoint as sharpen  # noqa: E402
from edgestar.types import InputError, ModelError  # noqa: E402

pytestmark = [pytest.mark.llama, pytest.mark.torch]
torch.set_num_threads(1)

SHARPEN = 4.0
ARCHS = ("llama", "qwen2")
LLAMA_KW = dict(n_ctx=512, n_threads=1, kv_f32=True)

QUESTION = "What is (12 + 7) * 3?"
SOLUTION = rstar_solution([("Add 12 and 7.", "x = 12 + 7")], "print(x * 3)", "57", "57")
PROMPTS = [
    RSTAR.prompt(QUESTION),
    RSTAR.prompt(QUESTION) + SOLUTION,
    "def f(x):\n    return x ** 2 + 1  # 3.14159\n",
]
TOKENIZER_STRINGS = [
    "",
    "0 1 12 123 1234 12345 3.14159 -42 1e10 1/2 2**10 007",
    "def solve(n):\n    total = sum(i * i for i in range(n))\n    return total  # done\n",
    *Marker.ALL,
    "".join(Marker.ALL),
    f"{Marker.CODE}\nx=1\n{Marker.END_STEP}{Marker.OUTPUT}1{Marker.END_OUTPUT}",
    "héllo wörld — 你好，世界 😀👍🏽 ∑∫√π α β γ ½ \u00a0 \u200b",
    "  leading and trailing spaces   \n\n\t\ttabs\r\nCRLF",
    "I'm you'll they've can't 'quoted' \"double\"",
    EOS_TOKEN + "after eos",
    RSTAR.prompt(QUESTION) + SOLUTION,
]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return build_tokenizer()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for arch in ARCHS:
        cfg = TinyConfig(arch=arch, seed=1)
        out[arch] = sharpen(make_tiny_checkpoint(root / arch, cfg, tokenizer=tokenizer), SHARPEN)
    out["ppm"] = sharpen(
        make_tiny_checkpoint(root / "ppm", TinyConfig(seed=3), role="ppm", tokenizer=tokenizer),
        SHARPEN,
    )
    return out


@pytest.fixture(scope="module")
def ggufs(ckpts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    return {k: export_gguf(v, root / f"{k}.gguf") for k, v in ckpts.items()}


@pytest.fixture(scope="module")
def hf_models(ckpts: dict[str, Path]) -> dict[str, object]:
    from transformers import AutoModelForCausalLM

    return {
        a: AutoModelForCausalLM.from_pretrained(ckpts[a], dtype=torch.float32).eval() for a in ARCHS
    }


@pytest.fixture(scope="module")
def policies(ggufs: dict[str, Path]):  # type: ignore[no-untyped-def]
    pols = {a: lc.LlamaCppPolicy(ggufs[a], **LLAMA_KW) for a in ARCHS}
    yield pols
    for p in pols.values():
        p.close()


def _torch_logits(model: object, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()  # type: ignore[operator]


# ------------------------------------------------------------------------------ export parity


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_match_torch(arch: str, policies, hf_models) -> None:  # type: ignore[no-untyped-def]
    pol = policies[arch]
    for text in PROMPTS:
        ids = pol.tokenize(text)
        ours = pol.logits(text, all_positions=True)
        ref = _torch_logits(hf_models[arch], ids)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() < 1e-3, arch
        # the cached path (only the new suffix evaluated) gives the same last-position logits
        assert np.abs(pol.logits(text) - ref[-1]).max() < 1e-3
    assert ref.std() > 0.3  # sharpened: the comparison is not between flat vectors


@pytest.mark.parametrize("arch", ARCHS)
def test_tokenizer_ids_match_hf(arch: str, policies, tokenizer) -> None:  # type: ignore[no-untyped-def]
    pol = policies[arch]
    for s in TOKENIZER_STRINGS:
        assert pol.tokenize(s) == encode_prefix(tokenizer, s), repr(s)
    model = pol._rt.model
    for m in Marker.ALL:
        (tid,) = pol.tokenize(m)
        assert model.token_text(tid) == m  # special tokens render as their text


def test_digit_split_tokenizer_matches_hf(tmp_path: Path) -> None:
    """The shipped preset's tokenizer (one token per digit) exports as pre-tokenizer 'qwen2',
    and llama.cpp splits exactly as the HF tokenizer does."""
    tok = build_tokenizer(vocab_size=600, split_digits=True)
    assert [tok.decode([i]) for i in tok.encode("x = 24.74")][-5:] == ["2", "4", ".", "7", "4"]
    ckpt = make_tiny_checkpoint(tmp_path / "digits", TinyConfig(split_digits=True), tokenizer=tok)
    path = export_gguf(ckpt, tmp_path / "digits.gguf")
    assert lc.check_gguf(path).metadata["tokenizer.ggml.pre"] == "qwen2"
    pol = lc.LlamaCppPolicy(path, **LLAMA_KW)
    try:
        for s in TOKENIZER_STRINGS:
            assert pol.tokenize(s) == encode_prefix(tok, s), repr(s)
    finally:
        pol.close()


def test_gguf_metadata(ggufs: dict[str, Path], tokenizer) -> None:  # type: ignore[no-untyped-def]
    info = lc.check_gguf(ggufs["qwen2"])
    md = info.metadata
    assert md["general.architecture"] == "qwen2"
    assert md["tokenizer.ggml.model"] == "gpt2" and md["tokenizer.ggml.pre"] == "gpt-2"
    assert md["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert md["tokenizer.chat_template"] == tokenizer.chat_template
    assert md["edgestar.role"] == "policy" and md["edgestar.step_format"] == "rstar"
    r = gguf.GGUFReader(ggufs["qwen2"])
    names = {t.name for t in r.tensors}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= names
    types = list(r.fields["tokenizer.ggml.token_type"].contents())
    for m in (EOS_TOKEN, *Marker.ALL):
        assert types[tokenizer.convert_tokens_to_ids(m)] == gguf.TokenType.CONTROL
    # the runtime's header check knows ggml's block sizes
    sizes = {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()}
    assert all(sizes[k] == v for k, v in lc._GGML_SIZES.items())


def test_chat_prompt_matches_hf(policies, tokenizer) -> None:  # type: ignore[no-untyped-def]
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    want = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert policies["llama"].chat_prompt(msgs) == want


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_exports_load(dtype: str, ckpts, policies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = export_gguf(ckpts["llama"], tmp_path / f"m-{dtype}.gguf", dtype=dtype)
    with lc.LlamaCppPolicy(out, **LLAMA_KW) as pol:
        got = pol.logits(PROMPTS[1], all_positions=True)
    base = policies["llama"].logits(PROMPTS[1], all_positions=True)
    assert np.abs(got - base).max() < (0.05 if dtype == "f16" else 0.3)


# ------------------------------------------------------------------------------ quantization


@pytest.mark.parametrize(("quant", "bound", "agree"), [("q8_0", 0.3, 0.8), ("q4_0", 2.5, 0.3)])
def test_quantized_drift(
    quant: str, bound: float, agree: float, ggufs, policies, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    rep = quantize_gguf(ggufs["llama"], tmp_path / f"{quant}.gguf", quant, n_threads=1)
    assert rep.out.is_file() and rep.out_bytes < rep.src_bytes / 3
    counts = dict(rep.type_counts)
    assert counts[QUANTS[quant].main_type] >= 14
    # output.weight wants Q6_K for q4_0; its 64-wide rows force Q8_0 instead
    assert {f.name for f in rep.fallbacks} <= {"output.weight"}
    with lc.LlamaCppPolicy(rep.out, **LLAMA_KW) as pol:
        got = pol.logits(PROMPTS[1], all_positions=True)
    base = policies["llama"].logits(PROMPTS[1], all_positions=True)
    assert np.abs(got - base).max() < bound
    assert (got.argmax(-1) == base.argmax(-1)).mean() > agree


def test_k_quant_fallbacks_reported(ggufs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rep = quantize_gguf(ggufs["llama"], tmp_path / "k.gguf", "q4_k_m", n_threads=1)
    # every 2-D weight of a 64-wide model has rows of 64 or 128: none can be a k-quant
    assert len(rep.fallbacks) == 16 and not rep.mixture
    assert all(f.type not in ("Q4_K", "Q6_K") for f in rep.fallbacks)
    with pytest.raises(InputError, match="exists"):
        quantize_gguf(ggufs["llama"], rep.out, "q4_k_m")
    with pytest.raises(InputError, match="already quantized"):
        quantize_gguf(rep.out, tmp_path / "again.gguf", "q4_0", allow_requantize=False)
    again = quantize_gguf(rep.out, tmp_path / "again.gguf", "q8_0", n_threads=1)
    assert again.requantized_from is not None and rep.requantized_from is None
    with pytest.raises(InputError, match="unknown quant"):
        quantize_gguf(ggufs["llama"], tmp_path / "x.gguf", "q3_xx")


# ------------------------------------------------------------------------------ PPM


def test_ppm_score_matches_torch(ckpts, ggufs) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModel

    prefixes = [PROMPTS[0], PROMPTS[1], PROMPTS[0] + "# Step 1: add\n", "x", "", PROMPTS[2]]
    # a small context and 3 sequences force several groups and multi-chunk batches
    with lc.LlamaCppReward(ggufs["ppm"], n_ctx=256, n_threads=1, n_seq_max=3, kv_f32=True) as rw:
        assert isinstance(rw, Reward)
        got = rw.score(prefixes)
        assert rw.score(prefixes[::-1]) == pytest.approx(got[::-1], abs=1e-6)
    tok_dir = ckpts["ppm"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    backbone = AutoModel.from_pretrained(tok_dir, dtype=torch.float32).eval()
    head = load_file(str(tok_dir / "value_head.safetensors"))
    meta = json.loads((tok_dir / "edgestar.json").read_text())
    want = []
    for p in prefixes:
        with torch.no_grad():
            h = backbone(torch.tensor([encode_prefix(tok, p)])).last_hidden_state[0, -1]
        r = float(head["weight"][0] @ h + head["bias"][0])
        want.append(float(np.tanh(r / meta["value_head"]["score_scale"])))
    assert np.abs(np.array(got) - np.array(want)).max() < 1e-3
    assert max(want) - min(want) > 0.05  # the scores differ between prefixes


def test_reward_refuses_policy_file(ggufs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match="not a PPM"):
        lc.LlamaCppReward(ggufs["llama"], n_ctx=128, n_threads=1)


# ------------------------------------------------------------------------------ propose


def test_propose_deterministic_per_seed(policies, ggufs) -> None:  # type: ignore[no-untyped-def]
    pol = policies["llama"]
    assert isinstance(pol, Policy)
    req = StepRequest(PROMPTS[0], k=4, seed=7, max_tokens=24, temperature=1.0, top_p=0.95)
    (a,) = pol.propose([req])
    (b,) = pol.propose([req])  # now the prompt is cached
    with lc.LlamaCppPolicy(ggufs["llama"], n_seq_max=3, **LLAMA_KW) as fresh:
        (c,) = fresh.propose([req])  # k=4 > 3 sequences: two rounds
    (d,) = pol.propose([StepRequest(PROMPTS[0], k=4, seed=8, max_tokens=24, temperature=1.0)])

    def key(p):  # type: ignore[no-untyped-def]
        return [(x.text, x.n_tokens, x.finish, x.stop) for x in p.candidates]

    assert len(a.candidates) == 4
    assert key(a) == key(b) == key(c)
    assert [x.logprob for x in a.candidates] == pytest.approx([x.logprob for x in c.candidates])
    assert key(a) != key(d)
    assert len({x.text for x in a.candidates}) > 1  # candidates differ from each other
    n_prompt = len(pol.tokenize(PROMPTS[0]))
    # tokens_evaluated counts rows llama.cpp decoded: a candidate's last token is never fed
    # back; with 3 sequences for 4 candidates the 4th starts from the cached prompt and decodes
    # its last token again (for its logits), as does every candidate of the cached request b
    assert c.tokens_evaluated == n_prompt + 1 + sum(x.n_tokens - 1 for x in c.candidates)
    assert b.tokens_evaluated == 1 + sum(x.n_tokens - 1 for x in b.candidates)  # cached prompt


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_torch_argmax(arch: str, policies, hf_models) -> None:  # type: ignore[no-untyped-def]
    pol = policies[arch]
    n = 20
    (prop,) = pol.propose([StepRequest(PROMPTS[1], k=2, seed=0, max_tokens=n, temperature=0)])
    ids = pol.tokenize(PROMPTS[1])
    gen: list[int] = []
    for _ in range(n):
        gen.append(int(_torch_logits(hf_models[arch], ids + gen)[-1].argmax()))
    tok = pol._rt.model
    assert 0 not in gen  # no EOS on this path (EOS is id 0)
    want = b"".join(tok.piece(t) for t in gen).decode("utf-8", errors="replace")
    for c in prop.candidates:
        assert (c.text, c.n_tokens, c.finish) == (want, n, "length")
    # a stop string cuts the text right after it
    stop = want[5:9]
    (cut,) = pol.propose(
        [StepRequest(PROMPTS[1], k=1, seed=0, max_tokens=n, temperature=0, stop=(stop, "zzzz"))]
    )
    c = cut.candidates[0]
    assert c.finish == "stop" and c.stop == stop
    assert c.text == want[: want.index(stop) + len(stop)] and c.n_tokens < n


def test_eos_finishes_candidate(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # all-zero lm_head: every logit ties, greedy takes the lowest id = EOS (id 0)
    ckpt = tmp_path / "eos"
    shutil.copytree(ckpts["llama"], ckpt)
    sd = load_file(str(ckpt / "model.safetensors"))
    sd["lm_head.weight"] = torch.zeros_like(sd["lm_head.weight"])
    save_file(sd, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    with lc.LlamaCppPolicy(export_gguf(ckpt, tmp_path / "eos.gguf"), **LLAMA_KW) as pol:
        (p,) = pol.propose([StepRequest(PROMPTS[0], k=3, seed=1, temperature=0)])
    assert [(c.text, c.n_tokens, c.finish) for c in p.candidates] == [("", 1, "eos")] * 3


def test_k4_sampling_fills_every_row(policies) -> None:  # type: ignore[no-untyped-def]
    """Four sampled siblings in one batch: each row generates, and the rows differ. (Its speed
    is `edgestar bench`'s to measure: a timed assertion fails on a loaded shared machine.)"""
    pol = policies["llama"]
    req = StepRequest(PROMPTS[0], k=4, seed=3, max_tokens=64, temperature=1.0)
    (p,) = pol.propose([req])
    assert len(p.candidates) == 4 and all(c.n_tokens > 0 for c in p.candidates)
    assert len({c.text for c in p.candidates}) > 1


# ------------------------------------------------------------------------------ errors


def test_export_refuses_existing_out(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(InputError, match="exists"):
        export_gguf(ckpts["llama"], out)
    assert out.read_bytes() == b"keep me"
    export_gguf(ckpts["llama"], out, force=True)
    assert out.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]  # no temp files left
    with pytest.raises(InputError, match="dtype"):
        export_gguf(ckpts["llama"], tmp_path / "x.gguf", dtype="q4")


def test_export_errors(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad"
    shutil.copytree(ckpts["llama"], bad)
    st = bad / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated"):
        export_gguf(bad, tmp_path / "t.gguf")
    assert not (tmp_path / "t.gguf").exists()

    shutil.copy(ckpts["llama"] / "model.safetensors", st)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(ModelError, match="unsupported architecture 'gpt2'"):
        export_gguf(bad, tmp_path / "a.gguf")

    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="missing tokenizer"):
        export_gguf(bad, tmp_path / "k.gguf")
    for err in ("t.gguf", "a.gguf", "k.gguf"):
        assert not (tmp_path / err).exists()


def test_bad_gguf_files(ggufs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "missing.gguf": None,
        "empty.gguf": b"",
        "text.gguf": b"this is not a model at all, just some text" * 10,
        "magic.gguf": b"GGUF" + b"\xff" * 60,
        "header.gguf": ggufs["llama"].read_bytes()[:2000],
        "data.gguf": ggufs["llama"].read_bytes()[:-1000],
    }
    for name, data in cases.items():
        p = tmp_path / name
        if data is not None:
            p.write_bytes(data)
        for cls in (lc.LlamaCppPolicy, lc.LlamaCppReward):
            with pytest.raises(ModelError) as e:
                cls(p, n_ctx=128, n_threads=1)
            assert "\n" not in str(e.value) and str(p) in str(e.value)
    with pytest.raises(ModelError, match="truncated"):
        lc.check_gguf(tmp_path / "data.gguf")


def test_closed_policy_raises(ggufs) -> None:  # type: ignore[no-untyped-def]
    pol = lc.LlamaCppPolicy(ggufs["llama"], n_ctx=128, n_threads=1)
    pol.close()
    pol.close()  # idempotent
    with pytest.raises(ModelError, match="closed"):
        pol.propose([StepRequest("x", k=1, seed=0)])


def test_runtime_import_is_light() -> None:
    code = (
        "import sys, edgestar, edgestar.backends\n"
        "assert 'llama_cpp' not in sys.modules\n"
        "import edgestar.backends.llamacpp\n"
        "bad = {'torch', 'transformers', 'gguf', 'llama_cpp'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
