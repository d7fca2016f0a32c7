"""Tests for the tiny-model factory (train/tiny.py) and the torch reference backend
(edgestar/backends/torch_backend.py): tokenizer shape, checkpoint contract, batched KV-cache
decoding against a cache-free forward, sampling determinism, stops, the PPM score against a
hand computation, and one-line ModelErrors for bad folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgestar.backends import torch_backend as tb  # noqa: E402
from edgestar.backends.base import Policy, Reward, StepRequest  # noqa: E402
from edgestar.backends.sampling import candidate_rngs  # noqa: E402
from edgestar.checkpoint import VALUE_HEAD_FILE, read_meta  # noqa: E402
from edgestar.formats import RSTAR, Marker, rstar_solution  # noqa: E402
from edgestar.train.tiny import (  # noqa: E402
    EOS_TOKEN,
    TINY_PRESETS,
    TinyConfig,
    build_tokenizer,
    make_tiny_checkpoint,
)
from edgestar.types import InputError, ModelError  # noqa: E402

pytestmark = pytest.mark.torch
torch.set_num_threads(1)

PROMPT = RSTAR.prompt("What is (12 + 7) * 3?")


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("policy"), TINY_PRESETS["test"])


@pytest.fixture(scope="module")
def ppm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ppm"), TinyConfig(seed=3), role="ppm")


@pytest.fixture(scope="module")
def policy(policy_dir: Path) -> tb.TorchPolicy:
    p = tb.TorchPolicy(policy_dir, device="cpu")
    yield p
    p.close()


@pytest.fixture(scope="module")
def reward(ppm_dir: Path) -> tb.TorchReward:
    r = tb.TorchReward(ppm_dir, device="cpu", batch_size=3)
    yield r
    r.close()


def _full_logits(model, ids: list[int]) -> torch.Tensor:
    """Last-position logits from a cache-free forward over the whole sequence."""
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()


# ------------------------------------------------------------------------------ tokenizer


def test_markers_are_single_special_tokens(policy: tb.TorchPolicy) -> None:
    tok = policy.tokenizer
    ids = [tok.encode(m, add_special_tokens=False) for m in Marker.ALL]
    assert all(len(i) == 1 for i in ids), ids
    assert len({i[0] for i in ids}) == len(Marker.ALL)
    assert tok.eos_token == EOS_TOKEN and tok.pad_token_id == tok.eos_token_id
    text = PROMPT + rstar_solution([("Add.", "x = 12 + 7")], "print(x * 3)", "57", "57")
    enc = tok.encode(text, add_special_tokens=False)
    assert sum(1 for t in enc if t in {i[0] for i in ids}) == sum(map(text.count, Marker.ALL))
    assert tok.decode(enc, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text
    assert policy.encode("") == [tok.eos_token_id]  # no BOS: empty prefix starts from EOS


def test_tokenizer_is_plain_gpt2_byte_level(policy_dir: Path) -> None:
    spec = json.loads((policy_dir / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE"
    assert spec["normalizer"] is None and spec["post_processor"] is None
    pre = spec["pre_tokenizer"]
    assert pre["type"] == "ByteLevel" and pre["add_prefix_space"] is False and pre["use_regex"]
    assert spec["decoder"]["type"] == "ByteLevel"
    added = {t["content"]: t for t in spec["added_tokens"]}
    assert set(Marker.ALL) | {EOS_TOKEN} <= set(added)
    assert all(added[m]["special"] for m in Marker.ALL)
    # Digits and operators come out of the GPT-2 regex split unchanged.
    tok = build_tokenizer(vocab_size=300)
    assert len(tok) <= 300
    assert tok.decode(tok.encode("x = 12*3-4")) == "x = 12*3-4"


def test_chat_prompt(policy: tb.TorchPolicy, policy_dir: Path, tmp_path: Path) -> None:
    out = policy.chat_prompt([{"role": "user", "content": "What is 2 + 2?"}])
    assert out == f"{Marker.USER}:\nWhat is 2 + 2?\n{Marker.ASSISTANT}:"
    assert RSTAR.prompt("What is 2 + 2?").startswith(out)
    bare = tmp_path / "bare"
    shutil.copytree(policy_dir, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    p = tb.TorchPolicy(bare, device="cpu")
    assert p.chat_prompt([{"role": "user", "content": "hi"}]) is None


# ------------------------------------------------------------------------------ factory


def test_checkpoint_contract(policy_dir: Path, ppm_dir: Path) -> None:
    for d in (policy_dir, ppm_dir):
        for f in ("config.json", "model.safetensors", "tokenizer.json", "edgestar.json"):
            assert (d / f).is_file(), f
    meta = read_meta(policy_dir)
    assert meta.role == "policy" and meta.step_format == "rstar" and meta.value_head is None
    assert meta.special_tokens == Marker.ALL
    assert meta.provenance["tiny_config"]["hidden_size"] == 64
    assert not (policy_dir / VALUE_HEAD_FILE).exists()
    pmeta = read_meta(ppm_dir)
    assert pmeta.role == "ppm"
    assert pmeta.value_head == {"hidden_size": 64, "score_scale": 5.0, "squash": "tanh"}
    w, b = tb.load_value_head(ppm_dir, 64)
    assert w.shape == (1, 64) and b.shape == (1,) and w.abs().mean() > 0.1
    config = json.loads((policy_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] == 512


def test_factory_is_deterministic(policy_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    again = make_tiny_checkpoint(tmp_path / "again", TINY_PRESETS["test"])
    a, b = load_file(policy_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = make_tiny_checkpoint(tmp_path / "other", TinyConfig(seed=1))
    c = load_file(other / "model.safetensors")
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


def test_tiny_config_validation() -> None:
    with pytest.raises(InputError, match="arch"):
        TinyConfig(arch="gpt2")
    with pytest.raises(InputError, match="divisible"):
        TinyConfig(hidden_size=66)
    with pytest.raises(InputError, match="num_kv_heads"):
        TinyConfig(num_kv_heads=3)
    with pytest.raises(InputError, match="positive"):
        TinyConfig(num_layers=0)
    with pytest.raises(InputError, match="split_digits"):
        TinyConfig(split_digits=1)  # type: ignore[arg-type]
    assert not TINY_PRESETS["edgestar-tiny"].split_digits  # measured worse (train/tiny.py)
    with pytest.raises(InputError, match="preset"):
        make_tiny_checkpoint("/nonexistent-unused", "no-such-preset")


def test_qwen2_preset_loads_and_decodes(tmp_path: Path) -> None:
    d = make_tiny_checkpoint(tmp_path / "q", "test-qwen2")
    assert json.loads((d / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    p = tb.TorchPolicy(d, device="cpu")
    (prop,) = p.propose([StepRequest(PROMPT, k=2, seed=0, max_tokens=5, temperature=0.0)])
    assert [c.n_tokens for c in prop.candidates] == [5, 5]
    ids = p.encode(PROMPT)
    assert prop.candidates[0].text.startswith(
        p.tokenizer.decode([int(_full_logits(p.model, ids).argmax())], skip_special_tokens=False)
    )


# ------------------------------------------------------------------------------ policy


def test_protocols(policy: tb.TorchPolicy, reward: tb.TorchReward) -> None:
    assert isinstance(policy, Policy) and isinstance(reward, Reward)
    assert policy.name and reward.name


def test_propose_shape_length_and_token_counts(policy: tb.TorchPolicy) -> None:
    reqs = [
        StepRequest(PROMPT, k=4, seed=1, max_tokens=7, temperature=1.0, top_p=1.0),
        StepRequest(PROMPT + "# Step 1:", k=2, seed=2, max_tokens=3, temperature=0.5),
    ]
    props = policy.propose(reqs)
    assert len(props) == 2
    for req, prop in zip(reqs, props, strict=True):
        assert len(prop.candidates) == req.k
        for c in prop.candidates:
            assert c.finish == "length" and c.n_tokens == req.max_tokens and c.stop is None
            assert c.logprob < 0
        n_prompt = len(policy.encode(req.prefix))
        assert prop.tokens_evaluated == n_prompt + req.k * req.max_tokens


def test_same_seed_same_candidates_other_seed_differs(policy: tb.TorchPolicy) -> None:
    def run(seed: int) -> list[tuple[str, float]]:
        req = StepRequest(PROMPT, k=3, seed=seed, max_tokens=12, temperature=1.0, top_p=0.95)
        return [(c.text, c.logprob) for c in policy.propose([req])[0].candidates]

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert [t for t, _ in a] != [t for t, _ in c]
    assert len({t for t, _ in a}) == 3  # the k candidates differ from each other


def test_greedy_matches_cache_free_argmax(policy: tb.TorchPolicy) -> None:
    """Batched decoding over a repeated KV cache == argmax of full forwards, token by token."""
    n = 10
    req = StepRequest(PROMPT, k=3, seed=0, max_tokens=n, temperature=0.0)
    (prop,) = policy.propose([req])
    ids = policy.encode(PROMPT)
    ref: list[int] = []
    lp = 0.0
    for _ in range(n):
        logits = _full_logits(policy.model, ids + ref)
        ref.append(int(logits.argmax()))
        lp += float(torch.log_softmax(logits.double(), -1)[ref[-1]])
    assert ref[0] not in policy.eos_ids
    text = policy.tokenizer.decode(ref, skip_special_tokens=False)
    for c in prop.candidates:
        assert c.text == text and c.n_tokens == n
        assert c.logprob == pytest.approx(lp, abs=1e-4)


def test_batched_rows_equal_single_rows_with_early_stops(
    policy: tb.TorchPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidate i of a k=4 batch (rows dropped as others stop) == candidate i decoded alone."""
    stops = ("a", "e", "1", "\n")
    req = StepRequest(PROMPT, k=4, seed=15, max_tokens=16, temperature=1.0, top_p=1.0, stop=stops)
    (batched,) = policy.propose([req])
    lengths = [c.n_tokens for c in batched.candidates]
    assert len(set(lengths)) == 4, lengths  # rows really left the batch at different steps
    for i in range(4):
        monkeypatch.setattr(tb, "candidate_rngs", lambda seed, k, i=i: candidate_rngs(seed, 4)[i:])
        (single,) = policy.propose([StepRequest(**{**req.__dict__, "k": 1})])
        c, s = batched.candidates[i], single.candidates[0]
        assert (c.text, c.n_tokens, c.finish, c.stop) == (s.text, s.n_tokens, s.finish, s.stop)
        assert c.logprob == pytest.approx(s.logprob, abs=1e-4)


