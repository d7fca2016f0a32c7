"""Tests for parity verification (quantize/verify.py) and bundles / single exports
(quantize/deploy.py), on tiny random checkpoints made here (train/tiny.py), one thread.

Covers: verify_gguf passing for F32 and Q8_0 (policy and PPM) with its report files; a GGUF
exported from another checkpoint failing with ModelError (report still written); deploy() for
laptop-cpu producing a bundle that read_bundle validates and edgestar.load solves through; a
tampered bundle file refused on load; an existing out_dir refused without force; a failed
verification leaving no half bundle; quantize_one on a checkpoint and on a .gguf file, and its
refusals; one deploy with ONNX when the ONNX exporter is installed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

import edgestar  # noqa: E402
from edgestar.bundle import MANIFEST, read_bundle  # noqa: E402
from edgestar.checkpoint import read_meta, write_meta  # noqa: E402
from edgestar.profiles import PROFILES  # noqa: E402
from edgestar.quantize import deploy as dep  # noqa: E402
from edgestar.quantize import verify as ver  # noqa: E402
from edgestar.quantize.gguf_export import export_gguf  # noqa: E402
from edgestar.quantize.gguf_quant import quantize_gguf  # noqa: E402
from edgestar.train.tiny import TinyConfig, build_tokenizer, make_tiny_checkpoint  # noqa: E402
from edgestar.types import Budget, InputError, ModelError  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.llama, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    tok = build_tokenizer()
    return {
        "policy": make_tiny_checkpoint(root / "policy", "test", role="policy", tokenizer=tok),
        "ppm": make_tiny_checkpoint(root / "ppm", TinyConfig(seed=2), role="ppm", tokenizer=tok),
        "other": make_tiny_checkpoint(root / "other", TinyConfig(seed=1), tokenizer=tok),
    }


@pytest.fixture(scope="module")
def refs(ckpts: dict[str, Path]) -> dict[str, ver.TorchReference]:
    return {r: ver.TorchReference(ckpts[r], threads=1).compute() for r in ("policy", "ppm")}


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory, ckpts: dict[str, Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    out: dict[str, Path] = {}
    for role in ("policy", "ppm", "other"):
        f32 = export_gguf(ckpts[role], root / f"{role}.f32.gguf")
        out[f"{role}.f32"] = f32
        out[f"{role}.q8_0"] = quantize_gguf(
            f32, root / f"{role}.q8_0.gguf", "q8_0", n_threads=1
        ).out
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, ckpts: dict[str, Path]):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("deploy") / "tiny-laptop"
    report = dep.deploy(
        ckpts["policy"], ckpts["ppm"], "laptop-cpu", out, onnx=False, threads=1, progress=False
    )
    return out, report


# ------------------------------------------------------------------------------ verification


@pytest.mark.parametrize("role", ["policy", "ppm"])
@pytest.mark.parametrize("quant", ["f32", "q8_0"])
def test_verify_gguf_passes(role: str, quant: str, ckpts, refs, ggufs) -> None:  # type: ignore[no-untyped-def]
    path = ggufs[f"{role}.{quant}"]
    rep = ver.verify_gguf(ckpts[role], path, reference=refs[role], threads=1)
    assert rep.passed and rep.quant == quant and rep.role == role
    m = rep.metrics
    assert m["tokenizer_mismatches"] == [] and m["tokenizer_strings"] >= 20
    assert m["n_positions"] > 100 and m["greedy_tokens"] > 0
    if quant == "f32":
        assert m["logits_max"] < 1e-3 and m["top1"] == 1.0
    assert (m.get("ranking") is not None) == (role == "ppm")
    if role == "ppm":
        assert m["n_pairs"] == 18 and m["ranking"] >= 0.8
    assert rep.file_bytes == path.stat().st_size and rep.load_seconds > 0
    j = path.with_name(path.name + ".verify.json")
    md = path.with_name(path.name + ".verify.md")
    assert j.is_file() and md.is_file()
    assert json.loads(j.read_text())["passed"] is True
    assert "PASSED" in md.read_text() and "| top-1 agreement |" in md.read_text()


def test_verify_without_reference_reads_role(ckpts, ggufs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # no TorchReference given: computed here; role from edgestar.json; report to a folder
    rep = ver.verify_gguf(ckpts["ppm"], ggufs["ppm.f32"], report_to=tmp_path, threads=1)
    assert rep.role == "ppm" and rep.passed
    assert (tmp_path / "ppm.f32.gguf.verify.json").is_file()
    assert rep.summary().startswith("ppm.f32.gguf (gguf f32, ppm) vs torch:")


def test_wrong_checkpoint_fails(ckpts, refs, ggufs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wrong = shutil.copy(ggufs["other.q8_0"], tmp_path / "policy.q8_0.gguf")
    with pytest.raises(ModelError, match="verification FAILED") as e:
        ver.verify_gguf(ckpts["policy"], wrong, reference=refs["policy"], threads=1)
    msg = str(e.value)
    assert "\n" not in msg and "top-1 agreement" in msg and "logits mean drift" in msg
    # the report is on disk before the error
    rep = json.loads(Path(str(wrong) + ".verify.json").read_text())
    assert rep["passed"] is False
    assert "FAILED" in Path(str(wrong) + ".verify.md").read_text()
    # the same measurement without raising
    r = ver.verify_gguf(
        ckpts["policy"], wrong, reference=refs["policy"], threads=1, write=False, check=False
    )
    assert r.metrics["top1"] < 0.1 and not r.passed and r.failures


def test_tolerance_table_covers_profiles() -> None:
    for p in PROFILES.values():
        ver.tolerance_for(p.policy_quant)
        ver.tolerance_for(p.ppm_quant)
    for q in ("f32", "fp32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "int8", "int4"):
        t = ver.tolerance_for(q)
        assert 0 < t.top1 <= 1 and 0 <= t.greedy <= 1 and 0 < t.ranking <= 1
    assert ver.TOLERANCES["f32"].rel_max == pytest.approx(5e-3)
    # a quantized reference loosens the target's row (requantizing a Q4_1 file)
    t = ver.looser(ver.tolerance_for("q8_0"), ver.source_tolerance({"general.file_type": 3}))
    assert t == ver.TOLERANCES["q4_0"]
    assert ver.source_tolerance({"general.file_type": 0}) is None
    with pytest.raises(InputError, match="no verification tolerance"):
        ver.tolerance_for("q2_k")


# ------------------------------------------------------------------------------ deploy


def test_deploy_bundle_validates_and_solves(bundle) -> None:  # type: ignore[no-untyped-def]
    out, report = bundle
    b = read_bundle(out, verify=True)
    assert b.profile == "laptop-cpu" and b.step_format == "rstar"
    assert (b.policy.file, b.policy.quant) == ("policy.q4_k_m.gguf", "q4_k_m")
    assert b.ppm is not None and (b.ppm.file, b.ppm.quant) == ("ppm.q8_0.gguf", "q8_0")
    assert b.search["strategy"] == "mcts" and b.search["width"] == PROFILES["laptop-cpu"].width
    assert b.search["budget"] == {"rollouts": 8}
    assert b.search["select"] == "weighted"  # a PPM with no recorded accuracy keeps its say
    assert b.runtime["threads"] == 1  # a tiny policy: one thread (deploy.SMALL_MODEL_PARAMS)
    assert {"edgestar", "llama_cpp", "gguf", "torch", "transformers"} <= set(b.versions)
    m = json.loads((out / MANIFEST).read_text())
    names = set(m["files"])
    assert {dep.REPORT_FILE, "policy.q4_k_m.gguf.verify.json", "ppm.q8_0.gguf.verify.md"} <= names
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == names | {MANIFEST}  # every file checksummed, nothing extra, no F32 left
    # no temp folders left beside it
    assert [p.name for p in out.parent.iterdir()] == [out.name]

    assert report.passed and report.out_dir == out and report.onnx == "off"
    assert [(v.file, v.shipped) for v in report.verifications] == [
        ("policy.f32.gguf", False),
        ("policy.q4_k_m.gguf", True),
        ("ppm.f32.gguf", False),
        ("ppm.q8_0.gguf", True),
    ]
    assert report.bundle_bytes == sum(b for _, b in report.files) > report.model_bytes > 0
    s = report.smoke
    assert s is not None and s.load_seconds > 0 and s.solve_seconds > 0
    assert s.tokens_generated > 0 and s.tokens_per_second > 0 and s.nodes > 0
    assert s.warm_tokens_per_second > 0 and s.warm_solve_seconds > 0
    saved = json.loads((out / dep.REPORT_FILE).read_text())
    assert saved["smoke"]["tokens_generated"] == s.tokens_generated
    assert saved["profile"] == "laptop-cpu" and saved["bundle_bytes"] == report.bundle_bytes
    assert "| policy.q4_k_m.gguf |" in report.to_markdown()

    with edgestar.load(out, device="cpu", threads=1, n_ctx=1024) as solver:
        assert solver.reward is not None and solver.strategy == "mcts"
        r = solver.solve("What is 2 + 3?", budget=Budget(rollouts=2, tokens=1024), seed=1)
    # random weights: every candidate is cut at max_step_tokens, so the answer is None and the
    # PPM may never be called; the machinery still ran end to end
    assert r.stats.tokens_generated > 0 and r.stats.nodes > 0 and r.stats.seconds > 0
    assert r.strategy == "mcts" and r.stopped_by in ("done", "rollouts", "tokens")


def test_tampered_bundle_is_refused(bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    f = copy / "policy.q4_k_m.gguf"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        edgestar.load(copy, device="cpu", threads=1)


def test_existing_out_dir_refused(bundle, ckpts) -> None:  # type: ignore[no-untyped-def]
    out, _ = bundle
    before = (out / MANIFEST).read_bytes()
    with pytest.raises(InputError, match="exists"):
        dep.deploy(ckpts["policy"], ckpts["ppm"], "laptop-cpu", out, onnx=False, progress=False)
    assert (out / MANIFEST).read_bytes() == before
    with pytest.raises(InputError, match="unknown device profile"):
        dep.deploy(ckpts["policy"], ckpts["ppm"], "toaster", out.parent / "x", progress=False)
    with pytest.raises(ModelError, match="expected 'ppm'"):
        dep.deploy(ckpts["policy"], ckpts["policy"], "laptop-cpu", out.parent / "y")


def test_failed_verification_leaves_no_bundle(ckpts, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    strict = dataclasses.replace(ver.TOLERANCES["q4_k_m"], top1=1.01)  # cannot be met
    monkeypatch.setitem(ver.TOLERANCES, "q4_k_m", strict)
    out = tmp_path / "bundle"
    with pytest.raises(ModelError, match="deploy stopped: policy.q4_k_m.gguf") as e:
        dep.deploy(
            ckpts["policy"],
            None,
            "laptop-cpu",
            out,
            onnx=False,
            smoke=False,
            threads=1,
            progress=False,
        )
    assert "\n" not in str(e.value)
    assert not out.exists()
    # only the failure reports remain (no temp or work folders)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.failed"]
    assert (tmp_path / "bundle.failed" / "policy.q4_k_m.gguf.verify.md").is_file()
    monkeypatch.undo()
    dep.deploy(ckpts["policy"], None, "laptop-cpu", out, onnx=False, smoke=False, threads=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # stale reports removed


def test_near_chance_ppm_does_not_pick_the_answer(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A PPM whose training recorded held-out pairwise accuracy < PPM_TRUSTED_ACCURACY: the
    bundle's default search selects by majority, and the deploy report says why."""
    ppm = tmp_path / "ppm"
    shutil.copytree(ckpts["ppm"], ppm)
    meta = read_meta(ppm)
    report = {"eval_metrics": [{"pairwise_accuracy": 0.9}, {"pairwise_accuracy": 0.54}]}
    write_meta(ppm, dataclasses.replace(meta, provenance={**meta.provenance, "report": report}))
    assert dep.ppm_held_accuracy(read_meta(ppm)) == 0.54
    rep = dep.deploy(ckpts["policy"], ppm, "laptop-cpu", tmp_path / "b", onnx=False,
                     smoke=False, threads=1, progress=False)  # fmt: skip
    assert read_bundle(tmp_path / "b").search["select"] == "majority"
    assert any("54.0%" in w and "majority" in w for w in rep.warnings)
    # a trusted PPM keeps the weighted default
    report["eval_metrics"].append({"pairwise_accuracy": dep.PPM_TRUSTED_ACCURACY})
    write_meta(ppm, dataclasses.replace(meta, provenance={**meta.provenance, "report": report}))
    dep.deploy(ckpts["policy"], ppm, "laptop-cpu", tmp_path / "b", force=True, onnx=False,
               smoke=False, threads=1, progress=False)  # fmt: skip
    assert read_bundle(tmp_path / "b").search["select"] == "weighted"


