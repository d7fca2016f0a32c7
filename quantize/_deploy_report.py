"""What `edgestar deploy` and `quantize_one` report: a summary per verified file
(VerifySummary), the bundle smoke solve (SmokeResult), the whole deployment (DeployReport,
written as deploy_report.json) and one single-file quantization (QuantizeResult)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .verify import (
    VerifyReport,
)

# --------------------------------------------------------------------------------------------
# reports


@dataclass(frozen=True)
class VerifySummary:
    """The headline figures of one file's verification (its full report is beside the file)."""

    file: str
    kind: str
    role: str
    quant: str
    passed: bool
    shipped: bool
    """False for the F32 GGUF intermediate (verified, not shipped)."""
    file_bytes: int
    load_seconds: float
    logits_max: float | None
    """Absolute; the bounds are on logits_rel_mean / logits_rel_max (x the reference's std)."""
    logits_rel_mean: float | None
    top1: float | None
    greedy: float | None
    score_max: float | None
    ranking: float | None
    summary: str

    @classmethod
    def of(cls, rep: VerifyReport, file: str, shipped: bool = True) -> VerifySummary:
        m = rep.metrics
        return cls(
            file=file,
            kind=rep.kind,
            role=rep.role,
            quant=rep.quant,
            passed=rep.passed,
            shipped=shipped,
            file_bytes=rep.file_bytes,
            load_seconds=rep.load_seconds,
            logits_max=m.get("logits_max"),
            logits_rel_mean=m.get("logits_rel_mean"),
            top1=m.get("top1"),
            greedy=m.get("greedy"),
            score_max=m.get("score_max"),
            ranking=m.get("ranking"),
            summary=rep.summary(),
        )


@dataclass(frozen=True)
class SmokeResult:
    """One solve through `edgestar.load(bundle)`."""

    question: str
    strategy: str
    budget: dict[str, Any]
    answer: str | None
    stopped_by: str
    load_seconds: float
    solve_seconds: float
    """The first solve: includes one-off costs (the code sandbox's worker starts on first use)."""
    tokens_generated: int
    tokens_per_second: float
    """tokens_generated / solve_seconds."""
    warm_solve_seconds: float
    """The same solve again (same seed, same tokens): steady-state cost."""
    warm_tokens_per_second: float
    rollouts: int
    nodes: int
    threads: int


@dataclass(frozen=True)
class DeployReport:
    out_dir: Path
    name: str
    profile: str
    step_format: str
    policy_quant: str
    ppm_quant: str | None
    files: tuple[tuple[str, int], ...]
    """(bundle-relative name, bytes) of every file the manifest lists but this report."""
    bundle_bytes: int
    """Sum of `files` (bundle.json and deploy_report.json not counted)."""
    model_bytes: int
    """The GGUF policy + PPM: what the runtime loads by default."""
    verifications: tuple[VerifySummary, ...]
    onnx: str
    """'off', 'f32', 'f32+int8', or 'skipped: <reason>'."""
    smoke: SmokeResult | None
    versions: dict[str, str]
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def bundle_mb(self) -> float:
        return self.bundle_bytes / 1e6

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verifications)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["bundle_mb"] = round(self.bundle_mb, 3)
        d["files"] = [{"file": n, "bytes": b} for n, b in self.files]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_markdown(self) -> str:
        lines = [
            f"# Deploy report: `{self.name}` for {self.profile}",
            "",
            f"- bundle: `{self.out_dir}`; {self.bundle_bytes:,} bytes ({self.bundle_mb:.2f} MB); "
            f"GGUF models {self.model_bytes / 1e6:.2f} MB",
            f"- step format: {self.step_format}; policy {self.policy_quant}, PPM "
            f"{self.ppm_quant or '-'}; ONNX: {self.onnx}",
            f"- took {self.seconds:.1f} s",
            "",
            "| file | kind | role | quant | MB | load s | logits max | mean drift (x std) | "
            "top-1 | greedy | score max | ranking | verified |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in self.verifications:
            name = v.file if v.shipped else f"{v.file} (not shipped)"
            lines.append(
                f"| {name} | {v.kind} | {v.role} | {v.quant} | {v.file_bytes / 1e6:.2f} | "
                f"{v.load_seconds:.3f} | {_f(v.logits_max)} | {_f(v.logits_rel_mean)} | "
                f"{_f(v.top1)} | {_f(v.greedy)} | "
                f"{_f(v.score_max)} | {_f(v.ranking)} | {'ok' if v.passed else 'FAIL'} |"
            )
        if self.smoke is not None:
            s = self.smoke
            lines += [
                "",
                f"Smoke solve ({s.strategy}, budget {s.budget}, {s.threads} threads): "
                f"{s.question!r} -> {s.answer!r} (stopped by {s.stopped_by}); load "
                f"{s.load_seconds:.3f} s, solve {s.solve_seconds:.2f} s, {s.tokens_generated} "
                f"tokens generated, {s.tokens_per_second:,.0f} tok/s ({s.warm_solve_seconds:.2f} "
                f"s, {s.warm_tokens_per_second:,.0f} tok/s warm), {s.rollouts} rollouts, "
                f"{s.nodes} nodes.",
            ]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"- {w}" for w in self.warnings]
        lines += [
            "",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items())),
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class QuantizeResult:
    """What `quantize_one` wrote."""

    src: Path
    to: str
    quant: str
    out: Path
    out_bytes: int
    src_bytes: int
    seconds: float
    verify: VerifyReport | None
    details: dict[str, Any] = field(default_factory=dict)
    """GGUF: type_counts, fallbacks (k-quant rows that did not fit); ONNX: bytes before/after."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "to": self.to,
            "quant": self.quant,
            "out": str(self.out),
            "out_bytes": self.out_bytes,
            "src_bytes": self.src_bytes,
            "seconds": self.seconds,
            "verify": self.verify.to_dict() if self.verify is not None else None,
            "details": self.details,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_markdown(self) -> str:
        head = (
            f"`{self.src}` -> `{self.out}` ({self.to} {self.quant}): "
            f"{self.out_bytes / 1e6:.2f} MB from {self.src_bytes / 1e6:.2f} MB in "
            f"{self.seconds:.1f} s"
        )
        if self.verify is None:
            return head + "; not verified\n"
        return head + "\n\n" + self.verify.to_markdown()


def _f(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:.4g}"