def test_stop_string_cuts_text(policy: tb.TorchPolicy) -> None:
    greedy = StepRequest(PROMPT, k=1, seed=0, max_tokens=12, temperature=0.0)
    (full,) = policy.propose([greedy])
    text = full.candidates[0].text
    ids = policy.encode(PROMPT)
    # A stop string that starts inside the greedy text: the candidate must end right after it.
    stop = text[3:6]
    assert len(stop) == 3
    (cut,) = policy.propose([StepRequest(**{**greedy.__dict__, "stop": ("@@never@@", stop)})])
    c = cut.candidates[0]
    assert c.finish == "stop" and c.stop == stop
    assert c.text == text[: text.find(stop) + len(stop)]
    assert c.n_tokens < 12
    assert cut.tokens_evaluated == len(ids) + c.n_tokens
    # Special markers appear in decoded text, so a marker works as a stop string.
    marker_tok = policy.tokenizer.convert_tokens_to_ids(Marker.END_STEP)
    hook = policy.model.lm_head.register_forward_hook(
        lambda m, i, o: (
            o
            + 100.0 * torch.nn.functional.one_hot(torch.tensor(marker_tok), o.shape[-1]).to(o.dtype)
        )
    )
    try:
        (p,) = policy.propose([StepRequest(PROMPT, k=2, seed=0, max_tokens=5, stop=RSTAR.stop)])
    finally:
        hook.remove()
    for c in p.candidates:
        assert (c.text, c.finish, c.stop, c.n_tokens) == (
            Marker.END_STEP,
            "stop",
            Marker.END_STEP,
            1,
        )