def test_deploy_force_replaces_policy_only(ckpts, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "b"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    rep = dep.deploy(
        ckpts["policy"],
        None,
        "cuda-desktop",
        out,
        force=True,
        onnx=False,
        smoke=False,
        threads=1,
        progress=True,
    )
    assert not (out / "stale.txt").exists()
    b = read_bundle(out)
    assert b.ppm is None and b.policy.quant == "q8_0" and rep.smoke is None
    assert "[deploy 1/" in capsys.readouterr().err


@pytest.mark.onnx
def test_deploy_with_onnx(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    why = ver.onnx_available()
    if why is not None:
        pytest.skip(why)
    out = tmp_path / "b"
    rep = dep.deploy(
        ckpts["policy"],
        ckpts["ppm"],
        "laptop-cpu",
        out,
        onnx=True,
        smoke=False,
        threads=1,
        progress=False,
    )
    assert rep.onnx == "f32+int8"
    b = read_bundle(out)
    assert b.alternates["onnx"]["policy"].file == "onnx/policy/model.onnx"
    assert b.alternates["onnx-int8"]["ppm"].quant == "int8"
    onnx_checks = [v for v in rep.verifications if v.kind == "onnx"]
    assert len(onnx_checks) == 4 and all(v.passed for v in onnx_checks)
    f32 = next(v for v in onnx_checks if v.file == "onnx/ppm")
    assert f32.logits_max is not None and f32.logits_max < 1e-3 and f32.ranking == 1.0
    assert (out / "onnx" / "policy.int8.verify.json").is_file()
    # The ONNX encodings of the bundle solve through ONNX Runtime.
    import edgestar

    for enc in ("onnx", "onnx-int8"):
        with edgestar.load(out, encoding=enc, threads=1) as solver:
            assert type(solver.policy).__name__ == "OnnxPolicy"
            r = solver.solve("What is 2 + 3?", budget=edgestar.Budget(rollouts=2))
        assert r.stats.tokens_generated > 0


# ------------------------------------------------------------------------------ quantize_one


def test_quantize_one_from_gguf(ggufs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "p.q4_0.gguf"
    res = dep.quantize_one(ggufs["ppm.f32"], "gguf", "q4_0", out)
    assert out.is_file() and res.out_bytes == out.stat().st_size < res.src_bytes / 3
    v = res.verify
    assert v is not None and v.passed and v.reference.startswith("gguf:") and v.role == "ppm"
    assert v.metrics["tokenizer_mismatches"] == [] and v.metrics["ranking"] >= 0.67
    assert "greedy" not in v.metrics  # no greedy check without a torch reference
    assert Path(str(out) + ".verify.json").is_file()
    assert json.loads(res.to_json())["verify"]["passed"] is True
    with pytest.raises(InputError, match="exists"):
        dep.quantize_one(ggufs["ppm.f32"], "gguf", "q4_0", out)
    with pytest.raises(InputError, match="cannot be converted to ONNX"):
        dep.quantize_one(ggufs["ppm.f32"], "onnx", "int8", tmp_path / "o")
    # an already quantized GGUF (third-party files often are) is requantized and verified
    again = dep.quantize_one(out, "gguf", "q8_0", tmp_path / "again.gguf")
    assert again.details["requantized_from"] == 2 and again.verify is not None
    assert again.verify.passed and again.verify.reference == f"gguf:{out}"
    with pytest.raises(InputError, match="re-quantized to"):
        dep.quantize_one(ggufs["ppm.f32"], "gguf", "f32", tmp_path / "x.gguf")
    with pytest.raises(InputError, match="'gguf' or 'onnx'"):
        dep.quantize_one(ggufs["ppm.f32"], "tflite", "q4_0", tmp_path / "y")


def test_quantize_one_from_checkpoint(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "policy.q8_0.gguf"
    res = dep.quantize_one(ckpts["policy"], "gguf", "q8_0", out, threads=1)
    assert res.verify is not None and res.verify.passed and res.verify.quant == "q8_0"
    assert res.details["type_counts"] and out.stat().st_mode & 0o044  # readable by others
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "policy.q8_0.gguf",
        "policy.q8_0.gguf.verify.json",
        "policy.q8_0.gguf.verify.md",
    ]  # the F32 intermediate is gone
    with pytest.raises(InputError, match="unknown GGUF quant"):
        dep.quantize_one(ckpts["policy"], "gguf", "q3_k", tmp_path / "z.gguf")


def test_onnx_unavailable_degrades(ckpts, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(dep, "onnx_available", lambda: "onnxruntime is not installed (test)")
    rep = dep.deploy(ckpts["policy"], None, "laptop-cpu", tmp_path / "b", smoke=False, threads=1)
    assert rep.onnx.startswith("skipped: onnxruntime is not installed")
    assert any("ONNX encodings not built" in w for w in rep.warnings)
    assert read_bundle(tmp_path / "b").alternates == {}
    assert "warning: ONNX encodings not built" in capsys.readouterr().err
    with pytest.raises(ModelError, match="cannot export ONNX here: onnxruntime"):
        dep.quantize_one(ckpts["policy"], "onnx", "int8", tmp_path / "o")


@pytest.mark.onnx
def test_quantize_one_to_onnx(ckpts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    why = ver.onnx_available()
    if why is not None:
        pytest.skip(why)
    out = tmp_path / "ppm.int8"
    res = dep.quantize_one(ckpts["ppm"], "onnx", "int8", out, threads=1)
    assert (out / "model.onnx").is_file() and res.quant == "int8"
    v = res.verify
    assert v is not None and v.passed and v.kind == "onnx" and v.quant == "int8"
    assert v.metrics["ranking"] >= 0.78
    assert (tmp_path / "ppm.int8.verify.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ppm.int8",
        "ppm.int8.verify.json",
        "ppm.int8.verify.md",
    ]
    with pytest.raises(InputError, match="unknown ONNX quant"):
        dep.quantize_one(ckpts["ppm"], "onnx", "q4_0", tmp_path / "x")
