"""Deployable bundles and single exports: `deploy` (behind `edgestar deploy`) and
`quantize_one` (behind `edgestar quantize`), with their reports `DeployReport` and
`QuantizeResult` (defined in `_deploy_report`, re-exported here).

`deploy(policy_ckpt, ppm_ckpt, profile, out_dir)` turns two HF-format checkpoints into a bundle
folder for a device profile (`edgestar.profiles`):

    bundle.json                      the manifest (edgestar.bundle.write_manifest: sizes, sha256)
    policy.<quant>.gguf              profile.policy_quant (F32 export, then llama.cpp quantize)
    ppm.<quant>.gguf                 profile.ppm_quant
    <file>.verify.json / .verify.md  the verification report of each shipped model
    onnx/policy/, onnx/ppm/          ONNX fp32 exports (when onnx=True and ONNX is installed)
    onnx/policy.int8/, onnx/ppm.int8/  int8 for CPU profiles (gpu_layers == 0)
    deploy_report.json               `DeployReport` (files, verification, smoke solve)

Every model file is verified against its source checkpoint (`edgestar.quantize.verify`; the F32
GGUF intermediate too, so an export bug is told apart from quantization drift); a failed check
stops the deploy with a one-line ModelError and its report is kept in `<out_dir>.failed/`
(removed again by a later successful deploy).
The manifest's ONNX entries point at each folder's model.onnx file (every file of a folder is
checksummed) under alternates "onnx" (fp32) and "onnx-int8".

Atomicity: everything is written into a temporary folder beside `out_dir` (F32 intermediates
into another one, deleted at the end) and renamed into place only once the bundle is complete,
verified, has passed its smoke solve and its manifest re-validates (`read_bundle`). An
interrupted or failed deploy never leaves a half bundle under the final name; an existing
`out_dir` is refused unless `force` (then replaced only at the final rename).

The smoke solve runs through `edgestar.load` on the finished bundle (in its temporary folder,
so that a bundle that cannot solve never gets the final name): one fixed question, MCTS, a tiny
budget, solved twice (the first solve pays one-off costs such as starting the code sandbox's
worker); it records load time, solve seconds and generated tokens per second, cold and warm. On random weights
the answer is usually None: the smoke solve checks the machinery, not the model.

Needs the [quantize] extra (torch and transformers for the verification reference,
llama-cpp-python and gguf, optionally optimum + onnxruntime for the ONNX parts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgestar.bundle import MANIFEST, read_bundle, sha256_file, versions_of, write_manifest
from edgestar.checkpoint import CheckpointMeta, read_meta
from edgestar.profiles import DeviceProfile, get_profile
from edgestar.types import Budget, EdgestarError, InputError, ModelError

from ._deploy_report import DeployReport, QuantizeResult, SmokeResult, VerifySummary
from .gguf_export import DTYPES as GGUF_DTYPES
from .gguf_export import export_gguf
from .gguf_quant import QUANTS as GGUF_QUANTS
from .gguf_quant import quantize_gguf
from .verify import (
    TorchReference,
    VerifyReport,
    onnx_available,
    verify_gguf,
    verify_onnx,
    verify_requant,
)

__all__ = [
    "DEFAULT_ROLLOUTS",
    "PPM_TRUSTED_ACCURACY",
    "ONNX_QUANTS",
    "REPORT_FILE",
    "SMOKE_BUDGET",
    "SMOKE_QUESTION",
    "DeployReport",
    "QuantizeResult",
    "SmokeResult",
    "VerifySummary",
    "deploy",
    "ppm_held_accuracy",
    "quantize_one",
]

REPORT_FILE = "deploy_report.json"
SMOKE_QUESTION = "What is 12 + 30?"
SMOKE_BUDGET = {"rollouts": 2, "tokens": 2048, "seconds": 120.0}
"""The smoke solve's budget: enough to expand, simulate and back up twice, bounded in time."""
DEFAULT_ROLLOUTS = 8
"""Rollouts in the bundle's default search budget."""
PPM_TRUSTED_ACCURACY = 0.6
"""A PPM whose recorded held-out pairwise accuracy is below this does not pick the bundle's
default answer (select 'majority' instead of 'weighted'): a near-chance PPM choosing among
answers does worse than counting them. Measured on edgestar-tiny round 2 (held-out accuracy
57%), first 100 test problems, MCTS width 8, 8 rollouts: PPM-weighted 42%, majority 53%."""
SMALL_MODEL_PARAMS = 50_000_000
"""Below this many policy parameters the bundle runs llama.cpp on one thread: a tiny model's
matrices are too small to split, and threads that spin-wait for each other turn a busy machine
into a stall. Measured on the 3.7M-parameter edgestar-tiny, 2-core CPU, the same solve: quiet
machine 0.91 s on 1 thread vs 0.85 s on 2; with another 2-thread job running, 1.2 s vs 27 s."""
CPU_ONNX_QUANT = "int8"
"""Extra ONNX encoding shipped for CPU-only profiles (gpu_layers == 0)."""
ONNX_QUANTS = ("f32", "int8", "int4")
_GGUF_CHOICES = (*GGUF_DTYPES, *(q for q in GGUF_QUANTS if q not in GGUF_DTYPES))
_VERSION_DISTS = {
    # manifest key -> distribution name
    "llama_cpp": "llama_cpp_python",
    "gguf": "gguf",
    "onnxruntime": "onnxruntime",
    "torch": "torch",
    "transformers": "transformers",
    "optimum": "optimum",
    "numpy": "numpy",
}