def test_eos_finishes_without_eos_text(policy: tb.TorchPolicy) -> None:
    eos = policy.tokenizer.eos_token_id
    calls = {"n": 0}

    def force_eos_from_third_token(module, inputs, output):
        calls["n"] += 1
        if calls["n"] < 3:
            return output
        bump = torch.zeros(output.shape[-1], dtype=output.dtype)
        bump[eos] = 100.0
        return output + bump

    hook = policy.model.lm_head.register_forward_hook(force_eos_from_third_token)
    try:
        (p,) = policy.propose([StepRequest(PROMPT, k=2, seed=5, max_tokens=10, temperature=1.0)])
    finally:
        hook.remove()
    for c in p.candidates:
        assert c.finish == "eos" and c.stop is None and c.n_tokens == 3
        assert EOS_TOKEN not in c.text and c.text
    assert p.tokens_evaluated == len(policy.encode(PROMPT)) + 6


def test_context_limit(tmp_path: Path) -> None:
    d = make_tiny_checkpoint(tmp_path / "short", TinyConfig(max_position=40))
    p = tb.TorchPolicy(d, device="cpu")
    n = len(p.encode(PROMPT))
    assert n < 40
    (prop,) = p.propose([StepRequest(PROMPT, k=2, seed=0, max_tokens=100, temperature=1.0)])
    assert all(c.n_tokens == 40 - n + 1 and c.finish == "length" for c in prop.candidates)
    with pytest.raises(InputError, match="context"):
        p.propose([StepRequest(PROMPT * 3, k=1, seed=0)])
    with pytest.raises(InputError, match="k must be"):
        p.propose([StepRequest(PROMPT, k=0, seed=0)])


