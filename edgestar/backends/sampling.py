"""Token sampling and stop strings, shared by every backend that decodes token by token.

One sampler for all backends means a seeded search picks the same tokens from the same logits
whether they come from torch, llama.cpp or ONNX Runtime. Randomness comes only from the
`numpy.random.Generator` handed in (one per candidate, derived from the request seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def candidate_rngs(seed: int, k: int) -> list[np.random.Generator]:
    """k independent generators for the k candidates of one request."""
    ss = np.random.SeedSequence(seed & 0xFFFFFFFFFFFFFFFF)
    return [np.random.default_rng(s) for s in ss.spawn(k)]


def sample_token(
    logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator
) -> tuple[int, float]:
    """Pick one token id from a 1-D logits vector; return (id, log-probability under the
    temperature-scaled distribution). temperature == 0 is greedy (ties -> lowest id)."""
    x = np.asarray(logits, dtype=np.float64)
    if temperature <= 0:
        tok = int(np.argmax(x))
        z = x - x[tok]
        return tok, float(-np.log(np.exp(z).sum()))
    z = x / temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p) + 1)]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        q /= q.sum()
    else:
        q = p
    tok = int(rng.choice(len(q), p=q))
    return tok, float(np.log(p[tok]))


class StopMatcher:
    """Finds the earliest stop string in growing text.

    `check(text)` returns (cut_text, stop) once a stop string appears, cut right after the stop
    string, or None while none has. Works on decoded text, so a stop string may span tokens.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)

    def check(self, text: str) -> tuple[str, str] | None:
        best: tuple[int, str] | None = None
        for s in self.stops:
            i = text.find(s)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        if best is None:
            return None
        i, s = best
        return text[: i + len(s)], s