# --------------------------------------------------------------------------------------------
# progress


class _Progress:
    """Numbered step messages on stderr: `[3/11 12.4s] quantizing policy -> q4_k_m`."""

    def __init__(self, enabled: bool, total: int, what: str = "deploy") -> None:
        self.enabled, self.total, self.what = enabled, total, what
        self.n = 0
        self.t0 = time.perf_counter()

    def step(self, msg: str) -> None:
        self.n += 1
        self._say(
            f"[{self.what} {self.n}/{self.total} {time.perf_counter() - self.t0:6.1f}s] {msg}"
        )

    def note(self, msg: str) -> None:
        self._say(f"[{self.what}] {msg}")

    def _say(self, line: str) -> None:
        if self.enabled:
            print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# deploy


def ppm_held_accuracy(meta: CheckpointMeta) -> float | None:
    """The PPM's last held-out pairwise accuracy as its training recorded it, if it did."""
    report = meta.provenance.get("report") if isinstance(meta.provenance, dict) else None
    metrics = report.get("eval_metrics") if isinstance(report, dict) else None
    if not isinstance(metrics, list):
        return None
    accs = [m.get("pairwise_accuracy") for m in metrics if isinstance(m, dict)]
    accs = [a for a in accs if isinstance(a, (int, float))]
    return float(accs[-1]) if accs else None


def _select(ppm_meta: CheckpointMeta | None) -> tuple[str, str | None]:
    """The bundle's default answer selection and, when it departs from the PPM, why."""
    acc = ppm_held_accuracy(ppm_meta) if ppm_meta is not None else None
    if acc is not None and acc < PPM_TRUSTED_ACCURACY:
        return "majority", (
            f"the PPM's held-out pairwise accuracy is {acc:.1%} (< "
            f"{PPM_TRUSTED_ACCURACY:.0%}): the bundle's default search picks answers by "
            "majority, not by PPM score (--select weighted overrides at solve time)"
        )
    return "weighted", None


def _runtime_threads(profile_threads: int, policy_ckpt: Path) -> int:
    """The profile's threads, or 1 for a policy under SMALL_MODEL_PARAMS (see there)."""
    from edgestar.checkpoint import param_count

    n = param_count(policy_ckpt)
    return 1 if 0 < n < SMALL_MODEL_PARAMS else profile_threads


