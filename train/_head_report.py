"""The figures `edgestar train head` reports (train/head.py): per-source held-out pairwise
accuracy and AUROC of final-answer correctness, and the run's report (JSON and Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SourceFigures:
    source: str
    heldout_problems: int
    pairs: int
    pairwise_accuracy: float | None
    answers: int
    correct_answers: int
    auroc: float | None
    unseen: bool = False
    """A holdout source: no problem of this generator was trained on."""
    answer_pairs: int = 0
    """Pairs of answer steps of one problem, one right and one wrong with another answer: what
    choosing among a search's finished chains asks of a head."""
    answer_pair_accuracy: float | None = None
    """Share of `answer_pairs` where the right answer scores higher."""


@dataclass(frozen=True)
class HeadReport:
    model: str
    model_sha256: str
    kind: str
    loss: str
    train_problems: int
    train_nodes: int
    train_pairs: int
    collect_seconds: float
    fit_seconds: float
    solved_share: float
    per_source: tuple[SourceFigures, ...]
    overall: SourceFigures
    config: dict[str, Any] = field(default_factory=dict)
    l2: float = 0.0
    """The ridge penalty the head was fitted with (chosen by cross-validation when the config
    gave several)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        rows = [
            "| source | held-out problems | sibling pairs | pairwise acc | answer pairs | "
            "answer-pair acc | answers (correct) | AUROC |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in (*self.per_source, self.overall):
            name = s.source + (" (never trained on)" if s.unseen else "")
            rows.append(
                f"| {name} | {s.heldout_problems} | {s.pairs} | {f(s.pairwise_accuracy)} | "
                f"{s.answer_pairs} | {f(s.answer_pair_accuracy)} | "
                f"{s.answers} ({s.correct_answers}) | {f(s.auroc)} |"
            )
        return (
            f"# Head for {self.model}\n\n"
            f"{self.kind} head, {self.loss} loss, l2 {self.l2:g}; trained on {self.train_problems} problems "
            f"({self.train_nodes} nodes, {self.train_pairs} pairs); search solved "
            f"{self.solved_share:.0%} of all problems. Collect {self.collect_seconds:.0f} s, "
            f"fit {self.fit_seconds:.1f} s.\n\n" + "\n".join(rows) + "\n"
        )


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count one half); None without both classes."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))
