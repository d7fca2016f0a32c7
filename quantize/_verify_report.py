"""The verification report: one Check per measured figure against its bound, and
VerifyReport, written beside the checked file as <file>.verify.json and .verify.md."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.checkpoint import atomic_write_text

from ._verify_data import Tolerance

# --------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Check:
    """One verified quantity against its bound."""

    name: str
    value: float | None
    bound: float | None
    op: str
    """'<=' (value must not exceed bound), '>=' (must reach it), '==' (exact)."""
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """Everything one verification measured; `passed` when every check did."""

    target: Path
    kind: str
    """'gguf' or 'onnx'."""
    role: str
    quant: str
    reference: str
    """What the target was compared with: 'torch:<ckpt>' or 'gguf:<file>'."""
    file_bytes: int
    load_seconds: float
    seconds: float
    threads: int
    tolerance: Tolerance
    checks: tuple[Check, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    """Raw figures: logits_max, logits_mean (absolute), logits_rel_max, logits_rel_mean (x the
    reference logits' std, ref_logit_std), top1, greedy, greedy_exact, score_max,
    ranking, n_positions, n_pairs, tokenizer_strings, tokenizer_mismatches, ..."""
    runtime: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        """One line: the verdict and the failed checks (or the headline figures)."""
        head = f"{self.target.name} ({self.kind} {self.quant}, {self.role}) vs {self.reference}"
        if self.passed:
            m = self.metrics
            parts = [
                f"logits mean drift {_fmt(m.get('logits_rel_mean'))} x std",
                f"top-1 {_fmt(m.get('top1'))}",
            ]
            if m.get("ranking") is not None:
                parts.append(f"ranking {_fmt(m.get('ranking'))}")
            return f"{head}: passed ({', '.join(parts)})"
        bad = "; ".join(
            f"{c.name} {_fmt(c.value)} {_NEG[c.op]} {_fmt(c.bound)}"
            + (f" ({c.detail})" if c.detail else "")
            for c in self.failures
        )
        return f"{head}: verification FAILED: {bad}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = str(self.target)
        d["passed"] = self.passed
        return _jsonable(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_markdown(self) -> str:
        m = self.metrics
        lines = [
            f"# Verification of `{self.target.name}`: {'PASSED' if self.passed else 'FAILED'}",
            "",
            f"- kind: {self.kind}, quant: {self.quant}, role: {self.role}",
            f"- reference: {self.reference}",
            f"- size: {self.file_bytes:,} bytes ({self.file_bytes / 1e6:.2f} MB)",
            f"- load: {self.load_seconds:.3f} s; verification: {self.seconds:.2f} s (+ "
            f"reference {m.get('reference_seconds', 0):.2f} s); "
            f"threads: {self.threads}" + (f"; runtime: {self.runtime}" if self.runtime else ""),
            f"- positions compared: {m.get('n_positions', 0)}; greedy tokens: "
            f"{m.get('greedy_tokens', 0)}; tokenizer strings: {m.get('tokenizer_strings', 0)}"
            + (f"; held pairs: {m['n_pairs']}" if m.get("n_pairs") else ""),
            "",
            "| check | value | bound | result |",
            "|---|---|---|---|",
        ]
        for c in self.checks:
            res = "ok" if c.passed else "**FAIL**"
            detail = f" ({c.detail})" if c.detail else ""
            bound = f"{c.op} {_fmt(c.bound)}" if c.bound is not None else "(reported only)"
            lines.append(f"| {c.name} | {_fmt(c.value)} | {bound} | {res}{detail} |")
        info = [
            (k, m[k])
            for k in ("ref_logit_std", "greedy_exact", "score_mean")
            if m.get(k) is not None
        ]
        if info:
            lines += ["", "Also measured: " + ", ".join(f"{k} {_fmt(v)}" for k, v in info)]
        if m.get("tokenizer_mismatches"):
            lines += ["", "Tokenizer mismatches:"]
            lines += [f"- `{s}`" for s in m["tokenizer_mismatches"]]
        return "\n".join(lines) + "\n"

    def write(self, where: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
        """Write `<base>.verify.json` and `<base>.verify.md`; return their paths. `where`: None
        -> beside the target (base = the target's path); a folder other than the target ->
        base = folder / target name; anything else is the base itself."""
        p = Path(where) if where is not None else self.target
        base = p / self.target.name if p.is_dir() and p.resolve() != self.target.resolve() else p
        j = base.with_name(base.name + ".verify.json")
        md = base.with_name(base.name + ".verify.md")
        atomic_write_text(j, self.to_json() + "\n")
        atomic_write_text(md, self.to_markdown())
        return j, md


_NEG = {"<=": ">", ">=": "<", "==": "!="}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) < 1e-3 or abs(v) >= 1e4:
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