def deploy(
    policy_ckpt: str | os.PathLike[str],
    ppm_ckpt: str | os.PathLike[str] | None,
    profile: str,
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    onnx: bool = True,
    smoke: bool = True,
    threads: int | None = None,
    progress: bool = True,
) -> DeployReport:
    """Build a verified bundle for device `profile` at `out_dir` from a policy checkpoint and
    a PPM checkpoint (None: a policy-only bundle); see the module docstring for the layout.

    `threads`: for quantization, verification and the smoke solve (default: the profile's,
    capped at this machine's cores). `onnx`: also ship ONNX encodings (skipped with a warning
    when the ONNX exporter or onnxruntime is not installed). `smoke`: run the smoke solve.
    Raises InputError (bad argument, existing `out_dir` without `force`) or ModelError (bad
    checkpoint, failed export, failed verification or smoke solve)."""
    t_start = time.perf_counter()
    prof = get_profile(profile)
    th = _threads(threads, prof)
    out = Path(out_dir)
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass force=True to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    roles: dict[str, tuple[Path, CheckpointMeta, str]] = {}
    ppm_meta: CheckpointMeta | None = None
    pol_meta = _checkpoint(policy_ckpt, "policy")
    roles["policy"] = (Path(policy_ckpt), pol_meta, prof.policy_quant)
    if ppm_ckpt is not None:
        ppm_meta = _checkpoint(ppm_ckpt, "ppm")
        if ppm_meta.step_format != pol_meta.step_format:
            raise ModelError(
                f"policy step format {pol_meta.step_format!r} != PPM step format "
                f"{ppm_meta.step_format!r}"
            )
        roles["ppm"] = (Path(ppm_ckpt), ppm_meta, prof.ppm_quant)
    for q in (prof.policy_quant, prof.ppm_quant):
        if q not in _GGUF_CHOICES:
            raise InputError(f"profile {prof.name}: unknown GGUF quant {q!r}")
    for _, (ck, _, _) in roles.items():
        if _inside(out, ck) or _inside(ck, out):
            raise InputError(f"{out}: the bundle must not be (or contain) the checkpoint {ck}")

    onnx_state = "off"
    onnx_quants: tuple[str, ...] = ()
    warnings: list[str] = []
    if onnx:
        why = onnx_available()
        if why is None:
            onnx_quants = ("f32", CPU_ONNX_QUANT) if prof.gpu_layers == 0 else ("f32",)
            onnx_state = "+".join(onnx_quants)
        else:
            onnx_state = f"skipped: {why}"
            warnings.append(f"ONNX encodings not built: {why}")

    per_role = sum(3 if q == "f32" else 4 for _, _, q in roles.values())
    total = per_role + 2 * len(onnx_quants) * len(roles) + 2 + int(smoke)
    say = _Progress(progress, total)
    if onnx and not onnx_quants:
        say.note(f"warning: {warnings[-1]}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".work", dir=out.parent))
    reports: list[tuple[VerifyReport, str, bool]] = []
    try:
        tmp.chmod(0o755)
        entries: dict[str, dict[str, Any]] = {}
        alternates: dict[str, dict[str, dict[str, Any]]] = {}
        sources: dict[str, dict[str, Any]] = {}
        for role, (ck, meta, quant) in roles.items():
            ref = TorchReference(ck, threads=th)
            say.step(f"{role}: exporting F32 GGUF from {ck}")
            f32 = export_gguf(ck, work / f"{role}.f32.gguf")
            say.step(f"{role}: verifying F32 GGUF against torch")
            rep = verify_gguf(ck, f32, reference=ref, threads=th, write=False, check=False)
            _keep(reports, rep, f32.name, shipped=quant == "f32", out=out)
            name = f"{role}.{quant}.gguf"
            if quant == "f32":
                os.replace(f32, tmp / name)
                say.step(f"{role}: shipping F32 as {name}")
                rep.write(tmp / name)
            else:
                say.step(f"{role}: quantizing -> {quant}")
                quantize_gguf(f32, tmp / name, quant, n_threads=th)
                say.step(f"{role}: verifying {name} against torch")
                rep = verify_gguf(
                    ck, tmp / name, reference=ref, threads=th, write=False, check=False
                )
                _keep(reports, rep, name, shipped=True, out=out)
                rep.write(tmp / name)
            entries[role] = {"file": name, "kind": "gguf", "quant": quant}
            sources[role] = _source(ck, meta)
            for oq in onnx_quants:
                folder = f"onnx/{role}" if oq == "f32" else f"onnx/{role}.{oq}"
                if oq == "f32":
                    say.step(f"{role}: exporting ONNX -> {folder}/")
                    _onnx_export(ck, tmp / folder)
                else:
                    say.step(f"{role}: quantizing ONNX -> {oq}")
                    _onnx_quantize(tmp / f"onnx/{role}", tmp / folder, oq)
                say.step(f"{role}: verifying {folder}/ against torch")
                rep = verify_onnx(
                    ck, tmp / folder, reference=ref, threads=th, write=False, check=False
                )
                _keep(reports, rep, folder, shipped=True, out=out)
                rep.write(tmp / folder)
                key = "onnx" if oq == "f32" else f"onnx-{oq}"
                alternates.setdefault(key, {})[role] = {
                    "file": f"{folder}/model.onnx",
                    "kind": "onnx",
                    "quant": oq,
                }
            with contextlib.suppress(OSError):
                (work / f"{role}.f32.gguf").unlink()

        say.step("writing the manifest")
        model_bytes = sum((tmp / e["file"]).stat().st_size for e in entries.values())
        if model_bytes > prof.memory_mb * 1024 * 1024:
            warnings.append(
                f"GGUF models are {model_bytes / 1e6:.0f} MB; profile {prof.name} allows "
                f"{prof.memory_mb} MB for models and KV cache"
            )
        versions = versions_of(_VERSION_DISTS)
        select, why_select = _select(ppm_meta)
        if why_select is not None:
            warnings.append(why_select)
        manifest: dict[str, Any] = {
            "name": out.name,
            "step_format": pol_meta.step_format,
            "profile": prof.name,
            "policy": entries["policy"],
            "ppm": entries.get("ppm"),
            "alternates": alternates,
            "search": {
                "strategy": "mcts",
                "width": prof.width,
                "select": select,
                "budget": {"rollouts": DEFAULT_ROLLOUTS},
            },
            "runtime": {
                "threads": _runtime_threads(prof.threads, roles["policy"][0]),
                "n_ctx": prof.n_ctx,
                "gpu_layers": prof.gpu_layers,
                "memory_mb": prof.memory_mb,
            },
            "versions": versions,
            "sources": sources,
        }
        _publishable(tmp)
        files = _listing(tmp)
        write_manifest(tmp, {**manifest, "files": {n: {} for n, _ in files}})

        smoke_res: SmokeResult | None = None
        if smoke:
            say.step(f"smoke solve: {SMOKE_QUESTION!r} (mcts, {SMOKE_BUDGET})")
            smoke_res = _smoke(tmp, prof, th)
            say.note(
                f"smoke: answer {smoke_res.answer!r}, {smoke_res.tokens_generated} tokens in "
                f"{smoke_res.solve_seconds:.2f} s ({smoke_res.tokens_per_second:,.0f} tok/s; warm "
                f"{smoke_res.warm_tokens_per_second:,.0f} tok/s), load "
                f"{smoke_res.load_seconds:.3f} s"
            )

        say.step(f"finishing: {REPORT_FILE}, manifest, rename to {out}")
        report = DeployReport(
            out_dir=out,
            name=out.name,
            profile=prof.name,
            step_format=pol_meta.step_format,
            policy_quant=prof.policy_quant,
            ppm_quant=prof.ppm_quant if "ppm" in roles else None,
            files=tuple(files),
            bundle_bytes=sum(b for _, b in files),
            model_bytes=model_bytes,
            verifications=tuple(VerifySummary.of(r, f, s) for r, f, s in reports),
            onnx=onnx_state,
            smoke=smoke_res,
            versions=versions,
            seconds=round(time.perf_counter() - t_start, 2),
            warnings=tuple(warnings),
        )
        (tmp / REPORT_FILE).write_text(report.to_json() + "\n", encoding="utf-8")
        write_manifest(tmp, {**manifest, "files": {n: {} for n in [*dict(files), REPORT_FILE]}})
        read_bundle(tmp, verify=True)
        _replace_dir(tmp, out)
        shutil.rmtree(out.with_name(out.name + ".failed"), ignore_errors=True)  # stale reports
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for w in warnings:
        say.note(f"warning: {w}")
    say.note(f"done: {out} ({report.bundle_mb:.2f} MB) in {report.seconds:.1f} s")
    return report


def _keep(
    reports: list[tuple[VerifyReport, str, bool]],
    rep: VerifyReport,
    file: str,
    *,
    shipped: bool,
    out: Path,
) -> None:
    """Record one verification; on failure keep its report in `<out>.failed/` and raise."""
    reports.append((rep, file, shipped))
    if not rep.passed:
        failed = out.with_name(out.name + ".failed")
        failed.mkdir(parents=True, exist_ok=True)
        rep.write(failed / file.replace("/", "_"))
        raise ModelError(f"deploy stopped: {rep.summary()} (report in {failed})")


def _onnx_export(ck: Path, dst: Path) -> None:
    from .onnx_export import export_onnx

    export_onnx(ck, dst)


def _onnx_quantize(src: Path, dst: Path, quant: str) -> None:
    from .onnx_export import quantize_onnx

    quantize_onnx(src, dst, quant)


def _smoke(bundle: Path, prof: DeviceProfile, threads: int) -> SmokeResult:
    import edgestar

    device = "cpu" if prof.gpu_layers == 0 else "auto"
    budget = Budget(**SMOKE_BUDGET)
    t0 = time.perf_counter()
    try:
        solver = edgestar.load(bundle, device=device, threads=threads, n_ctx=prof.n_ctx)
    except EdgestarError as e:
        raise ModelError(f"smoke solve: the bundle does not load ({e})") from e
    load_s = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        res = solver.solve(SMOKE_QUESTION, strategy="mcts", budget=budget, seed=0)
        solve_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        again = solver.solve(SMOKE_QUESTION, strategy="mcts", budget=budget, seed=0)
        warm_s = time.perf_counter() - t2
    except EdgestarError as e:
        raise ModelError(f"smoke solve failed ({e})") from e
    finally:
        solver.close()
    st = res.stats
    return SmokeResult(
        question=SMOKE_QUESTION,
        strategy=res.strategy,
        budget=dict(SMOKE_BUDGET),
        answer=res.answer,
        stopped_by=res.stopped_by,
        load_seconds=round(load_s, 4),
        solve_seconds=round(solve_s, 4),
        tokens_generated=st.tokens_generated,
        tokens_per_second=round(st.tokens_generated / solve_s, 1) if solve_s > 0 else 0.0,
        warm_solve_seconds=round(warm_s, 4),
        warm_tokens_per_second=(
            round(again.stats.tokens_generated / warm_s, 1) if warm_s > 0 else 0.0
        ),
        rollouts=st.rollouts,
        nodes=st.nodes,
        threads=threads,
    )


def _checkpoint(path: str | os.PathLike[str], role: str) -> CheckpointMeta:
    p = Path(path)
    if not p.is_dir():
        raise ModelError(f"{p}: no such checkpoint folder")
    meta = read_meta(p)
    if meta.role != role:
        raise ModelError(f"{p}: edgestar.json role is {meta.role!r}, expected {role!r}")
    return meta


def _source(ck: Path, meta: CheckpointMeta) -> dict[str, Any]:
    st = ck / "model.safetensors"
    d: dict[str, Any] = {"checkpoint": ck.resolve().name, "role": meta.role}
    if st.is_file():
        d["weights_sha256"] = sha256_file(st)
    return d


def _listing(root: Path) -> list[tuple[str, int]]:
    """(relative posix name, bytes) of every file under `root` but the manifest, sorted."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out.append((p.relative_to(root).as_posix(), p.stat().st_size))
    return out


def _publishable(root: Path) -> None:
    """Give files the usual permissions (the exporters' temp files are created 0600)."""
    mask = _umask()
    for p in root.rglob("*"):
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, replacing an existing `dst` folder (moved aside, then deleted)."""
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.replace(dst, old / "x")
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _threads(threads: int | None, prof: DeviceProfile | None = None) -> int:
    if threads is None:
        return max(1, min(prof.threads if prof else 1, os.cpu_count() or 1))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive whole number, got {threads!r}")
    return threads


# --------------------------------------------------------------------------------------------
# quantize_one


def quantize_one(
    src: str | os.PathLike[str],
    to: str,
    quant: str,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    verify: bool = True,
    threads: int = 1,
    progress: bool = False,
    prm_family: str | None = None,
) -> QuantizeResult:
    """One export: `src` (an HF-format edgestar checkpoint folder, or for to="gguf" a .gguf
    file) -> `out` (a .gguf file, or an ONNX folder) at `quant`.

    Checkpoint -> gguf: F32 export, then llama.cpp quantization (f32/f16/bf16 are exported
    directly); -> onnx: fp32 export, then onnxruntime int8/int4. Verified against torch
    (`verify_gguf` / `verify_onnx`). A .gguf src is re-quantized with `quantize_gguf` and
    verified against itself (`verify_requant`: loads, tokenizer ids, logits drift, PPM scores);
    an already quantized .gguf (a third-party Q4_1, say) is requantized (llama.cpp allows it;
    details["requantized_from"] names its file type) and judged by the target quant's row.
    An off-the-shelf PRM checkpoint (`prm_export`: recognised by its head tensors, or named by
    `prm_family`) becomes a GGUF plus its head file, verified against the published scoring
    rule in torch; re-quantizing its GGUF binds a copy of the head to the new file.
    The verification report is written beside `out`; a failed check raises ModelError after
    the output and its report are written (the output is kept for inspection). `out` is refused
    if it exists unless `force`."""
    t0 = time.perf_counter()
    if to not in ("gguf", "onnx"):
        raise InputError(f"--to must be 'gguf' or 'onnx', got {to!r}")
    th = _threads(threads)
    s, o = Path(src), Path(out)
    if not s.exists():
        raise ModelError(f"{s}: no such checkpoint folder or GGUF file")
    if o.exists() and not force:
        raise InputError(f"{o} exists; pass force=True to overwrite")
    if _inside(o, s) or _inside(s, o):
        raise InputError(f"{o}: the output must not be (or contain) the source {s}")
    say = _Progress(progress, 2 + int(verify), "quantize")

    if s.is_file():
        if s.suffix != ".gguf":
            raise InputError(f"{s}: src must be a checkpoint folder or a .gguf file")
        if to == "onnx":
            raise InputError(
                f"{s}: a GGUF file cannot be converted to ONNX; give the checkpoint folder it "
                "was exported from"
            )
        if quant not in GGUF_QUANTS:
            raise InputError(
                f"a .gguf src can be re-quantized to {', '.join(GGUF_QUANTS)}; got {quant!r} "
                "(export f32/bf16 from the checkpoint folder)"
            )
        if o.is_dir():
            raise InputError(f"{o} is a folder; give the output .gguf file")
        say.step(f"quantizing {s.name} -> {quant}")
        qr = quantize_gguf(s, o, quant, force=force, n_threads=th)
        details = _gguf_details(qr)
        from .prm_export import rebind_prm_head

        if (head := rebind_prm_head(s, o)) is not None:  # an off-the-shelf PRM's head
            details["head"] = str(head)
        say.step("written")
        rep = None
        if verify:
            say.step("verifying against the source GGUF")
            rep = verify_requant(s, o, threads=th, check=False)
        return _result(s, to, quant, o, s.stat().st_size, t0, rep, details)

    if (s / "model.onnx").is_file():
        raise InputError(f"{s} is an ONNX export folder; quantize from the checkpoint folder")
    from .prm_export import detect_prm_family, export_prm

    if to == "gguf" and (prm_family is not None or detect_prm_family(s) is not None):
        # an off-the-shelf process reward model: GGUF + head file (edgestar.prm)
        say.step(f"exporting PRM {s.name} -> {quant} GGUF")
        return export_prm(s, o, quant, family=prm_family, force=force, verify=verify, threads=th)
    if prm_family is not None:
        raise InputError("--prm converts to GGUF only")
    read_meta(s)  # an edgestar checkpoint: ModelError otherwise
    src_bytes = sum(p.stat().st_size for p in s.glob("*.safetensors") if p.is_file())
    if to == "gguf":
        if quant not in _GGUF_CHOICES:
            raise InputError(
                f"unknown GGUF quant {quant!r}; choose from {', '.join(_GGUF_CHOICES)}"
            )
        if o.is_dir():
            raise InputError(f"{o} is a folder; give the output .gguf file")
        details: dict[str, Any] = {}
        if quant in GGUF_DTYPES:
            say.step(f"exporting {s.name} -> {quant} GGUF")
            export_gguf(s, o, dtype=quant, force=force)
            say.step("written")
        else:
            with _scratch(o) as work:
                say.step(f"exporting {s.name} -> F32 GGUF")
                f32 = export_gguf(s, work / "f32.gguf")
                say.step(f"quantizing -> {quant}")
                details = _gguf_details(quantize_gguf(f32, o, quant, force=force, n_threads=th))
        rep = None
        if verify:
            say.step("verifying against torch")
            rep = verify_gguf(s, o, threads=th, quant=quant, check=False)
        return _result(s, to, quant, o, src_bytes, t0, rep, details)

    # to == "onnx"
    q = {"fp32": "f32", "float32": "f32"}.get(quant, quant)
    if q not in ONNX_QUANTS:
        raise InputError(f"unknown ONNX quant {quant!r}; choose from {', '.join(ONNX_QUANTS)}")
    why = onnx_available()
    if why is not None:
        raise ModelError(f"cannot export ONNX here: {why}")
    if o.exists() and not o.is_dir():
        raise InputError(f"{o} exists and is not a folder")
    if q == "f32":
        say.step(f"exporting {s.name} -> ONNX")
        from .onnx_export import export_onnx

        export_onnx(s, o, force=force)
        say.step("written")
        details = {}
    else:
        from .onnx_export import export_onnx, quantize_onnx

        with _scratch(o) as work:
            say.step(f"exporting {s.name} -> ONNX fp32")
            export_onnx(s, work / "fp32")
            say.step(f"quantizing -> {q}")
            r = quantize_onnx(work / "fp32", o, q, force=force)
            details = {"bytes_before": r.bytes_before, "bytes_after": r.bytes_after}
    rep = None
    if verify:
        say.step("verifying against torch")
        rep = verify_onnx(s, o, threads=th, check=False)
    return _result(s, to, q, o, src_bytes, t0, rep, details)


def _result(
    s: Path,
    to: str,
    quant: str,
    o: Path,
    src_bytes: int,
    t0: float,
    rep: VerifyReport | None,
    details: dict[str, Any],
) -> QuantizeResult:
    if o.is_file():
        o.chmod(0o666 & ~_umask())
    size = o.stat().st_size if o.is_file() else sum(p.stat().st_size for p in o.rglob("*"))
    res = QuantizeResult(
        src=s,
        to=to,
        quant=quant,
        out=o,
        out_bytes=size,
        src_bytes=src_bytes,
        seconds=round(time.perf_counter() - t0, 3),
        verify=rep,
        details=details,
    )
    if rep is not None and not rep.passed:
        raise ModelError(f"{rep.summary()} (output kept at {o}; report beside it)")
    return res


def _gguf_details(qr: Any) -> dict[str, Any]:
    return {
        "type_counts": [list(t) for t in qr.type_counts],
        "fallbacks": [f"{t.name}:{t.type}" for t in qr.fallbacks],
        "mixture": [f"{t.name}:{t.type}" for t in qr.mixture],
        "requantized_from": getattr(qr, "requantized_from", None),
    }


@contextlib.contextmanager
def _scratch(near: Path) -> Iterator[Path]:
    near.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{near.name}.", suffix=".work", dir=near.parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
