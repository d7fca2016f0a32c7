"""Tests for the ONNX export / quantization (quantize/onnx_export.py) and the ONNX Runtime
backend (edgestar/backends/onnx.py), against the torch reference backend on tiny random models.

What is measured (module-scoped fixtures: each export happens once, one thread everywhere):
- logits: raw onnxruntime on the exported graph (prefill with zero-length past, then 4 decode
  steps with the prefix KV repeated to 2 rows) against a cache-free torch forward over the same
  sequence: max abs diff over every prefill position and every decode step < 1e-4 (Llama and
  Qwen2; typically ~1e-6).
- tokenizer: ids from the `tokenizers` library on the exported folder equal the HF tokenizer's
  (digits, code, every rStar marker, Unicode, empty text).
- OnnxPolicy.propose equals TorchPolicy.propose: greedy (texts, finish, stop, token counts,
  logprobs within 1e-3) and sampled at temperature 1 with the same seed (exact same texts: the
  sampler is shared and float noise of ~1e-6 in logits does not move a draw in these cases).
- OnnxReward scores equal TorchReward's within 1e-4, cold and from cached parent KV.
- int8 / int4 folders load; logits drift vs the fp32 export: int8 < 0.05, int4 < 0.25 max abs
  (random tiny models, logit std ~0.16; measured ~0.012 and ~0.09).
- refusals (existing out_dir without force) and one-line ModelErrors for bad folders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("optimum.exporters.onnx")

from edgestar.backends import onnx as ob  # noqa: E402
from edgestar.backends import torch_backend as tb  # noqa: E402
from edgestar.backends.base import Policy, Reward, StepRequest  # noqa: E402
from edgestar.checkpoint import read_meta  # noqa: E402
from edgestar.formats import RSTAR, Marker, rstar_solution  # noqa: E402
from edgestar.quantize.onnx_export import QUANTS, export_onnx, quantize_onnx  # noqa: E402
from edgestar.train.tiny import TINY_PRESETS, TinyConfig, make_tiny_checkpoint  # noqa: E402
from edgestar.types import InputError, ModelError  # noqa: E402

pytestmark = [pytest.mark.onnx, pytest.mark.torch, pytest.mark.slow]
torch.set_num_threads(1)

PROMPT = RSTAR.prompt("What is (12 + 7) * 3?")
SOLUTION = rstar_solution([("Add.", "x = 12 + 7")], "print(x * 3)", "57", "57")
LOGIT_TOL = 1e-4
REWARD_TOL = 1e-4
DRIFT = {"int8": 0.05, "int4": 0.25}


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def ckpts(work: Path) -> dict[str, Path]:
    return {
        "llama": make_tiny_checkpoint(work / "llama", TINY_PRESETS["test"]),
        "qwen2": make_tiny_checkpoint(work / "qwen2", TINY_PRESETS["test-qwen2"]),
        "ppm": make_tiny_checkpoint(work / "ppm", TinyConfig(seed=3), role="ppm"),
    }


@pytest.fixture(scope="module")
def exports(work: Path, ckpts: dict[str, Path]) -> dict[str, Path]:
    return {name: export_onnx(p, work / f"{name}-onnx") for name, p in ckpts.items()}


@pytest.fixture(scope="module")
def quantized(work: Path, exports: dict[str, Path]) -> dict[str, Any]:
    return {q: quantize_onnx(exports["llama"], work / f"llama-{q}", q) for q in QUANTS}


@pytest.fixture(scope="module")
def torch_policies(ckpts: dict[str, Path]) -> dict[str, tb.TorchPolicy]:
    ps = {a: tb.TorchPolicy(ckpts[a], device="cpu", threads=1) for a in ("llama", "qwen2")}
    yield ps
    for p in ps.values():
        p.close()


@pytest.fixture(scope="module")
def onnx_policies(exports: dict[str, Path]) -> dict[str, ob.OnnxPolicy]:
    ps = {a: ob.OnnxPolicy(exports[a], device="cpu", threads=1) for a in ("llama", "qwen2")}
    yield ps
    for p in ps.values():
        p.close()


def _session(folder: Path) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(folder / "model.onnx"), sess_options=so, providers=["CPUExecutionProvider"]
    )


def _run(sess: Any, ids: np.ndarray, past: list[np.ndarray] | None, past_len: int) -> Any:
    """One step of the optimum graph by hand: the contract the backend relies on."""
    b, s = ids.shape
    past_inputs = [i for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    if past is None:
        past = [np.zeros((b, i.shape[1], 0, i.shape[3]), np.float32) for i in past_inputs]
    feeds = {
        "input_ids": ids.astype(np.int64),
        "attention_mask": np.ones((b, past_len + s), np.int64),
        "position_ids": np.tile(np.arange(past_len, past_len + s, dtype=np.int64), (b, 1)),
        **{i.name: a for i, a in zip(past_inputs, past, strict=True)},
    }
    presents = [i.name.replace("past_key_values.", "present.") for i in past_inputs]
    out = sess.run(["logits", *presents], feeds)
    return out[0], out[1:]


def _torch_logits(model: Any, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


# ------------------------------------------------------------------------------ export folder


def test_export_folder_is_self_contained(ckpts: dict[str, Path], exports: dict[str, Path]):
    for name, folder in exports.items():
        for f in ("model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json"):
            assert (folder / f).is_file(), (name, f)
        assert (folder / "tokenizer.json").read_bytes() == (
            ckpts[name] / "tokenizer.json"
        ).read_bytes()
        meta = read_meta(folder)
        assert meta.role == read_meta(ckpts[name]).role
        info = meta.provenance["onnx"]
        assert info["quant"] == "fp32" and info["task"] == "text-generation-with-past"
        outputs = {o.name for o in _session(folder).get_outputs()}
        assert ("reward" in outputs) == (name == "ppm"), (name, outputs)
        assert not list(folder.parent.glob(f".{folder.name}.*")), "temp folder left behind"


# ----------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_logits_match_torch_prefill_and_decode(arch, exports, torch_policies):
    model = torch_policies[arch].model
    ids = torch_policies[arch].encode(PROMPT + SOLUTION[:40])
    sess = _session(exports[arch])
    logits, kv = _run(sess, np.array([ids]), None, 0)
    diffs = [float(np.abs(logits[0] - _torch_logits(model, ids)).max())]
    kv = [np.repeat(a, 2, axis=0) for a in kv]  # two rows sharing the prefix, as propose does
    seq = list(ids)
    for _ in range(4):
        tok = int(np.argmax(logits[0, -1]))
        seq.append(tok)
        logits, kv = _run(sess, np.array([[tok], [tok]]), kv, len(seq) - 1)
        ref = _torch_logits(model, seq)[-1]
        diffs += [float(np.abs(logits[r, -1] - ref).max()) for r in range(2)]
    print(f"\n{arch}: max |onnx - torch| logits over prefill + 4 decode steps = {max(diffs):.2e}")
    assert max(diffs) < LOGIT_TOL


TOKENIZER_TEXTS = [
    "0123456789",
    "12345 + 67890 = 80235; 3.14159 -1 1/2 2**3 10 // 3 7 % 3",
    "def f(x):\n    return x ** 2\n\nprint(f(12))\n",
    "for i in range(10):\n\tif i % 2 == 0: print(i)  # even",
    *Marker.ALL,
    "".join(Marker.ALL),
    PROMPT + SOLUTION,
    "Ünïcödé: αβγ ∑ √2 ≤ 3 — 你好 🤖 \u00a0café",
    "",
    "  leading and trailing  ",
    "<|endoftext|> after eos",
]


def test_tokenizer_ids_match_hf(exports: dict[str, Path]):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    for name in ("llama", "qwen2"):
        folder = exports[name]
        hf = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        ours = ob.OnnxPolicy(folder, device="cpu", threads=1, cache_entries=0)
        for text in TOKENIZER_TEXTS:
            ids = hf.encode(text, add_special_tokens=False)
            assert raw.encode(text, add_special_tokens=False).ids == ids, text
            assert ours.encode(text) == tb.encode_prefix(hf, text), text
            assert ours.tokenizer.decode(ids) == hf.decode(
                ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        for m in Marker.ALL:
            assert len(ours.encode(m)) == 1, m
        ours.close()


def _summary(props: list[Any]) -> list[list[tuple[str, int, str, str | None]]]:
    return [[(c.text, c.n_tokens, c.finish, c.stop) for c in p.candidates] for p in props]


def _requests(temperature: float, top_p: float = 0.95) -> list[StepRequest]:
    return [
        StepRequest(PROMPT, k=4, seed=1, max_tokens=16, temperature=temperature, top_p=top_p),
        StepRequest(PROMPT + SOLUTION[:30], k=1, seed=2, max_tokens=12, temperature=temperature),
        StepRequest(
            PROMPT, k=3, seed=3, max_tokens=24, temperature=temperature, stop=(" ", "\n", "=")
        ),
        StepRequest("", k=2, seed=4, max_tokens=8, temperature=temperature, top_p=1.0),
    ]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_propose_greedy_equals_torch(arch, onnx_policies, torch_policies, exports):
    ours, ref = onnx_policies[arch], torch_policies[arch]
    reqs = _requests(0.0)
    a, b = ours.propose(reqs), ref.propose(reqs)
    assert _summary(a) == _summary(b)
    for pa, pb in zip(a, b, strict=True):
        for ca, cb in zip(pa.candidates, pb.candidates, strict=True):
            assert ca.logprob == pytest.approx(cb.logprob, abs=1e-3)
    assert any(c.finish == "stop" for c in a[2].candidates)
    # With the prefix cache off, tokens_evaluated is TorchPolicy's prefix + generated.
    cold = ob.OnnxPolicy(exports[arch], device="cpu", threads=1, cache_entries=0)
    assert [p.tokens_evaluated for p in cold.propose(reqs)] == [p.tokens_evaluated for p in b]
    cold.close()


def test_propose_sampled_equals_torch_and_is_deterministic(onnx_policies, torch_policies):
    ours, ref = onnx_policies["llama"], torch_policies["llama"]
    for top_p in (0.95, 1.0):
        reqs = _requests(1.0, top_p)
        a = _summary(ours.propose(reqs))
        assert a == _summary(ref.propose(reqs))
        assert a == _summary(ours.propose(reqs))  # warm cache: same draws
    diff_seed = StepRequest(PROMPT, k=4, seed=99, max_tokens=16, temperature=1.0)
    assert _summary(ours.propose([diff_seed])) != _summary(ours.propose(_requests(1.0)[:1]))


def test_eos_finish_equals_torch(onnx_policies, torch_policies):
    """A random model rarely samples its real EOS, so both policies get the same large set of
    end tokens for this test: candidates then finish 'eos' after a few tokens."""
    ours, ref = onnx_policies["llama"], torch_policies["llama"]
    req = StepRequest(PROMPT, k=4, seed=5, max_tokens=20, temperature=1.0, top_p=1.0)
    saved = (ours.eos_ids, ref.eos_ids)
    try:
        ours.eos_ids = ref.eos_ids = frozenset(range(300, 400))
        a, b = ours.propose([req]), ref.propose([req])
    finally:
        ours.eos_ids, ref.eos_ids = saved
    assert _summary(a) == _summary(b)
    assert any(c.finish == "eos" for c in a[0].candidates)


def test_prefix_cache_extends_parent_and_keeps_answers(exports):
    warm = ob.OnnxPolicy(exports["llama"], device="cpu", threads=1)
    cold = ob.OnnxPolicy(exports["llama"], device="cpu", threads=1, cache_entries=0)
    parent = warm.propose([StepRequest(PROMPT, k=2, seed=5, max_tokens=10, temperature=0.9)])[0]
    n_parent = len(warm.encode(PROMPT))
    assert parent.tokens_evaluated == n_parent + sum(c.n_tokens for c in parent.candidates)
    child = PROMPT + parent.candidates[0].text
    req = StepRequest(child, k=3, seed=6, max_tokens=10, temperature=0.9)
    a, b = warm.propose([req])[0], cold.propose([req])[0]
    assert _summary([a]) == _summary([b])
    generated = sum(c.n_tokens for c in a.candidates)
    assert b.tokens_evaluated == len(cold.encode(child)) + generated
    assert a.tokens_evaluated < b.tokens_evaluated  # only what the parent's KV lacks
    again = warm.propose([req])[0]
    assert _summary([again]) == _summary([a])
    assert again.tokens_evaluated == generated  # exact hit: nothing re-evaluated
    assert 0 < len(warm.cache) <= warm.cache.max_entries and warm.cache.nbytes > 0
    warm.close()
    cold.close()
    with pytest.raises(ModelError):
        warm.propose([req])


def test_chat_prompt_equals_torch(onnx_policies, torch_policies):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 + 3? ü"},
    ]
    for arch in ("llama", "qwen2"):
        out = onnx_policies[arch].chat_prompt(msgs)
        assert out is not None and out == torch_policies[arch].chat_prompt(msgs)
    assert isinstance(onnx_policies["llama"], Policy)


# ----------------------------------------------------------------------------------- reward


def test_reward_equals_torch(ckpts: dict[str, Path], exports: dict[str, Path]):
    ref = tb.TorchReward(ckpts["ppm"], device="cpu", threads=1)
    ours = ob.OnnxReward(exports["ppm"], device="cpu", threads=1, batch_size=2)
    assert isinstance(ours, Reward) and ours.providers == ["CPUExecutionProvider"]
    parents = [PROMPT, PROMPT + SOLUTION[:25], "", "Ünïcödé ∑ 你好", PROMPT]
    children = [PROMPT + SOLUTION, PROMPT + SOLUTION[:25] + " x = 1", PROMPT + "Step"]
    diffs: list[float] = []
    for batch in (parents, children, parents + children):  # cold, from parent KV, all cached
        a, b = ours.score(batch), ref.score(batch)
        diffs += [abs(x - y) for x, y in zip(a, b, strict=True)]
        assert all(-1 < x < 1 for x in a)
    raw = ours.raw_rewards(children)
    diffs += [abs(x - y) for x, y in zip(raw, ref.raw_rewards(children), strict=True)]
    print(f"\nmax |onnx - torch| reward (scores and raw r) = {max(diffs):.2e}")
    assert max(diffs) < REWARD_TOL
    assert len({round(x, 4) for x in ours.score(parents[:4])}) == 4  # not a constant
    ours.close()
    ref.close()


# ------------------------------------------------------------------------------ quantization


@pytest.mark.parametrize("quant", list(QUANTS))
def test_quantized_folder_loads_and_drifts_within_bound(quant, exports, quantized):
    rep = quantized[quant]
    assert read_meta(rep.path).provenance["onnx"]["quant"] == quant
    assert rep.bytes_after < rep.bytes_before * (0.7 if quant == "int8" else 0.5)
    ids = ob.OnnxPolicy(exports["llama"], device="cpu", threads=1, cache_entries=0).encode(
        PROMPT + SOLUTION
    )
    ref, _ = _run(_session(exports["llama"]), np.array([ids]), None, 0)
    got, _ = _run(_session(rep.path), np.array([ids]), None, 0)
    drift = float(np.abs(got - ref).max())
    print(f"\n{quant}: {rep}; max logit drift {drift:.3e} (logit std {ref.std():.3f})")
    assert drift < DRIFT[quant]
    pol = ob.OnnxPolicy(rep.path, device="cpu", threads=1)
    (p,) = pol.propose([StepRequest(PROMPT, k=2, seed=1, max_tokens=6, temperature=0.0)])
    assert len(p.candidates) == 2 and all(c.n_tokens >= 1 for c in p.candidates)
    pol.close()


def test_quantized_ppm_keeps_value_head(work, exports):
    rep = quantize_onnx(exports["ppm"], work / "ppm-int8", "int8")
    a = ob.OnnxReward(exports["ppm"], device="cpu", threads=1)
    b = ob.OnnxReward(rep.path, device="cpu", threads=1)
    prefixes = [PROMPT, PROMPT + SOLUTION]
    drift = max(abs(x - y) for x, y in zip(a.score(prefixes), b.score(prefixes), strict=True))
    print(f"\nppm int8 score drift {drift:.3e}")
    assert drift < 0.1


def test_quantize_refusals(work, exports, quantized):
    with pytest.raises(InputError, match="unknown quant"):
        quantize_onnx(exports["llama"], work / "x", "int3")
    with pytest.raises(InputError, match="already exists"):
        quantize_onnx(exports["llama"], quantized["int8"].path, "int8")
    with pytest.raises(InputError, match="already quantized"):
        quantize_onnx(quantized["int8"].path, work / "int8-again", "int8")


# -------------------------------------------------------------------------- refusals, errors


def test_export_refuses_existing_out_dir_unless_force(work, ckpts, exports):
    out = exports["llama"]
    with pytest.raises(InputError, match="already exists"):
        export_onnx(ckpts["llama"], out)
    with pytest.raises(InputError, match="must not be"):
        export_onnx(ckpts["llama"], ckpts["llama"], force=True)
    target = work / "forced"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    assert export_onnx(ckpts["llama"], target, force=True) == target
    assert not (target / "stale.txt").exists() and (target / "model.onnx").is_file()
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".forced")) == []


def _broken(src: Path, dst: Path, name: str, data: bytes | None) -> Path:
    shutil.copytree(src, dst)
    if data is None:
        (dst / name).unlink()
    else:
        (dst / name).write_bytes(data)
    return dst


def test_bad_folders_give_one_line_model_errors(work: Path, ckpts, exports):
    good = exports["llama"]
    onnx_bytes = (good / "model.onnx").read_bytes()
    cases: list[tuple[Any, Path]] = [
        (ob.OnnxPolicy, work / "nope"),
        (ob.OnnxPolicy, _broken(good, work / "b1", "model.onnx", None)),
        (ob.OnnxPolicy, _broken(good, work / "b2", "model.onnx", b"garbage, not protobuf")),
        (
            ob.OnnxPolicy,
            _broken(good, work / "b3", "model.onnx", onnx_bytes[: len(onnx_bytes) // 2]),
        ),
        (ob.OnnxPolicy, _broken(good, work / "b4", "tokenizer.json", b"{not json")),
        (ob.OnnxPolicy, _broken(good, work / "b5", "tokenizer.json", None)),
        (ob.OnnxPolicy, _broken(good, work / "b6", "edgestar.json", b"[1, 2]")),
        (ob.OnnxReward, good),  # a policy export has no value head
        (ob.OnnxReward, _broken(exports["ppm"], work / "b7", "edgestar.json", None)),
        (export_onnx, work / "nope"),
        (export_onnx, _broken(ckpts["llama"], work / "c1", "config.json", None)),
        (export_onnx, _broken(ckpts["llama"], work / "c2", "config.json", b"{oops")),
        (export_onnx, _broken(ckpts["llama"], work / "c3", "model.safetensors", None)),
        (export_onnx, _broken(ckpts["ppm"], work / "c4", "value_head.safetensors", None)),
    ]
    for fn, folder in cases:
        args = (folder, work / f"out-{folder.name}") if fn is export_onnx else (folder,)
        kwargs = {} if fn is export_onnx else {"device": "cpu", "threads": 1}
        with pytest.raises(ModelError) as e:
            fn(*args, **kwargs)
        msg = str(e.value)
        assert msg and "\n" not in msg, (fn, folder, msg)
    with pytest.raises(ModelError, match="no such ONNX folder"):
        quantize_onnx(work / "nope", work / "q-nope", "int8")
    with pytest.raises(InputError, match="device"):
        ob.OnnxPolicy(good, device="tpu")
    with pytest.raises(InputError, match="threads"):
        ob.OnnxPolicy(good, device="cpu", threads=0)
    assert ob.resolve_providers("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(InputError, match="CUDAExecutionProvider"):
            ob.resolve_providers("cuda")
        assert ob.resolve_providers("auto") == ["CPUExecutionProvider"]


def test_runtime_imports_no_torch(exports: dict[str, Path]):
    code = f"""
import sys
import edgestar, edgestar.backends.onnx as ob
assert "onnxruntime" not in sys.modules, "import edgestar.backends.onnx loaded onnxruntime"
from edgestar.backends.base import StepRequest
p = ob.OnnxPolicy({str(exports["llama"])!r}, device="cpu", threads=1)
p.propose([StepRequest("1 + 1 =", k=2, seed=0, max_tokens=3)])
r = ob.OnnxReward({str(exports["ppm"])!r}, device="cpu", threads=1)
r.score(["1 + 1 = 2"])
heavy = [m for m in ("torch", "transformers", "optimum") if m in sys.modules]
assert not heavy, heavy
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert json.loads((exports["llama"] / "config.json").read_text())["model_type"] == "llama"