# ------------------------------------------------------------------------------ reward


def test_reward_scores_match_manual_computation(reward: tb.TorchReward, ppm_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    prefixes = [
        PROMPT,
        PROMPT + "# Step 1: Add.\nx = 12 + 7\n" + Marker.END_STEP,
        "",
        "hello world",
        PROMPT + "x",
    ]
    scores = reward.score(prefixes)
    assert all(-1 < s < 1 for s in scores)
    assert len({round(s, 6) for s in scores}) == len(scores)
    assert reward.score(prefixes) == scores
    assert reward.score(prefixes[::-1]) == pytest.approx(scores[::-1], abs=1e-6)
    assert [reward.score([p])[0] for p in prefixes] == pytest.approx(scores, abs=1e-6)
    assert reward.score([]) == []

    lm = AutoModelForCausalLM.from_pretrained(ppm_dir, local_files_only=True).eval()
    w, b = tb.load_value_head(ppm_dir)
    tok = reward.tokenizer
    for p, s in zip(prefixes, scores, strict=True):
        ids = tok.encode(p, add_special_tokens=False) or [tok.eos_token_id]
        with torch.inference_mode():
            out = lm(input_ids=torch.tensor([ids]), output_hidden_states=True)
        h = out.hidden_states[-1][0, -1]
        manual = float(torch.tanh((h @ w[0] + b[0]) / 5.0))
        assert s == pytest.approx(manual, abs=1e-5)


def test_value_head_model_roundtrip(reward: tb.TorchReward, ppm_dir: Path, tmp_path: Path) -> None:
    prefixes = [PROMPT, "short", PROMPT + "# Step 1:"]
    want = reward.raw_rewards(prefixes)
    vhm = tb.ValueHeadModel.from_checkpoint(ppm_dir).eval()
    tok = reward.tokenizer
    enc = [tb.encode_prefix(tok, p) for p in prefixes]
    width = max(map(len, enc))
    ids = torch.full((len(enc), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    with torch.inference_mode():
        r = vhm(ids, mask)
    assert r.tolist() == pytest.approx(want, abs=1e-5)
    out = vhm.save_checkpoint(tmp_path / "saved", tok, provenance={"test": True})
    again = tb.TorchReward(out, device="cpu")
    assert again.raw_rewards(prefixes) == pytest.approx(want, abs=1e-5)
    assert read_meta(out).provenance == {"test": True}
    # From a policy folder the head starts at zero: every score is 0 until trained.
    fresh = tb.ValueHeadModel.from_checkpoint(ppm_dir, load_head=False)
    with torch.inference_mode():
        assert fresh.squash(fresh(ids, mask)).abs().max() == 0


# ------------------------------------------------------------------------------ errors


def _single_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_folders_raise_model_error(policy_dir: Path, ppm_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as e:
        tb.TorchPolicy(tmp_path / "missing", device="cpu")
    assert "no such checkpoint folder" in _single_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as e:
        tb.TorchReward(tmp_path / "empty", device="cpu")
    assert "config.json" in _single_line(e)
    with pytest.raises(ModelError) as e:
        tb.TorchReward(policy_dir, device="cpu")
    assert "not 'ppm'" in _single_line(e)

    no_head = tmp_path / "nohead"
    shutil.copytree(ppm_dir, no_head)
    (no_head / VALUE_HEAD_FILE).unlink()
    with pytest.raises(ModelError) as e:
        tb.TorchReward(no_head, device="cpu")
    assert VALUE_HEAD_FILE in _single_line(e)

    bad_cfg = tmp_path / "badcfg"
    shutil.copytree(policy_dir, bad_cfg)
    (bad_cfg / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}))
    with pytest.raises(ModelError) as e:
        tb.TorchPolicy(bad_cfg, device="cpu")
    assert "cannot load" in _single_line(e)

    no_weights = tmp_path / "noweights"
    shutil.copytree(policy_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelError) as e:
        tb.TorchPolicy(no_weights, device="cpu")
    _single_line(e)


def test_package_root_does_not_import_torch() -> None:
    code = (
        "import sys, edgestar, edgestar.backends, edgestar.backends.sampling, "
        "edgestar.checkpoint, edgestar.formats; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
